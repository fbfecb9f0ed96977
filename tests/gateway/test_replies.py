"""Remembered outcomes: a repeated command id never runs twice, a command outlives the
connection that sent it, and refusals a retry may not meet again are not remembered."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from sonalyze_gateway.commands import Outcome
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
