"""The measurement app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sonalyze.service import storage_backed_app
from sonalyze_measurement.settings import MeasurementSettings


def create_app(settings: MeasurementSettings) -> FastAPI:
    return storage_backed_app(
        service="measurement",
        settings=settings,
        description="Sweep design, recording upload, validation and analysis.",
    )
