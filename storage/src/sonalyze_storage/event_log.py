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
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.storage_api import EventIn
from sonalyze_storage.tables import Event, Lobby

NOTIFY_CHANNEL = "sonalyze_events"
# Arbitrary but fixed key of the advisory lock that orders event ids ("SONALYZE" in ASCII).
EVENT_ORDER_LOCK = int.from_bytes(b"SONALYZE", "big") & 0x7FFF_FFFF_FFFF_FFFF


class LobbyMissing(LookupError):
    """The lobby the events are for does not exist."""


async def commit_with_events(
    session: AsyncSession, lobby_id: UUID | None, events: Sequence[EventIn]
) -> list[Event]:
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


async def append_events(
    session: AsyncSession, lobby_id: UUID, events: Sequence[EventIn]
) -> list[Event]:
    """Append ``events`` in the session's transaction, taking the ordering lock.

    The lock is held until the transaction ends, so the caller commits (or rolls back) at once;
    :func:`commit_with_events` does both.
    """
    last_seq = (
        await session.exec(
            sa.update(Lobby)
            .where(col(Lobby.id) == lobby_id)
            .values(last_seq=col(Lobby.last_seq) + len(events))
            .returning(col(Lobby.last_seq))
        )
    ).scalar_one_or_none()
    if last_seq is None:
        raise LobbyMissing(lobby_id)
    first_seq = last_seq - len(events) + 1
    await session.exec(sa.select(sa.func.pg_advisory_xact_lock(EVENT_ORDER_LOCK)))
    # Each id is announced as it is handed out; the announcements go out on commit.
    announce = sa.func.pg_notify(NOTIFY_CHANNEL, sa.cast(col(Event.id), sa.Text))
    rows = (
        (
            await session.exec(
                sa.insert(Event).returning(Event, announce, sort_by_parameter_order=True),
                params=[
                    {
                        "lobby_id": lobby_id,
                        "seq": first_seq + i,
                        "type": e.type,
                        "payload": e.payload,
                    }
                    for i, e in enumerate(events)
                ],
            )
        )
        .scalars()
        .all()
    )
    return list(rows)


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
