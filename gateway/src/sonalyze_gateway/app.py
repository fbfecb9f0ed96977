"""The gateway app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.types import Receive, Scope, Send

from sonalyze import upload_frames
from sonalyze.errors import (
    install_error_handler,
    install_http_error_handler,
    install_validation_handler,
)
from sonalyze.health import ReadinessCheck
from sonalyze.lobby_client import LobbyClient
from sonalyze.measurement_client import MeasurementClient
from sonalyze.service import storage_backed_app
from sonalyze.simulation_client import SimulationClient
from sonalyze_gateway import downloads, webapp
from sonalyze_gateway.cors import DownloadCors
from sonalyze_gateway.endpoint import WS_PATH, phone_socket
from sonalyze_gateway.gateway import Gateway
from sonalyze_gateway.settings import GatewaySettings
from sonalyze_gateway.transport import protocol_class
from sonalyze_gateway.ws_metrics import WsMetrics


def create_app(settings: GatewaySettings) -> FastAPI:
    if not settings.device_token_secrets:
        raise ValueError("set SONALYZE_DEVICE_TOKEN_SECRETS: the gateway signs device tokens")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        token, timeout = settings.internal_token_value(), settings.storage_timeout_s
        async with (
            LobbyClient(settings.lobby_url, token, timeout) as lobbies,
            MeasurementClient(settings.measurement_url, token, timeout) as measurements,
            SimulationClient(settings.simulation_url, token, timeout) as simulations,
        ):
            gateway = Gateway(
                settings,
                app.state.storage,
                lobbies,
                measurements,
                simulations,
                app.state.ws_metrics,
            )
            app.state.gateway = gateway
            app.state.drain_hooks.append(gateway.drain)
            hub = asyncio.create_task(gateway.hub.run())
            try:
                yield
            finally:
                hub.cancel()
                await asyncio.gather(hub, return_exceptions=True)
                await gateway.close()

    async def events_ready() -> None:
        app.state.gateway.hub.ready()

    app = storage_backed_app(
        app_class=GatewayApp,
        service="gateway",
        settings=settings,
        description="The only public entry: the phones' WebSocket and a small HTTP surface.",
        lifespan=lifespan,
        readiness=[ReadinessCheck("events", events_ready)],
    )
    app.state.ws_metrics = WsMetrics(app.state.registry)
    install_error_handler(app)
    install_http_error_handler(app)
    install_validation_handler(app)
    app.include_router(downloads.router)
    webapp.install(app)
    app.add_middleware(DownloadCors, allowed_origins=settings.allowed_origins)
    return app


class GatewayApp(FastAPI):
    """The gateway's app: the phones' WebSocket goes straight to its endpoint, past the HTTP
    middleware. A connection lives for hours, and every layer of the ASGI call chain it sits
    in is objects the garbage collector walks on each full collection, for every connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            scope["app"] = self
            await phone_socket(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def uvicorn_options(settings: GatewaySettings) -> dict[str, Any]:
    """The WebSocket options the gateway runs with (its entry point and the tests use them)."""
    return {
        "ws": protocol_class(settings.send_buffer_bytes),
        # Frames up to 4 (text) or 2 (upload) times the limits are read, to be refused with
        # a reason (4103); larger ones get the server's 1009 first.
        "ws_max_size": max(
            4 * settings.max_message_bytes,
            2 * (settings.max_upload_chunk_bytes + upload_frames.HEADER_BYTES),
        ),
        # No protocol pings: the phones' own pings (idle timeout, 4002) find a dead connection,
        # and the send queue (4001) a phone that stops reading. A protocol ping would end
        # either first with 1011, a code a page cannot act on, and would also end a busy phone
        # whose unanswered commands held up the pong behind them.
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        "ws_per_message_deflate": False,
        # The client address is the gateway's to decide (forwarding.py), from trusted proxies
        # only; uvicorn would believe X-Forwarded-For from any local peer.
        "proxy_headers": False,
    }
