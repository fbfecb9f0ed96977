"""The event log over HTTP: append, catch-up per lobby, and the live stream."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse

from sonalyze.storage_api import EventAppend, EventHead, EventRead
from sonalyze_storage.api.refusals import refusals
from sonalyze_storage.db import SessionDep
from sonalyze_storage.event_log import (
    LobbyMissing,
    commit_with_events,
    events_after_seq,
    last_event_id,
)
from sonalyze_storage.rows import get_or_404, not_found
from sonalyze_storage.stream import event_stream
from sonalyze_storage.tables import Lobby

router = APIRouter(tags=["events"])
MAX_BIGINT = 2**63 - 1  # event ids and seqs are Postgres bigints: none is larger


@router.post(
    "/lobbies/{lobby_id}/events",
    status_code=status.HTTP_201_CREATED,
    response_model=list[EventRead],
    responses=refusals(400, 404),
)
async def append_events(lobby_id: UUID, body: EventAppend, session: SessionDep) -> list[EventRead]:
    """Append events to a lobby's log (for changes that have no other state)."""
    try:
        return await commit_with_events(session, lobby_id, body.events)
    except LobbyMissing:
        raise not_found("lobby", lobby_id) from None


@router.get("/lobbies/{lobby_id}/events", response_model=list[EventRead], responses=refusals(404))
async def lobby_events(
    lobby_id: UUID,
    session: SessionDep,
    after_seq: int = Query(0, ge=0, le=MAX_BIGINT, description="Return events with a larger seq."),
    limit: int = Query(1000, ge=1, le=10_000),
) -> list[EventRead]:
    """Catch-up: a lobby's events after ``after_seq``, in seq order."""
    await get_or_404(session, Lobby, lobby_id, "lobby")
    rows = await events_after_seq(session, lobby_id, after_seq, limit)
    return [EventRead.model_validate(r) for r in rows]


@router.get("/events/head", response_model=EventHead)
async def events_head(session: SessionDep) -> EventHead:
    """The newest event's id: a reader that starts the stream here misses nothing after it."""
    return EventHead(last_id=await last_event_id(session))


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    after: int = Query(
        0, ge=0, le=MAX_BIGINT, description="Start after this event id (0: from the start)."
    ),
) -> StreamingResponse:
    """Every event of every lobby with ``id > after``, in id order, then live, as
    server-sent events (``id``, ``event`` = type, ``data`` = the event as JSON), with
    ``: keep-alive`` comments when idle. Each event is delivered exactly once."""
    settings = request.app.state.settings
    return StreamingResponse(
        event_stream(
            request.app.state.engine,
            request.app.state.notifier,
            after,
            settings.stream_batch,
            settings.stream_heartbeat_s,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
