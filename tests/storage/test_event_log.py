"""The event log: gapless per-lobby seq under concurrency, and nothing from a rollback."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.storage_api import EventIn
from sonalyze_storage.event_log import append_events, commit_with_events
from tests.conftest import TOKEN, libpq
from tests.storage.helpers import events, lobby


def test_seq_is_gapless_under_20_concurrent_writers(api: httpx.Client, storage_url: str) -> None:
    lobby_id = lobby(api)["id"]
    writers, appends, batch = 20, 10, 3

    async def writer(client: httpx.AsyncClient, w: int) -> list[int]:
        seqs = []
        for a in range(appends):
            body = {"events": [{"type": "w", "payload": {"w": w, "a": a}}] * batch}
            response = await client.post(f"/v1/lobbies/{lobby_id}/events", json=body)
            assert response.status_code == 201, response.text
            got = [e["seq"] for e in response.json()]
            assert got == list(range(got[0], got[0] + batch)), "a batch is contiguous"
            seqs += got
        return seqs

    async def run() -> list[list[int]]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        limits = httpx.Limits(max_connections=writers)
        async with httpx.AsyncClient(base_url=storage_url, headers=headers, limits=limits) as c:
            return await asyncio.gather(*(writer(c, w) for w in range(writers)))

    per_writer = asyncio.run(run())
    total = writers * appends * batch
    assert sorted(s for seqs in per_writer for s in seqs) == list(range(1, total + 1))
    log = api.get(f"/v1/lobbies/{lobby_id}/events", params={"limit": total}).json()
    assert [e["seq"] for e in log] == list(range(1, total + 1))
    ids = [e["id"] for e in log]
    assert ids == sorted(ids), "ids follow seq: they are handed out in commit order"
    assert api.get(f"/v1/lobbies/{lobby_id}").json()["last_seq"] == total


def test_catch_up_after_seq(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    api.post(f"/v1/lobbies/{lobby_id}/events", json={"events": events(5)})
    tail = api.get(f"/v1/lobbies/{lobby_id}/events", params={"after_seq": 3}).json()
    assert [(e["seq"], e["payload"]["n"]) for e in tail] == [(4, 3), (5, 4)]
    assert api.get(f"/v1/lobbies/{lobby_id}/events", params={"after_seq": 5}).json() == []


def test_rolled_back_events_never_appear_and_give_their_seq_back(
    api: httpx.Client, database_url: str
) -> None:
    lobby_id = lobby(api)["id"]

    async def run() -> None:
        engine = create_async_engine(database_url)
        async with AsyncSession(engine) as session:
            await append_events(session, lobby_id, [EventIn(type="doomed")])
            await session.rollback()
        async with AsyncSession(engine) as session:
            await commit_with_events(session, lobby_id, [EventIn(type="kept")])
        await engine.dispose()

    asyncio.run(run())
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    assert [(e["seq"], e["type"]) for e in log] == [(1, "kept")]
    with psycopg.connect(libpq(database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE type = 'doomed'").fetchone() == (0,)


def test_a_refused_change_appends_no_event(api: httpx.Client) -> None:
    created = lobby(api)
    refused = api.post(
        f"/v1/lobbies/{created['id']}/changes",
        json={
            "expected_version": 1,
            "remove_participants": ["00000000-0000-0000-0000-000000000001"],
            "events": events(3),
        },
    )
    assert refused.status_code == 404
    assert api.get(f"/v1/lobbies/{created['id']}/events").json() == []
    assert api.get(f"/v1/lobbies/{created['id']}").json()["last_seq"] == 0
