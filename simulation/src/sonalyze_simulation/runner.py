"""What a runner does with simulation jobs' workers; :mod:`~sonalyze_simulation.local_runner`
(subprocesses) and :mod:`~sonalyze_simulation.kube_runner` (Kubernetes Jobs) do it.

A runner starts the worker entry point for a queued job, stops it when the job is cancelled,
and, when a worker stops without an outcome, hands the job to
:class:`~sonalyze_simulation.jobs.Lifecycle`, which retries it or records the failure. After a
restart it recovers: every job still queued or running gets a worker again unless one is
still at it, so that no job is orphaned.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class Runner(Protocol):
    async def launch(self, job_id: UUID) -> None:
        """Have a worker run the queued job (once, however often this is called)."""

    async def stop(self, job_id: UUID) -> None:
        """Stop the job's worker, if it has one (the job was cancelled)."""

    async def recover(self) -> None:
        """Give every unfinished job that no live worker runs a worker again."""

    async def watch(self) -> None:
        """Recover, then follow the workers, until :meth:`close` (run it as a task)."""

    async def close(self) -> None:
        """Stop running jobs here; what is unfinished is recovered on the next start."""
