"""A typed async HTTP client for the measurement service (the lobby and the gateway call it).

A refusal comes back as the :class:`~sonalyze.errors.ServiceError` the measurement service
raised (see :mod:`sonalyze.service_client`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sonalyze.measurement_api import (
    BeginUpload,
    ChunkAck,
    MeasurementKind,
    MeasurementStarted,
    MeasurementStatus,
    RecordingFormat,
    StartMeasurement,
    UploadStatus,
)
from sonalyze.service_client import ServiceClient
from sonalyze.storage_api import AnalysisRead


class MeasurementClient(ServiceClient):
    """Calls the measurement service's ``/v1/measurements`` API."""

    service = "the measurement service"

    async def __aenter__(self) -> MeasurementClient:
        return self

    async def start(
        self,
        lobby_id: UUID,
        sweep: dict[str, Any],
        kind: MeasurementKind = MeasurementKind.room,
        device_id: UUID | None = None,
    ) -> MeasurementStarted:
        body = StartMeasurement(lobby_id=lobby_id, sweep=sweep, kind=kind, device_id=device_id)
        return MeasurementStarted.model_validate_json(
            await self._send("POST", "/v1/measurements", body)
        )

    async def get(self, measurement_id: UUID) -> MeasurementStarted:
        return MeasurementStarted.model_validate_json(
            await self._send("GET", f"/v1/measurements/{measurement_id}")
        )

    async def sweep_wav(self, measurement_id: UUID) -> bytes:
        return await self._send("GET", f"/v1/measurements/{measurement_id}/sweep.wav")

    async def response_wav(self, measurement_id: UUID, device_id: UUID) -> bytes:
        """The impulse response the analysis used for the microphone (a 32-bit float WAV)."""
        path = f"/v1/measurements/{measurement_id}/responses/{device_id}.wav"
        return await self._send("GET", path)

    async def begin_upload(
        self, measurement_id: UUID, device_id: UUID, fmt: RecordingFormat
    ) -> UploadStatus:
        body = BeginUpload(device_id=device_id, format=fmt)
        return UploadStatus.model_validate_json(
            await self._send("POST", f"/v1/measurements/{measurement_id}/recordings", body)
        )

    async def put_chunk(
        self,
        measurement_id: UUID,
        device_id: UUID,
        index: int,
        data: bytes,
        crc32: int,
        final: bool,
    ) -> ChunkAck:
        headers = {"Content-Type": "application/octet-stream", "X-Content-CRC32": str(crc32)}
        if final:
            headers["X-Final-Chunk"] = "true"
        path = f"/v1/measurements/{measurement_id}/recordings/{device_id}/chunks/{index}"
        return ChunkAck.model_validate_json(
            await self._send("PUT", path, content=data, headers=headers)
        )

    async def status(self, measurement_id: UUID) -> MeasurementStatus:
        return MeasurementStatus.model_validate_json(
            await self._send("GET", f"/v1/measurements/{measurement_id}/status")
        )

    async def analyse(self, measurement_id: UUID) -> AnalysisRead:
        return AnalysisRead.model_validate_json(
            await self._send("POST", f"/v1/measurements/{measurement_id}/analysis")
        )
