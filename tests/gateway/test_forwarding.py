"""Which address a connection counts under: X-Forwarded-For believed from trusted proxies only,
read from the right."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from starlette.datastructures import Headers

from sonalyze_gateway.forwarding import client_address

PROXIES = [ip_network("10.0.0.0/8"), ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "address"),
    [
        ("192.0.2.1", ["203.0.113.5"], "192.0.2.1"),  # not a proxy: its header is ignored
        ("10.1.2.3", [], "10.1.2.3"),  # a proxy that forwards nobody is itself
        ("10.1.2.3", ["203.0.113.5"], "203.0.113.5"),
        ("10.1.2.3", ["198.51.100.1, 203.0.113.5"], "203.0.113.5"),  # the left end is the phone's
        ("10.1.2.3", ["203.0.113.5, 10.9.9.9"], "203.0.113.5"),  # through two proxies
        ("10.1.2.3", ["203.0.113.5", "10.9.9.9"], "203.0.113.5"),  # the header given twice
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        ("10.1.2.3", ["not-an-address, 10.9.9.9"], "not-an-address"),  # counted as given
        ("10.1.2.3", ["10.9.9.9, 10.8.8.8"], "10.1.2.3"),  # all proxies: the nearest
        ("10.1.2.3", ["203.0.113.5:5000"], "203.0.113.5"),  # a port is not the address
        ("10.1.2.3", ["[2001:db8::7]:5000"], "2001:db8::7"),
        (None, ["203.0.113.5"], "unknown"),
    ],
)
def test_the_address_a_connection_counts_under(
    peer: str | None, forwarded: list[str], address: str
) -> None:
    headers = Headers(raw=[(b"x-forwarded-for", value.encode()) for value in forwarded])
    assert client_address(peer, headers, PROXIES) == address
