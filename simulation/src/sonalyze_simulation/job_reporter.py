"""How a worker tells storage (and, through its event log, the lobby) where its job stands.

Every report is a versioned update of the job, one at a time, so that the progress reports,
the heartbeat between them and the outcome never race each other. An update storage refuses
with 409 means the job moved without this worker: it was cancelled, or given to another
worker after this one was taken for dead. The worker then stops (:class:`JobEnded`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sonalyze.domain import JobState
from sonalyze.events import event
from sonalyze.storage_api import EventIn, SimulationJobRead, SimulationJobUpdate
from sonalyze.storage_client import StorageClient, StorageConflict

FINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})
MAX_ERROR = 2000


class JobEnded(Exception):
    """The job moved without this worker (cancelled, say); there is nothing more to do."""


class JobReporter:
    """Reports one job's progress and outcome; :meth:`claim` makes one."""

    def __init__(self, storage: StorageClient, job: SimulationJobRead) -> None:
        self._storage = storage
        self.job = job
        self._lock = asyncio.Lock()

    @classmethod
    async def claim(cls, storage: StorageClient, job_id: UUID) -> JobReporter | None:
        """Begin an attempt at the job (running, counted); None if it has ended already."""
        job = await storage.get_simulation_job(job_id)
        if job.state in FINAL_STATES:
            return None
        reporter = cls(storage, job)
        try:
            await reporter._update(
                JobState.running,
                new_attempt=True,
                progress=0.0,
                events=[reporter._progress_event(0.0, "a worker began", job.attempts + 1)],
            )
        except JobEnded:
            return None
        return reporter

    @property
    def attempt(self) -> int:
        return self.job.attempts

    async def progress(self, done: float, stage: str) -> None:
        await self._update(
            JobState.running,
            progress=done,
            events=[self._progress_event(done, stage, self.attempt)],
        )

    async def heartbeat(self) -> None:
        """Say the worker is alive (the job's ``updated_at`` moves; nothing else changes)."""
        await self._update(JobState.running)

    async def succeed(self, result: dict[str, Any], summary: dict[str, Any]) -> None:
        news = self._result_event(JobState.succeeded, summary=summary)
        await self._update(JobState.succeeded, result=result, events=[news])

    async def fail(self, reason: str) -> None:
        reason = reason[:MAX_ERROR]
        news = self._result_event(JobState.failed, error=reason)
        await self._update(JobState.failed, error=reason, events=[news])

    async def note(self, reason: str) -> None:
        """Record why this attempt stopped, leaving the job to be retried."""
        await self._update(JobState.running, error=reason[:MAX_ERROR])

    async def _update(
        self,
        state: JobState,
        *,
        new_attempt: bool = False,
        events: Sequence[EventIn] = (),
        **fields: Any,
    ) -> None:
        async with self._lock:
            body = SimulationJobUpdate(
                expected_version=self.job.version,
                state=state,
                new_attempt=new_attempt,
                events=list(events) if self.job.lobby_id is not None else [],
                **fields,
            )
            try:
                self.job = await self._storage.update_simulation_job(self.job.id, body)
            except StorageConflict as conflict:
                raise JobEnded(str(conflict)) from None

    def _progress_event(self, done: float, stage: str, attempt: int) -> EventIn:
        return event(
            "simulation.progress", job_id=self.job.id, progress=done, stage=stage, attempt=attempt
        )

    def _result_event(
        self, state: JobState, summary: dict[str, Any] | None = None, error: str | None = None
    ) -> EventIn:
        return event(
            "simulation.result", job_id=self.job.id, state=state, summary=summary, error=error
        )
