"""The worker entry point, run as the runners run it (``python -m sonalyze_simulation.worker``
with the job and storage in its environment), against a real storage service."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from sonalyze.simulation_api import SimulationRequest
from sonalyze_simulation.simulate import simulate
from tests.conftest import TOKEN, free_port
from tests.simulation.test_request import request
from tests.storage.helpers import lobby

EXIT_OK, EXIT_RETRY, EXIT_FAILED = 0, 1, 2


def run_worker(job_id: str, storage_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "SONALYZE_JOB_ID": job_id,
        "SONALYZE_STORAGE_URL": storage_url,
        "SONALYZE_INTERNAL_TOKEN": TOKEN,
        "SONALYZE_CHUNK_BYTES": str(64 * 1024),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "sonalyze_simulation.worker"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def queue(api: httpx.Client, spec: dict[str, Any], lobby_id: str | None = None) -> str:
    body = {"client_request_id": f"test-{os.urandom(4).hex()}", "spec": spec, "lobby_id": lobby_id}
    response = api.post("/v1/simulation-jobs", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_worker_runs_its_job_and_stores_responses_result_and_progress(
    api: httpx.Client, storage_url: str
) -> None:
    lobby_id = lobby(api)["id"]
    spec = request(receivers=[[3.8, 2.9, 1.2], [2.5, 2.0, 1.6]])
    job_id = queue(api, spec, lobby_id)

    done = run_worker(job_id, storage_url)

    assert done.returncode == EXIT_OK, done.stderr
    job = api.get(f"/v1/simulation-jobs/{job_id}").json()
    assert (job["state"], job["progress"], job["attempts"], job["error"]) == (
        "succeeded", 1.0, 1, None,
    )  # fmt: skip
    direct, responses = simulate(SimulationRequest.model_validate(spec))
    result = job["result"]
    assert result["eyring"] == pytest.approx(direct["eyring"])
    for pair, expected in zip(result["responses"], direct["responses"], strict=True):
        assert pair["parameters"]["T30"] == pytest.approx(expected["parameters"]["T30"])
        stored = api.get(f"/v1/blobs/{pair['blob_id']}/content")
        samples, fs = sf.read(io.BytesIO(stored.content), dtype="float32")
        assert fs == spec["sample_rate"]
        ir = responses[pair["receiver"]][pair["source"]]
        np.testing.assert_allclose(samples, ir.astype(np.float32), rtol=0, atol=0)
    log = api.get(f"/v1/lobbies/{lobby_id}/events").json()
    kinds = [e["type"] for e in log]
    assert kinds[-1] == "simulation.result" and kinds.count("simulation.progress") >= 3
    progress = [e["payload"]["progress"] for e in log if e["type"] == "simulation.progress"]
    assert progress == sorted(progress) and progress[0] == 0.0
    final = log[-1]["payload"]
    assert (final["state"], final["error"]) == ("succeeded", None)
    assert final["summary"]["average"]["T30"]["count"] == [2] * len(result["bands"])
    assert "responses" not in final["summary"], "the lobby gets the summary, not every pair"


def test_a_request_that_cannot_be_simulated_fails_for_good_with_the_reason(
    api: httpx.Client, storage_url: str
) -> None:
    lobby_id = lobby(api)["id"]
    job_id = queue(api, request(materials={"default": "no_such_material"}), lobby_id)

    done = run_worker(job_id, storage_url)

    assert done.returncode == EXIT_FAILED
    job = api.get(f"/v1/simulation-jobs/{job_id}").json()
    assert job["state"] == "failed"
    assert "materials.east: unknown material 'no_such_material'" in job["error"]
    final = api.get(f"/v1/lobbies/{lobby_id}/events").json()[-1]
    assert (final["type"], final["payload"]["state"]) == ("simulation.result", "failed")


def test_a_worker_for_an_ended_job_does_nothing(api: httpx.Client, storage_url: str) -> None:
    job_id = queue(api, request())
    url = f"/v1/simulation-jobs/{job_id}"
    assert api.patch(url, json={"expected_version": 1, "state": "cancelled"}).status_code == 200

    done = run_worker(job_id, storage_url)

    assert done.returncode == EXIT_OK
    job = api.get(url).json()
    assert (job["state"], job["attempts"], job["version"]) == ("cancelled", 0, 2)


def test_a_worker_that_cannot_reach_storage_asks_to_be_retried() -> None:
    done = run_worker(
        "6a1c2f3e-0000-4000-8000-00000000beef", f"http://127.0.0.1:{free_port()}",
        SONALYZE_STORAGE_TIMEOUT_S="2",
    )  # fmt: skip
    assert done.returncode == EXIT_RETRY
    assert "not claimed" in done.stderr


def test_a_result_storage_refuses_fails_the_job_instead_of_retrying(
    api: httpx.Client, storage_url: str
) -> None:
    """Chunks larger than storage takes are refused the same way on every attempt."""
    job_id = queue(api, request(sample_rate=48_000))

    done = run_worker(job_id, storage_url, SONALYZE_CHUNK_BYTES=str(1024 * 1024))

    assert done.returncode == EXIT_FAILED
    job = api.get(f"/v1/simulation-jobs/{job_id}").json()
    assert job["state"] == "failed"
    assert job["error"].startswith("storage refused the result: ")


def test_a_worker_refuses_a_job_whose_attempts_are_used_up(
    api: httpx.Client, storage_url: str
) -> None:
    """Whatever retried it (a runner, Kubernetes' backoff, a restart), a job gets
    SONALYZE_MAX_ATTEMPTS workers in all; the next one fails it with the last reason."""
    job_id = queue(api, request())
    url = f"/v1/simulation-jobs/{job_id}"
    for version in (1, 2):
        claim = {"expected_version": version, "state": "running", "new_attempt": True}
        assert api.patch(url, json=claim).status_code == 200
    note = {"expected_version": 3, "state": "running", "error": "attempt 2: OOMKilled"}
    assert api.patch(url, json=note).status_code == 200

    done = run_worker(job_id, storage_url, SONALYZE_MAX_ATTEMPTS="2")

    assert done.returncode == EXIT_FAILED
    job = api.get(url).json()
    assert (job["state"], job["attempts"]) == ("failed", 2)
    assert job["error"] == "gave up after 2 attempts: attempt 2: OOMKilled"
