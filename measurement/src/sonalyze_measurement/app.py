"""The measurement app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sonalyze.errors import (
    install_error_handler,
    install_http_error_handler,
    install_validation_handler,
)
from sonalyze.lifeline import watch_parent
from sonalyze.lobby_client import LobbyClient
from sonalyze.service import storage_backed_app
from sonalyze_measurement.analysis import warm_up
from sonalyze_measurement.api import router
from sonalyze_measurement.measurement_metrics import MeasurementMetrics
from sonalyze_measurement.measurements import Measurements
from sonalyze_measurement.runs import AnalysisRuns
from sonalyze_measurement.settings import MeasurementSettings

# One BLAS thread per analysis worker. The analysis's vectors are small, and a multithreaded BLAS
# spreads even those over threads that, on a machine busy with other workers, wait on each
# other: several times slower. BLAS reads these when numpy loads, so they are set in this
# process's environment, which the spawned workers inherit, unless the operator set them.
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def create_app(settings: MeasurementSettings) -> FastAPI:
    @asynccontextmanager
    async def analysis_workers(app: FastAPI) -> AsyncIterator[None]:
        # spawn, not fork: the service has threads, which a forked child would inherit stuck.
        context = multiprocessing.get_context("spawn")
        metrics = MeasurementMetrics(app.state.registry)
        token, timeout = settings.internal_token_value(), settings.storage_timeout_s

        def new_pool() -> ProcessPoolExecutor:
            for name in BLAS_THREADS:
                os.environ.setdefault(name, "1")
            # Each worker stops if this service dies (a pool's workers would run on).
            pool = ProcessPoolExecutor(
                settings.analysis_workers,
                mp_context=context,
                initializer=watch_parent,
                initargs=(os.getpid(),),
            )
            pool.submit(warm_up)  # spawn and import now, not on the first analysis (~3 s)
            return pool

        async with LobbyClient(settings.lobby_url, token, timeout) as lobbies:
            runs = AnalysisRuns(
                app.state.storage,
                lobbies,
                new_pool,
                metrics,
                chunk_bytes=settings.max_chunk_bytes,
            )
            app.state.measurements = Measurements(
                app.state.storage,
                runs,
                metrics,
                start_delay_s=settings.start_delay_s,
                max_chunk_bytes=settings.max_chunk_bytes,
                upload_grace_s=settings.upload_grace_s,
            )
            watch = runs.keep_reconciling(
                app.state.measurements.deadline_of,
                settings.reconcile_every_s,
                settings.analysis_stale_s,
            )
            runs.watch(asyncio.create_task(watch))
            try:
                yield
            finally:
                await runs.close()  # lets runs under way finish, then stops the workers

    app = storage_backed_app(
        service="measurement",
        settings=settings,
        description="Sweep design, recording upload, validation and analysis.",
        lifespan=analysis_workers,
    )
    install_error_handler(app)
    install_http_error_handler(app)
    install_validation_handler(app)
    app.include_router(router)
    return app
