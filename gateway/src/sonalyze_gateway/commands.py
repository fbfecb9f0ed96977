"""Running one device's commands: the lobby service decides, storage answers reads.

A command's outcome is its reply and, for commands that enter, resume or leave a lobby, what
the connection does next (:class:`Follow`). Both are data, so a repeated command id answered
from memory has the same effect on whichever connection repeats it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID, uuid4

from pydantic import BaseModel

from sonalyze import protocol
from sonalyze.domain import JobState, MeasurementState, WorkflowState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.measurement_api import MeasurementKind, MeasurementStarted
from sonalyze.storage_api import LobbyChanged, LobbyRead, SimulationJobRead
from sonalyze.storage_client import StorageNotFound, StorageUnavailable
from sonalyze_gateway.outbox import Outgoing

if TYPE_CHECKING:
    from sonalyze_gateway.gateway import Gateway

logger = logging.getLogger(__name__)

# Refusals that may well not happen on a retry are not remembered for the command's id.
TRANSIENT = frozenset({ErrorCode.unavailable, ErrorCode.internal, ErrorCode.rate_limited})
ABORT_ATTEMPTS = 4  # moves from aborted back to idle, so that no lobby stays aborted


class Follow(NamedTuple):
    """Follow ``lobby_id`` from ``after_seq`` (after sending ``snapshot``, if any); with
    ``after_seq`` None, stop following it."""

    lobby_id: UUID
    after_seq: int | None
    snapshot: str | None = None


Handler = Callable[[Any], Awaitable[tuple[BaseModel, "Follow | None"]]]


class Outcome(NamedTuple):
    reply: Outgoing
    follow: Follow | None = None
    remember: bool = True


def error_reply(corr: str | None, exc: ServiceError) -> Outgoing:
    payload = protocol.Error(code=exc.code, message=exc.message, retry_after_ms=exc.retry_after_ms)
    return Outgoing(protocol.reply("error", corr, payload), "error")


def rate_limited(message: str, wait_s: float) -> ServiceError:
    retry_ms = max(1, int(wait_s * 1000 + 0.999))
    return ServiceError(ErrorCode.rate_limited, f"{message}; retry in {wait_s:.1f} s", retry_ms)


class Commands:
    """The commands of one connection's device; ``lobby_id`` is the lobby it follows."""

    def __init__(
        self, gateway: Gateway, device_id: UUID, lobby_id: UUID | None, address: str
    ) -> None:
        self.gw = gateway
        self.device_id = device_id
        self.lobby_id = lobby_id
        self.address = address

    async def run(self, kind: str, corr: str, payload: BaseModel) -> Outcome:
        """Run one command to its outcome; refusals become ``error`` replies."""
        handler = self._handlers()[kind]
        try:
            answer, follow = await handler(payload)
        except ServiceError as exc:
            return Outcome(error_reply(corr, exc), remember=exc.code not in TRANSIENT)
        except StorageNotFound as exc:
            return Outcome(error_reply(corr, ServiceError(ErrorCode.not_found, str(exc))))
        except StorageUnavailable:
            error = ServiceError(ErrorCode.unavailable, "storage is unavailable; retry")
            return Outcome(error_reply(corr, error), remember=False)
        except Exception:
            logger.exception("%s failed", kind)
            error = ServiceError(ErrorCode.internal, f"{kind} failed unexpectedly")
            return Outcome(error_reply(corr, error), remember=False)
        return Outcome(Outgoing(protocol.reply("ack", corr, answer), "ack"), follow)

    def _handlers(self) -> dict[str, Handler]:
        return {
            "lobby.create": self._lobby_create,
            "lobby.join": self._lobby_join,
            "lobby.leave": self._lobby_leave,
            "role.assign": self._role_assign,
            "role.update": self._role_update,
            "resume": self._resume,
            "ping": self._ping,
            "time.sync": self._time_sync,
            "lobby.lock": self._lobby_lock,
            "measurement.start": self._measurement_start,
            "measurement.abort": self._measurement_abort,
            "measurement.upload": self._measurement_upload,
            "measurement.status": self._measurement_status,
            "analysis.request": self._analysis_request,
            "simulation.request": self._simulation_request,
            "simulation.status": self._simulation_status,
            "simulation.cancel": self._simulation_cancel,
        }

    async def _lobby_create(self, body: protocol.LobbyCreate) -> tuple[BaseModel, Follow]:
        changed = await self.gw.lobbies.create(self.device_id, body.name)
        return _entered(changed.lobby)

    async def _lobby_join(self, body: protocol.LobbyJoin) -> tuple[BaseModel, Follow]:
        keys = (f"device:{self.device_id}", f"address:{self.address}")
        if (wait := self.gw.join_failures.wait(keys)) is not None:
            self.gw.metrics.rate_limited.labels("join").inc()
            raise rate_limited("too many wrong join codes", wait)
        # Counted as wrong while in flight (no await between the check and this), so that
        # codes sent at once count; taken back unless the code was wrong.
        at = self.gw.join_failures.begin(keys)
        wrong = False
        try:
            changed = await self.gw.lobbies.join(self.device_id, body.code)
        except ServiceError as exc:
            wrong = exc.code in (ErrorCode.not_found, ErrorCode.bad_request)
            raise
        finally:
            if not wrong:
                self.gw.join_failures.succeeded(keys, at)
        return _entered(changed.lobby)

    async def _lobby_leave(self, _: BaseModel) -> tuple[BaseModel, Follow]:
        lobby_id = self._lobby()
        changed = await self.gw.lobbies.leave(lobby_id, self.device_id)
        return protocol.Changed(seq=_last_seq(changed)), Follow(lobby_id, None)

    async def _lobby_lock(self, body: protocol.LobbyLock) -> tuple[BaseModel, None]:
        changed = await self.gw.lobbies.lock(self._lobby(), self.device_id, body.locked)
        return protocol.Changed(seq=_last_seq(changed)), None

    async def _role_assign(self, body: protocol.RoleAssign) -> tuple[BaseModel, None]:
        changed = await self.gw.lobbies.assign_role(
            self._lobby(), self.device_id, body.device_id, body.role
        )
        return protocol.Changed(seq=_last_seq(changed)), None

    async def _role_update(self, body: protocol.RoleUpdate) -> tuple[BaseModel, None]:
        changed = await self.gw.lobbies.update_status(self._lobby(), self.device_id, body.status)
        return protocol.Changed(seq=_last_seq(changed)), None

    async def _resume(self, body: protocol.Resume) -> tuple[BaseModel, Follow]:
        outcome = "unavailable"
        try:
            lobby = await self.gw.storage.get_lobby(body.lobby_id)
            if lobby.closed_at is not None:
                outcome = "closed"
                raise ServiceError(ErrorCode.not_found, f"lobby {lobby.id} is closed")
            if all(p.device_id != self.device_id for p in lobby.participants):
                outcome = "not_member"
                raise ServiceError(ErrorCode.forbidden, "this device is not in that lobby")
            if body.after_seq > lobby.last_seq:
                outcome = "ahead"
                raise ServiceError(
                    ErrorCode.bad_request,
                    f"after_seq {body.after_seq} is beyond the lobby's last seq {lobby.last_seq}",
                )
            outcome = "ok"
        except StorageNotFound:
            outcome = "not_found"
            raise ServiceError(ErrorCode.not_found, f"lobby {body.lobby_id} not found") from None
        finally:
            self.gw.metrics.resumes.labels(outcome).inc()
        resumed = protocol.Resumed(lobby_id=lobby.id, after_seq=body.after_seq)
        return resumed, Follow(lobby.id, body.after_seq)

    async def _ping(self, _: BaseModel) -> tuple[BaseModel, None]:
        return protocol.Empty(), None

    async def _time_sync(self, body: protocol.TimeSync) -> tuple[BaseModel, None]:
        received = protocol.now_ms()
        return protocol.TimeSyncReply(t0=body.t0, t1=received, t2=protocol.now_ms()), None

    async def _measurement_start(self, body: protocol.MeasurementStart) -> tuple[BaseModel, None]:
        changed = await self.gw.lobbies.start_measurement(self._lobby(), self.device_id, body.sweep)
        return protocol.Changed(seq=_last_seq(changed)), None

    async def _measurement_abort(self, _: BaseModel) -> tuple[BaseModel, None]:
        """The host stops the measurement under way (its uploads close, it is not analysed);
        the workflow goes on to idle, and to ready if everyone still is (from aborted, it only
        goes on). An analysis that has begun runs to its end: it is not stopped."""
        lobby_id = self._lobby()
        lobby = await self.gw.storage.get_lobby(lobby_id)
        if lobby.workflow_state == WorkflowState.analyzing:
            raise ServiceError(ErrorCode.conflict, "the analysis has begun; it ends by itself")
        aborted = None  # already aborted (an earlier abort could not move it on): on to idle
        if lobby.workflow_state != WorkflowState.aborted:
            aborted = await self.gw.lobbies.move_workflow(
                lobby_id, WorkflowState.aborted, self.device_id
            )
        changed = aborted
        for attempt in range(ABORT_ATTEMPTS):
            try:
                changed = await self.gw.lobbies.move_workflow(
                    lobby_id, WorkflowState.idle, self.device_id
                )
                break
            except ServiceError as exc:
                if exc.code not in TRANSIENT:  # another command moved it on meanwhile
                    logger.info("lobby %s not moved on from aborted: %s", lobby_id, exc)
                    break
                await asyncio.sleep(0.2 * 2**attempt)
        seq = (_last_seq(changed) if changed else None) or (_last_seq(aborted) if aborted else None)
        return protocol.Changed(seq=seq), None

    async def _measurement_upload(self, body: protocol.MeasurementUpload) -> tuple[BaseModel, None]:
        await self._own_measurement(body.measurement_id)
        return await self.gw.measurements.begin_upload(
            body.measurement_id, self.device_id, body.format
        ), None

    async def _measurement_status(
        self, body: protocol.MeasurementStatusRequest
    ) -> tuple[BaseModel, None]:
        await self._own_measurement(body.measurement_id)
        return await self.gw.measurements.status(body.measurement_id), None

    async def _analysis_request(self, body: protocol.AnalysisRequest) -> tuple[BaseModel, None]:
        """The analysis of a measurement of this lobby: anyone may ask for one that has begun;
        only the host may start one early, and not before the recording's time is over. With
        ``kind``: a measurement for this phone's own upload, analysed once it is in."""
        if body.measurement_id is None:
            assert body.kind is not None  # the payload's validator makes it one or the other
            started = await self.gw.measurements.start(
                self._lobby(), body.sweep, MeasurementKind(body.kind), self.device_id
            )
            waiting = protocol.AnalysisState(
                analysis_id=None,
                measurement_id=started.measurement_id,
                state=JobState.queued,
                progress=0.0,
                result=None,
                error=None,
            )
            return waiting, None
        measurement = await self._own_measurement(body.measurement_id)
        status = await self.gw.measurements.status(body.measurement_id)
        if status.state in (MeasurementState.scheduled, MeasurementState.recording):
            lobby = await self.gw.storage.get_lobby(measurement.lobby_id)
            if lobby.host_device_id != self.device_id:
                raise ServiceError(ErrorCode.forbidden, "only the host starts an analysis")
            if protocol.now_ms() < measurement.start_at_ms + measurement.recording_seconds * 1000:
                raise ServiceError(ErrorCode.conflict, "the recording has not ended yet")
        analysis = await self.gw.measurements.analyse(body.measurement_id)
        state = protocol.AnalysisState(
            analysis_id=analysis.id,
            measurement_id=body.measurement_id,
            state=analysis.state,
            progress=analysis.progress,
            result=analysis.result,
            error=analysis.error,
        )
        return state, None

    async def _simulation_request(
        self, body: protocol.SimulationRequestCommand
    ) -> tuple[BaseModel, None]:
        """Any member may ask; the job belongs to the lobby, which hears of it."""
        request_id = body.client_request_id or str(uuid4())
        job = await self.gw.simulations.submit(
            body.request, f"{self.device_id}:{request_id}", self._lobby(), self.device_id
        )
        return protocol.SimulationState.of(job), None

    async def _simulation_status(self, body: protocol.SimulationJobRef) -> tuple[BaseModel, None]:
        return protocol.SimulationState.of(await self._own_simulation(body.job_id)), None

    async def _simulation_cancel(self, body: protocol.SimulationJobRef) -> tuple[BaseModel, None]:
        """Any member may cancel the lobby's simulation (the lobby hears simulation.result)."""
        await self._own_simulation(body.job_id)
        return protocol.SimulationState.of(await self.gw.simulations.cancel(body.job_id)), None

    async def _own_simulation(self, job_id: UUID) -> SimulationJobRead:
        """The simulation, if it belongs to the lobby this connection follows."""
        job = await self.gw.simulations.get(job_id)
        if job.lobby_id != self._lobby():
            raise ServiceError(ErrorCode.forbidden, "that simulation is another lobby's")
        return job

    async def _own_measurement(self, measurement_id: UUID) -> MeasurementStarted:
        """The measurement, if it belongs to the lobby this connection follows."""
        measurement = await self.gw.measurements.get(measurement_id)
        if measurement.lobby_id != self._lobby():
            raise ServiceError(ErrorCode.forbidden, "that measurement is another lobby's")
        return measurement

    def _lobby(self) -> UUID:
        if self.lobby_id is None:
            raise ServiceError(ErrorCode.bad_request, "join, create or resume a lobby first")
        return self.lobby_id


def _entered(lobby: LobbyRead) -> tuple[BaseModel, Follow]:
    """Ack with the lobby, then its snapshot, then its events after the snapshot."""
    state = protocol.LobbyState.of(lobby)
    snapshot = protocol.event_frame(
        "lobby.state", lobby.id, lobby.last_seq, protocol.now_ms(), state
    )
    joined = protocol.Joined(lobby_id=lobby.id, code=lobby.code, seq=lobby.last_seq)
    return joined, Follow(lobby.id, lobby.last_seq, snapshot)


def _last_seq(changed: LobbyChanged) -> int | None:
    return changed.events[-1].seq if changed.events else None
