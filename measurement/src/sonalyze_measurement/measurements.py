"""Measurements against storage: design and record one, take in its recordings chunk by chunk,
check each recording once it is whole, and say where the uploads stand.

A recording's chunks go straight to a storage blob (idempotent per index, checked by CRC32);
the chunk sent as final tells storage how many there are, and the write that leaves none
missing completes the blob. Whoever's write completed it (or a status request that finds it
complete but unchecked, after a restart) decodes and checks the recording, marks it complete or
invalid, and tells the lobby (``recording.received`` or ``recording.invalid``). So an
acknowledged chunk is in Postgres, and a restart loses nothing: the phone resumes from
``missing``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

from pydantic import ValidationError

from sonalyze.domain import MeasurementState, RecordingState, Role
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.events import event
from sonalyze.measurement_api import (
    BeginUpload,
    ChunkAck,
    Container,
    MeasurementKind,
    MeasurementStarted,
    MeasurementStatus,
    RecordingFormat,
    StartMeasurement,
    SweepSpec,
    UploadStatus,
)
from sonalyze.storage_api import (
    AnalysisRead,
    MeasurementCreate,
    MeasurementRead,
    RecordingCreate,
    RecordingRead,
    RecordingUpdate,
)
from sonalyze.storage_client import (
    StorageBadRequest,
    StorageClient,
    StorageConflict,
    StorageError,
    StorageNotFound,
    StorageTooLarge,
)
from sonalyze_measurement.audio import RecordingError, prepare
from sonalyze_measurement.measurement_metrics import MeasurementMetrics
from sonalyze_measurement.runs import AnalysisRuns
from sonalyze_measurement.sweeps import design

T = TypeVar("T")
logger = logging.getLogger(__name__)
# A recording holds the sweep and at least this much of the room's decay after it, s.
MIN_TAIL_S = 0.5
# ... and runs at most this much longer than scheduled (a phone that starts early, stops late).
MAX_EXTRA_S = 10.0
# A recording or response uploaded outside a room measurement: at most this long; a response
# at least long enough for the broadband decay analysis.
MAX_UPLOADED_S = 120.0
MIN_RESPONSE_S = 0.3
_CONTENT_TYPES = {
    Container.wav: "audio/wav",
    Container.flac: "audio/flac",
    Container.ogg: "audio/ogg",
    Container.raw: "application/octet-stream",
}
# Uploads are closed once the analysis has begun.
_CLOSED = (
    MeasurementState.analyzing,
    MeasurementState.completed,
    MeasurementState.failed,
    MeasurementState.aborted,
)


async def _storage(call: Awaitable[T], what: str) -> T:
    """Storage's refusals as the service's own errors, with the same code."""
    try:
        return await call
    except StorageNotFound:
        raise ServiceError(ErrorCode.not_found, f"{what} not found") from None
    except StorageConflict as error:
        raise ServiceError(ErrorCode.conflict, str(error)) from None
    except StorageBadRequest as error:
        raise ServiceError(ErrorCode.bad_request, str(error)) from None
    except StorageTooLarge as error:
        raise ServiceError(ErrorCode.too_large, str(error)) from None
    except StorageError as error:
        raise ServiceError(ErrorCode.unavailable, f"storage failed: {error}") from None


class Measurements:
    """The measurement service's operations."""

    def __init__(
        self,
        storage: StorageClient,
        runs: AnalysisRuns,
        metrics: MeasurementMetrics,
        *,
        start_delay_s: float,
        max_chunk_bytes: int,
        upload_grace_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._runs = runs
        self._metrics = metrics
        self._start_delay_s = start_delay_s
        self._upload_grace_s = upload_grace_s
        self._max_chunk_bytes = max_chunk_bytes
        self._clock = clock

    async def start(self, body: StartMeasurement) -> MeasurementStarted:
        """Design the sweep (the defaults with ``body.sweep``'s changes) and record the
        measurement, scheduled ``start_delay_s`` from now, for the lobby's current roles."""
        try:
            spec = design(**body.sweep)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'sweep'}: {e['msg']}"
                for e in error.errors()
            )
            raise ServiceError(ErrorCode.bad_request, f"sweep: {problems}") from None
        lobby = await _storage(self._storage.get_lobby(body.lobby_id), "lobby")
        if body.device_id is None:  # a room measurement: the lobby's roles, on schedule
            microphones = [p.device_id for p in lobby.participants if p.role == Role.microphone]
            speakers = [p.device_id for p in lobby.participants if p.role == Role.speaker]
            start_at_ms = round((self._clock() + self._start_delay_s) * 1000)
        else:  # one phone uploads what it has, now
            microphones, speakers = [body.device_id], []
            start_at_ms = round(self._clock() * 1000)
        spec_record = {
            "kind": body.kind.value,
            "sweep": spec.model_dump(mode="json"),
            "start_at_ms": start_at_ms,
            "microphones": [str(d) for d in microphones],
            "speakers": [str(d) for d in speakers],
        }
        row = await _storage(
            self._storage.create_measurement(
                MeasurementCreate(lobby_id=lobby.id, spec=spec_record)
            ),
            "lobby",
        )
        self._metrics.measurements.inc()
        started = _started(row)
        self._runs.start_at(started.measurement_id, self._deadline(started))
        return started

    def deadline_of(self, row: MeasurementRead) -> float:
        """:meth:`_deadline` of a measurement as stored."""
        return self._deadline(_started(row))

    def _deadline(self, started: MeasurementStarted) -> float:
        """When the analysis runs with what has arrived (s since the epoch): the recording's
        scheduled end and the upload grace."""
        return started.start_at_ms / 1000 + started.recording_seconds + self._upload_grace_s

    async def get(self, measurement_id: UUID) -> MeasurementStarted:
        return _started(await self._measurement(measurement_id))

    async def _measurement(self, measurement_id: UUID) -> MeasurementRead:
        return await _storage(self._storage.get_measurement(measurement_id), "measurement")

    async def begin_upload(self, measurement_id: UUID, body: BeginUpload) -> UploadStatus:
        """Open the microphone's recording, or say where it stands if it is open already
        (the same format again resumes; another format is a conflict). Once uploads have
        closed, a microphone whose recording arrived whole (its last ack lost, say) is told so;
        any other is refused."""
        measurement = await self._measurement(measurement_id)
        if measurement.state in _CLOSED:
            arrived = await self._recording(measurement_id, body.device_id)
            fmt = body.format.model_dump(mode="json")
            if arrived and arrived.state != RecordingState.uploading and arrived.format == fmt:
                return await self._status(arrived, measurement)
        _check_open(measurement)
        if str(body.device_id) not in measurement.spec.get("microphones", []):
            raise ServiceError(
                ErrorCode.forbidden, "only the measurement's microphones upload recordings"
            )
        fmt = body.format.model_dump(mode="json")
        recording = await self._recording(measurement_id, body.device_id)
        if recording is None:
            blob = await _storage(
                self._storage.create_blob(_CONTENT_TYPES[body.format.container]), "blob"
            )
            create = RecordingCreate(device_id=body.device_id, blob_id=blob.id, format=fmt)
            try:
                recording = await self._storage.create_recording(measurement_id, create)
            except StorageConflict:  # a concurrent begin won: use its recording (the blob
                # made for this one stays empty and unreferenced)
                recording = await self._recording(measurement_id, body.device_id)
                if recording is None:
                    raise ServiceError(ErrorCode.conflict, "the upload changed; retry") from None
            except StorageError as error:
                raise ServiceError(ErrorCode.unavailable, f"storage failed: {error}") from None
        if recording.format != fmt:
            raise ServiceError(
                ErrorCode.conflict,
                f"this microphone's upload was begun as {recording.format}; resume it in that "
                "format",
            )
        return await self._status(recording)

    async def put_chunk(
        self,
        measurement_id: UUID,
        device_id: UUID,
        index: int,
        data: bytes,
        crc32: int | None,
        final: bool,
    ) -> ChunkAck:
        """Store one chunk; the one that completes the recording has it checked."""
        try:
            ack = await self._put_chunk(measurement_id, device_id, index, data, crc32, final)
        except ServiceError:
            self._metrics.chunks.labels("refused").inc()
            raise
        self._metrics.chunks.labels("stored" if ack.created else "repeated").inc()
        if ack.created:
            self._metrics.bytes.inc(len(data))
        return ack

    async def _put_chunk(
        self,
        measurement_id: UUID,
        device_id: UUID,
        index: int,
        data: bytes,
        crc32: int | None,
        final: bool,
    ) -> ChunkAck:
        if len(data) > self._max_chunk_bytes:
            raise ServiceError(
                ErrorCode.too_large,
                f"a chunk of {len(data)} bytes exceeds {self._max_chunk_bytes} bytes",
            )
        measurement = await self._measurement(measurement_id)
        recording = await self._recording(measurement_id, device_id)
        if measurement.state in _CLOSED:
            if recording is not None and await self._stored(recording, index):
                # A retry of a chunk stored before uploads closed: acknowledge it again.
                return ChunkAck(
                    measurement_id=measurement_id,
                    device_id=device_id,
                    index=index,
                    created=False,
                    state=recording.state,
                    error=recording.error,
                )
            _check_open(measurement)
        if recording is None:
            raise ServiceError(
                ErrorCode.not_found, "no upload begun for this microphone and measurement"
            )
        written = await _storage(
            self._storage.put_chunk(recording.blob_id, index, data, crc32, final=final),
            "recording",
        )
        if written.blob_state == "complete" and recording.state == RecordingState.uploading:
            recording = await self._check(measurement, recording)
        return ChunkAck(
            measurement_id=measurement_id,
            device_id=device_id,
            index=index,
            created=written.created,
            state=recording.state,
            error=recording.error,
        )

    async def status(self, measurement_id: UUID) -> MeasurementStatus:
        """Every recording's state and missing chunks, and the microphones yet to begin."""
        measurement = await self._measurement(measurement_id)
        recordings = await _storage(
            self._storage.measurement_recordings(measurement_id), "measurement"
        )
        statuses = [await self._status(r, measurement) for r in recordings]
        if measurement.state == MeasurementState.scheduled:
            if self._clock() >= self._deadline(_started(measurement)):
                # Past the deadline with no analysis (its timer lived in a process that ended).
                await _storage(self._runs.start(measurement_id), "measurement")
            else:
                await self._analyse_when_complete(measurement_id)
        begun = {str(r.device_id) for r in recordings}
        return MeasurementStatus(
            measurement_id=measurement_id,
            state=measurement.state,
            recordings=statuses,
            waiting_for=[
                UUID(d) for d in measurement.spec.get("microphones", []) if d not in begun
            ],
        )

    async def analyse(self, measurement_id: UUID) -> AnalysisRead:
        """Start the analysis now with what has arrived (or answer with the one started)."""
        await self._measurement(measurement_id)
        return await _storage(self._runs.start(measurement_id), "measurement")

    async def analysis(self, measurement_id: UUID) -> AnalysisRead:
        await self._measurement(measurement_id)
        latest = await _storage(self._runs.latest(measurement_id), "measurement")
        if latest is None:
            raise ServiceError(ErrorCode.not_found, "the measurement has not been analysed yet")
        return latest

    async def response_wav(self, measurement_id: UUID, device_id: UUID) -> bytes:
        """The impulse response the analysis used for the microphone, as stored (a 32-bit
        float WAV file); not found unless the analysis succeeded with it."""
        analysis = await self.analysis(measurement_id)
        mic = (analysis.result or {}).get("microphones", {}).get(str(device_id))
        if mic is None or mic.get("response_blob_id") is None:
            raise ServiceError(
                ErrorCode.not_found,
                f"measurement {measurement_id} has no impulse response of device {device_id}: "
                + _why_no_response(analysis, device_id, mic),
            )
        blob_id = UUID(mic["response_blob_id"])
        return await _storage(self._storage.read_blob(blob_id), "impulse response")

    async def _stored(self, recording: RecordingRead, index: int) -> bool:
        """Whether chunk ``index`` of the recording is stored."""
        chunks = await _storage(self._storage.blob_chunks(recording.blob_id), "recording")
        # Without a final chunk yet, ``missing`` covers every gap below the highest index.
        end = chunks.expected_chunks
        if end is None:
            end = chunks.received + len(chunks.missing)
        return index < end and index not in chunks.missing

    async def _recording(self, measurement_id: UUID, device_id: UUID) -> RecordingRead | None:
        recordings = await _storage(
            self._storage.measurement_recordings(measurement_id), "measurement"
        )
        return next((r for r in recordings if r.device_id == device_id), None)

    async def _status(
        self, recording: RecordingRead, measurement: MeasurementRead | None = None
    ) -> UploadStatus:
        chunks = await _storage(self._storage.blob_chunks(recording.blob_id), "recording")
        if chunks.state == "complete" and recording.state == RecordingState.uploading:
            # Completed by a write whose check did not finish (a restart): check it now.
            measurement = measurement or await self._measurement(recording.measurement_id)
            recording = await self._check(measurement, recording)
        return UploadStatus(
            measurement_id=recording.measurement_id,
            device_id=recording.device_id,
            recording_id=recording.id,
            state=recording.state,
            received=chunks.received,
            expected_chunks=chunks.expected_chunks,
            missing=chunks.missing,
            error=recording.error,
        )

    async def _check(self, measurement: MeasurementRead, recording: RecordingRead) -> RecordingRead:
        """Decode and check a whole recording; mark it, and tell the lobby."""
        started = _started(measurement)
        spec = started.sweep
        shortest, longest = {
            MeasurementKind.room: (
                spec.sweeps_seconds + MIN_TAIL_S,
                spec.recording_seconds + MAX_EXTRA_S,
            ),
            MeasurementKind.sweep_recording: (spec.sweeps_seconds + MIN_TAIL_S, MAX_UPLOADED_S),
            MeasurementKind.impulse_response: (MIN_RESPONSE_S, MAX_UPLOADED_S),
        }[started.kind]
        data = await _storage(self._storage.read_blob(recording.blob_id), "recording")
        message: str | None
        try:
            await asyncio.to_thread(
                prepare, data, _format(recording), spec.sample_rate, shortest, longest
            )
        except RecordingError as error:
            state, message = RecordingState.invalid, f"{error.reason}: {error}"
            news = event(
                "recording.invalid",
                measurement_id=measurement.id,
                device_id=recording.device_id,
                reason=error.reason,
                message=str(error),
            )
        else:
            state, message = RecordingState.complete, None
            news = event(
                "recording.received", measurement_id=measurement.id, device_id=recording.device_id
            )
        update = RecordingUpdate(
            expected_version=recording.version, state=state, error=message, events=[news]
        )
        try:
            updated = await self._storage.update_recording(recording.id, update)
        except StorageConflict:  # another check got there first: its answer stands
            return await _storage(self._storage.get_recording(recording.id), "recording")
        except StorageError as error:
            raise ServiceError(ErrorCode.unavailable, f"storage failed: {error}") from None
        outcome = "complete" if state == RecordingState.complete else str(news.payload["reason"])
        self._metrics.recordings.labels(outcome).inc()
        await self._analyse_when_complete(measurement.id)
        return updated

    async def _analyse_when_complete(self, measurement_id: UUID) -> None:
        """Start the analysis if this was the last recording; a failure to start it leaves
        the chunk acknowledged, and the next status request tries again."""
        try:
            await self._runs.start_when_complete(measurement_id)
        except (ServiceError, StorageError):
            logger.warning("the analysis of %s did not start", measurement_id, exc_info=True)


