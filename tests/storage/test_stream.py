"""The live stream: from a given id, every later event exactly once and in order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from sonalyze_storage.app import create_app
from sonalyze_storage.event_log import NOTIFY_CHANNEL
from sonalyze_storage.settings import StorageSettings, libpq_url
from tests.conftest import TOKEN, serving
from tests.storage.helpers import events, lobby

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def small_batch_url(storage_settings: StorageSettings) -> Iterator[str]:
    """Storage reading the stream in batches of 25, so catching up takes many queries."""
    settings = storage_settings.model_copy(update={"stream_batch": 25, "stream_heartbeat_s": 0.5})
    with serving(create_app(settings)) as url:
        yield url


def read_stream(url: str, after: int, out: list[dict], stop: threading.Event) -> None:
    with (
        httpx.Client(base_url=url, headers=HEADERS, timeout=None) as client,
        client.stream("GET", "/v1/events/stream", params={"after": after}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
            if stop.is_set():
                return


def test_subscriber_from_id_n_gets_every_later_event_once_in_order(small_batch_url: str) -> None:
    with httpx.Client(base_url=small_batch_url, headers=HEADERS, timeout=30) as api:
        lobbies = [lobby(api, code=f"LOBBY{i}AB")["id"] for i in range(3)]
        for _ in range(20):
            for lobby_id in lobbies:
                api.post(f"/v1/lobbies/{lobby_id}/events", json={"events": events(10)})
        start = api.get(f"/v1/lobbies/{lobbies[1]}/events", params={"after_seq": 100}).json()
        after = start[0]["id"]  # somewhere in the middle of 600 events

        received: list[dict] = []
        stop = threading.Event()
        reader = threading.Thread(target=read_stream, args=(small_batch_url, after, received, stop))
        reader.start()
        # Write while the reader is still catching up, from several writers at once.
        writers = [
            threading.Thread(
                target=lambda lid=lid: [
                    api.post(f"/v1/lobbies/{lid}/events", json={"events": events(2)})
                    for _ in range(30)
                ]
            )
            for lid in lobbies
        ]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        expected = [
            e
            for lid in lobbies
            for e in api.get(f"/v1/lobbies/{lid}/events", params={"limit": 10_000}).json()
            if e["id"] > after
        ]
        expected.sort(key=lambda e: e["id"])
        deadline = time.monotonic() + 30
        while len(received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.6)  # one heartbeat more: nothing extra may arrive
        stop.set()
        # Wake the reader so it sees the stop flag.
        api.post(f"/v1/lobbies/{lobbies[0]}/events", json={"events": events(1)})
        reader.join(10)

    received_ids = [e["id"] for e in received]
    assert received_ids[: len(expected)] == [e["id"] for e in expected]
    assert len(set(received_ids)) == len(received_ids), "no event twice"
    assert received[: len(expected)] == expected
    for lid in lobbies:
        seqs = [e["seq"] for e in received if e["lobby_id"] == lid]
        assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_idle_stream_sends_keep_alives(small_batch_url: str) -> None:
    with (
        httpx.Client(base_url=small_batch_url, headers=HEADERS, timeout=5) as client,
        client.stream("GET", "/v1/events/stream") as response,
    ):
        assert next(response.iter_lines()) == ": keep-alive"


def test_stream_refuses_a_negative_start(api: httpx.Client) -> None:
    assert api.get("/v1/events/stream", params={"after": -1}).status_code == 422


def test_head_is_the_newest_event_id(api: httpx.Client) -> None:
    assert api.get("/v1/events/head").json() == {"last_id": 0}
    lobby_id = lobby(api)["id"]
    written = api.post(f"/v1/lobbies/{lobby_id}/events", json={"events": events(3)}).json()
    assert api.get("/v1/events/head").json() == {"last_id": written[-1]["id"]}


def test_an_announcement_without_an_id_wakes_readers_too(
    api: httpx.Client, storage_url: str, database_url: str
) -> None:
    """Readers sleep until an announced id passes their cursor; an announcement they cannot
    read an id from (an older storage version's) must still wake them, and at once."""
    lobby_id = lobby(api)["id"]
    received: list[dict] = []
    stop = threading.Event()
    reader = threading.Thread(target=read_stream, args=(storage_url, 0, received, stop))
    reader.start()
    time.sleep(0.5)  # the reader has caught up and sleeps (its keep-alive is 15 s away)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn, conn.transaction():
        conn.execute("UPDATE lobbies SET last_seq = 1 WHERE id = %s", (lobby_id,))
        conn.execute(
            "INSERT INTO events (lobby_id, seq, type, payload) VALUES (%s, 1, 'test.old', '{}')",
            (lobby_id,),
        )
        conn.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', %s)", (lobby_id,))
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    api.post(f"/v1/lobbies/{lobby_id}/events", json={"events": events(1)})
    reader.join(10)
    assert received and received[0]["type"] == "test.old"
