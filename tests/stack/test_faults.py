"""``kill -9`` of each part of a running ``sonalyze up`` in the middle of a demo cycle.

One stack, with a second gateway beside the one ``sonalyze up`` runs: the host and one
microphone are on the first, two microphones on the second. In turn, storage, the lobby,
measurement and simulation services, the first gateway and the embedded Postgres are killed
with SIGKILL while the cycle runs (during the uploads, or during the simulation for the
simulation service). Each time the cycle completes with the room's numbers, every phone saw
every event of its lobby in order and once, storage holds every recording whole, the lobby is
back where a new measurement can start, and the supervisor has put a new process in the dead
one's place with every service ready, without a hand on it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from sonalyze import demo
from sonalyze.client import Client
from sonalyze.stack.postgres import postmaster_pid
from tests.conftest import free_port
from tests.gateway.conftest import wait_ready
from tests.stack.test_up import Stack, sonalyze_up, start

pytestmark = pytest.mark.stack
# What is killed, and at the start of which step of the cycle (its progress line).
KILLS = [
    ("storage", "measuring"),
    ("lobby", "measuring"),
    ("measurement", "measuring"),
    ("measurement", "uploaded"),  # its analysis run dies with it
    ("postgres", "measuring"),
    ("gateway", "measuring"),
    ("simulation", "analysed"),
]
SERVICES_BEHIND_THE_GATEWAY = ("storage", "lobby", "measurement", "simulation")
HEAL_S = 120  # how long the supervisor may take to have every service ready again


@dataclass
class Running:
    stack: Stack
    urls: dict[str, str]
    data_dir: Path
    second_gateway: str
    token: str

    def pid_of(self, part: str) -> int:
        if part == "postgres":
            pid = postmaster_pid(self.data_dir)
            assert pid is not None, "the embedded Postgres runs"
            return pid
        children = psutil.Process(self.stack.process.pid).children()
        (pid,) = [c.pid for c in children if f"sonalyze_{part}" in " ".join(c.cmdline())]
        return pid

    def storage(self, path: str) -> Any:
        response = httpx.get(
            f"{self.urls['storage']}/v1{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/v1/ws"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    port, data_dir = free_port(), tmp_path_factory.mktemp("faults") / "pg"
    # An analysis whose process died is run again once it has not reported for a while (5
    # minutes by default): here 10 s, looked for every 2 s.
    quick = {"SONALYZE_ANALYSIS_STALE_S": "10", "SONALYZE_RECONCILE_EVERY_S": "2"}
    with sonalyze_up("--port", str(port), "--data-dir", str(data_dir), env=quick) as stack:
        urls = start(stack, port)
        token = data_dir.with_name("pg.internal-token").read_text()
        secret = data_dir.with_name("pg.device-token-secret").read_text().strip()
        second_port = free_port()
        env = {
            **os.environ,
            "SONALYZE_HOST": "127.0.0.1",
            "SONALYZE_PORT": str(second_port),
            "SONALYZE_INTERNAL_TOKEN": token,
            "SONALYZE_DEVICE_TOKEN_SECRETS": f'["{secret}"]',
            "SONALYZE_PARENT_PID": str(os.getpid()),
            **{f"SONALYZE_{s.upper()}_URL": urls[s] for s in SERVICES_BEHIND_THE_GATEWAY},
        }
        second = subprocess.Popen([sys.executable, "-m", "sonalyze_gateway"], env=env)
        try:
            second_url = f"http://127.0.0.1:{second_port}"
            wait_ready(second_url, timeout=90)
            yield Running(stack, urls, data_dir, second_url, token)
        finally:
            second.terminate()
            second.wait(30)


@pytest.mark.parametrize(("part", "step"), KILLS, ids=[f"{p}-{s}" for p, s in KILLS])
def test_a_demo_cycle_rides_out_a_kill_9_of(part: str, step: str, running: Running) -> None:
    killed: list[int] = []

    def progress(line: str) -> None:
        if line.startswith(step) and not killed:
            killed.append(running.pid_of(part))
            os.kill(killed[0], signal.SIGKILL)

    first, second = (ws(running.urls["gateway"]), ws(running.second_gateway))

    async def scenario() -> tuple[list[demo.Row], list[Client], int]:
        async with Client(first) as host:
            phones = [Client(first), Client(second), Client(second)]
            try:
                for phone in phones:
                    await phone.connect()
                rows = await asyncio.wait_for(demo.cycle(host, phones, progress), 900)
                lobby = f"/lobbies/{host.events[-1].lobby}"
                for _ in range(HEAL_S):  # its move back to idle may be on its way
                    if running.storage(lobby)["workflow_state"] in {"idle", "ready"}:
                        break
                    await asyncio.sleep(1)
                head = running.storage(lobby)["last_seq"]
                for client in (host, *phones):
                    await client.wait_for_seq(head, within_s=120)
                return rows, [host, *phones], head
            finally:
                for phone in phones:
                    await phone.close()

    rows, clients, head = asyncio.run(scenario())
    assert killed, f"the {part} was killed during the cycle"

    for row in rows:
        if 500 <= row.band <= 2000:
            assert row.measured["T30"] is not None
            assert abs(row.measured["T30"] / row.truth["T30"] - 1) < 0.1, row

    lobby = clients[0].events[-1].lobby
    logged = [e["seq"] for e in running.storage(f"/lobbies/{lobby}/events")]
    logged = logged[:head]  # what they waited for (presence may change on)
    assert logged == list(range(1, len(logged) + 1))
    for client in clients:
        snapshot = next(e.seq for e in client.events if e.type == "lobby.state")
        seen = [e.seq for e in client.events if e.type != "lobby.state" and e.seq <= head]
        assert seen == logged[snapshot:], "every event after its snapshot, in order, once"

    assert running.storage(f"/lobbies/{lobby}")["workflow_state"] in {"idle", "ready"}
    (measurement,) = running.storage(f"/lobbies/{lobby}/measurements")
    recordings = running.storage(f"/measurements/{measurement['id']}/recordings")
    assert len(recordings) == len(demo.MICROPHONES)
    assert {r["state"] for r in recordings} == {"complete"}, recordings

    assert running.stack.process.poll() is None, "sonalyze up runs on"
    assert running.pid_of(part) != killed[0], "a new process took the dead one's place"
    for url in (*running.urls.values(), running.second_gateway):
        wait_ready(url, timeout=HEAL_S)
