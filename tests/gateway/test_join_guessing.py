"""Join codes guessed at once: every guess counts against the limit from the moment it is
sent, so ten wrong codes are all anyone gets, however many connections send them together."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.gateway.phone import Phone

WRONG = {"code": "ZZZZ-ZZZ"}


async def guess_at_once(phones: list[Phone]) -> Counter[str]:
    replies = await asyncio.gather(*(phone.command("lobby.join", WRONG) for phone in phones))
    for phone in phones:
        await phone.close()
    return Counter(reply["payload"]["code"] for reply in replies)


def test_fifteen_connections_of_one_device_get_ten_lookups(gateway: str) -> None:
    async def scenario() -> Counter[str]:
        first = await Phone.connect(gateway)
        others = [await Phone.connect(gateway, token=first.token) for _ in range(14)]
        return await guess_at_once([first, *others])

    assert asyncio.run(scenario()) == Counter(not_found=10, rate_limited=5)


def test_thirty_devices_on_one_address_get_ten_lookups(gateway: str) -> None:
    async def scenario() -> Counter[str]:
        return await guess_at_once([await Phone.connect(gateway) for _ in range(30)])

    assert asyncio.run(scenario()) == Counter(not_found=10, rate_limited=20)
