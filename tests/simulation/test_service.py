"""The simulation service with its local runner, over real HTTP, a real storage service and
real worker subprocesses: submit, progress, result, cancel, retries, restarts, bad input."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sonalyze.simulation_api import SimulationRequest
from sonalyze_simulation.simulate import simulate
from tests.simulation.conftest import service_process, worker_pids
from tests.simulation.helpers import ended, running, slow_request, submit, wait_for
from tests.simulation.test_request import ABSORBENT, request
from tests.storage.helpers import lobby

Service = Callable[..., AbstractContextManager[httpx.Client]]


def kill_worker(job_id: str) -> None:
    deadline = time.monotonic() + 30
    while not (pids := worker_pids(job_id)):
        assert time.monotonic() < deadline, "no worker process found"
        time.sleep(0.05)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def samples(metrics: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == name
    }


def test_a_submitted_simulation_runs_reports_progress_and_matches_a_direct_run(
    simulation: httpx.Client, api: httpx.Client
) -> None:
    lobby_id = lobby(api)["id"]
    body = request(receivers=[[3.8, 2.9, 1.2], [2.0, 1.5, 1.7]])
    device_id = str(uuid.uuid4())

    submitted = submit(simulation, body, lobby_id, device_id=device_id)

    assert submitted.status_code == 202, submitted.text
    job = wait_for(simulation, submitted.json()["id"], ended)
    assert job["state"] == "succeeded", job["error"]
    direct, _ = simulate(SimulationRequest.model_validate(body))
    for pair, expected in zip(job["result"]["responses"], direct["responses"], strict=True):
        for key in ("T20", "T30", "EDT"):
            ours = pair["parameters"][key]
            assert ours == pytest.approx(expected["parameters"][key], rel=0.02), key
    wav = simulation.get(f"/v1/simulations/{job['id']}/responses/1.wav")
    assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
    assert simulation.get(f"/v1/simulations/{job['id']}/responses/2.wav").status_code == 404
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    kinds = [e["type"] for e in log]
    assert kinds[0] == "simulation.queued" and kinds[-1] == "simulation.result"
    assert log[0]["payload"] == {"job_id": job["id"], "device_id": device_id}
    assert "simulation.progress" in kinds


def test_the_same_client_request_id_answers_with_its_job(
    simulation: httpx.Client, api: httpx.Client
) -> None:
    lobby_id = lobby(api)["id"]
    body = {"client_request_id": "phone-1:42", "lobby_id": lobby_id, "request": request()}
    first = simulation.post("/v1/simulations", json=body)
    again = simulation.post("/v1/simulations", json=body)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = simulation.post("/v1/simulations", json={**body, "request": slow_request()})
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    wait_for(simulation, first.json()["id"], ended)
    kinds = [e["type"] for e in api.get(f"/v1/lobbies/{lobby_id}/events").json()]
    assert kinds.count("simulation.queued") == 1 and kinds.count("simulation.result") == 1


BAD_REQUESTS = [
    (
        {"room": {"shape": "shoebox", "dimensions": [5, -4, 3]}},
        "request.room.shoebox: Value error, dimensions must be positive",
    ),
    (
        {
            "room": {
                "shape": "polygon",
                "floor": [[0, 0], [6, 0], [6, 4], [3, -2], [0, 4]],
                "height": 3,
            }
        },
        "request.room.polygon: Value error, the floor plan crosses itself (edges 0 and 2)",
    ),
    ({"room": {"shape": "dome", "radius": 3}}, "request.room: Input tag 'dome' found"),
    (
        {"materials": {"default": "unobtainium"}},
        "request.materials.east: unknown material 'unobtainium'",
    ),
    ({"materials": {"default": {"absorption": [0.3] * 5}}}, "request.materials.default"),
    (
        {"materials": {"default": {"absorption": [1.3] * 6}}},
        "absorption coefficients must lie in [0, 1]",
    ),
    ({"materials": {"roof": ABSORBENT}}, "materials: no surface named ['roof']"),
    ({"sources": [[6.0, 1.0, 1.0]]}, "sources[0] [6.0, 1.0, 1.0] is not inside the room"),
    ({"receivers": [[1.0, 1.0, 3.0]]}, "receivers[0] [1.0, 1.0, 3.0] is not inside the room"),
    ({"sample_rate": 4000}, "request.sample_rate: Input should be greater than or equal to 8000"),
    ({"method": {"image_source_order": 500}}, "image_source_order must be 0 to 200, or auto"),
]


@pytest.mark.parametrize(("change", "message"), BAD_REQUESTS)
def test_a_bad_request_is_refused_naming_the_field_and_queues_nothing(
    simulation: httpx.Client, api: httpx.Client, snapshot, change: dict[str, Any], message: str
) -> None:
    lobby_id = lobby(api)["id"]
    before = snapshot()
    refused = submit(simulation, request(**change), lobby_id)
    assert refused.status_code in (400, 422), refused.text
    assert refused.json()["code"] == "bad_request"
    assert message in refused.json()["message"]
    assert snapshot() == before
    assert api.get("/v1/simulation-jobs").json() == []


def test_an_unknown_lobby_or_job_is_not_found(simulation: httpx.Client, snapshot) -> None:
    before = snapshot()
    refused = submit(simulation, request(), str(uuid.uuid4()))
    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert snapshot() == before
    missing = simulation.get(f"/v1/simulations/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_a_cancelled_simulation_stops_its_worker_and_tells_the_lobby(
    simulation: httpx.Client, api: httpx.Client
) -> None:
    lobby_id = lobby(api)["id"]
    job_id = submit(simulation, slow_request(), lobby_id).json()["id"]
    wait_for(simulation, job_id, running)

    cancelled = simulation.post(f"/v1/simulations/{job_id}/cancel")

    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    deadline = time.monotonic() + 10
    while worker_pids(job_id):
        assert time.monotonic() < deadline, "the worker is still running"
        time.sleep(0.05)
    final = api.get(f"/v1/lobbies/{lobby_id}/events").json()[-1]
    assert (final["type"], final["payload"]["state"]) == ("simulation.result", "cancelled")
    again = simulation.post(f"/v1/simulations/{job_id}/cancel")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert simulation.get(f"/v1/simulations/{job_id}").json()["state"] == "cancelled"


def test_a_crashed_worker_is_retried_and_the_job_completes(simulation: httpx.Client) -> None:
    job_id = submit(simulation, slow_request()).json()["id"]
    wait_for(simulation, job_id, running)

    kill_worker(job_id)

    again = wait_for(simulation, job_id, lambda j: j["attempts"] == 2 or ended(j))
    assert again["error"] == "attempt 1: the worker was killed by SIGKILL"
    job = wait_for(simulation, job_id, ended)
    assert (job["state"], job["attempts"], job["error"]) == ("succeeded", 2, None)
    metrics = simulation.get("/metrics").text
    assert samples(metrics, "sonalyze_simulation_retries_total") == {(): 1.0}


def test_a_worker_crashing_every_time_fails_the_job_with_the_reason(service: Service) -> None:
    with service(max_attempts=2) as simulation:
        job_id = submit(simulation, slow_request()).json()["id"]
        for attempt in (1, 2):
            wait_for(simulation, job_id, lambda j, a=attempt: running(j) and j["attempts"] == a)
            kill_worker(job_id)
        job = wait_for(simulation, job_id, ended)
    assert job["state"] == "failed"
    assert job["error"] == "the worker was killed by SIGKILL; gave up after 2 attempts"


def test_a_restart_mid_job_resumes_it_and_reports_the_result(
    service: Service, api: httpx.Client
) -> None:
    lobby_id = lobby(api)["id"]
    with service() as simulation:
        job_id = submit(simulation, slow_request(), lobby_id).json()["id"]
        wait_for(simulation, job_id, running)
    assert not worker_pids(job_id), "an orderly stop stops the workers"
    assert api.get(f"/v1/simulation-jobs/{job_id}").json()["state"] == "queued"

    with service() as simulation:
        job = wait_for(simulation, job_id, ended)

    assert (job["state"], job["attempts"]) == ("succeeded", 2)
    final = api.get(f"/v1/lobbies/{lobby_id}/events").json()[-1]
    assert (final["type"], final["payload"]["state"]) == ("simulation.result", "succeeded")


def test_a_job_whose_worker_vanished_is_run_again_by_recovery(
    service: Service, api: httpx.Client
) -> None:
    """A job left running by a worker that died with its host (no process, no heartbeat)."""
    job_id = api.post(
        "/v1/simulation-jobs", json={"client_request_id": "lost", "spec": request()}
    ).json()["id"]
    claimed = {"expected_version": 1, "state": "running", "new_attempt": True}
    assert api.patch(f"/v1/simulation-jobs/{job_id}", json=claimed).status_code == 200

    with service(heartbeat_s=0.3, stale_s=1.0) as simulation:
        again = wait_for(simulation, job_id, lambda j: j["attempts"] == 2)
        job = wait_for(simulation, job_id, ended)

    assert again["error"] == "attempt 1: its worker stopped reporting (1 s without a heartbeat)"
    assert (job["state"], job["attempts"]) == ("succeeded", 2)


def test_one_worker_runs_one_job_at_a_time_and_metrics_count_the_outcomes(
    simulation: httpx.Client,
) -> None:
    first = submit(simulation, slow_request()).json()["id"]
    second = submit(simulation, request()).json()["id"]
    wait_for(simulation, first, running)
    assert simulation.get(f"/v1/simulations/{second}").json()["state"] == "queued"
    simulation.post(f"/v1/simulations/{first}/cancel")
    assert wait_for(simulation, second, ended)["state"] == "succeeded"

    # The runner counts a job once its worker has exited, just after the job's outcome.
    deadline = time.monotonic() + 10
    while True:
        metrics = simulation.get("/metrics").text
        jobs = samples(metrics, "sonalyze_simulation_jobs_total")
        if len(jobs) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert jobs == {(("outcome", "cancelled"),): 1.0, (("outcome", "succeeded"),): 1.0}
    assert samples(metrics, "sonalyze_simulation_queue_duration_seconds_count") == {(): 2.0}
    assert samples(metrics, "sonalyze_simulation_run_duration_seconds_count") == {(): 2.0}


def test_a_killed_services_worker_stops_and_the_next_service_runs_the_job_again(
    storage_url: str, api: httpx.Client
) -> None:
    """The service process dies (SIGKILL) mid-job: its worker stops with it (nothing the
    service started outlives it), and the restarted service, finding the job without a
    heartbeat, runs it again."""
    lobby_id = lobby(api)["id"]
    with service_process(storage_url) as (process, simulation):
        job_id = submit(simulation, slow_request(), lobby_id).json()["id"]
        wait_for(simulation, job_id, running)
        workers = [psutil.Process(pid) for pid in worker_pids(job_id)]
        assert workers
        process.kill()
        process.wait(10)
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive, "the worker stops with its service"

    with service_process(storage_url) as (_, simulation):
        job = wait_for(simulation, job_id, ended)

    assert (job["state"], job["attempts"]) == ("succeeded", 2)
    final = api.get(f"/v1/lobbies/{lobby_id}/events").json()[-1]
    assert (final["type"], final["payload"]["state"]) == ("simulation.result", "succeeded")


def test_a_worker_running_past_the_deadline_is_stopped_and_its_job_failed(
    service: Service,
) -> None:
    with service(job_deadline_s=2) as simulation:
        job_id = submit(simulation, slow_request()).json()["id"]
        job = wait_for(simulation, job_id, ended)
        assert not worker_pids(job_id)
    assert (job["state"], job["error"]) == ("failed", "the worker ran past the deadline of 2 s")
