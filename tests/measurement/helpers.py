"""Builders for the measurement service's tests: a lobby with roles, a measurement, uploads."""

from __future__ import annotations

import io
import zlib
from typing import Any

import httpx
import numpy as np
import soundfile

from tests.conftest import TOKEN
from tests.storage.helpers import device, lobby

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHORT = {"duration": 1.0, "lead_in": 0.5, "tail": 1.0}  # a 2.5 s recording


def room_with_roles(
    api: httpx.Client, microphones: int = 2
) -> tuple[dict[str, Any], list[str], str]:
    """A lobby whose host is the speaker, with ``microphones`` microphones."""
    room = lobby(api)
    mics = [device(api) for _ in range(microphones)]
    upserts = [{"device_id": room["host_device_id"], "role": "speaker"}] + [
        {"device_id": m, "role": "microphone"} for m in mics
    ]
    change = {"expected_version": room["version"], "upsert_participants": upserts}
    response = api.post(f"/v1/lobbies/{room['id']}/changes", json=change)
    assert response.status_code == 200, response.text
    return response.json()["lobby"], mics, room["host_device_id"]


def started(measurement: httpx.Client, room: dict[str, Any], **sweep: Any) -> dict[str, Any]:
    response = measurement.post(
        "/v1/measurements", json={"lobby_id": room["id"], "sweep": {**SHORT, **sweep}}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def recording_wav(seconds: float = 2.5, level: float = 0.3) -> bytes:
    t = np.arange(int(48_000 * seconds)) / 48_000
    buffer = io.BytesIO()
    soundfile.write(
        buffer, level * np.sin(2 * np.pi * 440 * t), 48_000, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


def chunks(data: bytes, size: int = 50_000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def put(
    measurement: httpx.Client,
    mid: str,
    mic: str,
    index: int,
    data: bytes,
    *,
    final: bool = False,
    crc: int | None = None,
) -> httpx.Response:
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Content-CRC32": str(zlib.crc32(data) if crc is None else crc),
    }
    if final:
        headers["X-Final-Chunk"] = "true"
    return measurement.put(
        f"/v1/measurements/{mid}/recordings/{mic}/chunks/{index}", content=data, headers=headers
    )


def begin(measurement: httpx.Client, mid: str, mic: str, container: str = "wav") -> httpx.Response:
    return measurement.post(
        f"/v1/measurements/{mid}/recordings",
        json={"device_id": mic, "format": {"container": container}},
    )
