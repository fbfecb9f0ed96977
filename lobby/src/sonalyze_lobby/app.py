"""The lobby app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sonalyze.errors import install_error_handler
from sonalyze.service import storage_backed_app
from sonalyze_lobby.api import router
from sonalyze_lobby.lobbies import Lobbies
from sonalyze_lobby.settings import LobbySettings


def create_app(settings: LobbySettings) -> FastAPI:
    app = storage_backed_app(
        service="lobby",
        settings=settings,
        description="Lobbies, participants, roles and the measurement workflow.",
        on_start=lambda app: setattr(
            app.state, "lobbies", Lobbies(app.state.storage, settings.max_members)
        ),
    )
    install_error_handler(app)
    app.include_router(router)
    return app
