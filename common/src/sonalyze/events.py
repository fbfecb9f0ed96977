"""The lobby events: what the event log records and what phones receive, by type.

Each event type has one payload model here. The lobby service builds its events through
:func:`event`, so nothing enters the log that the protocol document does not describe, and the
gateway forwards the payloads unchanged.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sonalyze.domain import ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.storage_api import EventIn


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LobbyCreated(_Event):
    host_device_id: UUID
    name: str | None = None


class ParticipantJoined(_Event):
    device_id: UUID


class ParticipantLeft(_Event):
    device_id: UUID
    host_device_id: UUID | None = Field(
        None, description="The host afterwards; absent when the last member left."
    )


class ParticipantPresence(_Event):
    device_id: UUID
    presence: Presence


class RoleUpdated(_Event):
    device_id: UUID
    role: Role | None
    status: ParticipantStatus


class LobbyLocked(_Event):
    locked: bool


class WorkflowChanged(_Event):
    state: WorkflowState
    previous: WorkflowState


class LobbyClosed(_Event):
    reason: str = Field(description="Why: 'empty' when the last member left.")


EVENTS: dict[str, type[_Event]] = {
    "lobby.created": LobbyCreated,
    "participant.joined": ParticipantJoined,
    "participant.left": ParticipantLeft,
    "participant.presence": ParticipantPresence,
    "role.updated": RoleUpdated,
    "lobby.locked": LobbyLocked,
    "workflow.changed": WorkflowChanged,
    "lobby.closed": LobbyClosed,
}


def event(kind: str, **payload: Any) -> EventIn:
    """An event for the log, its payload checked against the model of ``kind``."""
    model = EVENTS[kind].model_validate(payload)
    return EventIn(type=kind, payload=model.model_dump(mode="json", exclude_none=False))
