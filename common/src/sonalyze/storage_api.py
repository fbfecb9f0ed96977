"""The storage service's HTTP API: request and response models.

Storage serves these and :mod:`sonalyze.storage_client` sends and parses them, so both sides
share one definition. Every change to a lobby's state carries the lobby's ``expected_version``
(optimistic concurrency) and the events that describe it; storage commits both in one
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from sonalyze.domain import (
    BlobState,
    JobState,
    MeasurementState,
    ParticipantStatus,
    Presence,
    RecordingState,
    Role,
    WorkflowState,
)

EventType = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", max_length=64)
]
JoinCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{4,16}$")]
ClientRequestId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MAX_ERROR_CHARS = 2000  # the longest error a recording, analysis or job keeps


def _integral(value: object) -> object:
    """A number with no fraction as an int: JSON Schema's integers include 3.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Numbers and flags of a request take JSON's own types only, as the schema says: validation
# would otherwise take "3" for 3 and false for 0. A count may come as 3.0: _WHOLE makes it 3,
# after the count's constraints (pydantic documents the constraints that follow it wrongly).
_WHOLE = BeforeValidator(_integral)
Flag = Annotated[bool, Strict()]
Fraction = Annotated[float, Strict()]
Version = Annotated[
    int,
    Strict(),
    # A Postgres integer: no row gets further.
    Field(ge=1, le=2**31 - 1, description="The version the change was based on."),
    _WHOLE,
]
Members = Annotated[int, Strict(), Field(ge=1, le=100), _WHOLE]


MAX_CHUNKS = 1_000_001
"""Chunk indexes run from 0 to 1,000,000."""
Crc32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
"""A chunk's CRC32 (zlib's), as its ``X-Content-CRC32`` header says in decimal."""


class _In(BaseModel):
    """Request bodies refuse unknown fields, so a misspelt field is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Events ----------------------------------------------------------------------------------------


class EventIn(_In):
    """An event to append to a lobby's log, in the same transaction as its change."""

    type: EventType
    payload: dict[str, Any] = Field(default_factory=dict)


class EventRead(_Out):
    """An event of the log. ``id`` orders all events; ``seq`` numbers a lobby's events 1, 2, ..."""

    id: int
    lobby_id: UUID
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


class EventHead(BaseModel):
    """Where the log ends now: stream from ``after=last_id`` to get only newer events."""

    last_id: int = Field(ge=0)


class EventAppend(_In):
    """Events to append to a lobby's log without another change."""

    events: list[EventIn] = Field(min_length=1, max_length=100)


# Devices ---------------------------------------------------------------------------------------


class DeviceRead(_Out):
    id: UUID
    created_at: datetime


# Lobbies ---------------------------------------------------------------------------------------


class LobbyCreate(_In):
    code: JoinCode
    host_device_id: UUID
    name: str | None = Field(None, max_length=80)
    max_members: Members = 10
    events: list[EventIn] = Field(default_factory=list, max_length=100)


class ParticipantRead(_Out):
    device_id: UUID
    role: Role | None
    status: ParticipantStatus
    presence: Presence
    connection_id: UUID | None = None
    joined_at: datetime


class LobbyRead(_Out):
    id: UUID
    code: str
    name: str | None
    host_device_id: UUID
    workflow_state: WorkflowState
    max_members: int
    locked: bool
    version: int
    last_seq: int
    created_at: datetime
    closed_at: datetime | None
    participants: list[ParticipantRead]


class LobbyChanged(_Out):
    """A lobby after a change, and the events that change appended (with their seq)."""

    lobby: LobbyRead
    events: list[EventRead]


