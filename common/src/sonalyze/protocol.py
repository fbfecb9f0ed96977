"""The phones' WebSocket protocol, version 1 (subprotocol ``sonalyze.v1``).

Text frames carry JSON envelopes ``{"v": 1, "type", "id", "corr", "lobby", "seq", "ts",
"payload"}``. A client command carries a client-chosen ``id`` and gets exactly one reply,
``ack`` or ``error``, with ``corr`` set to that id. Server events carry the lobby and its
``seq``. The models here are the one definition the gateway validates against.
"""

from __future__ import annotations

import json
import time
from enum import IntEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from sonalyze.domain import JobState, ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.events import EVENTS
from sonalyze.measurement_api import ChunkAck, MeasurementStatus, RecordingFormat, UploadStatus
from sonalyze.simulation_api import SimulationRequest
from sonalyze.storage_api import LobbyRead, SimulationJobRead

VERSION: Literal[1] = 1
SUBPROTOCOL = "sonalyze.v1"
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Envelope(BaseModel):
    """Every text frame, in both directions."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = VERSION
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]*(\.[a-z_]+)*$", max_length=64)]
    id: MessageId | None = Field(None, description="Client-chosen id of a command.")
    corr: MessageId | None = Field(None, description="The id of the command a reply answers.")
    lobby: UUID | None = Field(None, description="The lobby an event belongs to.")
    seq: int | None = Field(None, ge=1, description="The event's number in its lobby.")
    ts: float | None = Field(None, description="Server time in ms since the epoch.")
    payload: dict[str, Any] = Field(default_factory=dict)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Client commands -------------------------------------------------------------------------------


class Hello(_Payload):
    """First message: who this device is (no token: a new device)."""

    # No length limit of its own (the frame's is enough): a token too long to be one the
    # gateway issued is unauthorized like any other it did not issue.
    token: str | None = Field(None, description="A token from an earlier welcome.")


class LobbyCreate(_Payload):
    """Create a lobby; the sender becomes its host."""

    name: str | None = Field(None, max_length=80)


class LobbyJoin(_Payload):
    """Join the open lobby with this code (case, spaces and dashes ignored)."""

    code: str = Field(min_length=1, max_length=32)


class Empty(_Payload):
    """No fields (lobby.leave, ping, and the ack of ping)."""


class RoleAssign(_Payload):
    """The host gives a member a role."""

    device_id: UUID
    role: Role


class RoleUpdate(_Payload):
    """Say whether this device is ready for the next measurement."""

    status: ParticipantStatus


class Resume(_Payload):
    """After a reconnect: every event of the lobby after after_seq, then live ones."""

    lobby_id: UUID
    after_seq: int = Field(ge=0)


class TimeSync(_Payload):
    """Clock sync: the ack carries the server's receive and send times."""

    t0: float = Field(description="The client's clock when it sent the command, in ms.")


class LobbyLock(_Payload):
    """The host locks the lobby (no one new may join) or unlocks it."""

    locked: bool


class MeasurementStart(_Payload):
    """The host starts a measurement; every member hears measurement.started."""

    sweep: dict[str, Any] = Field(
        default_factory=dict,
        description="Changes to the default sweep (f1, f2, duration, sample_rate, fade_in, "
        "fade_out, amplitude, lead_in, tail).",
    )


class MeasurementUpload(_Payload):
    """A microphone begins or resumes uploading its recording; binary upload frames follow."""

    measurement_id: UUID
    format: RecordingFormat


class MeasurementStatusRequest(_Payload):
    """Where a measurement's uploads stand: each recording's state and missing chunks."""

    measurement_id: UUID


class AnalysisRequest(_Payload):
    """Analyse a measurement now with what has arrived, or get its analysis if it has one;
    or, with ``kind`` instead, analyse what this phone will upload: a recording of a sweep
    (``sweep`` says which) or an impulse response, outside a room measurement."""

    measurement_id: UUID | None = None
    kind: Literal["sweep_recording", "impulse_response"] | None = None
    sweep: dict[str, Any] = Field(
        default_factory=dict, description="With kind sweep_recording: changes to the default."
    )

    @model_validator(mode="after")
    def _one_of(self) -> AnalysisRequest:
        if (self.measurement_id is None) == (self.kind is None):
            raise ValueError("give measurement_id, or kind for an upload to analyse")
        return self


class SimulationRequestCommand(_Payload):
    """Simulate a room for this lobby; every member hears simulation.queued, then
    simulation.progress and simulation.result."""

    client_request_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Your id for this request: sending it again (after a reconnect, say) "
        "answers with the job it created instead of queueing another. Without it, only a "
        "repeated command id is recognised (by the gateway that answered it).",
    )
    request: SimulationRequest


class SimulationJobRef(_Payload):
    """A simulation of this lobby (simulation.status, simulation.cancel)."""

    job_id: UUID


