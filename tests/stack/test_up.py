"""``sonalyze up`` as a user runs it: separate processes, real Postgres, clean stop."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from sonalyze.stack.postgres import postmaster_pid
from tests.conftest import free_port, libpq
from tests.health import assert_healthy

pytestmark = pytest.mark.stack
SERVICES = {"gateway", "storage", "lobby", "measurement", "simulation"}


class Stack:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if match := re.fullmatch(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.seen))


@contextmanager
def sonalyze_up(*args: str, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``sonalyze up ARGS``, with ``env`` added to its environment (its services' settings)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sonalyze.cli", "up", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield Stack(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(stack: Stack, port: int) -> dict[str, str]:
    """Wait for the ready line and the service lines; returns service -> URL."""
    stack.wait_for(rf"ready: ws://127\.0\.0\.1:{port}/v1/ws", timeout=90)
    urls = {}
    for _ in SERVICES:
        match = stack.wait_for(r"(\w+) (http://127\.0\.0\.1:\d+)", timeout=5)
        urls[match[1]] = match[2]
    assert set(urls) == SERVICES
    assert urls["gateway"] == f"http://127.0.0.1:{port}"
    return urls


def test_up_serves_all_five_services_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "pg"
    with sonalyze_up("--port", str(port), "--data-dir", str(data_dir)) as stack:
        urls = start(stack, port)
        for url in urls.values():
            assert_healthy(url)
        # Internal APIs demand the token the stack generated; the public can't call them.
        assert httpx.post(f"{urls['storage']}/v1/devices").status_code == 401
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(30) == 0
        stack.wait_for("stopped", timeout=5)
    for url in urls.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/livez")
    assert not (data_dir / "postmaster.pid").exists(), "Postgres was stopped"


def test_up_stops_postgres_on_sighup_even_after_a_killed_run(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "pg"
    with sonalyze_up("--port", str(port), "--data-dir", str(data_dir)) as stack:
        start(stack, port)
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(30) == 0
    # A run killed with SIGKILL never lets go of the embedded server: its PID stays behind.
    killed = subprocess.Popen(["true"])
    killed.wait()
    (data_dir / ".handle_pids.json").write_text(json.dumps([killed.pid]))
    with sonalyze_up("--port", str(port), "--data-dir", str(data_dir)) as stack:
        start(stack, port)
        stack.process.send_signal(signal.SIGHUP)  # the terminal was closed
        assert stack.process.wait(30) == 0
    assert not (data_dir / "postmaster.pid").exists(), "Postgres was stopped"


def test_up_uses_an_external_database_and_stops_on_sigterm(empty_database: str) -> None:
    port = free_port()
    with sonalyze_up("--port", str(port), "--database-url", libpq(empty_database)) as stack:
        start(stack, port)
        stack.process.send_signal(signal.SIGTERM)
        assert stack.process.wait(30) == 0
    with psycopg.connect(libpq(empty_database)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"lobbies", "events", "alembic_version"} <= tables, "migrated"


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    with sonalyze_up_on_busy_port(tmp_path) as (stack, port):
        stack.wait_for(rf"error: port {port} is in use; choose another with --port", timeout=30)
        assert stack.process.wait(10) == 2


@contextmanager
def sonalyze_up_on_busy_port(tmp_path: Path) -> Iterator[tuple[Stack, int]]:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with sonalyze_up("--port", str(port), "--data-dir", str(tmp_path)) as stack:
            yield stack, port


def test_up_not_ready_in_time_says_which_and_how_to_wait_longer(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "pg"
    with sonalyze_up(
        "--port", str(port), "--data-dir", str(data_dir), "--ready-timeout", "0.1"
    ) as stack:
        stack.wait_for(
            r"error: not ready after 0\.1 s: .*; a busy machine may need longer: "
            r"--ready-timeout 180",
            timeout=90,
        )
        assert stack.process.wait(30) == 1
    assert postmaster_pid(data_dir) is None


def test_up_reports_an_unreachable_database_and_exits(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/sonalyze?host={tmp_path}"
    with sonalyze_up("--port", str(free_port()), "--database-url", url) as stack:
        stack.wait_for(r"error: the migrations failed \(see the lines above\)", timeout=60)
        assert stack.process.wait(10) == 1


def service_process(stack: Stack, name: str) -> psutil.Process:
    """The running process of one of the stack's services."""
    (process,) = [
        child
        for child in psutil.Process(stack.process.pid).children()
        if f"sonalyze_{name}" in child.cmdline()
    ]
    return process


