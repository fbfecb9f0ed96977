"""Acceptance: a phone that stops reading does not delay the others, and is disconnected with
4001 (reconnect); it can then resume with nothing lost."""

from __future__ import annotations

import asyncio
import re
import socket
from urllib.parse import urlparse

import httpx

from sonalyze.protocol import CloseCode
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import gateway_serving
from tests.gateway.phone import Phone

EVENTS = 300
# The slow phone is closed this long after its queue filled: long enough for the others to get
# every event first even on a busy machine, had the fan-out to wait for its eviction.
SLOW_CONSUMER_S = 20.0


def evictions(url: str) -> float:
    """How many slow consumers the gateway has closed (its own metric)."""
    text = httpx.get(url.replace("ws://", "http://").removesuffix("/v1/ws") + "/metrics").text
    found = re.search(r"^sonalyze_ws_slow_consumer_disconnects_total (\S+)$", text, re.M)
    assert found, "the metric is exported"
    return float(found[1])


async def evicted(url: str, within_s: float) -> None:
    """Wait until the gateway has closed a slow consumer (polling its metric)."""
    for _ in range(round(within_s / 0.5)):
        if evictions(url):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no slow consumer closed within {within_s:g} s")


async def stalled_phone(url: str, token: str | None = None) -> Phone:
    """A phone with a tiny receive buffer, so its stall reaches the gateway quickly."""
    parts = urlparse(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    sock.setblocking(False)
    return await Phone.connect(url, sock=sock, max_queue=1, token=token)


def test_a_phone_that_stops_reading_is_closed_4001_and_delays_nobody(
    gateway_settings: GatewaySettings,
) -> None:
    settings = gateway_settings.model_copy(
        update={
            "send_queue_size": 16,
            "slow_consumer_s": SLOW_CONSUMER_S,
            "send_buffer_bytes": 4096,
            "commands_per_s": 10_000,
            "command_burst": 10_000,
        }
    )

    async def scenario(url: str) -> None:
        host = await Phone.connect(url)
        created = await host.ok("lobby.create", {})
        others = [await Phone.connect(url) for _ in range(3)]
        for phone in others:
            await phone.ok("lobby.join", {"code": created["code"]})
        slow = await stalled_phone(url)
        joined_seq = (await slow.ok("lobby.join", {"code": created["code"]}))["seq"]
        await host.wait_for_seq(joined_seq)
        slow.reading.clear()

        async def toggle(phone: Phone, n: int) -> int:
            seq = 0
            for i in range(n):
                status = "ready" if i % 2 == 0 else "not_ready"
                seq = max(seq, (await phone.ok("role.update", {"status": status}))["seq"])
            return seq

        last = await toggle(others[0], EVENTS)
        for phone in [host, *others]:
            await phone.wait_for_seq(last, within_s=60)
        assert evictions(url) == 0, "the others got every event before the slow one was closed"
        await evicted(url, within_s=SLOW_CONSUMER_S + 60)

        slow.reading.set()  # read the backlog: the close comes after it
        code, _ = await slow.closed()
        assert code == CloseCode.slow_consumer
        seen = max(e["seq"] for e in slow.events)
        assert [e["seq"] for e in slow.events if e["seq"] > joined_seq] == list(
            range(joined_seq + 1, seen + 1)
        ), "what it got before the close is gapless"
        assert seen < last, "it was closed before the end"

        back = await Phone.connect(url, token=slow.token)
        await back.ok("resume", {"lobby_id": created["lobby_id"], "after_seq": seen})
        await back.wait_for_seq(last)
        assert [s for s, _ in back.log()] == list(range(seen + 1, last + 1))
        for phone in [host, *others, back]:
            await phone.close()

    with gateway_serving(settings) as url:
        asyncio.run(scenario(url))