COMMANDS: dict[str, type[_Payload]] = {
    "hello": Hello,
    "lobby.create": LobbyCreate,
    "lobby.join": LobbyJoin,
    "lobby.leave": Empty,
    "role.assign": RoleAssign,
    "role.update": RoleUpdate,
    "resume": Resume,
    "ping": Empty,
    "time.sync": TimeSync,
    "lobby.lock": LobbyLock,
    "measurement.start": MeasurementStart,
    "measurement.abort": Empty,
    "measurement.upload": MeasurementUpload,
    "measurement.status": MeasurementStatusRequest,
    "analysis.request": AnalysisRequest,
    "simulation.request": SimulationRequestCommand,
    "simulation.status": SimulationJobRef,
    "simulation.cancel": SimulationJobRef,
}


# Server messages -------------------------------------------------------------------------------


class Welcome(_Payload):
    """The reply to ``hello``."""

    device_id: UUID
    token: str = Field(description="Keep it and send it in the next hello to stay this device.")
    heartbeat_s: float = Field(description="How often the client should send ping.")
    idle_timeout_s: float = Field(description="Silence after which the gateway closes (4002).")


class Joined(_Payload):
    """The ack of ``lobby.create`` and ``lobby.join``; a ``lobby.state`` follows."""

    lobby_id: UUID
    code: str
    seq: int = Field(ge=0, description="The lobby's last seq when the snapshot was taken.")


class Changed(_Payload):
    """The ack of a change (``lobby.leave``, ``lobby.lock``, ``role.assign``, ``role.update``,
    ``measurement.start``, ``measurement.abort``)."""

    seq: int | None = Field(
        None, description="The seq of the last event the change made; null if nothing changed."
    )


class Resumed(_Payload):
    """The ack of ``resume``; the missed events follow, in seq order, then live ones."""

    lobby_id: UUID
    after_seq: int = Field(ge=0)


class Error(_Payload):
    """Why a command or frame was refused."""

    code: ErrorCode
    message: str
    retry_after_ms: int | None = Field(None, ge=0)


class TimeSyncReply(_Payload):
    """The ack of time.sync (NTP-style t0, t1, t2; the client notes t3 on arrival)."""

    t0: float = Field(description="The client's send time, echoed.")
    t1: float = Field(description="Server time when the command arrived, in ms.")
    t2: float = Field(description="Server time when the reply left, in ms.")


class Member(_Payload):
    """One lobby member in a snapshot."""

    device_id: UUID
    role: Role | None
    status: ParticipantStatus
    presence: Presence


class LobbyState(_Payload):
    """A snapshot of the lobby as of the envelope's ``seq``; events continue from seq + 1."""

    lobby_id: UUID
    code: str
    name: str | None
    host_device_id: UUID
    workflow_state: WorkflowState
    locked: bool
    max_members: int
    members: list[Member]

    @classmethod
    def of(cls, lobby: LobbyRead) -> LobbyState:
        return cls(
            lobby_id=lobby.id,
            code=lobby.code,
            name=lobby.name,
            host_device_id=lobby.host_device_id,
            workflow_state=lobby.workflow_state,
            locked=lobby.locked,
            max_members=lobby.max_members,
            members=[
                Member(device_id=p.device_id, role=p.role, status=p.status, presence=p.presence)
                for p in lobby.participants
            ],
        )


class AnalysisState(_Payload):
    """The ack of analysis.request: the analysis as it stands (the result once it succeeded);
    for an upload to analyse, the measurement to upload to (measurement.upload, then binary
    frames), the analysis not begun yet."""

    analysis_id: UUID | None
    measurement_id: UUID
    state: JobState
    progress: float
    result: dict[str, Any] | None
    error: str | None


class SimulationState(_Payload):
    """The ack of the simulation commands: the job as it stands; ``result`` once it
    succeeded (every receiver's parameters per band, ``average``, Sabine's and Eyring's
    times; each response's WAV at ``GET /v1/simulations/{job_id}/responses/{index}.wav``)."""

    job_id: UUID
    state: JobState
    progress: float
    attempts: int
    result: dict[str, Any] | None
    error: str | None

    @classmethod
    def of(cls, job: SimulationJobRead) -> SimulationState:
        return cls(
            job_id=job.id,
            state=job.state,
            progress=job.progress,
            attempts=job.attempts,
            result=job.result,
            error=job.error,
        )


class UploadRefused(_Payload):
    """A binary upload frame was refused; after bad_request (a CRC mismatch, say) send the
    chunk again, after conflict or forbidden do not."""

    measurement_id: UUID | None = Field(description="As the frame said, if it could be read.")
    index: int | None = Field(description="The chunk's index, if the frame could be read.")
    code: ErrorCode
    message: str


