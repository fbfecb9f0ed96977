"""A typed async HTTP client for the storage service.

Every method sends and parses the models of :mod:`sonalyze.storage_api`; a refusal raises a
:class:`StorageError` subclass named for it, carrying storage's message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from sonalyze.auth import internal_client
from sonalyze.domain import JobState, MeasurementState
from sonalyze.storage_api import (
    AnalysisCreate,
    AnalysisRead,
    BlobChunks,
    BlobComplete,
    BlobCreate,
    BlobRead,
    ChunkWritten,
    DeviceRead,
    EventAppend,
    EventHead,
    EventIn,
    EventRead,
    JobUpdate,
    LobbyChange,
    LobbyChanged,
    LobbyCreate,
    LobbyRead,
    MeasurementCreate,
    MeasurementRead,
    MeasurementUpdate,
    RecordingCreate,
    RecordingRead,
    RecordingUpdate,
    SimulationJobCreate,
    SimulationJobRead,
    SimulationJobUpdate,
)

M = TypeVar("M")
logger = logging.getLogger(__name__)


class StorageError(Exception):
    """Storage refused a call or could not be reached."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status if status is not None else type(self).status


class StorageBadRequest(StorageError):
    status = 400


class StorageUnauthorized(StorageError):
    status = 401


class StorageNotFound(StorageError):
    status = 404


class StorageConflict(StorageError):
    status = 409


class StorageTooLarge(StorageError):
    status = 413


class StorageUnavailable(StorageError):
    """Storage did not answer, or answered with a server error: worth retrying later."""


_BY_STATUS: dict[int, type[StorageError]] = {
    400: StorageBadRequest,
    401: StorageUnauthorized,
    404: StorageNotFound,
    409: StorageConflict,
    413: StorageTooLarge,
    422: StorageBadRequest,
}


def _error(response: httpx.Response) -> StorageError:
    try:
        detail: Any = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if not isinstance(detail, str):
        detail = json.dumps(detail)
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = StorageUnavailable if response.status_code >= 500 else StorageError
    return cls(f"storage answered {response.status_code}: {detail}", response.status_code)


