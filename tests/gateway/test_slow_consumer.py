"""Acceptance: a phone that stops reading does not delay the others, and is disconnected with
4001 (reconnect); it can then resume with nothing lost."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlparse

from sonalyze.protocol import CloseCode
from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import gateway_serving
from tests.gateway.phone import Phone

EVENTS = 300
BOUND_S = 1.0  # others' delivery time bound; a stalled room would wait for the slow phone


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
            "slow_consumer_s": 1.0,
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
            await phone.wait_for_seq(last)
        delays = [
            phone.arrival[e["seq"]] - e["ts"] / 1000
            for phone in [host, *others]
            for e in phone.events
            if e["type"] != "lobby.state" and e["seq"] > joined_seq
        ]
        assert len(delays) == 4 * (last - joined_seq)
        assert max(delays) < BOUND_S, f"slowest delivery {max(delays):.3f} s"

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