UPLOAD_REPLIES: dict[str, type[BaseModel]] = {
    "upload.ack": ChunkAck,
    "upload.refused": UploadRefused,
}
"""What the gateway answers each binary upload frame with (``corr`` null: the payload names
the measurement and the chunk)."""

ACKS: dict[str, type[BaseModel]] = {
    "lobby.create": Joined,
    "lobby.join": Joined,
    "lobby.leave": Changed,
    "role.assign": Changed,
    "role.update": Changed,
    "resume": Resumed,
    "ping": Empty,
    "time.sync": TimeSyncReply,
    "lobby.lock": Changed,
    "measurement.start": Changed,
    "measurement.abort": Changed,
    "measurement.upload": UploadStatus,
    "measurement.status": MeasurementStatus,
    "analysis.request": AnalysisState,
    "simulation.request": SimulationState,
    "simulation.status": SimulationState,
    "simulation.cancel": SimulationState,
}
"""The payload of the ``ack`` of each command (``hello`` is answered by ``welcome``)."""

SERVER_EVENTS: dict[str, type[BaseModel]] = {"lobby.state": LobbyState, **EVENTS}
"""Every event type the gateway sends, with its payload model."""


def now_ms() -> float:
    return time.time() * 1000.0


def reply(kind: str, corr: str | None, payload: BaseModel) -> str:
    """The text frame of a reply (``ack``, ``error`` or ``welcome``) to command ``corr``."""
    envelope = {
        "v": VERSION,
        "type": kind,
        "corr": corr,
        "ts": now_ms(),
        "payload": payload.model_dump(mode="json", exclude_none=kind == "error"),
    }
    return json.dumps(envelope, separators=(",", ":"))


def event_frame(
    kind: str, lobby: UUID, seq: int, ts: float, payload: dict[str, Any] | BaseModel
) -> str:
    """The text frame of a lobby event (``payload`` as stored, or a model)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    envelope = {
        "v": VERSION,
        "type": kind,
        "lobby": str(lobby),
        "seq": seq,
        "ts": ts,
        "payload": payload,
    }
    return json.dumps(envelope, separators=(",", ":"))


class CloseCode(IntEnum):
    """WebSocket close codes. 4000-4099: reconnect (with backoff); 4100-4199: do not, the
    same connection would be refused again.

    A connection the gateway will not admit is accepted and closed at once with one of these
    (4000 draining, 4004 full, 4104 origin, 4105 subprotocol) and a reason, since a browser
    page cannot read an HTTP refusal of the upgrade: it would only see 1006."""

    going_away = 4000  # the gateway is draining or restarting
    slow_consumer = 4001  # the client stopped reading; its queue overflowed
    idle_timeout = 4002  # no ping or message within the heartbeat window
    internal_error = 4003
    over_capacity = 4004  # the gateway holds all the connections it may; retry with backoff
    unauthorized = 4101  # expired or forged token
    hello_timeout = 4102  # no hello within 5 s of connecting
    message_too_large = 4103
    forbidden_origin = 4104  # a page from an origin that may not connect
    subprotocol_required = 4105  # the client did not offer the sonalyze.v1 subprotocol


def should_reconnect(code: int) -> bool:
    """Whether a client should reconnect after the gateway closed with ``code``."""
    return 4000 <= code < 4100


class Command(BaseModel):
    """A parsed client command: its envelope and its validated payload."""

    envelope: Envelope
    payload: BaseModel


class Refused(ServiceError):
    """A frame that is not a valid command; ``corr`` is its id when one could be read."""

    def __init__(self, code: ErrorCode, message: str, corr: str | None) -> None:
        super().__init__(code, message)
        self.corr = corr


def parse_command(text: str) -> Command:
    """Parse a client's text frame; :class:`Refused` (``bad_request``) names what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise Refused(ErrorCode.bad_request, f"not JSON: {exc}", None) from None
    except RecursionError:
        raise Refused(ErrorCode.bad_request, "JSON nested too deeply", None) from None
    corr = raw.get("id") if isinstance(raw, dict) else None
    if not (isinstance(corr, str) and 0 < len(corr) <= 64):
        corr = None
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise Refused(ErrorCode.bad_request, _first_error(exc), corr) from None
    if envelope.id is None:
        raise Refused(ErrorCode.bad_request, "a command needs an id", None)
    model = COMMANDS.get(envelope.type)
    if model is None:
        raise Refused(ErrorCode.bad_request, f"unknown message type {envelope.type}", corr)
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise Refused(ErrorCode.bad_request, _first_error(exc, "payload"), corr) from None
    return Command(envelope=envelope, payload=payload)


def _first_error(exc: ValidationError, prefix: str | None = None) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in ((prefix,) if prefix else ()) + tuple(error["loc"]))
    return f"{where}: {error['msg']}" if where else str(error["msg"])
