"""The measurement app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sonalyze.errors import install_error_handler
from sonalyze.service import storage_backed_app
from sonalyze_measurement.api import router
from sonalyze_measurement.measurements import Measurements
from sonalyze_measurement.settings import MeasurementSettings


def create_app(settings: MeasurementSettings) -> FastAPI:
    app = storage_backed_app(
        service="measurement",
        settings=settings,
        description="Sweep design, recording upload, validation and analysis.",
        on_start=lambda app: setattr(
            app.state,
            "measurements",
            Measurements(
                app.state.storage,
                start_delay_s=settings.start_delay_s,
                max_chunk_bytes=settings.max_chunk_bytes,
            ),
        ),
    )
    install_error_handler(app)
    app.include_router(router)
    return app
