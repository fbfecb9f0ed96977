"""The lobby app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sonalyze.service import storage_backed_app
from sonalyze_lobby.settings import LobbySettings


def create_app(settings: LobbySettings) -> FastAPI:
    return storage_backed_app(
        service="lobby",
        settings=settings,
        description="Lobbies, participants, roles and the measurement workflow.",
    )
