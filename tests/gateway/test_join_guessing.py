"""Join codes guessed at once: every guess counts against the limit from the moment it is
sent, so ten wrong codes are all anyone gets, however many connections send them together;
and a phone's address is its forwarded one only behind a trusted proxy."""

from __future__ import annotations

import asyncio
from collections import Counter
from ipaddress import ip_network

from sonalyze_gateway.settings import GatewaySettings
from tests.gateway.conftest import gateway_serving
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


async def guess_one_by_one(url: str, forwarded_for: list[str]) -> Counter[str]:
    """A new device per address given, each sending one wrong code in turn."""
    codes: Counter[str] = Counter()
    for address in forwarded_for:
        phone = await Phone.connect(url, additional_headers={"X-Forwarded-For": address})
        codes[(await phone.command("lobby.join", WRONG))["payload"]["code"]] += 1
        await phone.close()
    return codes


ROTATING = [f"203.0.113.{i}" for i in range(12)]


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(gateway: str) -> None:
    """A rotating X-Forwarded-For from a peer not named a proxy: all one address."""
    codes = asyncio.run(guess_one_by_one(gateway, ROTATING))
    assert codes == Counter(not_found=10, rate_limited=2)


def test_behind_a_trusted_proxy_a_phone_is_the_address_it_forwards(
    gateway_settings: GatewaySettings,
) -> None:
    proxy = gateway_settings.model_copy(update={"trusted_proxies": [ip_network("127.0.0.1/32")]})
    with gateway_serving(proxy) as url:
        # What the phone wrote itself (the left end) is not believed; the proxy's entry is.
        rotating = asyncio.run(guess_one_by_one(url, [f"198.51.100.7, {a}" for a in ROTATING]))
        one = asyncio.run(guess_one_by_one(url, ["198.51.100.8, 203.0.113.99"] * 11))
    assert rotating == Counter(not_found=12), "each phone its own address"
    assert one == Counter(not_found=10, rate_limited=1), "one address behind the proxy"
