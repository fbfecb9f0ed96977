"""Prometheus metrics: one registry per app, names prefixed ``sonalyze_``, bounded labels."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "sonalyze"


def new_registry() -> CollectorRegistry:
    """A fresh registry with the process collector (CPU, memory, fds) under our prefix, and
    the garbage collector's collections."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(namespace=PREFIX, registry=registry)
    registry.register(GarbageCollections())
    return registry


class GarbageCollections(Collector):
    """Collections of the cycle collector by generation (Python's own ``python_gc_*`` names
    lack our prefix): a full collection (generation 2) pauses every request of the process."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            f"{PREFIX}_python_gc_collections",
            "Collections of the garbage collector, by generation (2: full collections).",
            labels=["generation"],
        )
        for generation, stats in enumerate(gc.get_stats()):
            family.add_metric([str(generation)], stats["collections"])
        yield family


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
            "Time to handle a request, to the end of its response, by method and route.",
            ["service", "method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self._service = service

    def install(self, app: FastAPI) -> None:
        """Observe every HTTP request of ``app`` (a plain ASGI middleware: it passes the
        request's body through untouched)."""
        app.add_middleware(_Observe, metrics=self)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_label(scope)
        self.latency.labels(self._service, scope["method"], route).observe(seconds)
        self.requests.labels(self._service, scope["method"], route, str(status)).inc()


class _Observe:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe(scope, status, time.perf_counter() - start)


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
