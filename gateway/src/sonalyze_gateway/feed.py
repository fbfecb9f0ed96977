"""A connection's view of one lobby's event log: every event after ``last_seq``, exactly once
and in ``seq`` order.

Live events come from the gateway's one storage stream; whatever is missing (events before the
subscription took effect, a resume from an old seq, a gap) is read from storage's per-lobby
catch-up, paced so that catching up never overflows the connection's queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from sonalyze.protocol import CloseCode, event_frame
from sonalyze.storage_api import EventRead
from sonalyze_gateway.outbox import Outbox, Outgoing

Fetch = Callable[[UUID, int, int], Awaitable[list[EventRead]]]
logger = logging.getLogger(__name__)

PAGE = 500
MAX_PENDING = 1000
RETRIES = 5


def outgoing(event: EventRead) -> Outgoing:
    """The frame of a stored event, as the gateway sends it."""
    committed = event.created_at.timestamp()
    text = event_frame(event.type, event.lobby_id, event.seq, committed * 1000.0, event.payload)
    return Outgoing(text, event.type, committed)


class Feed:
    """Delivers one lobby's events after ``last_seq`` to one connection's outbox."""

    def __init__(self, lobby_id: UUID, last_seq: int, outbox: Outbox, fetch: Fetch) -> None:
        self.lobby_id = lobby_id
        self.last_seq = last_seq
        self._outbox = outbox
        self._fetch = fetch
        self._pending: dict[int, Outgoing] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Catch up from storage once: delivers what happened before the subscription."""
        self._start_catch_up()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def offer(self, seq: int, message: Outgoing) -> None:
        """A live event from the stream (called for every event of the lobby)."""
        if seq <= self.last_seq:
            return
        if self._task is None and seq == self.last_seq + 1 and self._outbox.has_room:
            self._send(seq, message)
            return
        if len(self._pending) < MAX_PENDING:
            self._pending[seq] = message  # beyond that, catch-up reads them from storage
        self._start_catch_up()

    def _send(self, seq: int, message: Outgoing) -> None:
        if self._outbox.put(message):
            self.last_seq = seq

    def _start_catch_up(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._catch_up())

    async def _catch_up(self) -> None:
        try:
            failures = 0
            while self._outbox.close_code is None:
                try:
                    page = await self._fetch(self.lobby_id, self.last_seq, PAGE)
                except Exception as exc:
                    failures += 1
                    if failures > RETRIES:
                        logger.warning("catch-up of lobby %s failed: %s", self.lobby_id, exc)
                        self._outbox.close(CloseCode.internal_error, "catch-up failed; resume")
                        return
                    await asyncio.sleep(0.1 * 2**failures)
                    continue
                failures = 0
                for event in page:
                    if event.seq == self.last_seq + 1 and await self._outbox.put_paced(
                        outgoing(event)
                    ):
                        self.last_seq = event.seq
                while self.last_seq + 1 in self._pending:
                    if not await self._outbox.put_paced(self._pending.pop(self.last_seq + 1)):
                        return
                    self.last_seq += 1
                for seq in [s for s in self._pending if s <= self.last_seq]:
                    del self._pending[seq]
                if len(page) < PAGE:
                    if not self._pending:
                        return  # caught up: from here on, live events follow in order
                    await asyncio.sleep(0.01)  # the stream was ahead of this read
        finally:
            self._task = None
