"""The gateway app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sonalyze.service import storage_backed_app
from sonalyze_gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    return storage_backed_app(
        service="gateway",
        settings=settings,
        description="The only public entry: the phones' WebSocket and a small HTTP surface.",
    )
