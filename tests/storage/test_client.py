"""The typed client against a real storage server: calls, the live stream, errors, blobs."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import pytest

from sonalyze.domain import JobState, Role, WorkflowState
from sonalyze.storage_api import (
    EventIn,
    EventRead,
    JobUpdate,
    LobbyChange,
    LobbyCreate,
    MeasurementCreate,
    ParticipantUpsert,
    SimulationJobCreate,
)
from sonalyze.storage_client import (
    StorageBadRequest,
    StorageClient,
    StorageConflict,
    StorageError,
    StorageNotFound,
    StorageUnauthorized,
    StorageUnavailable,
)
from tests.conftest import TOKEN, free_port

T = TypeVar("T")
UNKNOWN = UUID("00000000-0000-0000-0000-00000000beef")


def with_client(url: str, work: Callable[[StorageClient], Awaitable[T]], token: str = TOKEN) -> T:
    async def run() -> T:
        async with StorageClient(url, token) as client:
            return await work(client)

    return asyncio.run(run())


async def next_event(stream: AsyncIterator[EventRead]) -> EventRead:
    return await asyncio.wait_for(anext(stream), timeout=10)


def test_device_lobby_change_and_events_flow(storage_url: str) -> None:
    async def flow(client: StorageClient) -> None:
        host, phone = await client.create_device(), await client.create_device()
        assert (await client.get_device(host.id)).id == host.id
        created = await client.create_lobby(
            LobbyCreate(code="FLOW2345", host_device_id=host.id, events=[EventIn(type="opened")])
        )
        lobby = created.lobby
        assert [e.seq for e in created.events] == [1]
        assert (await client.get_open_lobby_by_code("FLOW2345")).id == lobby.id
        changed = await client.change_lobby(
            lobby.id,
            LobbyChange(
                expected_version=lobby.version,
                workflow_state=WorkflowState.ready,
                upsert_participants=[ParticipantUpsert(device_id=phone.id, role=Role.microphone)],
                events=[EventIn(type="participant.joined", payload={"device": str(phone.id)})],
            ),
        )
        assert changed.lobby.version == lobby.version + 1
        assert changed.lobby.workflow_state is WorkflowState.ready
        assert {p.device_id for p in changed.lobby.participants} == {host.id, phone.id}
        appended = await client.append_events(lobby.id, [EventIn(type="note", payload={"n": 1})])
        assert [e.seq for e in appended] == [3]
        log = await client.lobby_events(lobby.id)
        assert [(e.seq, e.type) for e in log] == [
            (1, "opened"),
            (2, "participant.joined"),
            (3, "note"),
        ]
        assert [e.seq for e in await client.lobby_events(lobby.id, after_seq=2)] == [3]
        read = await client.get_lobby(lobby.id)
        assert (read.version, read.last_seq) == (2, 3)

    with_client(storage_url, flow)


def test_measurement_and_job_calls_round_trip(storage_url: str) -> None:
    async def flow(client: StorageClient) -> None:
        host = await client.create_device()
        lobby = (
            await client.create_lobby(LobbyCreate(code="MEAS2345", host_device_id=host.id))
        ).lobby
        m = await client.create_measurement(MeasurementCreate(lobby_id=lobby.id, spec={"a": 1}))
        assert [x.id for x in await client.lobby_measurements(lobby.id)] == [m.id]
        job = await client.create_simulation_job(
            SimulationJobCreate(client_request_id="c-1", spec={"room": 1})
        )
        again = await client.create_simulation_job(
            SimulationJobCreate(client_request_id="c-1", spec={"room": 1})
        )
        assert again.id == job.id
        running = await client.update_simulation_job(
            job.id, JobUpdate(expected_version=1, state=JobState.running, progress=0.5)
        )
        assert (running.state, running.progress, running.version) == (JobState.running, 0.5, 2)
        assert [j.id for j in await client.list_simulation_jobs([JobState.running])] == [job.id]
        assert await client.list_simulation_jobs([JobState.queued]) == []

    with_client(storage_url, flow)


def test_stream_yields_events_in_id_order_including_later_ones(storage_url: str) -> None:
    async def flow(client: StorageClient) -> None:
        host = await client.create_device()
        lobby = (
            await client.create_lobby(LobbyCreate(code="STRM2345", host_device_id=host.id))
        ).lobby
        before = await client.append_events(lobby.id, [EventIn(type="old")])
        earlier = await client.append_events(
            lobby.id, [EventIn(type="past", payload={"n": i}) for i in range(3)]
        )
        stream = client.stream_events(after=before[-1].id)
        try:
            caught_up = [await next_event(stream) for _ in range(3)]
            assert caught_up == earlier
            later = await client.append_events(
                lobby.id, [EventIn(type="live", payload={"n": i}) for i in range(2)]
            )
            live = [await next_event(stream) for _ in range(2)]
            assert live == later
            ids = [e.id for e in caught_up + live]
            assert ids == sorted(ids)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    with_client(storage_url, flow)


@pytest.mark.parametrize(
    ("call", "error", "status"),
    [
        (lambda c: c.get_lobby(UNKNOWN), StorageNotFound, 404),
        (lambda c: c.get_measurement(UNKNOWN), StorageNotFound, 404),
        (lambda c: c.get_simulation_job(UNKNOWN), StorageNotFound, 404),
        (lambda c: c.get_open_lobby_by_code("ab"), StorageNotFound, 404),
        (lambda c: c.lobby_events(UNKNOWN, after_seq=-1), StorageBadRequest, 422),
        (lambda c: c.list_simulation_jobs(limit=0), StorageBadRequest, 422),
    ],
    ids=["lobby", "measurement", "job", "code", "negative-seq", "zero-limit"],
)
def test_refusals_map_to_named_errors(
    storage_url: str, call: Callable[[StorageClient], Awaitable[object]], error: type, status: int
) -> None:
    with pytest.raises(error) as raised:
        with_client(storage_url, call)
    assert raised.value.status == status
    assert f"storage answered {status}" in str(raised.value)


def test_conflict_maps_to_storage_conflict(storage_url: str) -> None:
    async def flow(client: StorageClient) -> None:
        host = await client.create_device()
        lobby = (
            await client.create_lobby(LobbyCreate(code="CONF2345", host_device_id=host.id))
        ).lobby
        await client.change_lobby(lobby.id, LobbyChange(expected_version=1, name="A"))
        with pytest.raises(StorageConflict, match="version 2, not 1"):
            await client.change_lobby(lobby.id, LobbyChange(expected_version=1, name="B"))

    with_client(storage_url, flow)


def test_wrong_token_is_unauthorized(storage_url: str) -> None:
    with pytest.raises(StorageUnauthorized) as raised:
        with_client(storage_url, lambda c: c.create_device(), token="wrong-token")
    assert raised.value.status == 401


def test_wrong_token_on_the_stream_is_unauthorized(storage_url: str) -> None:
    async def open_stream(client: StorageClient) -> EventRead:
        return await next_event(client.stream_events())

    with pytest.raises(StorageUnauthorized):
        with_client(storage_url, open_stream, token="wrong-token")


def test_unreachable_storage_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StorageUnavailable) as raised:
        with_client(url, lambda c: c.create_device())
    assert isinstance(raised.value, StorageError)
    assert "unreachable" in str(raised.value)


def test_blob_chunks_with_crc32_read_back_exactly(storage_url: str) -> None:
    parts = [os.urandom(40_000), os.urandom(40_000), os.urandom(123)]

    async def flow(client: StorageClient) -> bytes:
        blob = await client.create_blob("audio/wav")
        assert (blob.state, blob.content_type) == ("open", "audio/wav")
        for index, data in enumerate(parts):
            written = await client.put_chunk(blob.id, index, data, crc32=zlib.crc32(data))
            assert (written.index, written.size_bytes, written.created) == (index, len(data), True)
        again = await client.put_chunk(blob.id, 0, parts[0], crc32=zlib.crc32(parts[0]))
        assert again.created is False
        with pytest.raises(StorageBadRequest, match="CRC32"):
            await client.put_chunk(blob.id, 3, b"x", crc32=zlib.crc32(b"y"))
        with pytest.raises(StorageConflict):
            await client.read_blob(blob.id)
        done = await client.complete_blob(blob.id, len(parts))
        assert (done.state, done.size_bytes, done.chunk_count) == (
            "complete",
            sum(map(len, parts)),
            3,
        )
        assert (await client.get_blob(blob.id)) == done
        return await client.read_blob(blob.id)

    assert with_client(storage_url, flow) == b"".join(parts)
