"""Simulation settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from pydantic import Field

from sonalyze.settings import StorageClientSettings


class SimulationSettings(StorageClientSettings):
    """Settings of the simulation service."""

    port: int = Field(8083, ge=1, le=65535)
