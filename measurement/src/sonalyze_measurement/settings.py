"""Measurement settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from pydantic import Field

from sonalyze.settings import StorageClientSettings


class MeasurementSettings(StorageClientSettings):
    """Settings of the measurement service."""

    port: int = Field(8082, ge=1, le=65535)
