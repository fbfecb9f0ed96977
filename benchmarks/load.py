"""Load benchmark: many lobbies of virtual phones running whole measurement cycles at once.

Starts ``sonalyze up`` (or uses the stack at ``--url``) and makes ``--lobbies`` lobbies of
``--phones`` phones (:class:`sonalyze.client.Client`, all in this process): the host is the
speaker, the others microphones. Each lobby is made as a phone app makes it (``lobby.create``,
``lobby.join``, ``role.assign``, ``role.update`` ready) and then runs measurement cycles for
``--minutes``, one after another: the host sends ``measurement.start`` (a ``--sweep-seconds``
sweep); every microphone waits for ``measurement.started`` and then until its recording would
have ended (``start_at_ms`` + ``recording_seconds``), as a phone does, and uploads its recording
in ``--chunk-bytes`` frames; the host waits for ``analysis.result`` and for the lobby to be
ready again, and starts the next one. Lobbies start their first cycle spread over one cycle's
time. A cycle begun before the time is up runs to its end. The recordings are made once, in the
anchor's warm-up cycle (the sweep through the impulse responses of :mod:`sonalyze.demo`'s
virtual room; a microphone beyond its three gets one of theirs), so that the load is the
system's and not this process's numpy.

Before the load one lobby runs ``--anchor-cycles`` cycles alone on the same stack (after one
cycle of warm-up): the anchor. The machine is shared and often busy, so every latency under
load is also given as a ratio to the anchor's, and the throughput as a ratio to one lobby's.

It reports:

- cycles completed and failed, measurements a minute, recordings, chunks and MB a second;
- p50 and p99 (and max) of each command's acknowledgement by kind (the time ``Client.command``
  took: retries after ``rate_limited`` or ``unavailable`` included), of each upload (from
  ``measurement.upload`` to the final chunk's acknowledgement), of each analysis (from the last
  chunk acknowledged to ``analysis.result`` at the host) and of each cycle (``measurement.start``
  to the lobby ready again);
- lost events: every phone's events of its lobby, after its snapshot (the first
  ``lobby.state``), must be seq snapshot+1 .. the head of storage's log with none missing and
  none out of order, each with the type and payload storage holds; the client drops an event it
  holds already, so a repeat shows as nothing, a reordering as a gap;
- lost chunks: every upload ended with a ``complete`` acknowledgement, and storage holds every
  recording sent as ``complete`` with exactly the bytes sent, and every measurement
  ``completed``;
- every lobby's workflow at the end (``ready``: none stuck), the clients' reconnects, the
  services' 5xx answers and the gateway's rate limiting, refusals and slow-consumer closes
  (from their ``/metrics``);
- CPU seconds (and cores busy) and memory (PSS: shared pages divided among the processes that
  share them, so a group's sum is honest; at the start, peak and end of the load) of each
  service, of its child processes on a line of their own (the measurement service's analysis
  workers), of Postgres (the postmaster and its backends: how many there were says how often
  storage opened a connection), of ``sonalyze up`` and of this client, sampled every second
  with psutil; a process that ends between two samples loses its last second;
- where the services' time went: the mean time of each route (and of each command at the
  gateway) that took most in all, from their ``/metrics``.

The stack's limits are raised where one address running many phones would hit them
(``SONALYZE_JOIN_FAILURES``: every join comes from 127.0.0.1 and counts as failed until it
succeeds; ``SONALYZE_MAX_MEMBERS`` for lobbies over 10), and printed. ``--set NAME=VALUE`` sets
any other setting of the stack (``--set SONALYZE_ANALYSIS_WORKERS=2``). With ``--url`` the
stack's own limits apply; per-service figures and storage's checks need it to run on this
machine as ``sonalyze up``.

Exits 1 if an event or a chunk was lost, a cycle failed, or a lobby was left stuck.

Run from the workspace root (not in CI):

    python3.11 -m uv run python benchmarks/load.py                                # 100 x 5, 5 min
    python3.11 -m uv run python benchmarks/load.py --lobbies 5 --minutes 0.5      # quick
    python3.11 -m uv run python benchmarks/load.py --url ws://127.0.0.1:8000/v1/ws --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import psutil
from pydantic import BaseModel
from stack import sonalyze_up

from sonalyze import demo
from sonalyze.client import Client, CommandFailed
from sonalyze.service import quiet_garbage_collector
from sonalyze.stack.postgres import default_data_dir, postmaster_pid
from sonalyze.storage_api import EventRead
from sonalyze.storage_client import StorageClient

SERVICES = ("gateway", "lobby", "measurement", "simulation", "storage")
GROUPS = (*SERVICES, "postgres", "sonalyze up", "client")
Say = Callable[[str], None]


# Figures ----------------------------------------------------------------------------------------


@dataclass
class Timings:
    """What one phase measured: latencies in ms (cycles in s)."""

    commands: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: Counter[str] = field(default_factory=Counter)
    uploads: list[float] = field(default_factory=list)
    analyses: list[float] = field(default_factory=list)
    cycles: list[float] = field(default_factory=list)
    chunks: int = 0
    bytes: int = 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


class TimedClient(Client):
    """A phone whose every command's time to its acknowledgement goes into ``timings``."""

    def __init__(self, url: str, timings: Timings | None) -> None:
        super().__init__(url)
        self.timings = timings

    async def command(
        self,
        kind: str,
        payload: dict[str, Any] | BaseModel | None = None,
        *,
        within_s: float = 60.0,
    ) -> Any:
        begun = time.perf_counter()
        try:
            ack = await super().command(kind, payload, within_s=within_s)
        except CommandFailed:
            if self.timings is not None:
                self.timings.refused[kind] += 1
            raise
        if self.timings is not None:
            self.timings.commands[kind].append(1000 * (time.perf_counter() - begun))
        return ack


