"""Prometheus metrics: one registry per app, names prefixed ``sonalyze_``, bounded labels."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.types import Scope

PREFIX = "sonalyze"


def new_registry() -> CollectorRegistry:
    """A fresh registry with the process collector (CPU, memory, fds) under our prefix."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(namespace=PREFIX, registry=registry)
    return registry


class HttpMetrics:
    """Request counts and latencies by route template (never by raw path: ids stay out)."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.requests = Counter(
            f"{PREFIX}_http_requests_total",
            "HTTP requests handled, by method, route template and status code.",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to the response's first byte, by method and route template.",
            ["service", "method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._service = service

    def install(self, app: FastAPI) -> None:
        """Add the middleware that observes every request of ``app``."""

        @app.middleware("http")
        async def observe(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            start = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = route_label(request.scope)
                self.latency.labels(self._service, request.method, route).observe(
                    time.perf_counter() - start
                )
                self.requests.labels(self._service, request.method, route, str(status)).inc()


def route_label(scope: Scope) -> str:
    """The route template of a handled request (``/v1/lobbies/{lobby_id}``), from the path
    parameters its route matched; ``unmatched`` when no route matched."""
    if "route" not in scope:
        return "unmatched"
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    return "/".join(
        f"{{{names[segment]}}}" if segment in names else segment
        for segment in scope["path"].split("/")
    )


def metrics_response(registry: CollectorRegistry) -> Response:
    """The Prometheus text exposition of ``registry``."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
