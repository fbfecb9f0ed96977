"""The phones' WebSocket endpoint ``/v1/ws``: admission, then a session.

A browser page cannot read an HTTP refusal of the upgrade (it only sees close 1006, the same as
"gateway down"), so a connection the gateway will not admit is accepted and closed at once, with
a documented close code and a reason, before anything is read from it or run for it: 4000 while
draining and 4004 while full (reconnect later), 4104 for a page from an origin that may not
connect, 4105 when the client did not offer the ``sonalyze.v1`` subprotocol (do not retry the
same way). A browser that offered other subprotocols fails the connection itself when the
answer names none, so only a client that offered none reads 4105.

Origins: a page from the gateway's own origin (the scheme and host the request came to, so the
app the gateway serves) may always connect, when that host is an IP address, localhost or one
of ``SONALYZE_APP_HOSTS``; requests without Origin (native apps, tools) too; other pages only
if ``SONALYZE_ALLOWED_ORIGINS`` lists them.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import WebSocket

from sonalyze.protocol import SUBPROTOCOL, CloseCode
from sonalyze_gateway.gateway import Gateway
from sonalyze_gateway.session import Session

WS_PATH = "/v1/ws"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` with the default port filled in, or None if unreadable."""
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return (scheme, (parts.hostname or "").lower(), port)


def known_host(host: str, app_hosts: list[str]) -> bool:
    """Whether ``host`` names this gateway: an IP address, localhost, or one of
    ``app_hosts`` (``*.example.org``: any of its subdomains)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return True
    for name in (h.strip().lower() for h in app_hosts):
        if host == name or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def own_origin(websocket: WebSocket, app_hosts: list[str]) -> tuple[str, str, int] | None:
    """The origin this request came to: the Host header, and the scheme the client used
    (``X-Forwarded-Proto`` from a TLS-terminating front door, else the connection's own). A
    page cannot set either header on a WebSocket request, so a cross-site page cannot pass
    for this origin; a host name the gateway does not know gives none (DNS rebinding)."""
    host = websocket.headers.get("host")
    if not host:
        return None
    forwarded = websocket.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    scheme = forwarded or ("https" if websocket.url.scheme == "wss" else "http")
    key = _origin_key(scheme, host)
    if key is None or not known_host(key[1], app_hosts):
        return None
    return key


def origin_allowed(
    origin: str | None, allowed: list[str], own: tuple[str, str, int] | None = None
) -> bool:
    """Whether a page from ``origin`` may connect: no Origin (not a browser), the gateway's
    own origin ``own``, or one listed in ``allowed`` (``"*"``: any)."""
    if origin is None:
        return True
    if "*" in allowed:
        return True
    parts = urlsplit(origin.strip())
    key = _origin_key(parts.scheme, parts.netloc)
    if key is None:
        return False
    if key == own:
        return True
    listed = (urlsplit(o.strip().rstrip("/")) for o in allowed)
    return key in {_origin_key(p.scheme, p.netloc) for p in listed}


def admission(gateway: Gateway, websocket: WebSocket) -> tuple[str, CloseCode, str] | None:
    """Why this connection is refused (a metrics reason, a close code, the reason a client
    reads), or ``None``."""
    if gateway.draining:
        return "draining", CloseCode.going_away, "the gateway is restarting; reconnect"
    if len(gateway.sessions) >= gateway.settings.max_connections:
        return "capacity", CloseCode.over_capacity, "the gateway is full; retry with backoff"
    origin = websocket.headers.get("origin")
    own = own_origin(websocket, gateway.settings.app_hosts)
    if not origin_allowed(origin, gateway.settings.allowed_origins, own):
        return (
            "origin",
            CloseCode.forbidden_origin,
            f"pages from {(origin or '')[:60]} may not connect here",
        )
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
        return "subprotocol", CloseCode.subprotocol_required, f"offer the subprotocol {SUBPROTOCOL}"
    return None


async def phone_socket(websocket: WebSocket) -> None:
    """``/v1/ws``: protocol v1 (see ``docs/asyncapi.json``)."""
    gateway: Gateway = websocket.app.state.gateway
    refusal = admission(gateway, websocket)
    if refusal is not None:
        reason, code, message = refusal
        gateway.metrics.rejected.labels(reason).inc()
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await websocket.close(code, message)
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    await Session(gateway, websocket).run()
