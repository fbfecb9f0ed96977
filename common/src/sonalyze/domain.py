"""Domain vocabularies shared by the services: roles, statuses and lifecycle states."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a participant does in a measurement."""

    speaker = "speaker"
    microphone = "microphone"
    observer = "observer"


class ParticipantStatus(StrEnum):
    """Whether a participant says it is ready for the next measurement."""

    ready = "ready"
    not_ready = "not_ready"


class Presence(StrEnum):
    """Whether a participant currently holds a live connection."""

    online = "online"
    offline = "offline"


class WorkflowState(StrEnum):
    """The lobby's measurement workflow (the transitions belong to the lobby service)."""

    idle = "idle"
    ready = "ready"
    measuring = "measuring"
    uploading = "uploading"
    analyzing = "analyzing"
    aborted = "aborted"


class MeasurementState(StrEnum):
    """Lifecycle of one measurement."""

    scheduled = "scheduled"
    recording = "recording"
    uploading = "uploading"
    analyzing = "analyzing"
    completed = "completed"
    failed = "failed"
    aborted = "aborted"


class RecordingState(StrEnum):
    """Lifecycle of one microphone's recording."""

    uploading = "uploading"
    complete = "complete"
    invalid = "invalid"


class JobState(StrEnum):
    """Lifecycle of an analysis or a simulation job."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_JOB_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})
"""The states a job never leaves."""


class BlobState(StrEnum):
    """A blob is written in chunks while open; only a complete blob can be read whole."""

    open = "open"
    complete = "complete"
