"""Lobby settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from pydantic import Field

from sonalyze.settings import StorageClientSettings


class LobbySettings(StorageClientSettings):
    """Settings of the lobby service."""

    port: int = Field(8081, ge=1, le=65535)
    max_members: int = Field(10, ge=2, le=100, description="Members a lobby may hold.")
    measurement_url: str = Field(
        "http://127.0.0.1:8082", description="Base URL of the measurement service."
    )
