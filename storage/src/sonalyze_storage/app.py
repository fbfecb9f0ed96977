"""The storage app: ``create_app(settings)`` builds it; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import psycopg
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from sonalyze.auth import require_internal_token
from sonalyze.health import ReadinessCheck
from sonalyze.limits import BodyLimitMiddleware
from sonalyze.metrics import PREFIX
from sonalyze.service import build_app
from sonalyze_storage.api import blobs, devices, events, jobs, lobbies, measurements
from sonalyze_storage.api.refusals import ANY_REQUEST
from sonalyze_storage.blobs import PostgresBlobStore
from sonalyze_storage.db import create_engine, session_factory
from sonalyze_storage.settings import StorageSettings, libpq_url
from sonalyze_storage.stream import Notifier


class PoolCollector(Collector):
    """Connections of the pool in use and idle, read at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine: AsyncEngine | None = getattr(self._app.state, "engine", None)
        gauge = GaugeMetricFamily(
            f"{PREFIX}_storage_db_pool_connections",
            "Database connections of this process's pool, by state.",
            labels=["state"],
        )
        if engine is not None:
            pool = engine.pool
            gauge.add_metric(["in_use"], pool.checkedout())  # type: ignore[attr-defined]
            gauge.add_metric(["idle"], pool.checkedin())  # type: ignore[attr-defined]
        yield gauge


def _install_database_error_handlers(app: FastAPI) -> None:
    """Answer what the database refuses as the client's fault (422) or as a passing overload
    (503), never as a 500; the request's transaction is rolled back either way."""

    async def unstorable(request: Request, exc: Exception) -> JSONResponse:
        reason = getattr(exc, "orig", exc)
        return JSONResponse(
            {"detail": f"the database cannot store this value: {str(reason).splitlines()[0]}"},
            status_code=422,
        )

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": "the database is busy or unreachable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    # NUL characters, NaN or infinite numbers, text that is not valid Unicode. (Statements run
    # on the driver connection raise psycopg's own errors.)
    app.add_exception_handler(sa_exc.DataError, unstorable)
    app.add_exception_handler(psycopg.DataError, unstorable)
    app.add_exception_handler(UnicodeEncodeError, unstorable)
    # The pool had no free connection in time, or Postgres does not answer.
    app.add_exception_handler(sa_exc.TimeoutError, unavailable)
    app.add_exception_handler(sa_exc.OperationalError, unavailable)
    app.add_exception_handler(sa_exc.InterfaceError, unavailable)
    app.add_exception_handler(psycopg.OperationalError, unavailable)
    app.add_exception_handler(psycopg.InterfaceError, unavailable)


def create_app(settings: StorageSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessions = session_factory(engine)
        app.state.blobs = PostgresBlobStore(
            app.state.sessions, settings.max_chunk_bytes, settings.max_blob_bytes
        )
        app.state.notifier = Notifier(libpq_url(settings.database_url.get_secret_value()))
        app.state.notifier.start()
        try:
            yield
        finally:
            await app.state.notifier.stop()
            await engine.dispose()

    async def database_answers() -> None:
        async with app.state.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def notifier_listens() -> None:
        if not app.state.notifier.listening:
            raise ConnectionError("not listening for event notifications")

    app = build_app(
        service="storage",
        settings=settings,
        readiness=[
            ReadinessCheck("database", database_answers),
            ReadinessCheck("event_notifier", notifier_listens),
        ],
        lifespan=lifespan,
        description="The only owner of Postgres: lobbies, measurements, blobs, jobs, event log.",
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    _install_database_error_handlers(app)
    app.state.registry.register(PoolCollector(app))
    api = APIRouter(
        prefix="/v1", dependencies=[Depends(require_internal_token)], responses=ANY_REQUEST
    )
    for module in (devices, lobbies, events, blobs, measurements, jobs):
        api.include_router(module.router)
    app.include_router(api)
    return app