# The phones -------------------------------------------------------------------------------------


class Recordings:
    """Each microphone's recording of a measurement's sweep in the demo's virtual room, made
    once per sweep (every cycle of the run uses the same sweep)."""

    def __init__(self, microphones: int) -> None:
        self._microphones = microphones
        self._made: dict[str, list[bytes]] = {}
        self._lock = asyncio.Lock()

    async def of(self, started: dict[str, Any]) -> list[bytes]:
        key = json.dumps(started["sweep"], sort_keys=True)
        async with self._lock:
            if key not in self._made:
                made = await asyncio.to_thread(
                    _record, started["sweep"], started["recording_seconds"]
                )
                self._made[key] = [made[i % len(made)] for i in range(self._microphones)]
        return self._made[key]

    def sizes(self) -> list[int]:
        """The bytes of each microphone's recording (of the first sweep made)."""
        return [len(d) for d in next(iter(self._made.values()), [])]


def _record(spec: dict[str, Any], seconds: float) -> list[bytes]:
    import numpy as np

    from sonalyze.acoustics import exponential_sweep

    sweep = exponential_sweep(
        spec["f1"], spec["f2"], spec["duration"], spec["sample_rate"],
        fade_in=spec["fade_in"], fade_out=spec["fade_out"], amplitude=spec["amplitude"],
    )  # fmt: skip
    room = demo.virtual_room(sweep.fs)
    rirs = [np.asarray(room.rir[m][0]) for m in range(len(demo.MICROPHONES))]
    return demo.recordings(sweep, spec["lead_in"], seconds, rirs)


@dataclass(frozen=True)
class Sent:
    """A measurement's recordings as uploaded: bytes per microphone."""

    measurement_id: UUID
    recordings: dict[UUID, int]


class CycleFailed(Exception):
    pass


