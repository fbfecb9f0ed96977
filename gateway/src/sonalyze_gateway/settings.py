"""Gateway settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from pydantic import Field

from sonalyze.settings import StorageClientSettings


class GatewaySettings(StorageClientSettings):
    """Settings of the gateway service."""

    port: int = Field(8000, ge=1, le=65535)