class StorageClient:
    """Calls storage's ``/v1`` API. Use as an async context manager, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = internal_client(base_url, token, timeout_s, transport)

    async def __aenter__(self) -> StorageClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise StorageUnavailable(f"storage unreachable: {exc!r}") from exc
        if response.is_error:
            raise _error(response)
        return response

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M] | Any,
        body: BaseModel | None = None,
        **kwargs: Any,
    ) -> M:
        if body is not None:
            kwargs["content"] = body.model_dump_json(exclude_unset=True)
            kwargs["headers"] = {"Content-Type": "application/json"}
        response = await self._send(method, path, **kwargs)
        result: M = TypeAdapter(model).validate_json(response.content)
        return result

    async def ready(self) -> None:
        """Raise unless storage's ``/readyz`` answers 200."""
        await self._send("GET", "/readyz")

    # Devices
    async def create_device(self) -> DeviceRead:
        return await self._call("POST", "/v1/devices", DeviceRead)

    async def get_device(self, device_id: UUID) -> DeviceRead:
        return await self._call("GET", f"/v1/devices/{device_id}", DeviceRead)

    # Lobbies
    async def create_lobby(self, body: LobbyCreate) -> LobbyChanged:
        return await self._call("POST", "/v1/lobbies", LobbyChanged, body)

    async def get_lobby(self, lobby_id: UUID) -> LobbyRead:
        return await self._call("GET", f"/v1/lobbies/{lobby_id}", LobbyRead)

    async def get_open_lobby_by_code(self, code: str) -> LobbyRead:
        return await self._call("GET", f"/v1/lobbies/by-code/{code}", LobbyRead)

    async def change_lobby(self, lobby_id: UUID, body: LobbyChange) -> LobbyChanged:
        return await self._call("POST", f"/v1/lobbies/{lobby_id}/changes", LobbyChanged, body)

    # Events
    async def append_events(self, lobby_id: UUID, events: Sequence[EventIn]) -> list[EventRead]:
        body = EventAppend(events=list(events))
        return await self._call("POST", f"/v1/lobbies/{lobby_id}/events", list[EventRead], body)

    async def lobby_events(
        self, lobby_id: UUID, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRead]:
        params = {"after_seq": after_seq, "limit": limit}
        return await self._call(
            "GET", f"/v1/lobbies/{lobby_id}/events", list[EventRead], params=params
        )

    async def events_head(self) -> int:
        """The id of the newest event (0 when the log is empty)."""
        return (await self._call("GET", "/v1/events/head", EventHead)).last_id

    async def stream_events(
        self, after: int = 0, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[EventRead]:
        """Every event with ``id > after``, then live ones, until the connection ends.
        ``on_open`` is called once storage has accepted the stream."""
        try:
            async with self._http.stream(
                "GET",
                "/v1/events/stream",
                params={"after": after},
                timeout=httpx.Timeout(self._http.timeout.connect, read=None),
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise _error(response)
                if on_open is not None:
                    on_open()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        try:
                            event = EventRead.model_validate_json(line[6:])
                        except ValidationError as exc:  # never stall the stream on one event
                            logger.error("skipping an event storage sent: %s", exc)
                            continue
                        yield event
        except httpx.TransportError as exc:
            raise StorageUnavailable(f"event stream interrupted: {exc!r}") from exc

    # Blobs
    async def create_blob(self, content_type: str = "application/octet-stream") -> BlobRead:
        return await self._call(
            "POST", "/v1/blobs", BlobRead, BlobCreate(content_type=content_type)
        )

    async def get_blob(self, blob_id: UUID) -> BlobRead:
        return await self._call("GET", f"/v1/blobs/{blob_id}", BlobRead)

    async def put_chunk(
        self,
        blob_id: UUID,
        index: int,
        data: bytes,
        crc32: int | None = None,
        *,
        final: bool = False,
    ) -> ChunkWritten:
        headers = {"Content-Type": "application/octet-stream"}
        if crc32 is not None:
            headers["X-Content-CRC32"] = str(crc32)
        if final:
            headers["X-Final-Chunk"] = "true"
        return await self._call(
            "PUT",
            f"/v1/blobs/{blob_id}/chunks/{index}",
            ChunkWritten,
            content=data,
            headers=headers,
        )

    async def blob_chunks(self, blob_id: UUID) -> BlobChunks:
        return await self._call("GET", f"/v1/blobs/{blob_id}/chunks", BlobChunks)

    async def complete_blob(self, blob_id: UUID, chunk_count: int) -> BlobRead:
        return await self._call(
            "POST",
            f"/v1/blobs/{blob_id}/complete",
            BlobRead,
            BlobComplete(chunk_count=chunk_count),
        )

    async def read_blob(self, blob_id: UUID) -> bytes:
        return (await self._send("GET", f"/v1/blobs/{blob_id}/content")).content

    # Measurements and recordings
    async def create_measurement(self, body: MeasurementCreate) -> MeasurementRead:
        return await self._call("POST", "/v1/measurements", MeasurementRead, body)

    async def get_measurement(self, measurement_id: UUID) -> MeasurementRead:
        return await self._call("GET", f"/v1/measurements/{measurement_id}", MeasurementRead)

    async def list_measurements(
        self, states: Sequence[MeasurementState] = (), limit: int = 100
    ) -> list[MeasurementRead]:
        """Measurements in these states (all if none), oldest first."""
        params: dict[str, Any] = {"limit": limit, "state": [s.value for s in states]}
        return await self._call("GET", "/v1/measurements", list[MeasurementRead], params=params)

    async def lobby_measurements(self, lobby_id: UUID) -> list[MeasurementRead]:
        return await self._call(
            "GET", f"/v1/lobbies/{lobby_id}/measurements", list[MeasurementRead]
        )

    async def update_measurement(
        self, measurement_id: UUID, body: MeasurementUpdate
    ) -> MeasurementRead:
        return await self._call(
            "PATCH", f"/v1/measurements/{measurement_id}", MeasurementRead, body
        )

    async def create_recording(self, measurement_id: UUID, body: RecordingCreate) -> RecordingRead:
        return await self._call(
            "POST", f"/v1/measurements/{measurement_id}/recordings", RecordingRead, body
        )

    async def measurement_recordings(self, measurement_id: UUID) -> list[RecordingRead]:
        return await self._call(
            "GET", f"/v1/measurements/{measurement_id}/recordings", list[RecordingRead]
        )

    async def get_recording(self, recording_id: UUID) -> RecordingRead:
        return await self._call("GET", f"/v1/recordings/{recording_id}", RecordingRead)

    async def update_recording(self, recording_id: UUID, body: RecordingUpdate) -> RecordingRead:
        return await self._call("PATCH", f"/v1/recordings/{recording_id}", RecordingRead, body)

    # Analyses and simulation jobs
    async def create_analysis(self, body: AnalysisCreate) -> AnalysisRead:
        return await self._call("POST", "/v1/analyses", AnalysisRead, body)

    async def measurement_analyses(self, measurement_id: UUID) -> list[AnalysisRead]:
        """A measurement's analyses, newest first."""
        return await self._call(
            "GET", f"/v1/measurements/{measurement_id}/analyses", list[AnalysisRead]
        )

    async def get_analysis(self, analysis_id: UUID) -> AnalysisRead:
        return await self._call("GET", f"/v1/analyses/{analysis_id}", AnalysisRead)

    async def update_analysis(self, analysis_id: UUID, body: JobUpdate) -> AnalysisRead:
        return await self._call("PATCH", f"/v1/analyses/{analysis_id}", AnalysisRead, body)

    async def create_simulation_job(self, body: SimulationJobCreate) -> SimulationJobRead:
        return await self._call("POST", "/v1/simulation-jobs", SimulationJobRead, body)

    async def get_simulation_job(self, job_id: UUID) -> SimulationJobRead:
        return await self._call("GET", f"/v1/simulation-jobs/{job_id}", SimulationJobRead)

    async def list_simulation_jobs(
        self, states: Sequence[JobState] = (), limit: int = 100
    ) -> list[SimulationJobRead]:
        params: dict[str, Any] = {"limit": limit, "state": [s.value for s in states]}
        return await self._call(
            "GET", "/v1/simulation-jobs", list[SimulationJobRead], params=params
        )

    async def update_simulation_job(
        self, job_id: UUID, body: SimulationJobUpdate
    ) -> SimulationJobRead:
        return await self._call("PATCH", f"/v1/simulation-jobs/{job_id}", SimulationJobRead, body)