class Lobby:
    """One lobby's phones: the host (the speaker) and the microphones."""

    def __init__(
        self, name: str, url: str, args: argparse.Namespace, recordings: Recordings
    ) -> None:
        self.name = name
        self.timings: Timings | None = None
        self.host = TimedClient(url, None)
        self.mics = [TimedClient(url, None) for _ in range(args.phones - 1)]
        self.lobby_id: UUID | None = None
        self.sent: list[Sent] = []
        self.failure: str | None = None
        self.stage = "connect"
        self._sweep = {
            "duration": args.sweep_seconds,
            "lead_in": args.lead_in,
            "tail": args.tail,
            "repeats": 1,
        }
        self._chunk_bytes: int = args.chunk_bytes
        self._recordings = recordings

    @property
    def phones(self) -> list[TimedClient]:
        return [self.host, *self.mics]

    def record_into(self, timings: Timings | None) -> None:
        self.timings = timings
        for phone in self.phones:
            phone.timings = timings

    async def setup(self) -> None:
        """Connect, make the lobby, join, give the roles and say ready, as the app does."""
        for phone in self.phones:
            await phone.connect()
        self.stage = "lobby.create"
        joined = await self.host.command("lobby.create", {"name": f"load {self.name}"})
        self.lobby_id = joined.lobby_id
        self.stage = "lobby.join"
        for mic in self.mics:
            await mic.command("lobby.join", {"code": joined.code})
        self.stage = "role.assign"
        await self.host.command("role.assign", _role(self.host, "speaker"))
        for mic in self.mics:
            await self.host.command("role.assign", _role(mic, "microphone"))
        self.stage = "role.update"
        for phone in self.phones:
            await phone.command("role.update", {"status": "ready"})
        self.stage = "ready"
        await self.host.wait_for("workflow.changed", where=lambda e: e.payload["state"] == "ready")

    async def cycle(self) -> None:
        """One measurement: start, record (wait), upload, analysis.result, ready again."""
        begun = time.perf_counter()
        self.stage = "measurement.start"
        ack = await self.host.command("measurement.start", {"sweep": self._sweep})
        self.stage = "measurement.started"
        started = (await self.host.wait_for("measurement.started")).payload
        mid = UUID(started["measurement_id"])
        data = await self._recordings.of(started)
        ends = started["start_at_ms"] / 1000 + started["recording_seconds"]
        self.stage = "upload"
        # Checked against storage at the end, whatever happens to the uploads now.
        self.sent.append(
            Sent(mid, {_device(m): len(d) for m, d in zip(self.mics, data, strict=True)})
        )
        done = await asyncio.gather(
            *(self._upload(mic, mid, d, ends) for mic, d in zip(self.mics, data, strict=True))
        )
        last_ack = max(done)
        self.stage = "analysis.result"
        result = await self.host.wait_for(
            "analysis.result", within_s=900, where=lambda e: e.payload["measurement_id"] == str(mid)
        )
        arrived = time.perf_counter()
        if result.payload["error"]:
            raise CycleFailed(f"the analysis of {mid} failed: {result.payload['error']}")
        usable = len(result.payload["result"]["microphones"])
        if usable != len(self.mics):
            unusable = result.payload["result"].get("unusable")
            raise CycleFailed(f"{mid}: {usable} of {len(self.mics)} analysed: {unusable}")
        self.stage = "ready again"
        await self.host.wait_for(
            "workflow.changed",
            within_s=300,
            where=lambda e: e.seq > (ack.seq or 0) and e.payload["state"] == "ready",
        )
        if self.timings is not None:
            self.timings.analyses.append(1000 * (arrived - last_ack))
            self.timings.cycles.append(time.perf_counter() - begun)

    async def _upload(self, mic: TimedClient, mid: UUID, data: bytes, ends: float) -> float:
        await mic.wait_for(
            "measurement.started", where=lambda e: e.payload["measurement_id"] == str(mid)
        )
        await asyncio.sleep(max(0.0, ends - time.time()))  # recording
        begun = time.perf_counter()
        ack = await mic.upload(mid, data, chunk_bytes=self._chunk_bytes)
        finished = time.perf_counter()
        if ack.state != "complete":
            raise CycleFailed(
                f"{mid}: the recording of {mic.device_id} is {ack.state}: {ack.error}"
            )
        if self.timings is not None:
            self.timings.uploads.append(1000 * (finished - begun))
            self.timings.chunks += -(-len(data) // self._chunk_bytes)
            self.timings.bytes += len(data)
        return finished

    async def run(self, until: float, delay_s: float, progress: Counter[str]) -> None:
        """Cycles one after another until ``until`` (monotonic); a failure ends them."""
        await asyncio.sleep(delay_s)
        while time.monotonic() < until:
            try:
                await self.cycle()
            except Exception as exc:  # counted and reported
                self.failure = f"{self.stage}: {type(exc).__name__}: {exc}"
                progress["failed"] += 1
                return
            progress["completed"] += 1

    async def close(self) -> None:
        for phone in self.phones:
            await phone.close()


def _role(phone: Client, role: str) -> dict[str, str]:
    return {"device_id": str(phone.device_id), "role": role}


def _device(phone: Client) -> UUID:
    assert phone.device_id is not None  # connected
    return phone.device_id


# The stack's processes ----------------------------------------------------------------------


@dataclass
class Stack:
    """The processes of a ``sonalyze up`` on this machine, and where its services answer."""

    roots: dict[str, list[psutil.Process]]  # per group, processes counted with their children
    urls: dict[str, str]  # per service, its HTTP base URL
    token: str | None  # the internal token, for storage's API


def find_stack(port: int) -> Stack | None:
    """The ``sonalyze up`` whose gateway listens on ``port``; None if none runs here."""
    gateway = next((p for p in _services("gateway") if port in _listening(p)), None)
    if gateway is None:
        return None
    up = gateway.parent()
    if up is None:
        return None
    roots: dict[str, list[psutil.Process]] = {name: [] for name in GROUPS}
    roots["sonalyze up"].append(up)
    roots["client"].append(psutil.Process())
    urls = {}
    for child in up.children():
        name = _service_name(child)
        if name in SERVICES:
            roots[name].append(child)
            ports = _listening(child)
            if ports:
                urls[name] = f"http://127.0.0.1:{min(ports)}"
        else:  # the embedded Postgres's guard
            roots["sonalyze up"].append(child)
    command = up.cmdline()
    data_dir = (
        Path(command[command.index("--data-dir") + 1])
        if "--data-dir" in command
        else default_data_dir()
    )
    postmaster = postmaster_pid(data_dir)
    if postmaster is not None:
        roots["postgres"].append(psutil.Process(postmaster))
    token_file = data_dir.with_name(data_dir.name + ".internal-token")
    token = token_file.read_text().strip() if token_file.exists() else None
    return Stack(roots, urls, token)


def _services(name: str) -> Iterator[psutil.Process]:
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if _service_name(process) == name:
                yield process


def _service_name(process: psutil.Process) -> str | None:
    with contextlib.suppress(psutil.Error):
        command: list[str] = process.cmdline()
        if "-m" in command[:-1]:
            module = command[command.index("-m") + 1]
            if module.startswith("sonalyze_"):
                return module.removeprefix("sonalyze_")
    return None


def _listening(process: psutil.Process) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return [
            c.laddr.port
            for c in process.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        ]
    return []


@dataclass
class Usage:
    """One group's CPU and memory over a window."""

    cpu_s: float
    start_mib: float
    peak_mib: float
    end_mib: float
    processes: int


class Sampler:
    """CPU seconds and memory (PSS) of each group's processes, every ``every_s``, in a thread
    of its own. CPU counts each process's own time (not its reaped children's, which it would
    count twice), from its last sample."""

    def __init__(self, roots: dict[str, list[psutil.Process]], every_s: float = 1.0) -> None:
        self._roots = roots
        self._every_s = every_s
        self._cpu: dict[int, tuple[str, float]] = {}  # pid -> (group, CPU seconds at last sample)
        self._memory: dict[str, list[float]] = defaultdict(list)  # MiB per sample, in window
        self._seen: dict[str, set[int]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()

    def _sample(self) -> None:
        memory: dict[str, float] = defaultdict(float)
        cpu: dict[int, tuple[str, float]] = {}
        for group, roots in self._roots.items():
            processes = [(group, root) for root in roots]
            for root in roots:
                if group in SERVICES:  # its workers (the analyses), on a line of their own
                    with contextlib.suppress(psutil.Error):
                        processes += [(f"{group} workers", c) for c in root.children(True)]
                elif group == "postgres":  # the postmaster's backends
                    with contextlib.suppress(psutil.Error):
                        processes += [(group, c) for c in root.children(True)]
            for name, process in processes:
                if process.pid in cpu:
                    continue
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    cpu[process.pid] = (name, times.user + times.system)
                    try:
                        memory[name] += process.memory_full_info().pss / 2**20
                    except (psutil.AccessDenied, AttributeError):
                        memory[name] += process.memory_info().rss / 2**20
        with self._lock:
            self._cpu.update(cpu)
            for group, mib in memory.items():
                self._memory[group].append(mib)
            for pid, (group, _) in cpu.items():
                self._seen[group].add(pid)

    def mark(self) -> dict[int, float]:
        """Start a window: every process's CPU so far."""
        self._sample()
        with self._lock:
            self._memory = defaultdict(list, {g: m[-1:] for g, m in self._memory.items()})
            self._seen = defaultdict(set)
            return {pid: seconds for pid, (_, seconds) in self._cpu.items()}

    def since(self, mark: dict[int, float]) -> dict[str, Usage]:
        """Each group's usage from ``mark`` to now."""
        self._sample()
        with self._lock:
            cpu: dict[str, float] = defaultdict(float)
            for pid, (group, seconds) in self._cpu.items():
                cpu[group] += seconds - mark.get(pid, 0.0)
            return {
                group: Usage(
                    cpu_s=cpu[group],
                    start_mib=samples[0],
                    peak_mib=max(samples),
                    end_mib=samples[-1],
                    processes=len(self._seen[group]),
                )
                for group, samples in self._memory.items()
                if samples
            }


def scrape(urls: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each service's /metrics: 5xx answers, the counters that say something was refused,
    dropped or retried, and where the time went: each route's (and the gateway's each
    command's) handling, as "time <what>" (seconds in all) and "count <what>"."""
    found: dict[str, dict[str, float]] = {}
    for name, url in urls.items():
        try:
            text = httpx.get(f"{url}/metrics", timeout=10).text
        except httpx.HTTPError:
            continue
        figures: dict[str, float] = defaultdict(float)
        for line in text.splitlines():
            sample = _SAMPLE.match(line)
            if sample is None:
                continue
            metric, value = sample[1].removeprefix("sonalyze_"), float(sample[3])
            labels = dict(_LABEL.findall(sample[2] or ""))
            label = _label(metric, labels)
            if label is not None:
                figures[label] += value
        found[name] = dict(figures)
    return found


_SAMPLE = re.compile(r'^(\w+)(?:\{((?:[^"}]|"[^"]*")*)\})? (\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_COUNTED = {
    "ws_rate_limited_total": "rate limited",
    "ws_rejected_total": "rejected",
    "ws_slow_consumer_disconnects_total": "slow consumers closed",
    "ws_resumes_total": "resumes",
    "measurement_analysis_duration_seconds_sum": "analysis s sum",
    "measurement_analysis_duration_seconds_count": "analysis s count",
    "measurement_recording_analysis_duration_seconds_sum": "recording s sum",
    "measurement_recording_analysis_duration_seconds_count": "recording s count",
}


def _label(metric: str, labels: dict[str, str]) -> str | None:
    """What a sample of /metrics counts towards, if anything."""
    if metric == "http_requests_total":
        return "5xx" if labels.get("status", "").startswith("5") else None
    if metric == "measurement_upload_chunks_total":
        return f"chunks {labels.get('outcome')}" if labels.get("outcome") != "stored" else None
    if metric == "measurement_analyses_total":
        return f"analyses {labels.get('outcome')}" if labels.get("outcome") != "succeeded" else None
    for kind in ("http_request", "ws_command"):
        for part, word in (("sum", "time"), ("count", "count")):
            if metric == f"{kind}_duration_seconds_{part}":
                what = labels.get("type") or f"{labels.get('method')} {labels.get('route')}"
                return f"{word} {'command ' if 'type' in labels else ''}{what}"
    return _COUNTED.get(metric)


# The checks -------------------------------------------------------------------------------------


@dataclass
class Checks:
    """What was lost, by the phones' own view and by storage's."""

    phones: int = 0
    events_delivered: int = 0
    events_missing: int = 0  # in storage's log after a phone's snapshot, never delivered
    events_out_of_order: int = 0
    events_unlike_storage: int = 0  # another type or payload than storage holds at that seq
    snapshots_again: int = 0  # a lobby.state after the first (a resume too far behind)
    uploads: int = 0
    recordings_lost: int = 0  # sent, but not complete in storage with the bytes sent
    measurements: int = 0
    measurements_not_completed: int = 0
    lobbies: Counter[str] = field(default_factory=Counter)  # workflow state at the end
    reconnects: int = 0
    problems: list[str] = field(default_factory=list)
    storage_checked: bool = False

    @property
    def lost(self) -> bool:
        return bool(
            self.events_missing
            or self.events_out_of_order
            or self.events_unlike_storage
            or self.recordings_lost
            or self.measurements_not_completed
            or set(self.lobbies) - {"ready"}
        )


async def check(lobbies: list[Lobby], stack: Stack | None, say: Say) -> Checks:
    """Every phone's events against storage's log, every recording against storage's."""
    checks = Checks()
    checks.reconnects = sum(p.reconnects for lobby in lobbies for p in lobby.phones)
    checks.uploads = sum(len(s.recordings) for lobby in lobbies for s in lobby.sent)
    checks.measurements = sum(len(lobby.sent) for lobby in lobbies)
    if stack is None or "storage" not in stack.urls:
        checks.problems.append("storage not found on this machine: its log was not compared")
        for lobby in lobbies:
            for phone in lobby.phones:
                _compare(checks, lobby, phone, None, None)
        return checks
    checks.storage_checked = True
    gate = asyncio.Semaphore(8)
    async with StorageClient(stack.urls["storage"], stack.token, timeout_s=60) as storage:

        async def one(lobby: Lobby) -> None:
            if lobby.lobby_id is None:
                return
            async with gate:
                log: list[EventRead] = []
                while True:
                    after = log[-1].seq if log else 0
                    page = await storage.lobby_events(lobby.lobby_id, after, 10_000)
                    log += page
                    if len(page) < 10_000:
                        break
                head = log[-1].seq if log else 0
                stored = {e.seq: (e.type, e.payload) for e in log}
                for phone in lobby.phones:
                    with contextlib.suppress(Exception):  # what never came is counted below
                        await phone.wait_for_seq(head, within_s=30)
                    _compare(checks, lobby, phone, head, stored)
                state = (await storage.get_lobby(lobby.lobby_id)).workflow_state
                checks.lobbies[str(state.value)] += 1
                if state.value != "ready":
                    checks.problems.append(
                        f"{lobby.name}: its workflow is {state.value} at the end; its last "
                        "events: "
                        + ", ".join(
                            f"{e.seq} {e.type} {json.dumps(e.payload)[:100]}" for e in log[-6:]
                        )
                    )
                for sent in lobby.sent:
                    measurement = await storage.get_measurement(sent.measurement_id)
                    if measurement.state.value != "completed":
                        checks.measurements_not_completed += 1
                        checks.problems.append(
                            f"{lobby.name}: measurement {sent.measurement_id} is "
                            f"{measurement.state.value}"
                        )
                    held = await storage.measurement_recordings(sent.measurement_id)
                    by_device = {r.device_id: r for r in held}
                    for device, size in sent.recordings.items():
                        recording = by_device.get(device)
                        blob = await storage.get_blob(recording.blob_id) if recording else None
                        if (
                            recording is None
                            or blob is None
                            or recording.state.value != "complete"
                            or blob.state != "complete"
                            or blob.size_bytes != size
                        ):
                            checks.recordings_lost += 1
                            checks.problems.append(
                                f"{lobby.name}: measurement {sent.measurement_id}, device "
                                f"{device}: sent {size} bytes, storage holds "
                                + (
                                    "nothing"
                                    if recording is None or blob is None
                                    else f"{blob.size_bytes} bytes, recording "
                                    f"{recording.state.value}, blob {blob.state}"
                                )
                            )

        await asyncio.gather(*(one(lobby) for lobby in lobbies))
    say(f"checked {checks.phones} phones' events and {checks.uploads} recordings against storage")
    return checks


def _compare(
    checks: Checks,
    lobby: Lobby,
    phone: Client,
    head: int | None,
    stored: dict[int, tuple[str, dict[str, Any]]] | None,
) -> None:
    """One phone's events of its lobby: from its snapshot on, each seq once, in order, up to
    ``head``, as storage holds them."""
    checks.phones += 1
    events = [e for e in phone.events if e.lobby == lobby.lobby_id]
    if not events or events[0].type != "lobby.state":
        checks.problems.append(f"{lobby.name}: phone {phone.device_id} has no snapshot first")
        checks.events_missing += 1
        return
    expected = events[0].seq + 1
    for event in events[1:]:
        if event.type == "lobby.state":
            checks.snapshots_again += 1
            expected = max(expected, event.seq + 1)
            continue
        checks.events_delivered += 1
        if event.seq != expected:
            # A gap: the events between never came, or came after a later one (and the
            # client, holding a later seq, dropped them). Below: a repeat the client kept.
            if event.seq > expected:
                checks.events_missing += event.seq - expected
            else:
                checks.events_out_of_order += 1
            checks.problems.append(
                f"{lobby.name}: phone {phone.device_id} got seq {event.seq} where "
                f"{expected} was next"
            )
        expected = max(expected, event.seq + 1)
        if stored is not None and stored.get(event.seq) != (event.type, event.payload):
            checks.events_unlike_storage += 1
            checks.problems.append(
                f"{lobby.name}: phone {phone.device_id}'s seq {event.seq} ({event.type}) is "
                "not what storage holds"
            )
    if head is not None and expected - 1 < head:
        checks.events_missing += head - (expected - 1)
        checks.problems.append(
            f"{lobby.name}: phone {phone.device_id} got events up to seq {expected - 1} of {head}"
        )


# The run ----------------------------------------------------------------------------------------


async def measure(
    args: argparse.Namespace, url: str, stack: Stack | None, say: Say
) -> dict[str, Any]:
    """The anchor, then the load, then the checks; the figures, as a JSON-ready dict."""
    recordings = Recordings(args.phones - 1)
    before = scrape(stack.urls) if stack else {}
    sampler = Sampler(stack.roots) if stack else None
    with sampler or contextlib.nullcontext():
        anchor = Lobby("anchor", url, args, recordings)
        await anchor.setup()
        say("anchor: one lobby alone, a cycle of warm-up (the recordings are made)")
        await anchor.cycle()
        alone = Timings()
        anchor.record_into(alone)
        begun = time.perf_counter()
        for _ in range(args.anchor_cycles):
            await anchor.cycle()
        alone_s = time.perf_counter() - begun
        anchor.record_into(None)
        cycle_s = percentile(alone.cycles, 50)
        say(f"anchor: {args.anchor_cycles} cycles in {alone_s:.1f} s ({cycle_s:.2f} s each)")

        timings = Timings()
        lobbies = [Lobby(f"lobby {i + 1}", url, args, recordings) for i in range(args.lobbies)]
        gate = asyncio.Semaphore(args.parallel)

        async def setup(lobby: Lobby) -> None:
            lobby.record_into(timings)
            async with gate:
                try:
                    await lobby.setup()
                except Exception as exc:  # counted and reported
                    lobby.failure = f"setup, {lobby.stage}: {type(exc).__name__}: {exc}"

        begun = time.perf_counter()
        await asyncio.gather(*(setup(lobby) for lobby in lobbies))
        setup_s = time.perf_counter() - begun
        running = [lobby for lobby in lobbies if lobby.failure is None]
        say(
            f"setup: {len(running)} of {len(lobbies)} lobbies ({len(running) * args.phones} "
            f"phones) made, joined and ready in {setup_s:.1f} s"
        )
        quiet_garbage_collector()  # this client's own pauses would count as latency

        mark = sampler.mark() if sampler else {}
        progress: Counter[str] = Counter()
        start = time.monotonic()
        until = start + 60 * args.minutes
        runs = asyncio.gather(
            *(
                lobby.run(until, i * cycle_s / len(running), progress)
                for i, lobby in enumerate(running)
            )
        )
        every_s = 30.0 if args.minutes >= 2 else 10.0
        while not runs.done():
            await asyncio.wait([runs], timeout=every_s)
            after = time.monotonic() - start
            say(
                f"{int(after // 60)}:{int(after % 60):02d}  {progress['completed']} "
                f"measurements, {progress['failed']} failed"
                + ("; the last cycles finishing" if after > 60 * args.minutes else "")
            )
        await runs
        elapsed = time.monotonic() - start
        usage = sampler.since(mark) if sampler else {}

        checks = await check([anchor, *lobbies], stack, say)
        after_metrics = scrape(stack.urls) if stack else {}
        for lobby in (anchor, *lobbies):
            await lobby.close()

    failures = [f"{lobby.name}: {lobby.failure}" for lobby in lobbies if lobby.failure]
    completed = len(timings.cycles)
    per_minute = 60 * completed / elapsed
    alone_per_minute = 60 * args.anchor_cycles / alone_s
    return {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load": {
            "lobbies": args.lobbies,
            "phones": args.phones,
            "minutes": args.minutes,
            "sweep_s": args.sweep_seconds,
            "recording_bytes": recordings.sizes(),
            "chunk_bytes": args.chunk_bytes,
        },
        "setup_s": setup_s,
        "elapsed_s": elapsed,
        "cycles": {"completed": completed, "failed": len(failures), "failures": failures},
        "throughput": {
            "measurements_per_min": per_minute,
            "alone_measurements_per_min": alone_per_minute,
            "ratio": per_minute / alone_per_minute,
            "recordings_per_s": len(timings.uploads) / elapsed,
            "chunks_per_s": timings.chunks / elapsed,
            "mb_per_s": timings.bytes / elapsed / 1e6,
        },
        "latency": _latencies(timings, alone),
        "refused": dict(timings.refused),
        "checks": {
            "phones": checks.phones,
            "events_delivered": checks.events_delivered,
            "events_missing": checks.events_missing,
            "events_out_of_order": checks.events_out_of_order,
            "events_unlike_storage": checks.events_unlike_storage,
            "snapshots_again": checks.snapshots_again,
            "uploads": checks.uploads,
            "recordings_lost": checks.recordings_lost,
            "measurements": checks.measurements,
            "measurements_not_completed": checks.measurements_not_completed,
            "lobbies_at_end": dict(checks.lobbies),
            "reconnects": checks.reconnects,
            "storage_checked": checks.storage_checked,
            "problems": checks.problems[:20],
            "lost": checks.lost,
        },
        "services": _counters(before, after_metrics),
        "usage": {
            group: {
                "cpu_s": u.cpu_s,
                "cores": u.cpu_s / elapsed,
                "cpu_ms_per_measurement": 1000 * u.cpu_s / completed if completed else None,
                "start_mib": u.start_mib,
                "peak_mib": u.peak_mib,
                "end_mib": u.end_mib,
                "processes": u.processes,
            }
            for group, u in usage.items()
        },
        "ok": not failures and not checks.lost and completed > 0,
    }


COMMAND_ORDER = (
    "lobby.create", "lobby.join", "role.assign", "role.update", "measurement.start",
    "measurement.upload", "ping",
)  # fmt: skip


def _latencies(load: Timings, alone: Timings) -> dict[str, dict[str, float | int | None]]:
    rows: list[tuple[str, list[float], list[float]]] = [
        (f"command {kind}", load.commands[kind], alone.commands.get(kind, []))
        for kind in sorted(
            load.commands,
            key=lambda k: (
                k not in COMMAND_ORDER,
                COMMAND_ORDER.index(k) if k in COMMAND_ORDER else 0,
                k,
            ),
        )
    ]
    rows += [
        ("upload", load.uploads, alone.uploads),
        ("analysis", load.analyses, alone.analyses),
        ("cycle", [1000 * s for s in load.cycles], [1000 * s for s in alone.cycles]),
    ]
    out: dict[str, dict[str, float | int | None]] = {}
    for name, values, anchor in rows:
        p50 = percentile(values, 50)
        anchor_p50 = percentile(anchor, 50) if anchor else None
        out[name] = {
            "n": len(values),
            "p50_ms": p50,
            "p99_ms": percentile(values, 99),
            "max_ms": max(values, default=float("nan")),
            "alone_p50_ms": anchor_p50,
            "ratio_p50": p50 / anchor_p50 if anchor_p50 else None,
        }
    return out


def _counters(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Each service's counters over the run (the stack may have run before it)."""
    return {
        name: {
            label: value - before.get(name, {}).get(label, 0.0)
            for label, value in values.items()
            if value - before.get(name, {}).get(label, 0.0)
        }
        for name, values in after.items()
    }


# The report -------------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    load, cycles, rate = report["load"], report["cycles"], report["throughput"]
    sizes = load["recording_bytes"] or [0]
    print(
        f"load: {load['lobbies']} lobbies of {load['phones']} phones for "
        f"{report['elapsed_s'] / 60:.1f} min (setup {report['setup_s']:.1f} s before it): "
        f"{cycles['completed']} measurements completed, {cycles['failed']} failed; recordings "
        f"of {min(sizes) / 1e3:.0f}-{max(sizes) / 1e3:.0f} kB"
    )
    print(
        f"throughput: {rate['measurements_per_min']:.1f} measurements/min "
        f"(one lobby alone: {rate['alone_measurements_per_min']:.1f}/min; ratio "
        f"{rate['ratio']:.1f}), {rate['recordings_per_s']:.2f} recordings/s, "
        f"{rate['chunks_per_s']:.1f} chunks/s, {rate['mb_per_s']:.2f} MB/s uploaded"
    )
    head = ["latency", "n", "p50 ms", "p99 ms", "max ms", "alone p50", "p50 ratio"]
    body = []
    for name, row in report["latency"].items():
        body.append(
            [
                name,
                str(row["n"]),
                _ms(row["p50_ms"]),
                _ms(row["p99_ms"]),
                _ms(row["max_ms"]),
                _ms(row["alone_p50_ms"]),
                "-" if row["ratio_p50"] is None else f"{row['ratio_p50']:.1f}",
            ]
        )
    _table(head, body)
    print(
        "(command: Client.command until its ack, retries included; upload: measurement.upload "
        "to the final chunk's ack; analysis: the last chunk's ack to analysis.result at the "
        "host; cycle: measurement.start to the lobby ready again, the recording's "
        f"{load['sweep_s']:g} s sweep and schedule included)"
    )
    if report["refused"]:
        print("commands refused: " + ", ".join(f"{k} {v}" for k, v in report["refused"].items()))
    checks = report["checks"]
    source = "storage's log" if checks["storage_checked"] else "nothing (storage not found)"
    print(
        f"events: {checks['events_delivered']} delivered to {checks['phones']} phones, checked "
        f"against {source}: missing {checks['events_missing']}, out of order "
        f"{checks['events_out_of_order']}, unlike storage's {checks['events_unlike_storage']}; "
        f"snapshots after the first {checks['snapshots_again']}; reconnects "
        f"{checks['reconnects']}"
    )
    print(
        f"chunks: {checks['uploads']} recordings uploaded, each acknowledged complete; in "
        f"storage: {checks['recordings_lost']} not complete with the bytes sent, "
        f"{checks['measurements_not_completed']} of {checks['measurements']} measurements not "
        f"completed; lobbies at the end: "
        + ", ".join(f"{n} {state}" for state, n in sorted(checks["lobbies_at_end"].items()))
    )
    services = report["services"]
    if services:
        noted = [
            f"{name}: " + ", ".join(f"{label} {value:g}" for label, value in counted)
            for name, values in services.items()
            if (counted := [(k, v) for k, v in values.items() if not _timing(k)])
        ]
        print("services' counters: " + ("; ".join(noted) if noted else "no 5xx, nothing refused"))
        print(
            "where the services' time went (the routes and commands that took most, mean ms x n):"
        )
        for name, values in services.items():
            spent = sorted(
                ((v, k.removeprefix("time ")) for k, v in values.items() if k.startswith("time ")),
                reverse=True,
            )
            print(
                f"  {name}: "
                + "; ".join(
                    f"{what} {1000 * total / values[f'count {what}']:.1f} x "
                    f"{values[f'count {what}']:g}"
                    for total, what in spent[:4]
                    if values.get(f"count {what}")
                )
            )
        measurement = services.get("measurement", {})
        if measurement.get("analysis s count") and measurement.get("recording s count"):
            run = measurement["analysis s sum"] / measurement["analysis s count"]
            one = measurement["recording s sum"] / measurement["recording s count"]
            print(
                f"measurement service: an analysis took {run:.2f} s on average from its start "
                f"to its result ({measurement['analysis s count']:g} analyses), one recording "
                f"{one:.2f} s of it (in a worker process, waiting for one included)"
            )
    if report["usage"]:
        head = [
            "process",
            "CPU s",
            "cores",
            "CPU ms/meas.",
            "PSS start MiB",
            "peak",
            "end",
            "procs",
        ]
        body = []
        for group in (g for name in GROUPS for g in (name, f"{name} workers")):
            usage = report["usage"].get(group)
            if usage is None or not usage["processes"]:
                continue
            per = usage["cpu_ms_per_measurement"]
            body.append(
                [
                    group,
                    f"{usage['cpu_s']:.1f}",
                    f"{usage['cores']:.2f}",
                    "-" if per is None else f"{per:.0f}",
                    f"{usage['start_mib']:.0f}",
                    f"{usage['peak_mib']:.0f}",
                    f"{usage['end_mib']:.0f}",
                    str(usage["processes"]),
                ]
            )
        _table(head, body)
        busy = sum(u["cores"] for u in report["usage"].values())
        print(f"(over the load's {report['elapsed_s']:.0f} s: {busy:.2f} cores busy in all)")
    for line in cycles["failures"][:10]:
        print(f"FAILED {line}")
    for line in checks["problems"][:10]:
        print(f"PROBLEM {line}")
    print(
        "result: "
        + (
            "nothing lost, every measurement completed"
            if report["ok"]
            else "FAILED: something was lost, a measurement failed or a lobby was left stuck"
        )
    )


def _no_nan(value: Any) -> Any:
    """JSON has no NaN: a figure without samples is null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _timing(label: str) -> bool:
    """Whether a scraped figure is a time or a count of one, not a counter of trouble."""
    return label.startswith(("time ", "count ")) or label.endswith((" s sum", " s count"))


def _ms(value: float | None) -> str:
    if value is None or value != value:  # NaN: no samples
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _table(head: list[str], body: list[list[str]]) -> None:
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    for line in (head, *body):
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            )
        )


# Main -------------------------------------------------------------------------------------------


def stack_settings(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """The settings the load needs raised, and what each was raised for."""
    phones = (args.lobbies + 1) * args.phones
    settings = {"SONALYZE_JOIN_FAILURES": str(max(10, 2 * phones))}
    said = [
        f"SONALYZE_JOIN_FAILURES 10 -> {settings['SONALYZE_JOIN_FAILURES']} (every phone "
        "joins from 127.0.0.1, and a join counts as failed until it succeeds)"
    ]
    if args.phones > 10:
        settings["SONALYZE_MAX_MEMBERS"] = str(args.phones)
        said.append(f"SONALYZE_MAX_MEMBERS 10 -> {args.phones}")
    for item in args.set:
        name, _, value = item.partition("=")
        settings[name] = value
        said.append(f"{name} = {value} (--set)")
    return settings, said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lobbies", type=int, default=100)
    parser.add_argument("--phones", type=int, default=5, help="per lobby: 1 speaker, the rest mics")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--sweep-seconds", type=float, default=2.0)
    parser.add_argument("--lead-in", type=float, default=0.5, help="recorded before the sweep, s")
    parser.add_argument("--tail", type=float, default=1.0, help="recorded after the sweep, s")
    parser.add_argument("--chunk-bytes", type=int, default=64 * 1024)
    parser.add_argument("--anchor-cycles", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=20, help="lobbies set up at once")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a setting of the stack started (repeatable)",
    )  # fmt: skip
    parser.add_argument("--url", help="the gateway of a running stack (ws://.../v1/ws)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    args = parser.parse_args()
    if args.phones < 2:
        parser.error("--phones: at least a speaker and a microphone")
    if args.anchor_cycles < 1 or args.lobbies < 1:
        parser.error("--anchor-cycles and --lobbies: at least 1")

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    say(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; this client, the services and Postgres share them"
    )
    say(
        f"load: {args.lobbies} lobbies of {args.phones} phones (1 speaker, {args.phones - 1} "
        f"microphones), measurement cycles for {args.minutes:g} min; a {args.sweep_seconds:g} s "
        f"sweep, chunks of {args.chunk_bytes // 1024} KiB"
    )
    with contextlib.ExitStack() as stacks:
        if args.url:
            url = args.url
            say(f"stack: {url} (its own limits)")
        else:
            settings, said = stack_settings(args)
            url, _ = stacks.enter_context(sonalyze_up(**settings))
            say(f"stack: sonalyze up on {url}; raised: " + "; ".join(said))
        port = urlsplit(url).port or (443 if url.startswith("wss") else 80)
        stack = find_stack(port)
        if stack is None:
            say("no sonalyze up of that gateway on this machine: no per-service figures")
        report = asyncio.run(measure(args, url, stack, say))
    if args.json:
        print(json.dumps(_no_nan(report), indent=2))
    else:
        print_report(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
