"""The simulation app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from fastapi import FastAPI

from sonalyze.service import storage_backed_app
from sonalyze_simulation.settings import SimulationSettings


def create_app(settings: SimulationSettings) -> FastAPI:
    return storage_backed_app(
        service="simulation",
        settings=settings,
        description="Simulation requests and their jobs (Kubernetes Jobs or local subprocesses).",
    )
