"""A phone's address, for the limits that count per address: the connection's peer, unless the
peer is a trusted reverse proxy (the Ingress controller), whose ``X-Forwarded-For`` then says
whom it forwards.

The header is believed only from the proxies the setting ``trusted_proxies`` names: anyone
else could write any address into it and escape the per-address limits (uvicorn believes it
from every local peer by default; the gateway runs it with ``proxy_headers`` off). Read from
the right, as each proxy appends the address it received from: the first entry that is not a
trusted proxy is the phone (RFC 7239 section 7.4 explains why the left end cannot be trusted).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(peer: str | None, headers: Headers, trusted: Sequence[Network]) -> str:
    """The address limits count the connection under (``"unknown"`` without a peer)."""
    if peer is None:
        return "unknown"
    if not _trusted(peer, trusted):
        return peer
    hops = [
        _host(hop)
        for value in headers.getlist("x-forwarded-for")
        for hop in value.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    # Every hop a proxy of ours: whoever is behind them is unknown (the left end is whatever
    # the client wrote), so they count under the nearest proxy.
    return peer


def _host(hop: str) -> str:
    """An X-Forwarded-For entry without a port (``192.0.2.1:5000``, ``[2001:db8::1]:5000``)."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].split("]", 1)[0]
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # not an address (a name, or garbage): never a proxy of ours
    return any(ip in network for network in trusted)
