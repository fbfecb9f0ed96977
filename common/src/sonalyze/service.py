"""Building and serving a Sonalyze service app.

Every service builds its app with ``create_app(settings)``, which calls :func:`build_app` here,
so the local stack, Kubernetes and the tests all build apps the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

import uvicorn
from fastapi import FastAPI, Request, Response

from sonalyze import __version__
from sonalyze.health import ReadinessCheck, health_router
from sonalyze.logs import configure_logging
from sonalyze.metrics import HttpMetrics, metrics_response, new_registry
from sonalyze.settings import ServiceSettings, StorageClientSettings
from sonalyze.storage_client import StorageClient

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
S = TypeVar("S", bound=ServiceSettings)


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def build_app(
    *,
    service: str,
    settings: ServiceSettings,
    readiness: Sequence[ReadinessCheck] = (),
    lifespan: Lifespan = _no_lifespan,
    description: str = "",
) -> FastAPI:
    """A FastAPI app with health, readiness, metrics and request metrics installed.

    ``app.state.settings`` holds ``settings`` and ``app.state.registry`` the app's own
    Prometheus registry, to which the service adds its metrics.
    """
    app = FastAPI(
        title=f"Sonalyze {service}",
        version=__version__,
        description=description,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.registry = new_registry()
    HttpMetrics(app.state.registry, service).install(app)
    app.include_router(health_router(readiness))

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics of this process")
    async def metrics(request: Request) -> Response:
        return metrics_response(request.app.state.registry)

    return app


def serve(service: str, create_app: Callable[[S], FastAPI], settings: S) -> None:
    """Run ``create_app(settings)`` under uvicorn until SIGINT or SIGTERM."""
    configure_logging(service, settings.log_level, settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        ws_per_message_deflate=False,
        server_header=False,
    )
    uvicorn.Server(config).run()


def storage_backed_app(
    *,
    service: str,
    settings: StorageClientSettings,
    description: str = "",
    on_start: Callable[[FastAPI], None] = lambda app: None,
) -> FastAPI:
    """An app whose peer is storage: ``app.state.storage`` is a :class:`StorageClient` while
    the app runs, and the app is ready when storage is. ``on_start(app)`` runs once the
    client exists, to build what the service keeps in ``app.state``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        token = settings.internal_token
        async with StorageClient(
            settings.storage_url,
            token.get_secret_value() if token else None,
            settings.storage_timeout_s,
        ) as client:
            app.state.storage = client
            on_start(app)
            yield

    async def storage_ready() -> None:
        await app.state.storage.ready()

    app = build_app(
        service=service,
        settings=settings,
        readiness=[ReadinessCheck("storage", storage_ready)],
        lifespan=lifespan,
        description=description,
    )
    return app
