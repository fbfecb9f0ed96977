"""Analyses and simulation jobs: lifecycle, progress, events, idempotent creation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import TOKEN
from tests.storage.helpers import events, lobby

UNKNOWN = "00000000-0000-0000-0000-00000000beef"
SPEC = {"room": {"x": 5.0, "y": 4.0, "z": 2.5}, "sources": 1}


def measurement(api: httpx.Client, lobby_id: str) -> str:
    response = api.post("/v1/measurements", json={"lobby_id": lobby_id, "spec": {}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def analysis(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/analyses", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def job(api: httpx.Client, request_id: str = "req-1", **extra: Any) -> httpx.Response:
    return api.post(
        "/v1/simulation-jobs", json={"client_request_id": request_id, "spec": SPEC, **extra}
    )


# Analyses --------------------------------------------------------------------------------------


def test_create_analysis_with_and_without_measurement(api: httpx.Client) -> None:
    measurement_id = measurement(api, lobby(api)["id"])
    linked = analysis(api, measurement_id=measurement_id, params={"window": "hann"})
    assert linked["measurement_id"] == measurement_id
    assert linked["params"] == {"window": "hann"}
    assert (linked["state"], linked["progress"], linked["version"]) == ("queued", 0.0, 1)
    assert (linked["result"], linked["error"]) == (None, None)
    alone = analysis(api)
    assert (alone["measurement_id"], alone["params"]) == (None, {})
    assert api.get(f"/v1/analyses/{linked['id']}").json() == linked


def test_a_measurements_analyses_are_listed_newest_first(api: httpx.Client) -> None:
    measurement_id = measurement(api, lobby(api)["id"])
    first, second = (analysis(api, measurement_id=measurement_id) for _ in range(2))
    analysis(api)  # another measurement's, or none's
    listed = api.get(f"/v1/measurements/{measurement_id}/analyses").json()
    assert [a["id"] for a in listed] == [second["id"], first["id"]]
    assert api.get(f"/v1/measurements/{UNKNOWN}/analyses").status_code == 404


def test_analysis_of_unknown_measurement_is_404_and_changes_nothing(
    api: httpx.Client, snapshot
) -> None:
    before = snapshot()
    response = api.post("/v1/analyses", json={"measurement_id": UNKNOWN})
    assert response.status_code == 404
    assert f"measurement {UNKNOWN} not found" in response.json()["detail"]
    assert snapshot() == before
    assert api.get(f"/v1/analyses/{UNKNOWN}").status_code == 404


def test_analysis_progress_then_success_stores_result(api: httpx.Client) -> None:
    url = f"/v1/analyses/{analysis(api)['id']}"
    running = api.patch(url, json={"expected_version": 1, "state": "running", "progress": 0.4})
    assert running.status_code == 200, running.text
    assert (running.json()["state"], running.json()["progress"], running.json()["version"]) == (
        "running",
        0.4,
        2,
    )
    result = {"rt60": [0.61, 0.58], "bands": [500, 1000]}
    done = api.patch(url, json={"expected_version": 2, "state": "succeeded", "result": result})
    assert done.status_code == 200, done.text
    read = api.get(url).json()
    assert (read["state"], read["progress"], read["version"]) == ("succeeded", 1.0, 3)
    assert read["result"] == result


def test_analysis_events_go_to_the_measurements_lobby(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    created = analysis(api, measurement_id=measurement(api, lobby_id))
    response = api.patch(
        f"/v1/analyses/{created['id']}",
        json={"expected_version": 1, "state": "running", "events": events(2, "analysis.progress")},
    )
    assert response.status_code == 200, response.text
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    assert [(e["seq"], e["type"]) for e in log] == [
        (1, "analysis.progress"),
        (2, "analysis.progress"),
    ]


def test_events_on_analysis_without_measurement_are_422_and_change_nothing(
    api: httpx.Client, snapshot
) -> None:
    created = analysis(api)
    before = snapshot()
    response = api.patch(
        f"/v1/analyses/{created['id']}",
        json={"expected_version": 1, "state": "running", "events": events(1)},
    )
    assert response.status_code == 422
    assert "no lobby" in response.json()["detail"]
    assert snapshot() == before
    assert api.get(f"/v1/analyses/{created['id']}").json() == created


@pytest.mark.parametrize("final", ["succeeded", "failed", "cancelled"])
def test_final_analysis_refuses_changes(api: httpx.Client, snapshot, final: str) -> None:
    url = f"/v1/analyses/{analysis(api)['id']}"
    assert api.patch(url, json={"expected_version": 1, "state": final}).status_code == 200
    before = snapshot()
    again = api.patch(url, json={"expected_version": 2, "state": "running", "progress": 0.1})
    assert again.status_code == 409
    assert f"is {final} and can no longer change" in again.json()["detail"]
    assert snapshot() == before


def test_failed_analysis_keeps_its_error(api: httpx.Client) -> None:
    url = f"/v1/analyses/{analysis(api)['id']}"
    failed = api.patch(url, json={"expected_version": 1, "state": "failed", "error": "no sweep"})
    assert failed.status_code == 200
    assert (failed.json()["state"], failed.json()["error"]) == ("failed", "no sweep")


# Simulation jobs -------------------------------------------------------------------------------


def test_create_job_queues_it(api: httpx.Client) -> None:
    response = job(api)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["client_request_id"], created["lobby_id"], created["spec"]) == (
        "req-1",
        None,
        SPEC,
    )
    assert (created["state"], created["progress"], created["version"]) == ("queued", 0.0, 1)
    assert api.get(f"/v1/simulation-jobs/{created['id']}").json() == created
    assert api.get(f"/v1/simulation-jobs/{UNKNOWN}").status_code == 404


def test_same_request_again_answers_200_with_the_same_job(api: httpx.Client, snapshot) -> None:
    lobby_id = lobby(api)["id"]
    first = job(api, lobby_id=lobby_id, events=events(1, "simulation.queued"))
    assert first.status_code == 201
    before = snapshot()
    again = job(api, lobby_id=lobby_id, events=events(1, "simulation.queued"))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert snapshot() == before, "no second job and no second event"


@pytest.mark.parametrize(
    "change",
    [{"spec": {"room": "other"}}, {"lobby": True}],
    ids=["other-spec", "other-lobby"],
)
def test_same_request_id_for_another_request_is_409_and_changes_nothing(
    api: httpx.Client, snapshot, change: dict[str, Any]
) -> None:
    assert job(api).status_code == 201
    body: dict[str, Any] = {"client_request_id": "req-1", "spec": SPEC}
    if change.get("lobby"):
        body["lobby_id"] = lobby(api)["id"]
    else:
        body.update(change)
    before = snapshot()
    refused = api.post("/v1/simulation-jobs", json=body)
    assert refused.status_code == 409
    assert "req-1 was used for another request" in refused.json()["detail"]
    assert snapshot() == before


def test_job_for_unknown_lobby_is_404_and_events_need_a_lobby(api: httpx.Client, snapshot) -> None:
    before = snapshot()
    unknown = job(api, lobby_id=UNKNOWN)
    assert unknown.status_code == 404
    assert f"lobby {UNKNOWN} not found" in unknown.json()["detail"]
    lobbyless = job(api, "req-2", events=events(1))
    assert lobbyless.status_code == 422
    assert snapshot() == before


def test_list_filters_by_state(api: httpx.Client) -> None:
    ids = [job(api, f"req-{i}").json()["id"] for i in range(4)]
    api.patch(f"/v1/simulation-jobs/{ids[1]}", json={"expected_version": 1, "state": "running"})
    api.patch(f"/v1/simulation-jobs/{ids[2]}", json={"expected_version": 1, "state": "failed"})

    def listed(*states: str) -> list[str]:
        response = api.get("/v1/simulation-jobs", params={"state": list(states)})
        assert response.status_code == 200, response.text
        return [j["id"] for j in response.json()]

    assert listed() == ids, "all jobs, oldest first"
    assert listed("queued") == [ids[0], ids[3]]
    assert listed("queued", "running") == [ids[0], ids[1], ids[3]]
    assert listed("succeeded") == []
    assert api.get("/v1/simulation-jobs", params={"state": "done"}).status_code == 422


def test_job_lifecycle_queued_running_succeeded(api: httpx.Client) -> None:
    lobby_id = lobby(api)["id"]
    created = job(api, lobby_id=lobby_id).json()
    url = f"/v1/simulation-jobs/{created['id']}"
    running = api.patch(
        url,
        json={
            "expected_version": 1,
            "state": "running",
            "progress": 0.25,
            "events": events(1, "simulation.progress"),
        },
    )
    assert running.status_code == 200, running.text
    assert (running.json()["state"], running.json()["progress"]) == ("running", 0.25)
    more = api.patch(url, json={"expected_version": 2, "state": "running", "progress": 0.75})
    assert more.json()["progress"] == 0.75
    result = {"ir": "blob-id", "rt60": 0.5}
    done = api.patch(url, json={"expected_version": 3, "state": "succeeded", "result": result})
    assert done.status_code == 200, done.text
    read = api.get(url).json()
    assert (read["state"], read["progress"], read["version"], read["result"]) == (
        "succeeded",
        1.0,
        4,
        result,
    )
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    assert [e["type"] for e in log] == ["simulation.progress"]


def test_attempts_are_counted_and_the_first_start_and_the_end_noted(api: httpx.Client) -> None:
    created = job(api).json()
    url = f"/v1/simulation-jobs/{created['id']}"
    assert (created["attempts"], created["started_at"], created["finished_at"]) == (0, None, None)
    first = api.patch(url, json={"expected_version": 1, "state": "running", "new_attempt": True})
    assert first.json()["attempts"] == 1 and first.json()["started_at"] is not None
    progress = api.patch(url, json={"expected_version": 2, "state": "running", "progress": 0.5})
    assert progress.json()["attempts"] == 1, "a progress report is not an attempt"
    requeued = api.patch(url, json={"expected_version": 3, "state": "queued", "error": "crashed"})
    assert requeued.json()["finished_at"] is None
    second = api.patch(url, json={"expected_version": 4, "state": "running", "new_attempt": True})
    assert second.json()["attempts"] == 2
    assert second.json()["started_at"] == first.json()["started_at"], "the first start stays"
    done = api.patch(url, json={"expected_version": 5, "state": "succeeded", "result": {}})
    assert done.json()["finished_at"] >= done.json()["started_at"]


def test_a_job_takes_the_id_its_creator_chose_and_its_events_may_name_it(
    api: httpx.Client, snapshot
) -> None:
    lobby_id = lobby(api)["id"]
    job_id = str(uuid.uuid4())
    news = [{"type": "simulation.queued", "payload": {"job_id": job_id, "device_id": None}}]
    body = {"id": job_id, "client_request_id": "r-1", "lobby_id": lobby_id, "spec": {"a": 1}}
    created = api.post("/v1/simulation-jobs", json={**body, "events": news})
    assert created.status_code == 201 and created.json()["id"] == job_id
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    assert [(e["type"], e["payload"]["job_id"]) for e in log] == [("simulation.queued", job_id)]
    before = snapshot()
    taken = api.post("/v1/simulation-jobs", json={**body, "client_request_id": "r-2"})
    assert taken.status_code == 409 and "exists already" in taken.json()["detail"]
    assert snapshot() == before


def test_cancelled_job_is_final(api: httpx.Client, snapshot) -> None:
    url = f"/v1/simulation-jobs/{job(api).json()['id']}"
    assert api.patch(url, json={"expected_version": 1, "state": "cancelled"}).status_code == 200
    before = snapshot()
    again = api.patch(url, json={"expected_version": 2, "state": "running"})
    assert again.status_code == 409
    assert "is cancelled and can no longer change" in again.json()["detail"]
    assert snapshot() == before


def test_stale_job_version_is_409_and_changes_nothing(api: httpx.Client, snapshot) -> None:
    url = f"/v1/simulation-jobs/{job(api).json()['id']}"
    assert api.patch(url, json={"expected_version": 1, "state": "running"}).status_code == 200
    before = snapshot()
    stale = api.patch(url, json={"expected_version": 1, "state": "running", "progress": 0.9})
    assert stale.status_code == 409
    assert "version 2, not 1" in stale.json()["detail"]
    assert snapshot() == before
    assert api.get(url).json()["progress"] == 0.0


def test_events_on_job_without_lobby_are_422_and_change_nothing(
    api: httpx.Client, snapshot
) -> None:
    url = f"/v1/simulation-jobs/{job(api).json()['id']}"
    before = snapshot()
    refused = api.patch(url, json={"expected_version": 1, "state": "running", "events": events(1)})
    assert refused.status_code == 422
    assert snapshot() == before


def test_concurrent_identical_requests_create_one_job(api: httpx.Client, storage_url: str) -> None:
    body = {"client_request_id": "race", "spec": SPEC}

    async def run() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=storage_url, headers=headers, timeout=30) as c:
            return await asyncio.gather(
                *(c.post("/v1/simulation-jobs", json=body) for _ in range(10))
            )

    responses = asyncio.run(run())
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert [j["client_request_id"] for j in api.get("/v1/simulation-jobs").json()] == ["race"]
