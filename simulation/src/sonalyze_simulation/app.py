"""The simulation app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sonalyze.errors import install_error_handler, install_validation_handler
from sonalyze.service import storage_backed_app
from sonalyze_simulation.api import router
from sonalyze_simulation.jobs import Lifecycle, SimulationJobs
from sonalyze_simulation.local_runner import LocalRunner, WorkerEnvironment
from sonalyze_simulation.settings import SimulationSettings
from sonalyze_simulation.simulation_metrics import SimulationMetrics


def create_app(settings: SimulationSettings) -> FastAPI:
    @asynccontextmanager
    async def runner(app: FastAPI) -> AsyncIterator[None]:
        metrics = SimulationMetrics(app.state.registry)
        lifecycle = Lifecycle(app.state.storage, metrics, settings.max_attempts)
        environment = WorkerEnvironment(
            storage_url=settings.storage_url_for_workers(),
            internal_token=settings.internal_token_value(),
            heartbeat_s=settings.heartbeat_s,
            chunk_bytes=settings.worker_chunk_bytes,
            log_level=settings.log_level,
        )
        local = LocalRunner(lifecycle, environment, settings.workers, settings.stale_s)
        app.state.jobs = SimulationJobs(lifecycle, local)
        recovering = asyncio.create_task(local.keep_recovering(settings.recover_every_s))
        try:
            yield
        finally:
            recovering.cancel()
            await asyncio.gather(recovering, return_exceptions=True)
            await local.close()

    app = storage_backed_app(
        service="simulation",
        settings=settings,
        description="Simulation requests and their jobs (Kubernetes Jobs or local subprocesses).",
        lifespan=runner,
    )
    install_error_handler(app)
    install_validation_handler(app)
    app.include_router(router)
    return app
