"""Builders and waits for the simulation service's tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.simulation.test_request import request


def slow_request() -> dict[str, Any]:
    """A reverberant room at 48 kHz, eight receivers, rays: seconds of work for a worker."""
    return request(
        room={"shape": "shoebox", "dimensions": [8, 6, 3]},
        materials={"default": {"absorption": [0.1] * 6}},
        receivers=[[7 - 0.2 * i, 2.9, 1.2] for i in range(8)],
        sample_rate=48_000,
    )


def submit(
    simulation: httpx.Client, body: dict[str, Any], lobby_id: str | None = None, **extra: Any
) -> httpx.Response:
    payload = {
        "client_request_id": f"test-{uuid.uuid4()}",
        "lobby_id": lobby_id,
        "request": body,
        **extra,
    }
    return simulation.post("/v1/simulations", json=payload)


def wait_for(
    simulation: httpx.Client,
    job_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Poll the job until ``until(job)``; the job as it then stands."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = simulation.get(f"/v1/simulations/{job_id}").json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job did not get there in {timeout} s: {job}")
        time.sleep(0.1)


def ended(job: dict[str, Any]) -> bool:
    return job["state"] in ("succeeded", "failed", "cancelled")


def running(job: dict[str, Any]) -> bool:
    return job["state"] == "running"
