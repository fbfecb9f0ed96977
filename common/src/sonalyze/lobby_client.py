"""A typed async HTTP client for the lobby service (the gateway calls it for the phones).

A refusal comes back as the :class:`~sonalyze.errors.ServiceError` the lobby service raised,
with the same documented code and message, so the gateway can pass it on to the phone as is.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
from pydantic import BaseModel

from sonalyze.auth import internal_client
from sonalyze.domain import ParticipantStatus, Presence, Role
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.lobby_api import (
    AssignRole,
    CreateLobby,
    JoinLobby,
    LeaveLobby,
    UpdatePresence,
    UpdateStatus,
)
from sonalyze.storage_api import LobbyChanged, LobbyRead


def _refusal(response: httpx.Response) -> ServiceError:
    try:
        body: Any = response.json()
        return ServiceError(ErrorCode(body["code"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        pass
    if response.status_code == 422:
        return ServiceError(ErrorCode.bad_request, f"the lobby service refused: {response.text}")
    if response.status_code >= 500:
        return ServiceError(ErrorCode.unavailable, "the lobby service failed; try again")
    return ServiceError(ErrorCode.internal, f"the lobby service answered {response.status_code}")


class LobbyClient:
    """Calls the lobby service's ``/v1/lobbies`` API. Use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = internal_client(base_url, token, timeout_s, transport)

    async def __aenter__(self) -> LobbyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _send(self, method: str, path: str, body: BaseModel | None = None) -> bytes:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["content"] = body.model_dump_json()
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError:
            raise ServiceError(ErrorCode.unavailable, "the lobby service is unreachable") from None
        if response.is_error:
            raise _refusal(response)
        return response.content

    async def _change(self, path: str, body: BaseModel) -> LobbyChanged:
        return LobbyChanged.model_validate_json(await self._send("POST", path, body))

    async def ready(self) -> None:
        await self._send("GET", "/readyz")

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
