"""Replies to recent commands by device and command id, so that a repeated id (a client that
retries after losing the connection) is answered again and never executed twice.

The first arrival of an id runs the command; a repeat that arrives while it runs waits for
the same reply. Entries expire after ``ttl_s`` and at most ``max_entries`` are kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from uuid import UUID

from sonalyze_gateway.outbox import Outgoing


class RecentReplies:
    def __init__(self, ttl_s: float = 600.0, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[UUID, str], tuple[float, asyncio.Future[Outgoing]]] = (
            OrderedDict()
        )

    async def once(
        self, device_id: UUID, command_id: str, run: Callable[[], Awaitable[Outgoing]]
    ) -> tuple[Outgoing, bool]:
        """The reply to ``command_id``: run now, or remembered. Also says whether it ran now."""
        key = (device_id, command_id)
        now = time.monotonic()
        self._expire(now)
        while (entry := self._entries.get(key)) is not None:
            try:
                return await asyncio.shield(entry[1]), False
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not entry[1].cancelled() or (task is not None and task.cancelling()):
                    raise
                # The first run was abandoned unanswered: this one runs it.
        future: asyncio.Future[Outgoing] = asyncio.get_running_loop().create_future()
        self._entries[key] = (now, future)
        try:
            reply = await run()
        except BaseException:
            # Not answered (cancelled with its connection): a retry may run it.
            del self._entries[key]
            future.cancel()
            raise
        future.set_result(reply)
        return reply, True

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (at, future) = next(iter(self._entries.items()))
            if now - at < self._ttl_s and len(self._entries) < self._max_entries:
                return
            if not future.done():
                return
            del self._entries[key]
