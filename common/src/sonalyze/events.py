"""The lobby events: what the event log records and what phones receive, by type.

Each event type has one payload model here. The lobby service builds its events through
:func:`event`, so nothing enters the log that the protocol document does not describe, and the
gateway forwards the payloads unchanged.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sonalyze.domain import JobState, ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.measurement_api import MeasurementStarted
from sonalyze.storage_api import EventIn


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LobbyCreated(_Event):
    """A lobby was created (its first event, seq 1)."""

    host_device_id: UUID
    name: str | None = None


class ParticipantJoined(_Event):
    """A device joined the lobby."""

    device_id: UUID


class ParticipantLeft(_Event):
    """A device left; the host passes on when the host leaves."""

    device_id: UUID
    host_device_id: UUID | None = Field(
        None, description="The host afterwards; absent when the last member left."
    )


class ParticipantPresence(_Event):
    """A member's connection came or went (after the presence grace)."""

    device_id: UUID
    presence: Presence


class RoleUpdated(_Event):
    """A member's role or readiness changed."""

    device_id: UUID
    role: Role | None
    status: ParticipantStatus


class LobbyLocked(_Event):
    """The host locked or unlocked the lobby."""

    locked: bool


class WorkflowChanged(_Event):
    """The measurement workflow moved."""

    state: WorkflowState
    previous: WorkflowState


class RecordingReceived(_Event):
    """A microphone's recording arrived whole and is usable."""

    measurement_id: UUID
    device_id: UUID


class RecordingInvalid(_Event):
    """A microphone's recording arrived whole but cannot be used; the others go on."""

    measurement_id: UUID
    device_id: UUID
    reason: str = Field(
        description="undecodable, format_mismatch, sample_rate, non_finite, silent, clipped, "
        "too_short or too_long."
    )
    message: str


class AnalysisProgress(_Event):
    """A measurement's analysis has analysed ``done`` of ``total`` recordings."""

    measurement_id: UUID
    analysis_id: UUID
    done: int
    total: int


class AnalysisResult(_Event):
    """A measurement's analysis ended: the parameters per microphone and their spatial
    average (the frequency responses are in the stored result), or the error."""

    measurement_id: UUID
    analysis_id: UUID
    result: dict[str, Any] | None = Field(
        description="bands, microphones (per device: parameters per band, flags), average "
        "(mean, std, count per band), unusable (per device: why)"
    )
    error: str | None = None


class SimulationQueued(_Event):
    """A member asked for a simulation (``simulation.request``); it waits for a worker."""

    job_id: UUID
    device_id: UUID | None = Field(None, description="Who asked, if a phone did.")


class SimulationProgress(_Event):
    """A worker got this far with a simulation."""

    job_id: UUID
    progress: float = Field(ge=0, le=1)
    stage: str = Field(description="What it has just done, in words.")
    attempt: int = Field(ge=1, description="1, or more once a worker has failed and it is retried.")


class SimulationResult(_Event):
    """A simulation ended: succeeded (with its summary), failed (with the error) or
    cancelled. The whole result (every receiver's parameters, the impulse responses) is
    fetched with ``simulation.status``."""

    job_id: UUID
    state: JobState
    summary: dict[str, Any] | None = Field(
        description="bands, method, volume, sabine and eyring (s per band), and average: "
        "the receivers' mean, std and count per parameter and band"
    )
    error: str | None = None


class LobbyClosed(_Event):
    """The lobby closed; no more events follow."""

    reason: str = Field(description="Why: 'empty' when the last member left.")


EVENTS: dict[str, type[BaseModel]] = {
    "lobby.created": LobbyCreated,
    "participant.joined": ParticipantJoined,
    "participant.left": ParticipantLeft,
    "participant.presence": ParticipantPresence,
    "role.updated": RoleUpdated,
    "lobby.locked": LobbyLocked,
    "workflow.changed": WorkflowChanged,
    "lobby.closed": LobbyClosed,
    "measurement.started": MeasurementStarted,
    "recording.received": RecordingReceived,
    "recording.invalid": RecordingInvalid,
    "analysis.progress": AnalysisProgress,
    "analysis.result": AnalysisResult,
    "simulation.queued": SimulationQueued,
    "simulation.progress": SimulationProgress,
    "simulation.result": SimulationResult,
}


def event(kind: str, /, **payload: Any) -> EventIn:
    """An event for the log, its payload checked against the model of ``kind``."""
    model = EVENTS[kind].model_validate(payload)
    return EventIn(type=kind, payload=model.model_dump(mode="json", exclude_none=False))
