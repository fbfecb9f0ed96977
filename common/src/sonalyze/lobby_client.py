"""A typed async HTTP client for the lobby service (the gateway calls it for the phones).

A refusal comes back as the :class:`~sonalyze.errors.ServiceError` the lobby service raised
(see :mod:`sonalyze.service_client`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from sonalyze.domain import ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.lobby_api import (
    AssignRole,
    CreateLobby,
    JoinLobby,
    LeaveLobby,
    LockLobby,
    MoveWorkflow,
    StartMeasurement,
    UpdatePresence,
    UpdateStatus,
)
from sonalyze.service_client import ServiceClient
from sonalyze.storage_api import LobbyChanged, LobbyRead


class LobbyClient(ServiceClient):
    """Calls the lobby service's ``/v1/lobbies`` API. Use as an async context manager."""

    service = "the lobby service"

    async def __aenter__(self) -> LobbyClient:
        return self

    async def _change(self, path: str, body: BaseModel) -> LobbyChanged:
        return LobbyChanged.model_validate_json(await self._send("POST", path, body))

    async def create(self, device_id: UUID, name: str | None) -> LobbyChanged:
        return await self._change("/v1/lobbies", CreateLobby(device_id=device_id, name=name))

    async def join(self, device_id: UUID, code: str) -> LobbyChanged:
        return await self._change("/v1/lobbies/join", JoinLobby(device_id=device_id, code=code))

    async def get(self, lobby_id: UUID) -> LobbyRead:
        return LobbyRead.model_validate_json(await self._send("GET", f"/v1/lobbies/{lobby_id}"))

    async def leave(self, lobby_id: UUID, device_id: UUID) -> LobbyChanged:
        return await self._change(f"/v1/lobbies/{lobby_id}/leave", LeaveLobby(device_id=device_id))

    async def assign_role(
        self, lobby_id: UUID, by_device_id: UUID, device_id: UUID, role: Role
    ) -> LobbyChanged:
        body = AssignRole(by_device_id=by_device_id, device_id=device_id, role=role)
        return await self._change(f"/v1/lobbies/{lobby_id}/roles", body)

    async def update_status(
        self, lobby_id: UUID, device_id: UUID, status: ParticipantStatus
    ) -> LobbyChanged:
        body = UpdateStatus(device_id=device_id, status=status)
        return await self._change(f"/v1/lobbies/{lobby_id}/status", body)

    async def update_presence(
        self, lobby_id: UUID, device_id: UUID, presence: Presence, connection_id: UUID
    ) -> LobbyChanged:
        body = UpdatePresence(device_id=device_id, presence=presence, connection_id=connection_id)
        return await self._change(f"/v1/lobbies/{lobby_id}/presence", body)

    async def lock(self, lobby_id: UUID, by_device_id: UUID, locked: bool) -> LobbyChanged:
        body = LockLobby(by_device_id=by_device_id, locked=locked)
        return await self._change(f"/v1/lobbies/{lobby_id}/lock", body)

    async def start_measurement(
        self, lobby_id: UUID, by_device_id: UUID, sweep: dict[str, Any]
    ) -> LobbyChanged:
        body = StartMeasurement(by_device_id=by_device_id, sweep=sweep)
        return await self._change(f"/v1/lobbies/{lobby_id}/measurements", body)

    async def move_workflow(
        self, lobby_id: UUID, to: WorkflowState, by_device_id: UUID | None = None
    ) -> LobbyChanged:
        """Move the measurement workflow (``by_device_id`` None: a service moves it)."""
        body = MoveWorkflow(to=to, by_device_id=by_device_id)
        return await self._change(f"/v1/lobbies/{lobby_id}/workflow", body)
