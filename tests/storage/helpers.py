"""Small builders for storage tests."""

from __future__ import annotations

from typing import Any

import httpx


def device(api: httpx.Client) -> str:
    response = api.post("/v1/devices")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def lobby(api: httpx.Client, code: str = "ABCD2345", **extra: Any) -> dict[str, Any]:
    """Create a lobby hosted by a new device; returns the created lobby."""
    host = device(api)
    response = api.post("/v1/lobbies", json={"code": code, "host_device_id": host, **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["lobby"]
    return created


def events(n: int, kind: str = "test.event") -> list[dict[str, Any]]:
    return [{"type": kind, "payload": {"n": i}} for i in range(n)]
