"""A measurement's analysis run: started once every microphone's recording is in (complete or
invalid) or when asked, one per measurement, off the event loop in worker processes.

The run analyses each usable recording in turn (``analysis.progress`` after each), storing the
impulse response analysed as a WAV blob (complete before the result names it), then stores the
result with the spatial average and tells the lobby (``analysis.result``, the summary); the
result and its event commit together, and so does each progress report. A recording the
analysis cannot use is listed under ``unusable`` with the reason and does not stop the others.
Which process runs it is decided by moving the measurement to ``analyzing`` with the version
read: the one whose move storage accepts runs it, any other answers with that run's analysis.
The lobby's workflow follows, in order: uploading and analyzing when the run starts, back to
idle (and ready, if everyone still is) once its result is stored; moves the lobby service is
unavailable for are tried again for a while, so that a restarted lobby is not left stuck.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from typing import Any
from uuid import UUID

from sonalyze.acoustics import RecordingAnalysisError, spatial_average
from sonalyze.acoustics.recording import BANDS
from sonalyze.domain import JobState, MeasurementState, RecordingState, WorkflowState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.events import MeasurementResult, MicrophoneResult, SpatialAverage, event
from sonalyze.lobby_client import LobbyClient
from sonalyze.measurement_api import MeasurementKind
from sonalyze.storage_api import (
    MAX_ERROR_CHARS,
    AnalysisCreate,
    AnalysisRead,
    JobUpdate,
    MeasurementRead,
    MeasurementUpdate,
    RecordingRead,
)
from sonalyze.storage_client import (
    StorageClient,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from sonalyze_measurement.analysis import analyse_upload
from sonalyze_measurement.measurement_metrics import MeasurementMetrics

logger = logging.getLogger(__name__)
_IN = (RecordingState.complete, RecordingState.invalid)
_CLAIM_WAITS, _CLAIM_WAIT_S = 20, 0.05
_CLOSE_GRACE_S = 30.0
_FINISH_ATTEMPTS = 5
_STORE_ATTEMPTS = 5  # for each impulse response, 0.5 s doubling between them
_CHUNK_BYTES = 256 * 1024
_FOLLOW_S = 120.0  # how long the lobby's workflow is moved again while the lobby is unavailable


class AnalysisRuns:
    """Starts and runs analyses; :meth:`close` cancels the runs still going."""

    def __init__(
        self,
        storage: StorageClient,
        lobbies: LobbyClient,
        executors: Callable[[], Executor],
        metrics: MeasurementMetrics,
        *,
        chunk_bytes: int = _CHUNK_BYTES,
    ) -> None:
        self._storage = storage
        self._chunk_bytes = chunk_bytes
        self._lobbies = lobbies
        self._executors = executors
        self._executor = executors()
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._armed: set[UUID] = set()  # measurements with a deadline timer here
        self._running: set[UUID] = set()  # measurements analysed by a run here

    async def close(self, grace_s: float = _CLOSE_GRACE_S) -> None:
        """Let the runs under way finish (a restart should not leave an analysis behind),
        for at most ``grace_s``; then cancel what is left (deadline timers at once)."""

        def runs() -> list[asyncio.Task[None]]:  # a run ends by starting the lobby's move
            return [t for t in self._tasks if t.get_name().startswith("run-")]

        for task in self._tasks - set(runs()):
            task.cancel()
        deadline = asyncio.get_running_loop().time() + grace_s
        while (going := runs()) and (left := deadline - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(going, timeout=left)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    async def _follow(
        self,
        measurement: MeasurementRead,
        *states: WorkflowState,
        after: asyncio.Task[None] | None = None,
    ) -> None:
        """Move the lobby's workflow along with a room measurement (once the moves ``after``
        are done); the lobby may have moved on (aborted, say), so a refusal is noted, not
        raised. While the lobby service is unavailable (restarting, say) a move is tried
        again, further apart, for :data:`_FOLLOW_S`: a lobby left behind would stay stuck
        outside idle."""
        if after is not None:
            await asyncio.wait([after])
        if _kind(measurement) != MeasurementKind.room:
            return  # one phone's upload: the lobby's workflow is not its business
        lobby_id = measurement.lobby_id
        for state in states:
            waited, wait = 0.0, 0.5
            while True:
                try:
                    await self._lobbies.move_workflow(lobby_id, state)
                    break
                except ServiceError as error:
                    if error.code != ErrorCode.unavailable or waited >= _FOLLOW_S:
                        logger.info("lobby %s workflow not moved to %s: %s", lobby_id, state, error)
                        break
                    await asyncio.sleep(wait)
                    waited, wait = waited + wait, min(2 * wait, 8.0)
                    if state == WorkflowState.idle and await self._back(lobby_id):
                        break  # the failed call was taken after all (it timed out, say)

    async def _back(self, lobby_id: UUID) -> bool:
        """Whether the lobby is back to idle or ready (a move to idle again would take a
        ready lobby to idle); False when storage cannot say."""
        try:
            lobby = await self._storage.get_lobby(lobby_id)
        except StorageError:
            return False
        return lobby.workflow_state in (WorkflowState.idle, WorkflowState.ready)

    def start_at(self, measurement_id: UUID, deadline: float) -> None:
        """Start the analysis at ``deadline`` (s since the epoch) with what has arrived, unless
        it has started by then (once per measurement and process)."""
        if measurement_id in self._armed:
            return
        self._armed.add(measurement_id)

        async def wait_then_start() -> None:
            await asyncio.sleep(max(0.0, deadline - time.time()))
            self._armed.discard(measurement_id)
            try:
                if await self.latest(measurement_id) is None:
                    await self.start(measurement_id)
            except (ServiceError, StorageError) as error:
                logger.warning("the analysis of %s did not start at its deadline: %s",
                               measurement_id, error)  # fmt: skip

        self._track(asyncio.create_task(wait_then_start()))

    async def keep_reconciling(
        self, deadline_of: Callable[[MeasurementRead], float], every_s: float, stale_s: float
    ) -> None:
        """Every ``every_s``: re-arm the deadline of every scheduled measurement (timers live
        in memory, and die with a process), and restart every analysis whose run stopped
        reporting for ``stale_s`` (its process crashed), marking the old one failed."""
        while True:
            try:
                await self.reconcile(deadline_of, stale_s)
            except (ServiceError, StorageError) as error:
                logger.warning("measurements not reconciled: %s", error)
            await asyncio.sleep(every_s)

    async def reconcile(
        self, deadline_of: Callable[[MeasurementRead], float], stale_s: float
    ) -> None:
        for measurement in await self._storage.list_measurements(
            [MeasurementState.scheduled], limit=1000
        ):
            self.start_at(measurement.id, deadline_of(measurement))
        for measurement in await self._storage.list_measurements(
            [MeasurementState.analyzing], limit=1000
        ):
            if measurement.id not in self._running:
                await self._restart_if_stale(measurement, stale_s)

    async def _restart_if_stale(self, measurement: MeasurementRead, stale_s: float) -> None:
        latest = await self.latest(measurement.id)
        if latest is not None:
            if latest.state not in (JobState.queued, JobState.running):
                return
            if time.time() - latest.updated_at.timestamp() < stale_s:
                return  # still reporting: another process runs it
            abandon = JobUpdate(
                expected_version=latest.version,
                state=JobState.failed,
                error="abandoned: the process running it stopped; analysed again",
            )
            try:
                await self._storage.update_analysis(latest.id, abandon)
            except StorageConflict:
                return  # it moved meanwhile: alive after all, or restarted elsewhere
        logger.info("restarting the analysis of measurement %s", measurement.id)
        await self._claim_and_run(measurement)

    def watch(self, task: asyncio.Task[None]) -> None:
        """Keep ``task`` (the reconciling loop) until :meth:`close` cancels it."""
        self._track(task)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def latest(self, measurement_id: UUID) -> AnalysisRead | None:
        analyses = await self._storage.measurement_analyses(measurement_id)
        return analyses[0] if analyses else None

    async def start_when_complete(self, measurement_id: UUID) -> None:
        """Start the analysis if every microphone's recording is complete or invalid."""
        measurement = await self._storage.get_measurement(measurement_id)
        if measurement.state != MeasurementState.scheduled:
            return
        states = {
            str(r.device_id): r.state
            for r in await self._storage.measurement_recordings(measurement_id)
        }
        if all(states.get(m) in _IN for m in measurement.spec.get("microphones", [])):
            await self.start(measurement_id)

    async def start(self, measurement_id: UUID) -> AnalysisRead:
        """Analyse what has arrived, unless the measurement has an analysis already: then
        that one (``analysis.request`` for a past measurement answers from it).

        Only a measurement still ``scheduled`` is claimed (moved to ``analyzing`` with the
        version read); one claimed by another caller answers with that caller's analysis."""
        measurement = await self._storage.get_measurement(measurement_id)
        if measurement.state != MeasurementState.scheduled:
            return await self._claimed(measurement_id)
        return await self._claim_and_run(measurement)

    async def _claim_and_run(self, measurement: MeasurementRead) -> AnalysisRead:
        """Move the measurement to analyzing with the version read (the one caller whose
        move storage accepts runs the analysis), then start the run."""
        measurement_id = measurement.id
        claim = MeasurementUpdate(
            expected_version=measurement.version, state=MeasurementState.analyzing
        )
        try:
            measurement = await self._storage.update_measurement(measurement_id, claim)
        except StorageConflict:
            return await self._claimed(measurement_id)
        recordings = await self._storage.measurement_recordings(measurement_id)
        usable = [r for r in recordings if r.state == RecordingState.complete]
        analysis = await self._storage.create_analysis(
            AnalysisCreate(measurement_id=measurement_id, params={"bands": list(BANDS)})
        )
        analysis = await self._storage.update_analysis(
            analysis.id,
            JobUpdate(
                expected_version=analysis.version,
                state=JobState.running,
                progress=0.0,
                events=[_progress(analysis.id, measurement_id, 0, len(usable))],
            ),
        )
        run = self._run(measurement, analysis, recordings)
        self._track(asyncio.create_task(run, name=f"run-{measurement_id}"))
        return analysis

    async def _claimed(self, measurement_id: UUID) -> AnalysisRead:
        """The analysis of a measurement another caller claimed: it is created right after the
        claim, so wait for it a moment."""
        for _ in range(_CLAIM_WAITS):
            if (existing := await self.latest(measurement_id)) is not None:
                return existing
            await asyncio.sleep(_CLAIM_WAIT_S)
        raise ServiceError(
            ErrorCode.conflict, "the measurement has ended or is being analysed; ask again"
        )

    async def _run(
        self, measurement: MeasurementRead, analysis: AnalysisRead, recordings: list[RecordingRead]
    ) -> None:
        started = time.monotonic()
        self._running.add(measurement.id)
        # The lobby follows while the analysis runs, and goes back to idle once it is stored,
        # in that order (a move to idle before the one to analyzing would leave it stuck).
        # Named run-*: close() lets them finish like the run, not cancel them at once.
        moved = asyncio.create_task(
            self._follow(measurement, WorkflowState.uploading, WorkflowState.analyzing),
            name=f"run-follow-{measurement.id}",
        )
        self._track(moved)
        try:
            if await self._conclude(measurement, analysis, recordings, started):
                back = self._follow(measurement, WorkflowState.idle, after=moved)
                self._track(asyncio.create_task(back, name=f"run-back-{measurement.id}"))
        finally:
            self._running.discard(measurement.id)

    async def _conclude(
        self,
        measurement: MeasurementRead,
        analysis: AnalysisRead,
        recordings: list[RecordingRead],
        started: float,
    ) -> bool:
        """Analyse and store the result; whether it was stored."""
        try:
            result, error = await self._analyse(measurement, analysis, recordings), None
        except Exception as failure:  # the run fails as a whole: say so, and why
            logger.exception("analysis %s of measurement %s failed", analysis.id, measurement.id)
            result, error = None, f"the analysis failed: {failure}"[:MAX_ERROR_CHARS]
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                await self._finish(measurement, analysis.id, result, error)
                break
            except (ServiceError, StorageError) as failure:
                logger.warning(
                    "analysis %s not stored (attempt %d): %s", analysis.id, attempt + 1, failure
                )
                await asyncio.sleep(0.5 * 2**attempt)
        else:
            self._metrics.analyses.labels("unstored").inc()
            return False
        self._metrics.analyses.labels("failed" if result is None else "succeeded").inc()
        self._metrics.analysis_seconds.observe(time.monotonic() - started)
        return True

    async def _analyse(
        self, measurement: MeasurementRead, analysis: AnalysisRead, recordings: list[RecordingRead]
    ) -> MeasurementResult:
        unusable: dict[UUID, str] = {
            r.device_id: str(r.error) for r in recordings if r.state == RecordingState.invalid
        }
        for r in recordings:
            if r.state == RecordingState.uploading:
                unusable[r.device_id] = "upload incomplete"
        begun = {str(r.device_id) for r in recordings}
        for device in measurement.spec.get("microphones", []):
            if device not in begun:
                unusable[UUID(device)] = "no recording arrived"
        usable = [r for r in recordings if r.state == RecordingState.complete]
        microphones: dict[UUID, MicrophoneResult] = {}
        for done, recording in enumerate(usable, 1):
            device = recording.device_id
            data = await self._storage.read_blob(recording.blob_id)
            analysing = time.monotonic()
            try:
                result, wav = await self._in_worker(
                    data, recording.format, measurement.spec["sweep"], _kind(measurement)
                )
            except RecordingAnalysisError as error:  # a late start, a mislabelled rate
                unusable[device] = f"{error.reason}: {error}"
            except ValueError as error:  # this recording only (e.g. too short for a band)
                unusable[device] = f"analysis: {error}"
            else:
                stored = await self._store_response(wav, device)
                microphones[device] = result.model_copy(update={"response_blob_id": stored})
            self._metrics.recording_seconds.observe(time.monotonic() - analysing)
            analysis = await self._storage.update_analysis(
                analysis.id,
                JobUpdate(
                    expected_version=analysis.version,
                    state=JobState.running,
                    progress=done / len(usable),
                    events=[_progress(analysis.id, measurement.id, done, len(usable))],
                ),
            )
        positions = [
            mic.model_dump(
                include={"parameters", "suspect", "reverberation_time"}, exclude_none=True
            )
            for mic in microphones.values()
        ]
        return MeasurementResult(
            bands=list(BANDS),
            microphones=microphones,
            average=SpatialAverage.model_validate(spatial_average(positions, len(BANDS))),
            unusable=unusable,
        )

    async def _store_response(self, wav: bytes, device: UUID) -> UUID | None:
        """The impulse response as an audio/wav blob, complete before the result names it.
        Storage briefly unavailable is waited out (a chunk written again is stored once); a
        refusal (larger than its blobs may be), or storage unavailable for longer, leaves the
        response unstored, not the analysis."""
        chunks = [wav[i : i + self._chunk_bytes] for i in range(0, len(wav), self._chunk_bytes)]
        blob_id: UUID | None = None
        attempt = 0
        while True:
            try:
                if blob_id is None:
                    blob_id = (await self._storage.create_blob("audio/wav")).id
                for index, chunk in enumerate(chunks):
                    final = index == len(chunks) - 1
                    await self._storage.put_chunk(
                        blob_id, index, chunk, zlib.crc32(chunk), final=final
                    )
                return blob_id
            except StorageError as failure:
                attempt += 1
                if attempt == _STORE_ATTEMPTS or not isinstance(failure, StorageUnavailable):
                    # The parameters matter more than the download: keep them without it.
                    logger.warning("the impulse response of %s not stored: %s", device, failure)
                    return None
                logger.warning("the impulse response of %s not stored yet: %s", device, failure)
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))

    async def _in_worker(
        self, data: bytes, declared: dict[str, Any], spec: dict[str, Any], kind: str = "room"
    ) -> tuple[MicrophoneResult, bytes]:
        """:func:`analyse_upload` in a worker process; a pool whose worker died (out of
        memory, say) is replaced, and the recording tried once more in the new one."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, analyse_upload, data, declared, spec, kind
            )
        except BrokenProcessPool:
            logger.warning("an analysis worker died; starting a new pool")
            broken, self._executor = self._executor, self._executors()
            broken.shutdown(wait=False, cancel_futures=True)
            return await loop.run_in_executor(
                self._executor, analyse_upload, data, declared, spec, kind
            )

    async def _finish(
        self,
        measurement: MeasurementRead,
        analysis_id: UUID,
        result: MeasurementResult | None,
        error: str | None,
    ) -> None:
        # The measurement first: once the result is out, no upload is taken any more.
        current = await self._storage.get_measurement(measurement.id)
        final = MeasurementState.failed if result is None else MeasurementState.completed
        if current.state != final:  # (an attempt before this one may have got this far)
            await self._storage.update_measurement(
                measurement.id, MeasurementUpdate(expected_version=current.version, state=final)
            )
        analysis = await self._storage.get_analysis(analysis_id)
        summary = None if result is None else result.summary()
        news = event(
            "analysis.result",
            measurement_id=measurement.id,
            analysis_id=analysis.id,
            result=summary,
            error=error,
        )
        state = JobState.failed if result is None else JobState.succeeded
        if analysis.state == JobState.running:  # (else an attempt before this one stored it)
            update = JobUpdate(
                expected_version=analysis.version,
                state=state,
                result=None if result is None else result.model_dump(mode="json"),
                error=error,
                events=[news],
            )
            await self._storage.update_analysis(analysis.id, update)


def _kind(measurement: MeasurementRead) -> str:
    return str(measurement.spec.get("kind", MeasurementKind.room))


def _progress(analysis_id: UUID, measurement_id: UUID, done: int, total: int) -> Any:
    return event(
        "analysis.progress",
        measurement_id=measurement_id,
        analysis_id=analysis_id,
        done=done,
        total=total,
    )
