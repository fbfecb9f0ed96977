"""The lobby service's HTTP API: request models (responses are storage's ``LobbyChanged``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sonalyze.domain import ParticipantStatus, Presence, Role, WorkflowState


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateLobby(_In):
    device_id: UUID = Field(description="The creator, who becomes the host.")
    name: str | None = Field(None, max_length=80)


class JoinLobby(_In):
    device_id: UUID
    code: str = Field(min_length=1, max_length=32, description="Join code as the user typed it.")


class LeaveLobby(_In):
    device_id: UUID


class AssignRole(_In):
    by_device_id: UUID = Field(description="Who asks: must be the host.")
    device_id: UUID
    role: Role


class UpdateStatus(_In):
    device_id: UUID
    status: ParticipantStatus


class UpdatePresence(_In):
    device_id: UUID
    presence: Presence
    connection_id: UUID = Field(
        description="The reporting connection: offline from an older one than the last online "
        "report changes nothing."
    )


class LockLobby(_In):
    by_device_id: UUID = Field(description="Who asks: must be the host.")
    locked: bool


class MoveWorkflow(_In):
    to: WorkflowState
    by_device_id: UUID | None = Field(
        None, description="The member who asks (must be the host); omitted for a service."
    )


class StartMeasurement(_In):
    by_device_id: UUID = Field(description="Who asks: must be the host.")
    sweep: dict[str, Any] = Field(
        default_factory=dict, description="Changes to the default sweep (SweepSpec fields)."
    )
