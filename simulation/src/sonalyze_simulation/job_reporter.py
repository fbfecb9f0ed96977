"""How a worker tells storage (and, through its event log, the lobby) where its job stands.

Every report is a versioned update of the job, one at a time, so that the progress reports,
the heartbeat between them and the outcome never race each other. When storage refuses an
update with 409, the job is read again: if it is still this worker's attempt (an earlier update
was stored though its answer was lost), the report is sent again on the current version;
otherwise the job moved without this worker (it was cancelled, or given to another worker
after this one was taken for dead) and the worker stops (:class:`JobEnded`). Progress reports
are best effort; the outcome is retried while storage is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sonalyze.domain import FINAL_JOB_STATES, JobState
from sonalyze.events import event
from sonalyze.storage_api import (
    MAX_ERROR_CHARS,
    EventIn,
    SimulationJobRead,
    SimulationJobUpdate,
)
from sonalyze.storage_client import StorageClient, StorageConflict, StorageError, StorageUnavailable

logger = logging.getLogger(__name__)
_OUTCOME_TRIES, _OUTCOME_WAIT_S = 6, 0.5  # 0.5 s doubling: about 30 s in all


class JobEnded(Exception):
    """The job moved without this worker (cancelled, say); there is nothing more to do."""


class AttemptsUsedUp(Exception):
    """The job had had all its workers: it is failed now, with the last one's reason."""


class JobReporter:
    """Reports one attempt at a job; :meth:`claim` begins it."""

    def __init__(self, storage: StorageClient, job: SimulationJobRead) -> None:
        self._storage = storage
        self.job = job
        self._lock = asyncio.Lock()

    @classmethod
    async def claim(
        cls, storage: StorageClient, job_id: UUID, max_attempts: int
    ) -> JobReporter | None:
        """Begin an attempt at the job (running, counted); None if it has ended already or
        another worker claimed it first. A job whose attempts are used up is failed, and
        :class:`AttemptsUsedUp` raised."""
        job = await storage.get_simulation_job(job_id)
        if job.state in FINAL_JOB_STATES:
            return None
        reporter = cls(storage, job)
        try:
            if job.attempts >= max_attempts:
                plural = "s" * (job.attempts != 1)
                last = job.error or "no reason given"
                why = f"gave up after {job.attempts} attempt{plural}: {last}"
                await reporter.fail(why)
                raise AttemptsUsedUp(why)
            began = reporter._progress_event(0.0, "a worker began", job.attempts + 1)
            body = reporter._body(JobState.running, [began], new_attempt=True, progress=0.0)
            reporter.job = await storage.update_simulation_job(job_id, body)
        except (StorageConflict, JobEnded):
            return None  # another worker claimed it, or it ended, meanwhile
        return reporter

    @property
    def attempt(self) -> int:
        return self.job.attempts

    async def progress(self, done: float, stage: str) -> None:
        """Report progress (best effort: a report storage does not take is only logged)."""
        try:
            await self._update(
                JobState.running,
                [self._progress_event(done, stage, self.attempt)],
                progress=done,
            )
        except StorageError as error:
            logger.warning("progress of job %s not stored: %s", self.job.id, error)

    async def heartbeat(self) -> None:
        """Say the worker is alive (the job's ``updated_at`` moves; nothing else changes)."""
        await self._update(JobState.running, [])

    async def succeed(self, result: dict[str, Any], summary: dict[str, Any]) -> None:
        news = self._result_event(JobState.succeeded, summary=summary)
        await self._outcome(JobState.succeeded, [news], result=result)

    async def fail(self, reason: str) -> None:
        reason = reason[:MAX_ERROR_CHARS]
        news = self._result_event(JobState.failed, error=reason)
        await self._outcome(JobState.failed, [news], error=reason)

    async def note(self, reason: str) -> None:
        """Record why this attempt stopped, leaving the job to be retried."""
        await self._update(JobState.running, [], error=reason[:MAX_ERROR_CHARS])

    async def _outcome(self, state: JobState, events: list[EventIn], **fields: Any) -> None:
        """Store the outcome, waiting out a storage that is briefly unavailable."""
        for attempt in range(_OUTCOME_TRIES):
            try:
                await self._update(state, events, **fields)
                return
            except StorageUnavailable as error:
                if attempt == _OUTCOME_TRIES - 1:
                    raise
                logger.warning("outcome of job %s not stored yet: %s", self.job.id, error)
                await asyncio.sleep(_OUTCOME_WAIT_S * 2**attempt)

    async def _update(self, state: JobState, events: Sequence[EventIn], **fields: Any) -> None:
        async with self._lock:
            try:
                self.job = await self._storage.update_simulation_job(
                    self.job.id, self._body(state, events, **fields)
                )
            except StorageConflict:
                current = await self._storage.get_simulation_job(self.job.id)
                mine = current.state == JobState.running and current.attempts == self.attempt
                if not mine:
                    raise JobEnded(
                        f"the job is {current.state}, attempt {current.attempts}"
                    ) from None
                self.job = current  # an earlier report was stored, its answer lost
                self.job = await self._storage.update_simulation_job(
                    self.job.id, self._body(state, events, **fields)
                )

    def _body(
        self, state: JobState, events: Sequence[EventIn], **fields: Any
    ) -> SimulationJobUpdate:
        return SimulationJobUpdate(
            expected_version=self.job.version,
            state=state,
            events=list(events) if self.job.lobby_id is not None else [],
            **fields,
        )

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
