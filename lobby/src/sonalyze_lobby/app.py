"""The lobby app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sonalyze.errors import (
    install_error_handler,
    install_http_error_handler,
    install_validation_handler,
)
from sonalyze.measurement_client import MeasurementClient
from sonalyze.service import storage_backed_app
from sonalyze_lobby.api import router
from sonalyze_lobby.lobbies import Lobbies
from sonalyze_lobby.settings import LobbySettings


def create_app(settings: LobbySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with MeasurementClient(
            settings.measurement_url, settings.internal_token_value(), settings.storage_timeout_s
        ) as measurements:
            app.state.lobbies = Lobbies(app.state.storage, measurements, settings.max_members)
            yield

    app = storage_backed_app(
        service="lobby",
        settings=settings,
        description="Lobbies, participants, roles and the measurement workflow.",
        lifespan=lifespan,
    )
    install_error_handler(app)
    install_http_error_handler(app)
    install_validation_handler(app)
    app.include_router(router)
    return app
