"""Measurement settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from pydantic import Field

from sonalyze.settings import StorageClientSettings


class MeasurementSettings(StorageClientSettings):
    """Settings of the measurement service."""

    port: int = Field(8082, ge=1, le=65535)
    lobby_url: str = Field(
        "http://127.0.0.1:8081",
        description="Base URL of the lobby service, whose workflow follows the measurement.",
    )
    start_delay_s: float = Field(
        3.0,
        ge=0.5,
        le=60,
        description="Time between measurement.start and the recording's start, for every "
        "phone to hear of it and fetch the sweep.",
    )
    max_chunk_bytes: int = Field(
        256 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest upload chunk; at most storage's SONALYZE_MAX_CHUNK_BYTES.",
    )
    upload_grace_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="After the recording's scheduled end, how long uploads have before the "
        "analysis runs with the recordings that arrived.",
    )
    reconcile_every_s: float = Field(
        60.0,
        gt=0,
        description="How often the service re-arms deadlines and looks for analyses whose "
        "process stopped.",
    )
    analysis_stale_s: float = Field(
        300.0,
        ge=0,
        description="An analysis that has not reported for this long is taken for abandoned "
        "(its process crashed) and run again.",
    )
    analysis_workers: int = Field(
        1, ge=1, le=64, description="Worker processes that analyse recordings (CPU-bound)."
    )
