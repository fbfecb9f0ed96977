"""Fixtures of the simulation tests: the service on the test's storage, restartable, and a way
to find a job's worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest

from sonalyze_simulation.app import create_app
from sonalyze_simulation.settings import SimulationSettings
from sonalyze_storage.settings import StorageSettings
from tests.conftest import TOKEN, free_port, serving, with_room_for_audio
from tests.gateway.conftest import wait_ready

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def storage_settings(storage_settings: StorageSettings) -> StorageSettings:
    """The shared test storage, with room for impulse responses."""
    return with_room_for_audio(storage_settings)


@pytest.fixture
def service(storage_url: str) -> Callable[..., AbstractContextManager[httpx.Client]]:
    """Start a simulation service on the test's storage (again, for a restart), with
    settings changed by keyword."""

    @contextmanager
    def start(**changes: object) -> Iterator[httpx.Client]:
        settings = SimulationSettings.model_validate(
            {
                "storage_url": storage_url,
                "internal_token": TOKEN,
                "heartbeat_s": 1.0,
                "stale_s": 5.0,
                "recover_every_s": 1.0,
                "worker_chunk_bytes": 64 * 1024,
                **changes,
            }
        )
        app = create_app(settings)
        with serving(app) as url, httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
            yield c

    return start


@pytest.fixture
def simulation(
    service: Callable[..., AbstractContextManager[httpx.Client]],
) -> Iterator[httpx.Client]:
    with service() as client:
        yield client


def worker_pids(job_id: str) -> list[int]:
    """The processes running the worker of ``job_id`` (found by their environment)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"SONALYZE_JOB_ID={job_id}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


@contextmanager
def service_process(storage_url: str) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """The simulation service as its own process (``python -m sonalyze_simulation``)."""
    port = free_port()
    env = {
        **os.environ,
        "SONALYZE_PORT": str(port),
        "SONALYZE_STORAGE_URL": storage_url,
        "SONALYZE_INTERNAL_TOKEN": TOKEN,
        "SONALYZE_HEARTBEAT_S": "1",
        "SONALYZE_STALE_S": "5",
        "SONALYZE_RECOVER_EVERY_S": "1",
        "SONALYZE_WORKER_CHUNK_BYTES": str(64 * 1024),
        "SONALYZE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "sonalyze_simulation"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
            yield process, client
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)
