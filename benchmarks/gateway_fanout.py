"""Benchmark of the gateway's fan-out: phones in lobbies, hosts changing state, every member
receiving every event.

Starts the whole local stack with ``sonalyze up`` (embedded Postgres in a temporary directory,
all five services as their own processes), connects ``--phones`` WebSocket clients in lobbies of
``--lobby-size`` (one host each) from this process, and then each host sends ``role.update``
(one event each) ``--rate`` times a second for ``--seconds``, staggered over the second. For
every command it records the time it was sent and, at every member, when its event arrived:
the latency from command to delivery. It checks that every member received every event of its
lobby exactly once and in seq order.

Then it measures the saturation rate (the highest per-host command rate, stepped up, at which
p99 stays under 50 ms with nothing lost), and runs the same clients against a bare
``websockets`` server that answers the same commands and fans out with ``broadcast()``: the
ceiling of what Python WebSockets do on this machine, with no storage, lobby rules or
Postgres in the path. Figures for both and their ratio are printed.

CPU is read from ``/proc`` for every process of the stack (the five services, Postgres) and for
this client, before and after the run, and reported per command: it shows where the time of
a command goes. Gateway memory per connection is its resident memory growth (from its
``/metrics``) from before the phones connected to after, divided by the connections. All
processes share this machine's cores with the client.

Run from the workspace root (exits 1 if any event was lost, duplicated or out of order):

    uv run python benchmarks/gateway_fanout.py                              # 1000 phones, 60 s
    uv run python benchmarks/gateway_fanout.py --phones 100 --seconds 5     # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from stack import free_port, sonalyze_up
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from sonalyze.service import quiet_garbage_collector

SUBPROTOCOL = "sonalyze.v1"
TARGET_P99_MS = 50.0
_ids = itertools.count(1)


# The phones -----------------------------------------------------------------------------------


@dataclass
class Phone:
    ws: ClientConnection
    arrivals: dict[int, float] = field(default_factory=dict)  # seq -> perf_counter
    order: list[int] = field(default_factory=list)
    snapshot_seq: int = 0
    toggles: int = 0  # role.update commands sent, to alternate ready and not_ready
    replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    pump: asyncio.Task[None] | None = None
    heartbeat: asyncio.Task[None] | None = None

    async def beat(self, every_s: float) -> None:
        """Send ping every heartbeat_s, as the protocol asks of a client."""
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(every_s)
                await self.send("ping", {})

    async def read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                now = time.perf_counter()
                message = json.loads(text)
                kind = message["type"]
                if kind in ("ack", "error", "welcome"):
                    future = self.replies.pop(message["corr"], None)
                    if future is not None:
                        future.set_result(message)
                elif kind == "lobby.state":
                    self.snapshot_seq = message["seq"]
                else:
                    self.arrivals.setdefault(message["seq"], now)
                    self.order.append(message["seq"])

    async def send(self, kind: str, payload: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        command_id = f"b{next(_ids)}"
        future = asyncio.get_running_loop().create_future()
        self.replies[command_id] = future
        await self.ws.send(json.dumps({"v": 1, "type": kind, "id": command_id, "payload": payload}))
        return future

    async def call(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        reply = await asyncio.wait_for(await self.send(kind, payload), 60)
        if reply["type"] == "error":
            raise RuntimeError(f"{kind}: {reply['payload']}")
        return reply


async def connect_phone(url: str) -> Phone:
    ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None, open_timeout=60)
    phone = Phone(ws)
    phone.pump = asyncio.create_task(phone.read())
    welcome = await phone.call("hello", {})
    every_s = welcome["payload"].get("heartbeat_s", 15.0)
    phone.heartbeat = asyncio.create_task(phone.beat(every_s))
    return phone


async def build_lobbies(url: str, phones: int, size: int, parallel: int) -> list[list[Phone]]:
    gate = asyncio.Semaphore(parallel)

    async def one_lobby() -> list[Phone]:
        async with gate:
            host = await connect_phone(url)
            code = (await host.call("lobby.create", {}))["payload"]["code"]
            members = [host]
            for _ in range(size - 1):
                phone = await connect_phone(url)
                await phone.call("lobby.join", {"code": code})
                members.append(phone)
            return members

    return await asyncio.gather(*(one_lobby() for _ in range(phones // size)))


@dataclass
class Run:
    latencies_ms: list[float]
    commands: int
    errors: int
    lost: int
    out_of_order: int
    seconds: float


async def drive(lobbies: list[list[Phone]], rate: float, seconds: float) -> Run:
    """Each host sends ``rate`` role.update commands a second for ``seconds``, staggered."""
    sent: list[tuple[int, float, asyncio.Future[dict[str, Any]]]] = []
    failed: list[str] = []
    start = time.perf_counter() + 0.2
    steps = int(rate * seconds)

    async def host_loop(i: int, lobby: list[Phone]) -> None:
        offset = i / len(lobbies) / rate
        for step in range(steps):
            delay = start + offset + step / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            host = lobby[0]
            status = "ready" if host.toggles % 2 == 0 else "not_ready"
            host.toggles += 1
            at = time.perf_counter()
            try:
                sent.append((i, at, await host.send("role.update", {"status": status})))
            except ConnectionClosed as exc:  # counted: the run is then a failure
                failed.append(f"host {i}: {exc}")
                return

    before = [[dict(p.arrivals) for p in lobby] for lobby in lobbies]
    await asyncio.gather(*(host_loop(i, lobby) for i, lobby in enumerate(lobbies)))
    elapsed = time.perf_counter() - start
    replies = []
    for i, at, future in sent:
        with contextlib.suppress(Exception):
            replies.append((i, at, await asyncio.wait_for(future, 30)))
    errors = len(failed) + len(sent) - len(replies)
    refusals = [r["payload"] for _, _, r in replies if r["type"] == "error"]
    errors += len(refusals)
    for reason in sorted(set(failed))[:3]:
        print(f"  failed: {reason}")
    for refusal in refusals[:3]:
        print(f"  refused: {refusal}")
    expected: dict[int, dict[int, float]] = {}
    for i, at, reply in replies:
        if reply["type"] == "ack" and reply["payload"].get("seq"):
            expected.setdefault(i, {})[reply["payload"]["seq"]] = at
    for _ in range(200):  # up to 10 s for the last deliveries
        if all(
            seq in p.arrivals for i, seqs in expected.items() for p in lobbies[i] for seq in seqs
        ):
            break
        await asyncio.sleep(0.05)
    latencies, lost, disorder = [], 0, 0
    for i, seqs in expected.items():
        for j, phone in enumerate(lobbies[i]):
            fresh = [s for s in phone.order if s not in before[i][j]]
            disorder += sum(1 for a, b in itertools.pairwise(fresh) if b != a + 1)
            for seq, at in seqs.items():
                if seq in phone.arrivals:
                    latencies.append((phone.arrivals[seq] - at) * 1000)
                else:
                    lost += 1
    return Run(latencies, len(sent), errors, lost, disorder, elapsed)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


# The stack and the ceiling server -------------------------------------------------------------


def gateway_metric(http: str, sample: str) -> float:
    """One sample of the gateway's /metrics, e.g. its resident memory."""
    text = httpx.get(f"{http}/metrics").text
    match = re.search(rf"^{re.escape(sample)} (\S+)", text, re.M)
    assert match is not None, sample
    return float(match[1])


