"""Liveness: drain on SIGTERM, silent phones evicted and shown offline, presence grace,
and the per-connection command rate limit."""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from sonalyze.protocol import CloseCode
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import gateway_process, gateway_serving
from tests.gateway.phone import Phone


def test_sigterm_drains_readyz_503_then_clients_get_4000(
    gateway_settings: GatewaySettings,
) -> None:
    settings = gateway_settings.model_copy(update={"drain_delay_s": 1.5})

    async def scenario(url: str, http: str, terminate: object) -> None:
        phone = await Phone.connect(url)
        await phone.ok("lobby.create", {})
        terminate()  # type: ignore[operator]
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 1.0
            while (await client.get(f"{http}/readyz")).status_code != 503:
                assert time.monotonic() < deadline, "readyz did not turn 503"
                await asyncio.sleep(0.05)
            assert (await client.get(f"{http}/readyz")).json()["status"] == "draining"
            assert (await phone.ok("ping")) == {}, "still serving during the drain delay"
        code, _ = await phone.closed()
        assert code == CloseCode.going_away

    with gateway_process(settings) as process:
        asyncio.run(scenario(process.url, process.http, process.terminate))
        assert process.process.wait(20) is not None


def test_a_phone_that_pings_but_reads_nothing_is_not_cut_off_by_a_keepalive(gateway: str) -> None:
    """A page busy elsewhere reads nothing for a while, yet sends its pings: it stays
    connected and then gets every reply. (WebSocket protocol pings, unanswered while the page
    read nothing, closed it with 1011 after 40 s, a code it cannot act on.)"""

    async def scenario() -> None:
        # Its WebSocket layer holds one message and then stops reading; no pings of its own.
        phone = await Phone.connect(gateway, max_queue=1, ping_interval=None)
        phone.reading.clear()
        for index in range(50):  # beyond the protocol pings' 20 s interval and 20 s timeout
            await phone.send_raw(json.dumps({"v": 1, "type": "ping", "id": f"p{index}"}))
            await asyncio.sleep(1)
        phone.reading.set()
        assert (await phone.ok("ping")) == {}
        assert {f"p{index}" for index in range(50)} <= {m["corr"] for m in phone.uncorrelated}
        await phone.close()

    asyncio.run(scenario())


def test_a_silent_phone_is_closed_4002_and_shown_offline(
    gateway_settings: GatewaySettings,
) -> None:
    settings = gateway_settings.model_copy(update={"idle_timeout_s": 0.5})

    async def scenario(url: str) -> None:
        host = await Phone.connect(url)
        created = await host.ok("lobby.create", {})
        silent = await Phone.connect(url)
        await silent.ok("lobby.join", {"code": created["code"]})

        async def keep_pinging() -> None:
            while True:
                await host.ok("ping")
                await asyncio.sleep(0.1)

        pinger = asyncio.create_task(keep_pinging())
        assert (await silent.closed())[0] == CloseCode.idle_timeout
        await host.wait_for_seq(created["seq"] + 2)
        assert host.log()[-1] == (created["seq"] + 2, "participant.presence")
        assert host.events[-1]["payload"] == {"device_id": silent.device_id, "presence": "offline"}
        pinger.cancel()
        await host.close()

    with gateway_serving(settings) as url:
        asyncio.run(scenario(url))


def test_presence_goes_offline_after_the_grace_and_back_on_resume(
    gateway_settings: GatewaySettings,
) -> None:
    settings = gateway_settings.model_copy(update={"presence_grace_s": 0.2})

    async def scenario(url: str) -> None:
        host = await Phone.connect(url)
        created = await host.ok("lobby.create", {})
        phone = await Phone.connect(url)
        joined = await phone.ok("lobby.join", {"code": created["code"]})
        await phone.close()
        await host.wait_for_seq(joined["seq"] + 1)
        back = await Phone.connect(url, token=phone.token)
        await back.ok("resume", {"lobby_id": created["lobby_id"], "after_seq": joined["seq"]})
        await host.wait_for_seq(joined["seq"] + 2)
        presence = [e["payload"]["presence"] for e in host.events if e["seq"] > joined["seq"]]
        assert presence == ["offline", "online"]
        await back.wait_for_seq(joined["seq"] + 2)
        assert [t for _, t in back.log()] == ["participant.presence"] * 2
        await back.close()
        await host.close()

    with gateway_serving(settings) as url:
        asyncio.run(scenario(url))


def test_a_quick_reconnect_never_shows_offline(gateway: str) -> None:
    async def scenario() -> None:
        host = await Phone.connect(gateway)
        created = await host.ok("lobby.create", {})
        phone = await Phone.connect(gateway)
        joined = await phone.ok("lobby.join", {"code": created["code"]})
        await phone.close()
        back = await Phone.connect(gateway, token=phone.token)
        await back.ok("resume", {"lobby_id": created["lobby_id"], "after_seq": joined["seq"]})
        seq = (await host.ok("role.update", {"status": "ready"}))["seq"]
        assert seq == joined["seq"] + 1, "no presence event in between"
        await back.close()
        await host.close()

    asyncio.run(scenario())


def test_commands_beyond_the_burst_are_rate_limited(gateway_settings: GatewaySettings) -> None:
    settings = gateway_settings.model_copy(update={"commands_per_s": 1.0, "command_burst": 5})

    async def scenario(url: str) -> None:
        phone = await Phone.connect(url)
        replies = [await phone.command("ping") for _ in range(8)]
        assert [r["type"] for r in replies] == ["ack"] * 5 + ["error"] * 3
        error = replies[-1]["payload"]
        assert error["code"] == "rate_limited" and 0 < error["retry_after_ms"] <= 1000
        await phone.close()

    with gateway_serving(settings) as url:
        asyncio.run(scenario(url))


def test_moving_to_another_lobby_shows_the_phone_offline_in_the_first(gateway: str) -> None:
    async def scenario() -> None:
        first_host = await Phone.connect(gateway)
        first = await first_host.ok("lobby.create", {})
        phone = await Phone.connect(gateway)
        joined = await phone.ok("lobby.join", {"code": first["code"]})
        other_host = await Phone.connect(gateway)
        other = await other_host.ok("lobby.create", {})
        await phone.ok("lobby.join", {"code": other["code"]})
        await first_host.wait_for_seq(joined["seq"] + 1)
        assert first_host.events[-1]["type"] == "participant.presence"
        assert first_host.events[-1]["payload"] == {
            "device_id": phone.device_id,
            "presence": "offline",
        }
        for p in (first_host, phone, other_host):
            await p.close()

    asyncio.run(scenario())
