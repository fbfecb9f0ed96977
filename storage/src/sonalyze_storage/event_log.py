"""The event log: append in the caller's transaction, read back per lobby or as one stream.

Ordering. Every event gets ``seq`` from its lobby's ``last_seq`` counter, which is bumped under
the lobby's row lock, so ``seq`` is gapless and strictly increasing per lobby, and a rolled-back
transaction gives its numbers back. The global ``id`` must also be handed out in commit order,
or a stream reader that has passed id 11 would miss an id 10 that commits later; so the insert
takes a transaction-scoped advisory lock and holds it through the commit (locks are released
only after the commit is visible). The lock is taken as the very last step of the transaction,
so it serialises just the insert and the commit.

Waking readers. The insert announces each event's id with ``pg_notify``, delivered on commit,
which wakes the stream readers of every storage replica; they then read from Postgres, the only
source of truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.storage_api import EventIn, EventRead
from sonalyze_storage.db import driver_connection
from sonalyze_storage.tables import Event

NOTIFY_CHANNEL = "sonalyze_events"
# Arbitrary but fixed key of the advisory lock that orders event ids ("SONALYZE" in ASCII).
EVENT_ORDER_LOCK = int.from_bytes(b"SONALYZE", "big") & 0x7FFF_FFFF_FFFF_FFFF


class LobbyMissing(LookupError):
    """The lobby the events are for does not exist."""


async def commit_with_events(
    session: AsyncSession, lobby_id: UUID | None, events: Sequence[EventIn]
) -> list[EventRead]:
    """Append ``events`` to ``lobby_id``'s log and commit the session's transaction.

    Must be the last step of a change: everything the session did commits together with the
    events, or nothing does.
    """
    if not events:
        await session.commit()
        return []
    if lobby_id is None:
        raise ValueError("events need a lobby")
    rows = await append_events(session, lobby_id, events)
    await session.commit()
    return rows


# Runs for every accepted change, so as two plain statements on the session's connection (the
# ORM would more than double its cost). The first bumps the lobby's counter under its row lock
# and then takes the ordering lock; the second hands out the ids in seq order and announces each.
_RESERVE_SEQS = f"""
    UPDATE lobbies SET last_seq = last_seq + %s WHERE id = %s
    RETURNING last_seq, pg_advisory_xact_lock({EVENT_ORDER_LOCK})::text
"""
_INSERT_EVENTS = f"""
    INSERT INTO events (lobby_id, seq, type, payload)
    SELECT %s, %s + n - 1, type, payload
    FROM unnest(%s::text[], %s::jsonb[]) WITH ORDINALITY AS e(type, payload, n)
    ORDER BY n
    RETURNING id, lobby_id, seq, type, payload, created_at,
        pg_notify('{NOTIFY_CHANNEL}', id::text)::text
"""


async def append_events(
    session: AsyncSession, lobby_id: UUID, events: Sequence[EventIn]
) -> list[EventRead]:
    """Append ``events`` in the session's transaction, taking the ordering lock.

    The lock is held until the transaction ends, so the caller commits (or rolls back) at once;
    :func:`commit_with_events` does both.
    """
    connection = await driver_connection(session)
    reserved = await (await connection.execute(_RESERVE_SEQS, (len(events), lobby_id))).fetchone()
    if reserved is None:
        raise LobbyMissing(lobby_id)
    first_seq = reserved[0] - len(events) + 1
    types = [e.type for e in events]
    payloads = [Jsonb(e.payload) for e in events]
    cursor = await connection.execute(_INSERT_EVENTS, (lobby_id, first_seq, types, payloads))
    rows = sorted(await cursor.fetchall(), key=lambda row: row[2])
    return [
        EventRead(id=i, lobby_id=lobby, seq=seq, type=kind, payload=payload, created_at=at)
        for i, lobby, seq, kind, payload, at, _ in rows
    ]


async def events_after_id(
    connection: AsyncConnection, after_id: int, limit: int
) -> Sequence[RowMapping]:
    """Events of all lobbies with ``id > after_id``, in id order, as plain rows (the stream
    reads them for every event, and ORM objects would cost more than the query)."""
    events = Event.__table__  # type: ignore[attr-defined]
    query = sa.select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
    return (await connection.execute(query)).mappings().all()


async def last_event_id(session: AsyncSession) -> int:
    """The id of the newest committed event (0 when there is none). Ids are handed out in
    commit order, so every event committed later has a larger id."""
    result = await session.exec(select(sa.func.coalesce(sa.func.max(Event.id), 0)))
    return int(result.one())


async def events_after_seq(
    session: AsyncSession, lobby_id: UUID, after_seq: int, limit: int
) -> Sequence[Event]:
    """One lobby's events with ``seq > after_seq``, in seq order."""
    query = (
        select(Event)
        .where(col(Event.lobby_id) == lobby_id, col(Event.seq) > after_seq)
        .order_by(col(Event.seq))
        .limit(limit)
    )
    return (await session.exec(query)).all()