def gateway_rss(http: str) -> float:
    return gateway_metric(http, "sonalyze_process_resident_memory_bytes")


def gateway_full_collections(http: str) -> float:
    return gateway_metric(http, 'sonalyze_python_gc_collections_total{generation="2"}')


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each process group: the services, Postgres, this client."""
    tick = os.sysconf("SC_CLK_TCK")
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    used: dict[str, float] = {"client": 0.0}
    for line in listing.splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        service = re.search(r"-m sonalyze_(\w+)", args)
        group = service[1] if service else "postgres" if "postgres" in args else None
        if int(pid) == os.getpid():
            group = "client"
        if group is None:
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[group] = used.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


async def ceiling_server(port: int) -> None:
    """The same commands answered by a bare websockets server that fans out with broadcast()."""
    lobbies: dict[str, set[ServerConnection]] = {}
    seqs: dict[str, int] = {}
    codes = itertools.count(1)

    async def handler(ws: ServerConnection) -> None:
        lobby: str | None = None
        async for text in ws:
            message = json.loads(text)
            kind, corr = message["type"], message["id"]
            payload: dict[str, Any] = {}
            if kind == "lobby.create":
                lobby = f"L{next(codes)}"
                lobbies[lobby], seqs[lobby] = {ws}, 1
                payload = {"lobby_id": lobby, "code": lobby, "seq": 1}
            elif kind == "lobby.join":
                lobby = message["payload"]["code"]
                lobbies[lobby].add(ws)
            elif kind == "role.update" and lobby is not None:
                seqs[lobby] += 1
                payload = {"seq": seqs[lobby]}
                event = {"v": 1, "type": "role.updated", "lobby": lobby, "seq": seqs[lobby],
                         "ts": time.time() * 1000, "payload": message["payload"]}  # fmt: skip
                await ws.send(json.dumps({"v": 1, "type": "ack", "corr": corr, "payload": payload}))
                broadcast(lobbies[lobby], json.dumps(event))
                continue
            await ws.send(json.dumps({"v": 1, "type": "ack", "corr": corr, "payload": payload}))

    async with serve(handler, "127.0.0.1", port, subprotocols=[SUBPROTOCOL], compression=None):
        await asyncio.Future()


@contextlib.contextmanager
def ceiling() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--ceiling-server", str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("ceiling server did not start")
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


# Main -----------------------------------------------------------------------------------------


def report(name: str, run: Run) -> None:
    lat = run.latencies_ms
    print(
        f"{name}: {run.commands} commands in {run.seconds:.1f} s "
        f"({run.commands / run.seconds:.0f}/s), {len(lat)} deliveries "
        f"({len(lat) / run.seconds:.0f}/s); command->delivery p50 {percentile(lat, 50):.1f} ms, "
        f"p99 {percentile(lat, 99):.1f} ms, max {max(lat, default=float('nan')):.1f} ms; "
        f"errors {run.errors}, lost {run.lost}, out of order {run.out_of_order}"
    )


async def close_all(lobbies: list[list[Phone]]) -> None:
    for phone in (p for lobby in lobbies for p in lobby):
        if phone.heartbeat is not None:
            phone.heartbeat.cancel()
    await asyncio.gather(*(p.ws.close() for lobby in lobbies for p in lobby))


async def measure_gateway(args: argparse.Namespace, url: str, http: str) -> tuple[Run, bool]:
    rss0 = gateway_rss(http)
    started = time.perf_counter()
    lobbies = await build_lobbies(url, args.phones, args.lobby_size, args.parallel)
    quiet_garbage_collector()  # the client's own pauses would count as delivery latency
    took = time.perf_counter() - started
    print(f"gateway: {sum(map(len, lobbies))} phones in {len(lobbies)} lobbies in {took:.1f} s")
    rss1 = gateway_rss(http)
    full1 = gateway_full_collections(http)
    cpu1 = cpu_seconds()
    run = await drive(lobbies, args.rate, args.seconds)
    cpu2 = cpu_seconds()
    rss2 = gateway_rss(http)
    full2 = gateway_full_collections(http)
    held = sum(1 for lobby in lobbies for p in lobby if p.ws.close_code is None)
    report("gateway", run)
    per_command = {k: 1000 * (cpu2[k] - cpu1.get(k, 0.0)) / run.commands for k in cpu2}
    busy = sum(cpu2[k] - cpu1.get(k, 0.0) for k in cpu2) / run.seconds
    print(
        f"gateway: connections held {held}; memory {(rss1 - rss0) / held / 1024:.1f} KiB per "
        f"connection (RSS {rss0 / 2**20:.0f} -> {rss2 / 2**20:.0f} MiB); gateway CPU "
        f"{1e6 * (cpu2['gateway'] - cpu1['gateway']) / run.seconds / held:.0f} us/s per "
        f"connection; {full2 - full1:.0f} full garbage collections in the gateway"
    )
    print(
        "CPU ms per command: "
        + ", ".join(f"{k} {v:.1f}" for k, v in sorted(per_command.items(), key=lambda i: -i[1]))
        + f"; all processes together {busy:.2f} cores busy"
    )
    ok = (
        run.lost == 0
        and run.out_of_order == 0
        and run.errors == 0
        and held == len([p for lobby in lobbies for p in lobby])
    )
    saturation = None
    for rate in args.saturation_rates:
        step = await drive(lobbies, rate, args.saturation_seconds)
        report(f"gateway at {rate:g}/s per host", step)
        good = step.lost == 0 and step.out_of_order == 0 and step.errors == 0
        if not good or percentile(step.latencies_ms, 99) >= TARGET_P99_MS:
            break
        saturation = step.commands / step.seconds
    print(
        "gateway saturation: "
        + (f"{saturation:.0f} commands/s" if saturation else "below the first step")
        + f" (highest step with p99 < {TARGET_P99_MS:g} ms and nothing lost)"
    )
    await close_all(lobbies)
    return run, ok


async def measure_ceiling(args: argparse.Namespace, url: str) -> Run:
    lobbies = await build_lobbies(url, args.phones, args.lobby_size, args.parallel)
    quiet_garbage_collector()
    run = await drive(lobbies, args.rate, args.seconds)
    report("broadcast() ceiling", run)
    await close_all(lobbies)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--lobby-size", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1.0, help="commands per host per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--parallel", type=int, default=20, help="lobbies set up at once")
    parser.add_argument(
        "--saturation-rates", type=float, nargs="*", default=[1.0, 1.25, 1.5, 2.0, 2.5, 3.0]
    )
    parser.add_argument("--saturation-seconds", type=float, default=10.0)
    parser.add_argument("--ceiling-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_server:
        asyncio.run(ceiling_server(args.ceiling_server))
        return 0
    machine = platform.processor() or platform.machine()
    print(
        f"machine: {machine}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "client, services and Postgres share them"
    )
    print(
        f"load: {args.phones} phones in lobbies of {args.lobby_size}, each host "
        f"{args.rate:g} command/s for {args.seconds:g} s"
    )
    with sonalyze_up() as (url, http):
        gateway, ok = asyncio.run(measure_gateway(args, url, http))
    with ceiling() as url:
        bare = asyncio.run(measure_ceiling(args, url))
    for q in (50, 99):
        g, c = percentile(gateway.latencies_ms, q), percentile(bare.latencies_ms, q)
        print(f"p{q}: gateway {g:.1f} ms vs broadcast() {c:.1f} ms: ratio {g / c:.1f}x")
    p99 = percentile(gateway.latencies_ms, 99)
    met = "met" if p99 < TARGET_P99_MS else "NOT met"
    print(
        f"target p99 < {TARGET_P99_MS:g} ms: {met}; "
        f"lost or out of order: {'none' if ok else 'SOME'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