def _why_no_response(analysis: AnalysisRead, device_id: UUID, mic: object) -> str:
    if analysis.result is None:
        return f"the analysis is {analysis.state.value}"
    if mic is not None:
        return "it was not stored"
    reason = analysis.result.get("unusable", {}).get(str(device_id))
    if reason is not None:
        return f"its recording could not be analysed ({reason})"
    return "not one of the measurement's microphones"


def _format(recording: RecordingRead) -> RecordingFormat:
    return RecordingFormat.model_validate(recording.format)


def _check_open(measurement: MeasurementRead) -> None:
    if measurement.state in _CLOSED:
        raise ServiceError(
            ErrorCode.conflict,
            f"uploads are closed: the measurement is {measurement.state.value}",
        )


def _started(row: MeasurementRead) -> MeasurementStarted:
    sweep = SweepSpec.model_validate(row.spec["sweep"])
    return MeasurementStarted(
        measurement_id=row.id,
        lobby_id=row.lobby_id,
        kind=MeasurementKind(row.spec.get("kind", MeasurementKind.room)),
        sweep=sweep,
        sweep_path=f"/v1/measurements/{row.id}/sweep.wav",
        start_at_ms=row.spec["start_at_ms"],
        play_at_ms=MeasurementStarted.play_at(row.spec["start_at_ms"], sweep),
        recording_seconds=sweep.recording_seconds,
        microphones=[UUID(d) for d in row.spec["microphones"]],
        speakers=[UUID(d) for d in row.spec["speakers"]],
    )
