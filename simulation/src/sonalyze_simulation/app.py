"""The simulation app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from sonalyze.errors import (
    install_error_handler,
    install_http_error_handler,
    install_validation_handler,
)
from sonalyze.service import storage_backed_app
from sonalyze_simulation.api import router
from sonalyze_simulation.jobs import Lifecycle, SimulationJobs
from sonalyze_simulation.runner import Runner
from sonalyze_simulation.settings import SimulationSettings
from sonalyze_simulation.simulation_metrics import SimulationMetrics


def create_app(settings: SimulationSettings) -> FastAPI:
    @asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[None]:
        metrics = SimulationMetrics(app.state.registry)
        lifecycle = Lifecycle(app.state.storage, metrics, settings.max_attempts)
        runner = new_runner(settings, lifecycle)
        app.state.jobs = SimulationJobs(lifecycle, runner)
        watching = asyncio.create_task(runner.watch())
        try:
            yield
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            await runner.close()

    app = storage_backed_app(
        service="simulation",
        settings=settings,
        description="Simulation requests and their jobs (Kubernetes Jobs or local subprocesses).",
        lifespan=running,
    )
    install_error_handler(app)
    install_http_error_handler(app)
    install_validation_handler(app)
    app.include_router(router)
    return app


def new_runner(settings: SimulationSettings, lifecycle: Lifecycle) -> Runner:
    """The runner the settings choose (the Kubernetes client is imported only for it)."""
    if settings.runner == "kubernetes":
        from sonalyze_simulation.kube_job import JobTemplate
        from sonalyze_simulation.kube_runner import KubeRunner, api_client, default_namespace

        return KubeRunner(
            lifecycle,
            JobTemplate.from_settings(settings),
            settings.kube_namespace or default_namespace(),
            api_client(),
            resync_s=settings.recover_every_s,
        )
    from sonalyze_simulation.local_runner import LocalRunner, WorkerEnvironment

    environment = WorkerEnvironment(
        storage_url=settings.storage_url_for_workers(),
        internal_token=settings.internal_token_value(),
        heartbeat_s=settings.heartbeat_s,
        chunk_bytes=settings.worker_chunk_bytes,
        max_attempts=settings.max_attempts,
        log_level=settings.log_level,
    )
    return LocalRunner(
        lifecycle,
        environment,
        settings.workers,
        settings.stale_s,
        settings.recover_every_s,
        settings.job_deadline_s,
    )
