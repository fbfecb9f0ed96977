"""sonalyze.client against real gateways: typed acks and errors, events in order, the clock
offset within its bound, and a reconnect after the gateway was killed that loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from sonalyze import protocol
from sonalyze.client import Client, CommandFailed
from sonalyze.errors import ErrorCode
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import gateway_process


def test_commands_answer_with_their_models_and_refusals_with_their_codes(gateway: str) -> None:
    async def scenario() -> None:
        async with Client(gateway) as host, Client(gateway) as guest:
            joined = await host.command("lobby.create", {"name": "studio"})
            assert isinstance(joined, protocol.Joined)
            with pytest.raises(CommandFailed) as refused:
                await guest.command("lobby.join", {"code": "ZZZZ-ZZZ"})
            assert refused.value.code == ErrorCode.not_found
            await guest.command("lobby.join", {"code": joined.code})
            changed = await guest.command("role.update", {"status": "ready"})
            await host.wait_for_seq(changed.seq)
            event = await host.wait_for("role.updated")
            assert event.payload["device_id"] == str(guest.device_id)
            seqs = [e.seq for e in host.events if e.type != "lobby.state"]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "in order, each once"
            offset, round_trip = await host.clock_offset_ms()
            assert abs(offset) <= round_trip / 2 + 1, "one clock: NTP's bound holds"

    asyncio.run(scenario())


def test_a_client_reconnects_to_a_restarted_gateway_and_misses_nothing(
    gateway: str, gateway_settings: GatewaySettings
) -> None:
    """Its gateway is killed (SIGKILL); while it is down the lobby moves on and the client
    sends a command; the gateway comes back on the same port."""

    async def scenario(first: str, restart: threading.Event, restarted: threading.Event) -> None:
        async with Client(gateway) as host, Client(first) as away:
            joined = await host.command("lobby.create")
            await away.command("lobby.join", {"code": joined.code})
            restart.set()  # the test kills the away phone's gateway now
            await asyncio.sleep(1)
            last = 0
            for status in ("ready", "not_ready") * 5:
                last = (await host.command("role.update", {"status": status})).seq
            pending = asyncio.create_task(away.command("role.update", {"status": "ready"}))
            await asyncio.to_thread(restarted.wait, 60)
            mine = await pending  # sent again once reconnected, run once
            assert mine.seq > last
            await away.wait_for_seq(mine.seq)
            seqs = [e.seq for e in away.events if e.type != "lobby.state"]
            assert seqs == list(range(seqs[0], mine.seq + 1)), "every event, in order, once"
            assert away.reconnects == 1

    port_settings = gateway_settings
    with gateway_process(port_settings) as first:
        restart, restarted = threading.Event(), threading.Event()

        def kill_and_restart() -> None:
            restart.wait(60)
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait()
            with gateway_process(port_settings, port=first.port):
                restarted.set()
                done.wait(120)

        done = threading.Event()
        worker = threading.Thread(target=kill_and_restart)
        worker.start()
        try:
            asyncio.run(scenario(first.url, restart, restarted))
        finally:
            done.set()
            worker.join()


def test_another_client_of_the_same_device_gets_its_own_replies(gateway: str) -> None:
    """The gateway answers a repeated (device, id) with its first reply: a second client of
    a device (token=) must not reuse the first one's ids."""

    async def scenario() -> None:
        async with Client(gateway) as first:
            joined = await first.command("lobby.create")
        async with Client(gateway, token=first.token) as again:
            assert again.device_id == first.device_id
            assert isinstance(await again.command("ping"), protocol.Empty)
            resumed = await again.command(
                "resume", {"lobby_id": str(joined.lobby_id), "after_seq": 0}
            )
            assert resumed.lobby_id == joined.lobby_id

    asyncio.run(scenario())
