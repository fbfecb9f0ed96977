"""Liveness and readiness.

``/livez`` answers while the process runs. ``/readyz`` runs the app's readiness checks (database
reachable, peers reachable) and answers 503 with the failing checks when any fails, and 503
``draining`` once the process has been asked to stop (``app.state.draining``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel


@dataclass(frozen=True)
class ReadinessCheck:
    """A named async probe that raises when the service cannot serve."""

    name: str
    probe: Callable[[], Awaitable[object]]
    timeout_s: float = 2.0


class Liveness(BaseModel):
    """The process runs."""

    status: Literal["alive"]


class Readiness(BaseModel):
    """Whether the service can serve, and each readiness check's outcome (``ok`` or why not)."""

    status: Literal["ready", "unready", "draining"]
    checks: dict[str, str]


async def _run(check: ReadinessCheck) -> str | None:
    try:
        await asyncio.wait_for(check.probe(), check.timeout_s)
    except TimeoutError:
        return f"timed out after {check.timeout_s} s"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def health_router(checks: Sequence[ReadinessCheck]) -> APIRouter:
    """Routes ``/livez`` and ``/readyz`` for the given readiness checks."""
    router = APIRouter(tags=["health"])

    @router.get("/livez", summary="The process is alive", response_model=Liveness)
    async def livez() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/readyz",
        summary="The service can serve: its database and peers answer",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Unready, or draining."}},
    )
    async def readyz(request: Request) -> JSONResponse:
        if getattr(request.app.state, "draining", False):
            return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
        results = await asyncio.gather(*(_run(check) for check in checks))
        failures = {c.name: r for c, r in zip(checks, results, strict=True) if r is not None}
        body = {
            "status": "unready" if failures else "ready",
            "checks": {c.name: failures.get(c.name, "ok") for c in checks},
        }
        return JSONResponse(body, status_code=503 if failures else 200)

    return router
