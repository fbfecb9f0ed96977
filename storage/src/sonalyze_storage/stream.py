"""The live event stream: one LISTEN connection per process wakes every subscriber.

A subscriber reads ``id > cursor`` from Postgres until it has caught up, then waits for the
notification generation to move past the one it saw *before* its last read, so a commit that
lands between the read and the wait is never slept through. Because event ids are handed out in
commit order (see :mod:`sonalyze_storage.event_log`), reading by id after a cursor misses nothing
and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.storage_api import EventRead
from sonalyze_storage.event_log import NOTIFY_CHANNEL, events_after_id

log = logging.getLogger(__name__)


class Notifier:
    """Listens on the event channel and counts notifications (the *generation*)."""

    def __init__(self, conninfo: str, retry_s: float = 1.0) -> None:
        self._conninfo = conninfo
        self._retry_s = retry_s
        self._generation = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.listening = False

    @property
    def generation(self) -> int:
        return self._generation

    def start(self) -> None:
        """Start listening in the background (and keep reconnecting while running).

        Every (re)connection bumps the generation, so a reader that read before the LISTEN
        was in place reads again.
        """
        self._task = asyncio.create_task(self._run(), name="event-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_past(self, generation: int, seconds: float) -> None:
        """Wait until the generation moves past ``generation``, or ``seconds`` pass."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._generation != generation), seconds
                )

    async def _bump(self) -> None:
        async with self._changed:
            self._generation += 1
            self._changed.notify_all()

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening = True
                    # Whatever was committed while we were not listening is read now.
                    await self._bump()
                    async for _ in conn.notifies():
                        await self._bump()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening = False
                log.warning("event notifier has no connection (%s); retrying", exc)
                await asyncio.sleep(self._retry_s)


async def event_stream(
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    after_id: int,
    batch: int,
    heartbeat_s: float,
) -> AsyncIterator[str]:
    """Server-sent events: every event with ``id > after_id``, in order, then live ones."""
    cursor = after_id
    while True:
        generation = notifier.generation
        async with sessions() as session:
            rows = await events_after_id(session, cursor, batch)
        for row in rows:
            event = EventRead.model_validate(row)
            cursor = event.id
            yield f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
        if len(rows) == batch:
            continue
        await notifier.wait_past(generation, heartbeat_s)
        if notifier.generation == generation:
            yield ": keep-alive\n\n"
