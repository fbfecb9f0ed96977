"""Remembered outcomes: a repeated command id never runs twice, a command outlives the
connection that sent it, refusals a retry may not meet again are not remembered, and what is
remembered adds nothing to the garbage collector's pauses."""

from __future__ import annotations

import asyncio
import gc
from functools import partial
from uuid import uuid4

from sonalyze_gateway.commands import Follow, Outcome
from sonalyze_gateway.outbox import Outgoing
from sonalyze_gateway.replies import RecentReplies

DEVICE = uuid4()


def outcome(text: str, remember: bool = True) -> Outcome:
    return Outcome(Outgoing(text, "ack"), remember=remember)


def test_a_repeat_is_answered_from_memory() -> None:
    async def scenario() -> None:
        replies, runs = RecentReplies(), []

        async def run() -> Outcome:
            runs.append(1)
            return outcome("first")

        assert await replies.once(DEVICE, "a", run) == (outcome("first"), True)
        assert await replies.once(DEVICE, "a", run) == (outcome("first"), False)
        assert await replies.once(uuid4(), "a", run) == (outcome("first"), True)
        assert len(runs) == 2, "ids are per device"

    asyncio.run(scenario())


def test_a_command_finishes_when_its_connection_goes_and_the_retry_gets_its_outcome() -> None:
    async def scenario() -> None:
        replies, release, runs = RecentReplies(), asyncio.Event(), []

        async def slow() -> Outcome:
            runs.append(1)
            await release.wait()
            return outcome("done")

        asker = asyncio.create_task(replies.once(DEVICE, "b", slow))
        await asyncio.sleep(0.01)
        asker.cancel()  # the connection closed mid-command
        retry = asyncio.create_task(replies.once(DEVICE, "b", slow))
        await asyncio.sleep(0.01)
        release.set()
        assert await retry == (outcome("done"), False)
        assert runs == [1]

    asyncio.run(scenario())


def test_transient_refusals_are_not_remembered() -> None:
    async def scenario() -> None:
        replies, runs = RecentReplies(), []

        async def flaky() -> Outcome:
            runs.append(1)
            return outcome("unavailable", remember=len(runs) > 1)

        assert (await replies.once(DEVICE, "c", flaky))[0].reply.text == "unavailable"
        await asyncio.sleep(0)
        assert (await replies.once(DEVICE, "c", flaky))[1] is True, "ran again"
        assert (await replies.once(DEVICE, "c", flaky))[1] is False, "now remembered"
        assert len(runs) == 2

    asyncio.run(scenario())


def test_remembered_outcomes_are_not_tracked_by_the_garbage_collector() -> None:
    """Thousands of remembered replies must not lengthen the gateway's full collections."""
    lobby = uuid4()

    async def never() -> Outcome:
        raise AssertionError("a remembered command ran again")

    async def scenario() -> int:
        replies = RecentReplies()
        for i in range(2000):
            done = Outcome(Outgoing(f"reply {i}", "ack"), Follow(lobby, i, "{}") if i % 2 else None)
            await replies.once(DEVICE, f"c{i}", partial(asyncio.sleep, 0, done))
        assert (await replies.once(DEVICE, "c1", never))[0].follow == Follow(lobby, 1, "{}")
        gc.collect()
        remembering = len(gc.get_objects())
        del replies
        gc.collect()
        return remembering - len(gc.get_objects())

    assert asyncio.run(scenario()) < 100, "remembered outcomes are tracked objects"