class ParticipantUpsert(_In):
    """Add a participant or change one. Omitted fields keep their value (or default)."""

    device_id: UUID
    role: Role | None = Field(None, description="null removes the role")
    # Optional but never null (the schema says so): omitted, they keep their value.
    status: ParticipantStatus | SkipJsonSchema[None] = None
    presence: Presence | SkipJsonSchema[None] = None
    connection_id: UUID | None = Field(
        None, description="The gateway connection that reported the presence."
    )

    @model_validator(mode="after")
    def _status_and_presence_are_not_null(self) -> ParticipantUpsert:
        for field in ("status", "presence"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null; omit it to keep its value")
        return self


class LobbyChange(_In):
    """One atomic change of a lobby: fields, participants and the events that describe it."""

    expected_version: Version
    name: str | None = Field(None, max_length=80)
    host_device_id: UUID | None = None
    workflow_state: WorkflowState | None = None
    max_members: Members | None = None
    locked: Flag | None = None
    close: Flag = False
    upsert_participants: list[ParticipantUpsert] = Field(default_factory=list, max_length=100)
    remove_participants: list[UUID] = Field(default_factory=list, max_length=100)
    events: list[EventIn] = Field(default_factory=list, max_length=100)


# Blobs -----------------------------------------------------------------------------------------


class BlobCreate(_In):
    content_type: str = Field("application/octet-stream", max_length=100)


class BlobRead(_Out):
    id: UUID
    content_type: str
    state: BlobState
    size_bytes: int
    chunk_count: int
    expected_chunks: int | None = Field(
        description="Set by the final chunk: the blob completes once it has this many."
    )
    sha256: str | None
    created_at: datetime
    completed_at: datetime | None


class ChunkWritten(BaseModel):
    """The answer to a chunk write: ``created`` is false when the same bytes were already there."""

    blob_id: UUID
    index: int
    size_bytes: int
    crc32: int
    created: bool
    blob_state: BlobState = Field(description="complete once the write sealed the blob.")


class BlobChunks(BaseModel):
    """Which chunks a blob has and lacks (``missing`` up to the final chunk, if it came)."""

    blob_id: UUID
    state: BlobState
    received: int
    expected_chunks: int | None
    missing: list[int] = Field(
        description="Missing indexes below the highest one seen, or "
        "below the final one; at most 1,000."
    )


class BlobComplete(_In):
    """Seal a blob: its chunks must be exactly 0..chunk_count-1."""

    chunk_count: Annotated[int, Strict(), Field(ge=1, le=MAX_CHUNKS), _WHOLE]


# Measurements and recordings ------------------------------------------------------------------


class MeasurementCreate(_In):
    lobby_id: UUID
    spec: dict[str, Any] = Field(description="Sweep design and schedule.")
    events: list[EventIn] = Field(default_factory=list, max_length=100)


class MeasurementRead(_Out):
    id: UUID
    lobby_id: UUID
    state: MeasurementState
    spec: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


class MeasurementUpdate(_In):
    expected_version: Version
    state: MeasurementState
    events: list[EventIn] = Field(default_factory=list, max_length=100)


class RecordingCreate(_In):
    device_id: UUID
    blob_id: UUID
    format: dict[str, Any] = Field(default_factory=dict, description="Declared audio format.")


class RecordingRead(_Out):
    id: UUID
    measurement_id: UUID
    device_id: UUID
    blob_id: UUID
    format: dict[str, Any]
    state: RecordingState
    error: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class RecordingUpdate(_In):
    expected_version: Version
    state: RecordingState
    error: str | None = Field(None, max_length=MAX_ERROR_CHARS)
    events: list[EventIn] = Field(default_factory=list, max_length=100)


# Analyses and simulation jobs -----------------------------------------------------------------


class AnalysisCreate(_In):
    measurement_id: UUID | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class JobUpdate(_In):
    """A state change of an analysis or a simulation job."""

    expected_version: Version
    state: JobState
    progress: Fraction | None = Field(None, ge=0, le=1)
    error: str | None = Field(None, max_length=MAX_ERROR_CHARS)
    result: dict[str, Any] | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=100)


class AnalysisRead(_Out):
    id: UUID
    measurement_id: UUID | None
    state: JobState
    progress: float
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class SimulationJobCreate(_In):
    id: UUID | None = Field(
        None,
        description="The new job's id, chosen by the caller so that its events can name it; "
        "ignored when client_request_id has a job already.",
    )
    client_request_id: ClientRequestId
    lobby_id: UUID | None = None
    spec: dict[str, Any]
    events: list[EventIn] = Field(default_factory=list, max_length=100)


class SimulationJobUpdate(JobUpdate):
    """A state change of a simulation job; a worker beginning its run says ``new_attempt``."""

    new_attempt: Flag = Field(
        False, description="A worker begins an attempt: count it (and note the first start)."
    )


class SimulationJobRead(_Out):
    id: UUID
    client_request_id: str
    lobby_id: UUID | None
    state: JobState
    progress: float
    spec: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int = Field(description="How many times a worker began running it.")
    started_at: datetime | None = Field(description="When a worker first began running it.")
    finished_at: datetime | None = Field(description="When it reached its final state.")
    version: int
    created_at: datetime
    updated_at: datetime
