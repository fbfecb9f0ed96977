"""The simulation service's metrics (names prefixed ``sonalyze_simulation_``; the outcome label
is one of succeeded, failed, cancelled)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from sonalyze.metrics import PREFIX

SLOW = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class SimulationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = f"{PREFIX}_simulation"
        self.jobs = Counter(
            f"{p}_jobs_total",
            "Simulation jobs ended, by outcome (succeeded, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.retries = Counter(
            f"{p}_retries_total",
            "Jobs queued again after their worker stopped without an outcome.",
            registry=registry,
        )
        self.queue_seconds = Histogram(
            f"{p}_queue_duration_seconds",
            "Time from a job's submission to its first worker's start.",
            registry=registry,
            buckets=SLOW,
        )
        self.run_seconds = Histogram(
            f"{p}_run_duration_seconds",
            "Time from a job's first worker's start to its outcome (retries included).",
            registry=registry,
            buckets=SLOW,
        )
