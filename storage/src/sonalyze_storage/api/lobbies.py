"""Lobbies and their participants; every change is versioned and carries its events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, status
from psycopg.rows import dict_row
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.storage_api import (
    EventRead,
    LobbyChange,
    LobbyChanged,
    LobbyCreate,
    LobbyRead,
    ParticipantRead,
    ParticipantUpsert,
)
from sonalyze_storage.api.refusals import refusals
from sonalyze_storage.db import SessionDep, driver_connection
from sonalyze_storage.event_log import commit_with_events
from sonalyze_storage.rows import conflict, get_or_404, not_found, version_refusal
from sonalyze_storage.tables import Device, Lobby, Participant

router = APIRouter(prefix="/lobbies", tags=["lobbies"])

_FIELDS = ("name", "host_device_id", "workflow_state", "max_members", "locked")
_PARTICIPANT_FIELDS = ("role", "status", "presence", "connection_id")


# A lobby change runs on every command, so the lobby and its participants are read and written
# as plain rows, mostly by plain statements on the session's connection: the ORM's unit of work
# and SQLAlchemy's execution would cost more than the SQL.
PARTICIPANTS = Participant.__table__  # type: ignore[attr-defined]
Row = dict[str, Any]


async def _fetch(session: AsyncSession, query: str, params: Sequence[object]) -> list[Row]:
    """Rows of a plain statement run on the session's connection, in its transaction."""
    connection = await driver_connection(session)
    async with connection.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


async def _participants(session: AsyncSession, lobby_id: UUID) -> dict[UUID, Row]:
    rows = await _fetch(session, "SELECT * FROM participants WHERE lobby_id = %s", (lobby_id,))
    return {row["device_id"]: row for row in rows}


def _lobby_read(lobby: Row, participants: Iterable[Row], last_seq: int) -> LobbyRead:
    """The lobby as the API shows it: participants in joining order."""
    ordered = sorted(participants, key=lambda p: (p["joined_at"], str(p["device_id"])))
    return LobbyRead.model_validate(
        {
            **lobby,
            "last_seq": last_seq,
            "participants": [ParticipantRead.model_validate(p) for p in ordered],
        }
    )


async def read_lobby(session: AsyncSession, lobby: Lobby) -> LobbyRead:
    participants = await _participants(session, lobby.id)
    return _lobby_read(lobby.model_dump(), participants.values(), lobby.last_seq)


async def _changed(session: AsyncSession, lobby_id: UUID, events: list[EventRead]) -> LobbyChanged:
    lobby = await session.get(Lobby, lobby_id, populate_existing=True)
    assert lobby is not None
    return LobbyChanged(lobby=await read_lobby(session, lobby), events=events)


async def _require_devices(session: AsyncSession, ids: set[UUID]) -> None:
    if not ids:
        return
    found = set((await session.exec(select(Device.id).where(col(Device.id).in_(ids)))).all())
    missing = sorted(str(i) for i in ids - found)
    if missing:
        raise not_found("device", ", ".join(missing))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=LobbyChanged,
    responses=refusals(400, 404, 409),
)
async def create_lobby(body: LobbyCreate, session: SessionDep) -> LobbyChanged:
    """Create an open lobby with its host as the first participant."""
    await _require_devices(session, {body.host_device_id})
    lobby = Lobby(
        code=body.code,
        name=body.name,
        host_device_id=body.host_device_id,
        max_members=body.max_members,
    )
    session.add(lobby)
    session.add(Participant(lobby_id=lobby.id, device_id=body.host_device_id))
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise conflict(f"join code {body.code} is in use by an open lobby") from None
    events = await commit_with_events(session, lobby.id, body.events)
    return await _changed(session, lobby.id, events)


@router.get("/by-code/{code}", response_model=LobbyRead, responses=refusals(404))
async def get_open_lobby_by_code(code: str, session: SessionDep) -> LobbyRead:
    """The open lobby with this join code."""
    lobby = (
        await session.exec(
            select(Lobby).where(col(Lobby.code) == code, col(Lobby.closed_at).is_(None))
        )
    ).one_or_none()
    if lobby is None:
        raise not_found("open lobby with code", code)
    return await read_lobby(session, lobby)


@router.get("/{lobby_id}", response_model=LobbyRead, responses=refusals(404))
async def get_lobby(lobby_id: UUID, session: SessionDep) -> LobbyRead:
    lobby = await get_or_404(session, Lobby, lobby_id, "lobby")
    return await read_lobby(session, lobby)


