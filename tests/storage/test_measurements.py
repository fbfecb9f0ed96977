"""Measurements and their recordings on a real database, with optimistic concurrency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.storage.helpers import device, events, lobby

UNKNOWN = "00000000-0000-0000-0000-00000000beef"
SPEC = {"sweep": {"f0": 20, "f1": 20000, "seconds": 5}, "repeats": 2}


def measurement(api: httpx.Client, lobby_id: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/v1/measurements", json={"lobby_id": lobby_id, "spec": SPEC, **extra})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def patch(api: httpx.Client, measurement_id: str, **body: Any) -> httpx.Response:
    return api.patch(f"/v1/measurements/{measurement_id}", json=body)


def blob(api: httpx.Client, complete: bool = True) -> str:
    blob_id = api.post("/v1/blobs", json={"content_type": "audio/wav"}).json()["id"]
    if complete:
        api.put(
            f"/v1/blobs/{blob_id}/chunks/0",
            content=b"RIFF....WAVE",
            headers={"Content-Type": "application/octet-stream"},
        )
        done = api.post(f"/v1/blobs/{blob_id}/complete", json={"chunk_count": 1})
        assert done.status_code == 200, done.text
    return str(blob_id)


def recording(
    api: httpx.Client, measurement_id: str, device_id: str, blob_id: str
) -> httpx.Response:
    return api.post(
        f"/v1/measurements/{measurement_id}/recordings",
        json={"device_id": device_id, "blob_id": blob_id, "format": {"rate": 48000}},
    )


# Measurements ----------------------------------------------------------------------------------


def test_create_appends_its_events_to_the_lobby_log(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    created = measurement(api, lobby_id, events=events(2, "measurement.scheduled"))
    assert created["lobby_id"] == lobby_id
    assert created["state"] == "scheduled"
    assert created["spec"] == SPEC
    assert created["version"] == 1
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    assert [(e["seq"], e["type"]) for e in log] == [
        (1, "measurement.scheduled"),
        (2, "measurement.scheduled"),
    ]
    assert api.get(f"/v1/lobbies/{lobby_id}").json()["last_seq"] == 2


def test_create_for_unknown_lobby_is_404_and_changes_nothing(api: httpx.Client, snapshot) -> None:
    before = snapshot()
    response = api.post(
        "/v1/measurements", json={"lobby_id": UNKNOWN, "spec": SPEC, "events": events(1)}
    )
    assert response.status_code == 404
    assert f"lobby {UNKNOWN} not found" in response.json()["detail"]
    assert snapshot() == before


def test_get_reads_back_the_measurement(api: httpx.Client) -> None:
    created = measurement(api, lobby(api)["id"])
    assert api.get(f"/v1/measurements/{created['id']}").json() == created
    assert api.get(f"/v1/measurements/{UNKNOWN}").status_code == 404


def test_list_per_lobby_is_newest_first(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    other = lobby(api, code="OTHER234")["id"]
    ids = [measurement(api, lobby_id)["id"] for _ in range(3)]
    measurement(api, other)
    listed = api.get(f"/v1/lobbies/{lobby_id}/measurements").json()
    assert [m["id"] for m in listed] == ids[::-1]
    assert api.get(f"/v1/lobbies/{UNKNOWN}/measurements").status_code == 404


def test_state_change_bumps_version_and_appends_events(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    created = measurement(api, lobby_id)
    response = patch(
        api,
        created["id"],
        expected_version=1,
        state="recording",
        events=events(1, "measurement.recording"),
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["state"], changed["version"]) == ("recording", 2)
    assert changed["updated_at"] >= created["updated_at"]
    assert api.get(f"/v1/measurements/{created['id']}").json() == changed
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    assert [e["type"] for e in log] == ["measurement.recording"]


def test_stale_version_is_409_and_changes_nothing(api: httpx.Client, snapshot) -> None:
    created = measurement(api, lobby(api)["id"])
    assert patch(api, created["id"], expected_version=1, state="recording").status_code == 200
    before = snapshot()
    stale = patch(api, created["id"], expected_version=1, state="aborted", events=events(1))
    assert stale.status_code == 409
    assert "version 2, not 1" in stale.json()["detail"]
    assert snapshot() == before
    assert api.get(f"/v1/measurements/{created['id']}").json()["state"] == "recording"


def test_update_of_unknown_measurement_is_404(api: httpx.Client) -> None:
    assert patch(api, UNKNOWN, expected_version=1, state="recording").status_code == 404


@pytest.mark.parametrize("final", ["completed", "failed", "aborted"])
def test_final_state_refuses_further_changes(api: httpx.Client, snapshot, final: str) -> None:
    created = measurement(api, lobby(api)["id"])
    assert patch(api, created["id"], expected_version=1, state=final).status_code == 200
    before = snapshot()
    again = patch(api, created["id"], expected_version=2, state="recording", events=events(1))
    assert again.status_code == 409
    assert f"is {final} and can no longer change" in again.json()["detail"]
    assert snapshot() == before


# Recordings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("complete", [True, False], ids=["complete-blob", "open-blob"])
def test_create_recording(api: httpx.Client, complete: bool) -> None:
    created = measurement(api, lobby(api)["id"])
    phone, blob_id = device(api), blob(api, complete=complete)
    response = recording(api, created["id"], phone, blob_id)
    assert response.status_code == 201, response.text
    rec = response.json()
    assert (rec["measurement_id"], rec["device_id"], rec["blob_id"]) == (
        created["id"],
        phone,
        blob_id,
    )
    assert rec["format"] == {"rate": 48000}
    assert (rec["state"], rec["error"], rec["version"]) == ("uploading", None, 1)
    assert api.get(f"/v1/recordings/{rec['id']}").json() == rec


def test_second_recording_of_a_device_is_409_and_changes_nothing(
    api: httpx.Client, snapshot
) -> None:
    created = measurement(api, lobby(api)["id"])
    phone = device(api)
    assert recording(api, created["id"], phone, blob(api)).status_code == 201
    other_blob = blob(api)
    before = snapshot()
    again = recording(api, created["id"], phone, other_blob)
    assert again.status_code == 409
    assert "already has a recording" in again.json()["detail"]
    assert snapshot() == before


def test_same_device_may_record_in_another_measurement(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    phone = device(api)
    for _ in range(2):
        m = measurement(api, lobby_id)
        assert recording(api, m["id"], phone, blob(api)).status_code == 201


@pytest.mark.parametrize("missing", ["measurement", "device", "blob"])
def test_recording_with_unknown_reference_is_404_and_changes_nothing(
    api: httpx.Client, snapshot, missing: str
) -> None:
    ids = {
        "measurement": measurement(api, lobby(api)["id"])["id"],
        "device": device(api),
        "blob": blob(api),
    }
    ids[missing] = UNKNOWN
    before = snapshot()
    response = recording(api, ids["measurement"], ids["device"], ids["blob"])
    assert response.status_code == 404
    assert f"{missing} {UNKNOWN} not found" in response.json()["detail"]
    assert snapshot() == before


def test_list_recordings_per_measurement(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    first, second = measurement(api, lobby_id), measurement(api, lobby_id)
    phones = [device(api) for _ in range(3)]
    made = [recording(api, first["id"], p, blob(api)).json()["id"] for p in phones]
    recording(api, second["id"], phones[0], blob(api))
    listed = api.get(f"/v1/measurements/{first['id']}/recordings").json()
    assert [r["id"] for r in listed] == made
    assert api.get(f"/v1/measurements/{UNKNOWN}/recordings").status_code == 404


def test_recording_state_and_error_change_with_version(api: httpx.Client, snapshot) -> None:
    created = measurement(api, lobby(api)["id"])
    rec = recording(api, created["id"], device(api), blob(api)).json()
    url = f"/v1/recordings/{rec['id']}"
    invalid = api.patch(
        url, json={"expected_version": 1, "state": "invalid", "error": "clipped at 0 dBFS"}
    )
    assert invalid.status_code == 200, invalid.text
    assert (invalid.json()["state"], invalid.json()["error"], invalid.json()["version"]) == (
        "invalid",
        "clipped at 0 dBFS",
        2,
    )
    before = snapshot()
    stale = api.patch(url, json={"expected_version": 1, "state": "complete"})
    assert stale.status_code == 409
    assert "version 2, not 1" in stale.json()["detail"]
    assert snapshot() == before
    assert api.get(url).json() == invalid.json()
    assert (
        api.patch(
            f"/v1/recordings/{UNKNOWN}", json={"expected_version": 1, "state": "complete"}
        ).status_code
        == 404
    )


def test_measurements_are_listed_by_state_oldest_first(api: httpx.Client) -> None:
    room = lobby(api)["id"]
    ids = [
        api.post("/v1/measurements", json={"lobby_id": room, "spec": {}}).json()["id"]
        for _ in range(3)
    ]
    api.patch(f"/v1/measurements/{ids[1]}", json={"expected_version": 1, "state": "analyzing"})
    listed = api.get("/v1/measurements", params={"state": "scheduled"}).json()
    assert [m["id"] for m in listed] == [ids[0], ids[2]]
    both = api.get("/v1/measurements", params=[("state", "scheduled"), ("state", "analyzing")])
    assert [m["id"] for m in both.json()] == ids
    assert api.get("/v1/measurements", params={"state": "nonsense"}).status_code == 422
