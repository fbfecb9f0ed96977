"""The phones' WebSocket protocol, version 1 (subprotocol ``sonalyze.v1``).

Text frames carry JSON envelopes ``{"v": 1, "type", "id", "corr", "lobby", "seq", "ts",
"payload"}``. A client command carries a client-chosen ``id`` and gets exactly one reply,
``ack`` or ``error``, with ``corr`` set to that id. Server events carry the lobby and its
``seq``. The models here are the one definition the gateway validates against.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sonalyze.domain import ParticipantStatus, Role
from sonalyze.errors import ErrorCode, ServiceError

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
    token: str | None = Field(None, max_length=2048, description="A token from an earlier welcome.")


class LobbyCreate(_Payload):
    name: str | None = Field(None, max_length=80)


class LobbyJoin(_Payload):
    code: str = Field(min_length=1, max_length=32)


class Empty(_Payload):
    pass


class RoleAssign(_Payload):
    device_id: UUID
    role: Role


class RoleUpdate(_Payload):
    status: ParticipantStatus


class Resume(_Payload):
    lobby_id: UUID
    after_seq: int = Field(ge=0)


class TimeSync(_Payload):
    t0: float = Field(description="The client's clock when it sent the command, in ms.")


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
}
# Routed to their services once those exist; until then answered with ``unavailable``.
ROUTED_PREFIXES = ("measurement.", "analysis.", "simulation.")


# Server messages -------------------------------------------------------------------------------


class Welcome(_Payload):
    device_id: UUID
    token: str
    heartbeat_s: float = Field(description="How often the client should send ping.")


class Error(_Payload):
    code: ErrorCode
    message: str
    retry_after_ms: int | None = Field(None, ge=0)


class TimeSyncReply(_Payload):
    t0: float = Field(description="The client's send time, echoed.")
    t1: float = Field(description="Server time when the command arrived, in ms.")
    t2: float = Field(description="Server time when the reply left, in ms.")


class CloseCode(IntEnum):
    """WebSocket close codes. 4000-4099: reconnect (with backoff); 4100-4199: do not, the
    same connection would be refused again."""

    going_away = 4000  # the gateway is draining or restarting
    slow_consumer = 4001  # the client stopped reading; its queue overflowed
    idle_timeout = 4002  # no ping or message within the heartbeat window
    internal_error = 4003
    protocol_error = 4100  # not a protocol v1 frame (binary where text is due, not JSON, ...)
    unauthorized = 4101  # expired or forged token
    hello_timeout = 4102  # no hello within 5 s of connecting
    message_too_large = 4103


def should_reconnect(code: int) -> bool:
    """Whether a client should reconnect after the gateway closed with ``code``."""
    return 4000 <= code < 4100


class Command(BaseModel):
    """A parsed client command: its envelope and its validated payload."""

    envelope: Envelope
    payload: BaseModel


def parse_command(text: str) -> Command:
    """Parse a client's text frame; ``bad_request`` names what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ServiceError(ErrorCode.bad_request, f"not JSON: {exc}") from None
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise ServiceError(ErrorCode.bad_request, _first_error(exc)) from None
    if envelope.id is None:
        raise ServiceError(ErrorCode.bad_request, "a command needs an id")
    model = COMMANDS.get(envelope.type)
    if model is None:
        if envelope.type.startswith(ROUTED_PREFIXES):
            raise ServiceError(ErrorCode.unavailable, f"{envelope.type} is not available yet")
        raise ServiceError(ErrorCode.bad_request, f"unknown message type {envelope.type}")
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise ServiceError(ErrorCode.bad_request, _first_error(exc, "payload")) from None
    return Command(envelope=envelope, payload=payload)


def _first_error(exc: ValidationError, prefix: str | None = None) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in ((prefix,) if prefix else ()) + tuple(error["loc"]))
    return f"{where}: {error['msg']}" if where else str(error["msg"])
