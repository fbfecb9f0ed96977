"""The phones' WebSocket endpoint ``/v1/ws``: admission before the handshake, then a session.

Admission happens before the upgrade is accepted, and a refusal is an HTTP answer with the
usual ``{code, message}`` body: 503 while draining or full, 403 for an Origin not on the
allow-list (browsers send Origin; CORS middleware does not cover WebSockets), 400 when the
client does not offer the ``sonalyze.v1`` subprotocol.
"""

from __future__ import annotations

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from sonalyze.errors import HTTP_STATUS, ErrorCode, ServiceError
from sonalyze.protocol import SUBPROTOCOL
from sonalyze_gateway.gateway import Gateway
from sonalyze_gateway.session import Session

WS_PATH = "/v1/ws"


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """Whether a page from ``origin`` may connect: no Origin (not a browser) or listed."""
    if origin is None:
        return True
    return "*" in allowed or origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}


def admission(gateway: Gateway, websocket: WebSocket) -> tuple[str, ServiceError] | None:
    """Why this upgrade request is refused (a metrics reason and the error), or ``None``."""
    if gateway.draining:
        return "draining", ServiceError(ErrorCode.unavailable, "the gateway is restarting")
    if len(gateway.sessions) >= gateway.settings.max_connections:
        return "capacity", ServiceError(ErrorCode.unavailable, "the gateway is full; retry")
    if not origin_allowed(websocket.headers.get("origin"), gateway.settings.allowed_origins):
        return "origin", ServiceError(ErrorCode.forbidden, "this Origin may not connect")
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
        return "subprotocol", ServiceError(
            ErrorCode.bad_request, f"offer the WebSocket subprotocol {SUBPROTOCOL}"
        )
    return None


async def phone_socket(websocket: WebSocket) -> None:
    """``/v1/ws``: protocol v1 (see ``docs/asyncapi.json``)."""
    gateway: Gateway = websocket.app.state.gateway
    refusal = admission(gateway, websocket)
    if refusal is not None:
        reason, error = refusal
        gateway.metrics.rejected.labels(reason).inc()
        body = {"code": error.code.value, "message": error.message}
        await websocket.send_denial_response(
            JSONResponse(body, status_code=HTTP_STATUS[error.code])
        )
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    await Session(gateway, websocket).run()
