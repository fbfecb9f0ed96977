"""Checks every service's health and metrics endpoints must pass."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def assert_healthy(url: str) -> None:
    """``/livez`` and ``/readyz`` answer 200 and ``/metrics`` is Prometheus text, all
    ``sonalyze_``-prefixed, counting the requests just made."""
    assert httpx.get(f"{url}/livez").json() == {"status": "alive"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(metrics.text))
    names = {f.name for f in families}
    assert names, "metrics are exported"
    assert all(name.startswith("sonalyze_") for name in names), names
    requests = {
        s.labels["route"]
        for f in families
        if f.name == "sonalyze_http_requests"
        for s in f.samples
        if s.name == "sonalyze_http_requests_total"
    }
    assert {"/livez", "/readyz"} <= requests
