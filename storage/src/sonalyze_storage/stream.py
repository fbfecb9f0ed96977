"""The live event stream: one LISTEN connection per process wakes every subscriber.

Each committed event is announced with its id (see :mod:`sonalyze_storage.event_log`). A
subscriber reads ``id > cursor`` from Postgres until it has caught up, then sleeps until an
announced id passes its cursor. Because event ids are handed out in commit order, reading by id
after a cursor misses nothing and repeats nothing; an event read before its own announcement
arrived costs no second read. Whenever the listener (re)connects, or hears an announcement
without an id, the *generation* moves on and every subscriber reads again, so a commit made
while nobody listened is never slept through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from sonalyze.storage_api import EventRead
from sonalyze_storage.event_log import NOTIFY_CHANNEL, events_after_id

log = logging.getLogger(__name__)


class Notifier:
    """Listens on the event channel: the newest event id announced, and the generation."""

    def __init__(self, conninfo: str, retry_s: float = 1.0) -> None:
        self._conninfo = conninfo
        self._retry_s = retry_s
        self._generation = 0
        self.newest_id = 0
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

    def has_news(self, cursor: int, generation: int) -> bool:
        """Whether a reader at ``cursor``, who read in ``generation``, must read again."""
        return self.newest_id > cursor or self._generation != generation

    async def wait_news(self, cursor: int, generation: int, seconds: float) -> None:
        """Wait until :meth:`has_news`, or ``seconds`` pass."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.has_news(cursor, generation)), seconds
                )

    async def _heard(self, payload: str | None) -> None:
        async with self._changed:
            if payload is not None and payload.isdigit():
                self.newest_id = max(self.newest_id, int(payload))
            else:
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
                    await self._heard(None)
                    async for notification in conn.notifies():
                        await self._heard(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening = False
                log.warning("event notifier has no connection (%s); retrying", exc)
                await asyncio.sleep(self._retry_s)


async def event_stream(
    engine: AsyncEngine,
    notifier: Notifier,
    after_id: int,
    batch: int,
    heartbeat_s: float,
) -> AsyncIterator[str]:
    """Server-sent events: every event with ``id > after_id``, in order, then live ones.

    Each read is one statement outside a transaction (on a pooled connection in autocommit),
    since it runs for every event: no BEGIN and ROLLBACK around it.
    """
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    cursor = after_id
    while True:
        generation = notifier.generation
        async with reader.connect() as connection:
            rows = await events_after_id(connection, cursor, batch)
        for row in rows:
            event = EventRead.model_validate(row)
            cursor = event.id
            yield f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
        if len(rows) == batch:
            continue
        await notifier.wait_news(cursor, generation, heartbeat_s)
        if not notifier.has_news(cursor, generation):
            yield ": keep-alive\n\n"