def eventually_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, f"{url} not ready again"
        time.sleep(0.5)


def test_up_starts_a_killed_service_again_and_its_workers_die_with_it(tmp_path: Path) -> None:
    port = free_port()
    with sonalyze_up("--port", str(port), "--data-dir", str(tmp_path / "pg")) as stack:
        urls = start(stack, port)
        measurement = service_process(stack, "measurement")
        workers = measurement.children(recursive=True)  # its analysis pool
        assert workers, "the analysis pool starts with the service"
        measurement.kill()
        stack.wait_for(r"measurement exited with code -9; starting it again in 0\.5 s", 30)
        stack.wait_for(r"measurement is ready again", 120)
        assert_healthy(urls["measurement"])
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, "no analysis worker outlives its service"
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(30) == 0


def test_up_starts_a_killed_postgres_again_and_storage_recovers(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "pg"
    with sonalyze_up("--port", str(port), "--data-dir", str(data_dir)) as stack:
        urls = start(stack, port)
        token_path = stack.wait_for(r"internal token: (\S+) .*", timeout=5)[1]
        token = Path(token_path).read_text()
        pid = postmaster_pid(data_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        stack.wait_for(r"the embedded Postgres stopped; starting it again in 0\.5 s", 30)
        stack.wait_for(r"the embedded Postgres is running again", 120)
        eventually_ready(urls["storage"], timeout=60)
        created = httpx.post(
            f"{urls['storage']}/v1/devices", headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201, created.text
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(30) == 0
    assert postmaster_pid(data_dir) is None


def test_nothing_outlives_a_killed_sonalyze_up(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "pg"
    with sonalyze_up("--port", str(port), "--data-dir", str(data_dir)) as stack:
        start(stack, port)
        started = psutil.Process(stack.process.pid).children(recursive=True)
        postmaster = postmaster_pid(data_dir)
        assert postmaster is not None
        started.append(psutil.Process(postmaster))
        stack.process.kill()  # SIGKILL: no clean-up runs in it
        stack.process.wait()
        _, alive = psutil.wait_procs(started, timeout=60)
    assert not alive, [process.cmdline() for process in alive]
    assert postmaster_pid(data_dir) is None


def test_demo_measures_and_simulates_its_virtual_room(tmp_path: Path) -> None:
    """The README's first steps: sonalyze up, then sonalyze demo."""
    port = free_port()
    with sonalyze_up("--port", str(port), "--data-dir", str(tmp_path / "pg")) as stack:
        start(stack, port)
        url = f"ws://127.0.0.1:{port}/v1/ws"
        demo = subprocess.run(
            [sys.executable, "-m", "sonalyze.cli", "demo", "--url", url, "--json"],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert demo.returncode == 0, demo.stderr
        assert "analysed; simulating the same room" in demo.stderr, "it says how it goes"
        table = json.loads(demo.stdout)
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(30) == 0
    bands = {row["band_hz"]: row for row in table["bands"]}
    for band in (500.0, 1000.0, 2000.0):
        row = bands[band]
        assert abs(row["measured"]["T30"] / row["truth"]["T30"] - 1) <= 0.10, row
    for band in (500.0, 1000.0):
        assert bands[band]["simulated"]["T30"] is not None
        assert 0 < bands[band]["eyring_s"] < bands[band]["sabine_s"]


def test_demo_can_start_a_stack_of_its_own_and_stops_it() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "sonalyze.cli", "demo", "--start", "--json"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    started = re.search(r"starting the system \(sonalyze up --port (\d+)\) in (\S+)", demo.stderr)
    assert started, demo.stderr
    row = next(r for r in json.loads(demo.stdout)["bands"] if r["band_hz"] == 1000.0)
    assert abs(row["measured"]["T30"] / row["truth"]["T30"] - 1) <= 0.10, row
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{started[1]}/livez")  # stopped after
    assert not Path(started[2]).exists(), "its temporary directory is gone"


def test_demo_without_a_stack_says_how_to_start_one() -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/ws"
    demo = subprocess.run(
        [sys.executable, "-m", "sonalyze.cli", "demo", "--url", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 1
    assert f"error: cannot reach a gateway at {url}" in demo.stderr
    assert "start one: sonalyze up" in demo.stderr
