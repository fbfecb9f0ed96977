"""The lobby service's HTTP API (internal: the gateway calls it for the phones)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, status

from sonalyze.auth import require_internal_token
from sonalyze.errors import refusals
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
from sonalyze.storage_api import LobbyChanged, LobbyRead
from sonalyze_lobby import rules
from sonalyze_lobby.lobbies import Lobbies


async def _lobbies(request: Request) -> Lobbies:
    lobbies: Lobbies = request.app.state.lobbies
    return lobbies


LobbiesDep = Annotated[Lobbies, Depends(_lobbies)]

router = APIRouter(
    prefix="/v1/lobbies",
    tags=["lobbies"],
    dependencies=[Depends(require_internal_token)],
    responses=refusals(400, 401, 403, 404, 409, 503),
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=LobbyChanged)
async def create(body: CreateLobby, lobbies: LobbiesDep) -> LobbyChanged:
    """Create a lobby with a fresh join code; the creator is its host."""
    return await lobbies.create(body.device_id, body.name)


@router.post("/join", response_model=LobbyChanged)
async def join(body: JoinLobby, lobbies: LobbiesDep) -> LobbyChanged:
    """Join the open lobby with this code (again: no change, no event)."""
    return await lobbies.join(body.device_id, body.code)


# Only ids take this path, so that GET /join is the wrong method on /join (405), not a bad id.
@router.get("/{lobby_id:uuid}", response_model=LobbyRead)
async def get(lobby_id: UUID, lobbies: LobbiesDep) -> LobbyRead:
    return await lobbies.get(lobby_id)


@router.post("/{lobby_id}/leave", response_model=LobbyChanged)
async def leave(lobby_id: UUID, body: LeaveLobby, lobbies: LobbiesDep) -> LobbyChanged:
    """Leave; the host passes on, and the last one out closes the lobby."""
    return await lobbies.apply(lobby_id, lambda lobby: rules.leave(lobby, body.device_id))


@router.post("/{lobby_id}/roles", response_model=LobbyChanged)
async def assign_role(lobby_id: UUID, body: AssignRole, lobbies: LobbiesDep) -> LobbyChanged:
    """The host assigns a role (speaker, microphone or observer)."""
    return await lobbies.apply(
        lobby_id,
        lambda lobby: rules.assign_role(lobby, body.by_device_id, body.device_id, body.role),
    )


@router.post("/{lobby_id}/status", response_model=LobbyChanged)
async def update_status(lobby_id: UUID, body: UpdateStatus, lobbies: LobbiesDep) -> LobbyChanged:
    """A member says it is ready or not ready."""
    return await lobbies.apply(
        lobby_id, lambda lobby: rules.update_status(lobby, body.device_id, body.status)
    )


@router.post("/{lobby_id}/presence", response_model=LobbyChanged)
async def update_presence(
    lobby_id: UUID, body: UpdatePresence, lobbies: LobbiesDep
) -> LobbyChanged:
    """A member's connection came or went (the gateway reports it)."""
    return await lobbies.apply(
        lobby_id,
        lambda lobby: rules.update_presence(
            lobby, body.device_id, body.presence, body.connection_id
        ),
    )


@router.post("/{lobby_id}/lock", response_model=LobbyChanged)
async def lock(lobby_id: UUID, body: LockLobby, lobbies: LobbiesDep) -> LobbyChanged:
    """The host locks or unlocks the lobby."""
    return await lobbies.apply(
        lobby_id, lambda lobby: rules.lock(lobby, body.by_device_id, body.locked)
    )


@router.post("/{lobby_id}/measurements", response_model=LobbyChanged)
async def start_measurement(
    lobby_id: UUID, body: StartMeasurement, lobbies: LobbiesDep
) -> LobbyChanged:
    """The host starts a measurement: designed by the measurement service, announced to every
    member as ``measurement.started`` while the workflow moves to measuring."""
    return await lobbies.start_measurement(lobby_id, body.by_device_id, body.sweep)


@router.post("/{lobby_id}/workflow", response_model=LobbyChanged)
async def move_workflow(lobby_id: UUID, body: MoveWorkflow, lobbies: LobbiesDep) -> LobbyChanged:
    """Move the measurement workflow; an illegal transition is a conflict. Moving to aborted
    ends the measurement under way (its uploads close; it is not analysed)."""
    return await lobbies.move_workflow(lobby_id, body.to, body.by_device_id)
