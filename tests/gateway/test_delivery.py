"""Acceptance: every member sees the same events in the same seq order, and a phone that was
away resumes with exactly what it missed, on the same gateway, on a restarted gateway process,
or on a second gateway process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import GatewayProcess, gateway_process
from tests.gateway.phone import Phone

ROLES = ("microphone", "observer")


async def lobby_of_ten(url: str) -> tuple[Phone, list[Phone]]:
    host = await Phone.connect(url)
    code = (await host.ok("lobby.create", {"name": "ten"}))["code"]
    phones = [await Phone.connect(url) for _ in range(9)]
    for phone in phones:
        await phone.ok("lobby.join", {"code": code})
    return host, phones


async def role_changes(host: Phone, target: Phone, count: int) -> int:
    """``count`` events: the host moves ``target`` between two roles; the last seq."""
    seq = 0
    for i in range(count):
        seq = (await host.ok("role.assign", {"device_id": target.device_id, "role": ROLES[i % 2]}))[
            "seq"
        ]
    return seq


def test_host_and_nine_phones_see_the_same_events_in_seq_order(gateway: str) -> None:
    async def scenario() -> None:
        host, phones = await lobby_of_ten(gateway)
        # Commands from several members at once, interleaving in the log.
        await asyncio.gather(
            role_changes(host, phones[0], 10),
            *(p.ok("role.update", {"status": s}) for p in phones for s in ("ready",)),
        )
        last = (await host.ok("role.update", {"status": "ready"}))["seq"]
        for phone in [host, *phones]:
            await phone.wait_for_seq(last)
        reference = dict(host.log())
        assert len(reference) == last - 2  # everything after the host's own snapshot (seq 2)
        for phone in phones:
            joined_at = next(e["seq"] for e in phone.events if e["type"] == "lobby.state")
            log = phone.log()
            assert [s for s, _ in log] == list(range(joined_at + 1, last + 1)), "gapless, in order"
            assert all(reference[s] == t for s, t in log), "the same events as the host"
        for phone in [host, *phones]:
            await phone.close()

    asyncio.run(scenario())


@contextmanager
def where_to_resume(kind: str, settings: GatewaySettings, url: str) -> Iterator[tuple[str, object]]:
    """The gateway the away phone uses before and after its 5 s break, and a hook run
    while it is away."""
    with ExitStack() as stack:
        if kind == "same gateway":
            yield url, lambda: (url, None)
            return
        first: GatewayProcess = stack.enter_context(gateway_process(settings))
        if kind == "restarted gateway":

            def restart() -> tuple[str, object]:
                first.stop()
                again = stack.enter_context(gateway_process(settings, port=first.port))
                return again.url, again

            yield first.url, restart
        else:
            second = stack.enter_context(gateway_process(settings))
            yield first.url, lambda: (second.url, second)


@pytest.mark.parametrize("kind", ["same gateway", "restarted gateway", "second gateway"])
def test_a_phone_away_for_5_s_resumes_with_exactly_the_20_events_it_missed(
    gateway: str, gateway_settings: GatewaySettings, kind: str
) -> None:
    async def scenario(away_url: str, while_away: object) -> None:
        host, phones = await lobby_of_ten(gateway)
        code_phone = phones[0]
        await code_phone.close()  # the tenth member uses the gateway under test instead
        away = await Phone.connect(away_url, token=code_phone.token)
        lobby_id = host.events[0]["lobby"]
        last = max(e["seq"] for e in host.events)
        assert (await away.ok("resume", {"lobby_id": lobby_id, "after_seq": last})) == {
            "lobby_id": lobby_id,
            "after_seq": last,
        }
        seen = (await role_changes(host, phones[1], 1)) or 0
        await away.wait_for_seq(seen)
        await away.close()
        left_at = time.monotonic()

        new_url, _ = while_away()  # type: ignore[operator]
        final = await role_changes(host, phones[2], 20)
        assert final == seen + 20
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - left_at)))

        back = await Phone.connect(new_url, token=away.token)
        assert back.device_id == away.device_id
        await back.ok("resume", {"lobby_id": lobby_id, "after_seq": seen})
        await back.wait_for_seq(final)
        await asyncio.sleep(0.3)  # nothing more may arrive
        missed = [(s, t) for s, t in host.log() if seen < s <= final]
        assert back.log() == missed and len(missed) == 20
        for phone in [host, *phones[1:], back]:
            await phone.close()

    with where_to_resume(kind, gateway_settings, gateway) as (away_url, while_away):
        asyncio.run(scenario(away_url, while_away))