@router.post("/{lobby_id}/changes", response_model=LobbyChanged, responses=refusals(400, 404, 409))
async def change_lobby(lobby_id: UUID, body: LobbyChange, session: SessionDep) -> LobbyChanged:
    """Apply one change atomically if the lobby is still at ``expected_version``.

    409 (and nothing changed) on another version, a closed lobby or a full lobby.
    """
    if body.host_device_id is not None:
        await _require_devices(session, {body.host_device_id})
    # The version check locks the row; a lobby closed meanwhile is refused below.
    row = await _bump_version(session, lobby_id, body)
    if row["closed_at"] is not None and not body.close:
        raise conflict(f"lobby {lobby_id} is closed")
    # Loaded once: the upserts find their rows here, and the answer is built from them.
    participants = await _participants(session, lobby_id)
    await _remove_participants(session, lobby_id, body.remove_participants)
    for device_id in body.remove_participants:
        participants.pop(device_id, None)
    for upsert in body.upsert_participants:
        current = participants.get(upsert.device_id)
        participants[upsert.device_id] = await _upsert_participant(
            session, lobby_id, upsert, current
        )
    # Safe on what this transaction sees: the version check holds the lobby's row lock, and
    # every change of its participants goes through here.
    _check_membership(row, participants)
    events = await commit_with_events(session, lobby_id, body.events)
    lobby = _lobby_read(row, participants.values(), events[-1].seq if events else row["last_seq"])
    return LobbyChanged(lobby=lobby, events=events)


async def _bump_version(session: AsyncSession, lobby_id: UUID, body: LobbyChange) -> Row:
    """The lobby's row after the change's fields, if it was at ``body.expected_version``
    (404 or 409 otherwise). A plain statement: it runs for every change."""
    values = {
        f: getattr(body, f)
        for f in _FIELDS
        if f in body.model_fields_set and getattr(body, f) is not None
    }
    sets = ["version = version + 1", *(f"{f} = %s" for f in values)]  # names from _FIELDS
    if body.close:
        sets.append("closed_at = now()")
    query = f"UPDATE lobbies SET {', '.join(sets)} WHERE id = %s AND version = %s RETURNING *"
    rows = await _fetch(session, query, (*values.values(), lobby_id, body.expected_version))
    if not rows:
        raise await version_refusal(session, Lobby, lobby_id, body.expected_version, "lobby")
    return rows[0]


async def _remove_participants(session: AsyncSession, lobby_id: UUID, ids: list[UUID]) -> None:
    if not ids:
        return
    removed = set(
        (
            await session.exec(
                sa.delete(Participant)
                .where(col(Participant.lobby_id) == lobby_id, col(Participant.device_id).in_(ids))
                .returning(col(Participant.device_id))
            )
        ).scalars()
    )
    missing = sorted(str(i) for i in set(ids) - removed)
    if missing:
        raise not_found("participant", ", ".join(missing))


async def _upsert_participant(
    session: AsyncSession, lobby_id: UUID, body: ParticipantUpsert, current: Row | None
) -> Row:
    """Apply one upsert to the participant's row ``current``, or add it; the row after."""
    values = {f: getattr(body, f) for f in _PARTICIPANT_FIELDS if f in body.model_fields_set}
    if current is None:
        await _require_devices(session, {body.device_id})
        defaults = {f: Participant.model_fields[f].default for f in ("status", "presence")}
        insert = (
            sa.insert(PARTICIPANTS)
            .values(lobby_id=lobby_id, device_id=body.device_id, **{**defaults, **values})
            .returning(PARTICIPANTS)
        )
        return dict((await session.exec(insert)).mappings().one())
    if values:
        sets = ", ".join(f"{f} = %s" for f in values)  # names from _PARTICIPANT_FIELDS
        await _fetch(
            session,
            f"UPDATE participants SET {sets} WHERE lobby_id = %s AND device_id = %s",
            (*values.values(), lobby_id, body.device_id),
        )
    return {**current, **values}


def _check_membership(lobby: Row, participants: dict[UUID, Row]) -> None:
    if len(participants) > lobby["max_members"]:
        raise conflict(f"lobby {lobby['id']} is full ({lobby['max_members']} members)")
    if lobby["closed_at"] is None and lobby["host_device_id"] not in participants:
        raise conflict(f"the host {lobby['host_device_id']} must be a participant of the lobby")
