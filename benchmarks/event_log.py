"""Benchmark of the storage event log: append throughput and live-stream delivery latency.

Starts an embedded Postgres (pgserver, in a temporary directory deleted afterwards), migrates a
fresh database and runs the real storage service (``python -m sonalyze_storage``) in its own
process, so this client shares no process or GIL with it. Then it measures:

1. Append throughput: ``--writers`` concurrent clients over ``--lobbies`` lobbies append
   ``--events`` events via ``POST /v1/lobbies/{id}/events``, one event per request, then ten.
   Afterwards the whole log is read back from the stream (catch-up) and verified.
2. Append-to-delivery latency: one subscriber on ``GET /v1/events/stream?after=<max id>`` while
   a writer appends one event at a time at a steady ``--rate`` for ``--seconds`` (open loop up
   to ``--max-inflight`` requests; past that the schedule slips and the achieved rate shows it).
   Each payload carries ``time.perf_counter_ns()`` taken as its request is built; the subscriber
   (same process, same clock) subtracts it from the time it read the event. Also split into the
   append request (sent -> 201) and 201 -> read on the stream. Verified: nothing lost or
   duplicated, ids strictly increasing, each lobby's seq gapless, events equal to the 201's.

Run from the workspace root (exits 1 if any event was lost, duplicated or out of order):

    uv run python benchmarks/event_log.py                                       # defaults
    uv run python benchmarks/event_log.py --events 500 --rate 100 --seconds 3   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg

from sonalyze_storage.migrate import upgrade

TOKEN = "benchmark-internal-token"
BATCH = 10
Event = dict[str, Any]
Arrivals = list[tuple[int, Event]]  # (perf_counter_ns when read from the stream, event)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """An embedded Postgres with a new database ``bench``; yields its libpq URL."""
    with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver
    with tempfile.TemporaryDirectory(prefix="sonalyze-bench-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            yield server.get_uri().replace("/postgres?", "/bench?", 1)
        finally:
            server.cleanup()


@contextlib.contextmanager
def storage_service(database_url: str) -> Iterator[str]:
    """``python -m sonalyze_storage`` in its own process and session (so a Ctrl-C reaches only
    us, and we stop it before Postgres); yields its base URL once ``/readyz`` answers 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SONALYZE_")}
    env |= {"SONALYZE_DATABASE_URL": database_url, "SONALYZE_PORT": str(port)}
    env |= {"SONALYZE_INTERNAL_TOKEN": TOKEN, "SONALYZE_LOG_LEVEL": "warning"}
    env["SONALYZE_SHUTDOWN_TIMEOUT_S"] = "2"
    cmd = [sys.executable, "-m", "sonalyze_storage"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"storage exited with code {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("storage was not ready within 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def row(label: str, *cells: object) -> None:
    texts = (f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells)
    print(f"  {label:<20}" + "".join(f"{t:>11}" for t in texts))


def verify(sent: list[Event], arrivals: Arrivals) -> dict[str, int]:
    """Problems of what the stream delivered, against the events the appends returned."""
    got = [e for _, e in arrivals]
    ids = [e["id"] for e in got]
    by_id = {e["id"]: e for e in sent}
    next_seq = {e["lobby_id"]: e["seq"] for e in sorted(sent, key=lambda e: -e["seq"])}  # lowest
    seq_gaps = 0
    for e in got:  # each lobby's seq must go up by exactly one along the stream
        seq_gaps += e["seq"] != next_seq.get(e["lobby_id"])
        next_seq[e["lobby_id"]] = e["seq"] + 1
    return {
        "lost": len(by_id.keys() - set(ids)),
        "duplicate": len(ids) - len(set(ids)),
        "unexpected": len(set(ids) - by_id.keys()),
        "out of order": sum(b <= a for a, b in itertools.pairwise(ids)),
        "seq gaps": seq_gaps,
        "differing": sum(e != by_id[e["id"]] for e in got if e["id"] in by_id),
    }


async def read_stream(client: httpx.AsyncClient, after: int, writing: Awaitable[Any], sent: list):
    """Subscribe after id ``after``, then await ``writing`` (which fills ``sent``). Returns what
    the stream delivered once all of ``sent`` arrived (or 30 s passed) and half a second more
    (to catch extras and duplicates), and the result of ``writing``."""
    out: Arrivals = []
    ready, complete = asyncio.Event(), asyncio.Event()
    written = False

    async def subscribe() -> None:
        try:
            params = {"after": after}
            async with client.stream("GET", "/v1/events/stream", params=params, timeout=None) as r:
                r.raise_for_status()
                ready.set()
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        out.append((time.perf_counter_ns(), json.loads(line[6:])))
                        if written and len(out) >= len(sent):
                            complete.set()
        finally:  # also when the subscription fails, so nobody waits for it
            ready.set()
            complete.set()

    task = asyncio.create_task(subscribe())
    try:
        await ready.wait()
        if task.done():
            task.result()  # the subscription failed: raise why
        result = await writing
        written = True
        if len(out) >= len(sent):
            complete.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(complete.wait(), 30)
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return out, result


async def append(client: httpx.AsyncClient, lobby: str, events: list[Event]) -> list[Event]:
    response = await client.post(f"/v1/lobbies/{lobby}/events", json={"events": events})
    return response.raise_for_status().json()


async def throughput(client, lobbies: list[str], writers: int, total: int, batch: int, sent):
    """``writers`` clients share ``total // batch`` requests; returns the figures."""
    requests = iter(range(total // batch))
    durations: list[float] = []

    async def writer() -> None:
        for i in requests:
            events = [{"type": "bench.append", "payload": {"i": i, "k": k}} for k in range(batch)]
            t = time.perf_counter()
            sent.extend(await append(client, lobbies[i % len(lobbies)], events))
            durations.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    seconds, ms, events = time.perf_counter() - start, sorted(durations), len(durations) * batch
    return events, seconds, events / seconds, pct(ms, 50), pct(ms, 99)


async def steady(client, lobbies: list[str], args, sent: list, returned: dict[int, int]) -> float:
    """Append one event every 1/rate s, each in its own task but at most ``max_inflight`` at a
    time (past that the schedule slips); ``returned`` maps event id to the perf_counter_ns when
    its append returned. Returns the achieved rate."""
    inflight = asyncio.Semaphore(args.max_inflight)

    async def one(i: int) -> None:
        try:
            event = {"type": "bench.live", "payload": {"i": i, "t_ns": time.perf_counter_ns()}}
            rows = await append(client, lobbies[i % len(lobbies)], [event])
            returned.update(dict.fromkeys((e["id"] for e in rows), time.perf_counter_ns()))
            sent.extend(rows)
        finally:
            inflight.release()

    tasks = []
    start = time.perf_counter()
    for i in range(round(args.rate * args.seconds)):
        await asyncio.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
        await inflight.acquire()
        tasks.append(asyncio.create_task(one(i)))
    issued = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return (len(tasks) - 1) / issued if len(tasks) > 1 else 0.0


async def run(url: str, pg_url: str, args: argparse.Namespace) -> bool:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Drop idle connections before uvicorn does (after 5 s; httpx's default is also 5 s).
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=url, headers=auth, limits=limits, timeout=30) as client:
        lobbies = []
        for n in range(args.lobbies):
            device = (await client.post("/v1/devices")).raise_for_status().json()["id"]
            body = {"code": f"BENCH{n:04d}", "host_device_id": device}
            response = (await client.post("/v1/lobbies", json=body)).raise_for_status()
            lobbies.append(response.json()["lobby"]["id"])

        print("\nappend throughput")
        row("", "events", "seconds", "events/s", "req p50 ms", "req p99 ms")
        log: list[Event] = []
        for batch in (1, BATCH):
            figures = await throughput(client, lobbies, args.writers, args.events, batch, log)
            row(f"{batch} event{'s' * (batch > 1)}/request", *figures)
        catch_up, _ = await read_stream(client, 0, asyncio.sleep(0), log)

        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cursor = await conn.execute("SELECT coalesce(max(id), 0) FROM events")
            max_id = await cursor.fetchone()
        live: list[Event] = []
        returned: dict[int, int] = {}
        writing = steady(client, lobbies, args, live, returned)
        arrivals, achieved = await read_stream(client, max_id[0], writing, live)

    print(f"\nlive stream latency, {args.seconds:g} s at {achieved:.1f} appends/s")
    if achieved < 0.95 * args.rate:
        print(f"  below the {args.rate:g}/s target: storage is saturated (queueing included)")
    row("", "events", "p50 ms", "p90 ms", "p99 ms", "max ms")
    sent_ns = {e["id"]: e["payload"]["t_ns"] for e in live}
    seen = {e["id"]: t for t, e in reversed(arrivals)}  # first arrival of each id
    for label, a, b in (
        ("append-to-delivery", sent_ns, seen),  # the figure: request sent -> read on the stream
        ("  append request", sent_ns, returned),  # of which: request sent -> 201 read
        ("  201-to-delivery", returned, seen),  # and: 201 read -> read on the stream (can be < 0)
    ):
        ms = sorted((b[i] - a[i]) / 1e6 for i in a.keys() & b.keys())
        if ms:
            row(label, len(ms), *(pct(ms, q) for q in (50, 90, 99, 100)))

    ok = True
    print("\nverification: stream vs. events the appends returned")
    for name, sent, got in (("whole log", log, catch_up), ("live stream", live, arrivals)):
        problems = verify(sent, got)
        good = len(got) == len(sent) > 0 and not any(problems.values())
        ok &= good
        counts = ", ".join(f"{x} {k}" for k, x in problems.items())
        print(f"  {name:<12}{'OK' if good else 'FAIL':<5}{len(got)}/{len(sent)} arrived; {counts}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers (8)")
    parser.add_argument("--lobbies", type=int, default=10, help="lobbies written to (10)")
    parser.add_argument("--events", type=int, default=3000, help="events per throughput run (3000)")
    parser.add_argument("--rate", type=float, default=200, help="live appends per second (200)")
    parser.add_argument("--seconds", type=float, default=10, help="live run duration (10)")
    parser.add_argument("--max-inflight", type=int, default=50, help="live appends in flight (50)")
    args = parser.parse_args()
    if min(args.writers, args.lobbies, args.max_inflight, args.rate, args.seconds) <= 0:
        parser.error("every option must be positive")
    if args.events < BATCH:
        parser.error(f"--events must be at least {BATCH}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM as on Ctrl-C
    try:
        with postgres() as pg_url:
            with psycopg.connect(pg_url) as conn:
                pg_version = conn.execute("SHOW server_version").fetchone()[0]
            database_url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
            upgrade(database_url)
            print(
                f"Sonalyze event log benchmark\n  machine : {platform.system()} "
                f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                f"PostgreSQL {pg_version} (pgserver)\n  settings: {args.writers} writers, "
                f"{args.lobbies} lobbies, {args.events} events per throughput run; "
                f"live {args.rate:g} ev/s for {args.seconds:g} s"
            )
            with storage_service(database_url) as url:
                ok = asyncio.run(run(url, pg_url, args))
    except KeyboardInterrupt:
        print("\ninterrupted; storage and Postgres stopped", file=sys.stderr)
        return 130
    except httpx.HTTPError as exc:
        print(f"\nerror: a request to storage failed: {exc!r}", file=sys.stderr)
        return 2
    print("\nresult:", "OK" if ok else "FAILED: events lost, duplicated or out of order")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
