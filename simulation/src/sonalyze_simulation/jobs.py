"""Simulation jobs as the service sees them: submitted, cancelled, and, when a worker stops
without an outcome, retried or failed.

A submission is checked whole (geometry, positions, materials by name) before anything is
stored, so a bad request queues nothing. The job is stored idempotently by the caller's
``client_request_id``, with ``simulation.queued`` in its lobby, then handed to the runner. The
worker reports progress and the outcome itself (:mod:`~sonalyze_simulation.worker`); what is
left to the service is a worker that stopped without one (killed, out of memory, its node
gone): the job is queued again while it has attempts left (:attr:`Lifecycle.max_attempts`),
and failed with the reason after that. Metrics count the jobs that end, with their queue and
run times.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from uuid import UUID, uuid4

from sonalyze.domain import FINAL_JOB_STATES, JobState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.events import event
from sonalyze.simulation_api import SubmitSimulation
from sonalyze.storage_api import (
    MAX_ERROR_CHARS,
    SimulationJobCreate,
    SimulationJobRead,
    SimulationJobUpdate,
)
from sonalyze.storage_client import StorageClient, StorageConflict, StorageNotFound
from sonalyze_simulation.rooms import RoomError, plan
from sonalyze_simulation.runner import Runner
from sonalyze_simulation.simulation_metrics import SimulationMetrics

logger = logging.getLogger(__name__)
_REMEMBERED = 10_000  # ended jobs whose metrics this process has counted


class Lifecycle:
    """The changes the service makes to jobs (the worker makes the others)."""

    def __init__(
        self, storage: StorageClient, metrics: SimulationMetrics, max_attempts: int
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        self.max_attempts = max_attempts
        self._counted: OrderedDict[UUID, None] = OrderedDict()

    async def worker_stopped(self, job_id: UUID, why: str) -> bool:
        """A worker that had claimed the job stopped (``why`` says how). If the job has no
        outcome, queue it again while attempts are left (True: launch it again), else fail it
        with the reason."""
        job = await self.storage.get_simulation_job(job_id)
        if job.state in FINAL_JOB_STATES:
            self.ended(job)
            return False
        attempts = job.attempts
        if attempts >= self.max_attempts:
            plural = "s" * (attempts != 1)
            await self.fail(job, f"{why}; gave up after {attempts} attempt{plural}")
            return False
        note = f"attempt {attempts}: {why}"[:MAX_ERROR_CHARS]
        again = SimulationJobUpdate(
            expected_version=job.version, state=JobState.queued, progress=0.0, error=note
        )
        try:
            await self.storage.update_simulation_job(job_id, again)
        except StorageConflict:
            return False  # it moved meanwhile (cancelled, or another worker reported)
        self.metrics.retries.inc()
        logger.warning("simulation %s queued again: %s", job_id, note)
        return True

    async def fail(self, job: SimulationJobRead, why: str) -> None:
        """Fail the job with ``why`` (and tell its lobby) unless it has ended meanwhile."""
        reason = why[:MAX_ERROR_CHARS]
        news = event("simulation.result", job_id=job.id, state="failed", summary=None, error=reason)
        body = SimulationJobUpdate(
            expected_version=job.version,
            state=JobState.failed,
            error=reason,
            events=[news] if job.lobby_id is not None else [],
        )
        try:
            job = await self.storage.update_simulation_job(job.id, body)
        except StorageConflict:
            job = await self.storage.get_simulation_job(job.id)
        logger.warning("simulation %s failed: %s", job.id, reason)
        self.ended(job)

    def ended(self, job: SimulationJobRead) -> None:
        """Count an ended job in the metrics, once per process."""
        if job.state not in FINAL_JOB_STATES or job.id in self._counted:
            return
        self._counted[job.id] = None
        if len(self._counted) > _REMEMBERED:
            self._counted.popitem(last=False)
        self.metrics.jobs.labels(job.state.value).inc()
        if job.started_at is not None:
            self.metrics.queue_seconds.observe((job.started_at - job.created_at).total_seconds())
            if job.finished_at is not None:
                run = (job.finished_at - job.started_at).total_seconds()
                self.metrics.run_seconds.observe(run)


class SimulationJobs:
    """Submits, reads and cancels jobs; the runner runs them."""

    def __init__(self, lifecycle: Lifecycle, runner: Runner) -> None:
        self._lifecycle = lifecycle
        self._storage = lifecycle.storage
        self._runner = runner

    async def submit(self, body: SubmitSimulation) -> SimulationJobRead:
        """Queue the simulation (the job this ``client_request_id`` created, if it did)."""
        try:
            plan(body.request)  # materials by name are known only here
        except RoomError as error:
            raise ServiceError(ErrorCode.bad_request, f"request.{error}") from None
        job_id = uuid4()
        news = event("simulation.queued", job_id=job_id, device_id=body.device_id)
        create = SimulationJobCreate(
            id=job_id,
            client_request_id=body.client_request_id,
            lobby_id=body.lobby_id,
            spec=body.request.model_dump(mode="json"),
            events=[news] if body.lobby_id is not None else [],
        )
        try:
            job = await self._storage.create_simulation_job(create)
        except StorageConflict as conflict:
            raise ServiceError(ErrorCode.conflict, str(conflict)) from None
        except StorageNotFound as missing:
            raise ServiceError(ErrorCode.not_found, str(missing)) from None
        if job.state == JobState.queued:
            await self._runner.launch(job.id)
        return job

    async def get(self, job_id: UUID) -> SimulationJobRead:
        try:
            return await self._storage.get_simulation_job(job_id)
        except StorageNotFound:
            raise ServiceError(ErrorCode.not_found, f"simulation {job_id} not found") from None

    async def cancel(self, job_id: UUID) -> SimulationJobRead:
        """Cancel the job and stop its worker; an ended job stays as it ended (409)."""
        job = await self.get(job_id)
        while job.state not in FINAL_JOB_STATES:
            news = event(
                "simulation.result", job_id=job.id, state="cancelled", summary=None, error=None
            )
            body = SimulationJobUpdate(
                expected_version=job.version,
                state=JobState.cancelled,
                events=[news] if job.lobby_id is not None else [],
            )
            try:
                job = await self._storage.update_simulation_job(job_id, body)
            except StorageConflict:  # the worker reported meanwhile: read it again
                job = await self.get(job_id)
                continue
            await self._runner.stop(job_id)
            self._lifecycle.ended(job)
            return job
        raise ServiceError(ErrorCode.conflict, f"simulation {job_id} has ended ({job.state})")
