"""Benchmark of the local simulation runner against calling the simulation directly.

For a 6 x 5 x 3 m room (one source, two receivers, image sources to the order that covers its
decay) at 16 and 48 kHz it times:

- direct: :func:`sonalyze_simulation.simulate.simulate` in this process (pyroomacoustics'
  impulse responses and their analysis by sonalyze.acoustics), after one warm-up run;
- through the runner: ``simulation.request`` sent to the gateway of ``sonalyze up`` until
  ``simulation.result`` arrives, which adds the job in storage, a worker subprocess (its start
  and imports), the impulse responses stored as WAV blobs, the result, and the events;

and reports the runner's overhead in seconds and as a ratio. Then it submits ``--jobs`` jobs at
once with one worker and with two (``SONALYZE_WORKERS``) and reports the throughput (jobs a
minute) and its ratio. On a 2-core machine the services and Postgres share the cores with the
workers.

Run from the workspace root:

    python3.11 -m uv run python benchmarks/simulation_runner.py              # 3 rounds
    python3.11 -m uv run python benchmarks/simulation_runner.py --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
import uuid
from typing import Any

from stack import sonalyze_up

from sonalyze.client import Client
from sonalyze.simulation_api import SimulationRequest
from sonalyze_simulation.simulate import simulate

RATES = (16_000, 48_000)


def room(sample_rate: int, seed: int = 0) -> dict[str, Any]:
    return {
        "room": {"shape": "shoebox", "dimensions": [6, 5, 3]},
        "materials": {
            "default": {"absorption": [0.3, 0.3, 0.35, 0.4, 0.4, 0.4]},
            "floor": "carpet_cotton",
        },
        "sources": [[1.5, 1.5, 1.5]],
        "receivers": [[4.2, 3.1, 1.2], [3.0, 1.2, 1.6]],
        "sample_rate": sample_rate,
        "method": {"seed": seed},
    }


def direct_seconds(sample_rate: int, rounds: int) -> float:
    request = SimulationRequest.model_validate(room(sample_rate))
    simulate(request)  # warm-up: imports, caches
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        simulate(request)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def through_runner(phone: Client, bodies: list[dict[str, Any]]) -> float:
    """Submit every body at once; seconds until the last result."""
    start = time.perf_counter()
    jobs = set()
    for body in bodies:
        ask = {"client_request_id": str(uuid.uuid4()), "request": body}
        jobs.add(str((await phone.command("simulation.request", ask)).job_id))
    for _ in jobs:
        result = await phone.wait_for(
            "simulation.result", within_s=1800, where=lambda e: e.payload["job_id"] in jobs
        )
        if result.payload["state"] != "succeeded":
            raise RuntimeError(f"a job failed: {result.payload}")
    return time.perf_counter() - start


async def runner_seconds(url: str, sample_rate: int, rounds: int) -> float:
    async with Client(url) as phone:
        await phone.command("lobby.create")
        await through_runner(phone, [room(sample_rate)])  # warm-up: the first worker's imports
        times = [await through_runner(phone, [room(sample_rate)]) for _ in range(rounds)]
    return statistics.median(times)


async def throughput(url: str, jobs: int) -> float:
    """Jobs a minute, ``jobs`` of them submitted at once (16 kHz, each its own seed)."""
    async with Client(url) as phone:
        await phone.command("lobby.create")
        seconds = await through_runner(phone, [room(16_000, seed) for seed in range(jobs)])
    return 60 * jobs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=6)
    args = parser.parse_args()
    print(f"python {platform.python_version()}; 6 x 5 x 3 m room, 1 source, 2 receivers")
    direct = {rate: direct_seconds(rate, args.rounds) for rate in RATES}
    with sonalyze_up() as (url, _):
        runner = {rate: asyncio.run(runner_seconds(url, rate, args.rounds)) for rate in RATES}
    for rate in RATES:
        overhead = runner[rate] - direct[rate]
        print(f"{rate // 1000} kHz: direct {direct[rate]:.2f} s, through the runner "
              f"{runner[rate]:.2f} s: overhead {overhead:.2f} s, "
              f"ratio {runner[rate] / direct[rate]:.2f}")  # fmt: skip
    rates = {}
    for workers in (1, 2):
        with sonalyze_up(SONALYZE_WORKERS=str(workers)) as (url, _):
            asyncio.run(throughput(url, 1))  # warm-up
            rates[workers] = asyncio.run(throughput(url, args.jobs))
        print(f"{workers} worker{'s' if workers > 1 else ''}: {rates[workers]:.1f} jobs/min "
              f"({args.jobs} jobs at 16 kHz submitted at once)")  # fmt: skip
    print(f"throughput ratio, 2 workers to 1: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
