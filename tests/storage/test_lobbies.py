"""Lobby CRUD on a real database, with optimistic concurrency."""

from __future__ import annotations

import httpx

from tests.storage.helpers import device, events, lobby


def test_create_read_and_find_by_code(api: httpx.Client) -> None:
    host = device(api)
    response = api.post(
        "/v1/lobbies",
        json={"code": "K7PQ2MXR", "host_device_id": host, "name": "Hall", "events": events(1)},
    )
    assert response.status_code == 201
    created = response.json()
    assert created["events"][0]["seq"] == 1
    lobby_id = created["lobby"]["id"]
    read = api.get(f"/v1/lobbies/{lobby_id}").json()
    assert read["name"] == "Hall"
    assert read["version"] == 1
    assert read["last_seq"] == 1
    assert read["workflow_state"] == "idle"
    assert [p["device_id"] for p in read["participants"]] == [host]
    assert api.get("/v1/lobbies/by-code/K7PQ2MXR").json()["id"] == lobby_id


def test_change_applies_fields_participants_and_events_atomically(api: httpx.Client) -> None:
    created = lobby(api)
    phone = device(api)
    response = api.post(
        f"/v1/lobbies/{created['id']}/changes",
        json={
            "expected_version": 1,
            "workflow_state": "ready",
            "upsert_participants": [{"device_id": phone, "role": "microphone", "status": "ready"}],
            "events": events(2, "participant.joined"),
        },
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["lobby"]["version"] == 2
    assert changed["lobby"]["workflow_state"] == "ready"
    assert [e["seq"] for e in changed["events"]] == [1, 2]
    member = {p["device_id"]: p for p in changed["lobby"]["participants"]}[phone]
    assert (member["role"], member["status"], member["presence"]) == (
        "microphone",
        "ready",
        "online",
    )


def test_stale_version_is_409_and_changes_nothing(api: httpx.Client, snapshot) -> None:
    created = lobby(api)
    first = api.post(
        f"/v1/lobbies/{created['id']}/changes", json={"expected_version": 1, "name": "A"}
    )
    assert first.status_code == 200
    before = snapshot()
    stale = api.post(
        f"/v1/lobbies/{created['id']}/changes",
        json={"expected_version": 1, "name": "B", "events": events(1)},
    )
    assert stale.status_code == 409
    assert "version 2, not 1" in stale.json()["detail"]
    assert snapshot() == before
    assert api.get(f"/v1/lobbies/{created['id']}").json()["name"] == "A"


def test_code_is_unique_among_open_lobbies_only(api: httpx.Client) -> None:
    created = lobby(api, code="SAME2345")
    taken = api.post("/v1/lobbies", json={"code": "SAME2345", "host_device_id": device(api)})
    assert taken.status_code == 409
    closed = api.post(
        f"/v1/lobbies/{created['id']}/changes", json={"expected_version": 1, "close": True}
    )
    assert closed.json()["lobby"]["closed_at"] is not None
    again = api.post("/v1/lobbies", json={"code": "SAME2345", "host_device_id": device(api)})
    assert again.status_code == 201
    later = api.post(f"/v1/lobbies/{created['id']}/changes", json={"expected_version": 2})
    assert later.status_code == 409
    assert "closed" in later.json()["detail"]


def test_member_limit_and_host_membership_are_enforced(api: httpx.Client, snapshot) -> None:
    created = lobby(api, max_members=2)
    url = f"/v1/lobbies/{created['id']}/changes"
    before = snapshot()
    full = api.post(
        url,
        json={
            "expected_version": 1,
            "upsert_participants": [{"device_id": device(api)}, {"device_id": device(api)}],
        },
    )
    assert full.status_code == 409
    assert "full" in full.json()["detail"]
    hostless = api.post(
        url, json={"expected_version": 1, "remove_participants": [created["host_device_id"]]}
    )
    assert hostless.status_code == 409
    assert "host" in hostless.json()["detail"]
    assert {k: v for k, v in snapshot().items() if k != "devices"} == {
        k: v for k, v in before.items() if k != "devices"
    }
