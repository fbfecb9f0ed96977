"""The local runner: each job's worker is a subprocess running the very entry point a
Kubernetes Job runs (``python -m sonalyze_simulation.worker``), at most ``workers`` at a time.

Jobs wait in a first-in, first-out queue. A worker's log lines pass through to the service's
standard error, prefixed with its job, and the last few are kept to explain a crash. A worker
that stops without an outcome goes to :meth:`Lifecycle.worker_stopped
<sonalyze_simulation.jobs.Lifecycle.worker_stopped>`, which queues the job again or fails it.

Recovery (at start, then every ``recover_every_s``) launches every queued job, and treats a
running job that no worker here runs and whose heartbeat is older than ``stale_s`` as one
whose worker died. A worker outlives a service that is killed, and finishes its job: its
heartbeat keeps recovery from starting a second. On an orderly stop the service stops its
workers and queues their jobs again (the attempt is counted), so the next start resumes them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from uuid import UUID

from sonalyze.domain import JobState
from sonalyze.storage_api import SimulationJobUpdate
from sonalyze.storage_client import StorageConflict, StorageError
from sonalyze_simulation.jobs import Lifecycle

logger = logging.getLogger(__name__)
_TAIL_LINES = 5
_STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class WorkerEnvironment:
    """What a worker subprocess is told (the same variables a Job's container gets)."""

    storage_url: str
    internal_token: str | None
    heartbeat_s: float
    chunk_bytes: int
    log_level: str = "info"

    def for_job(self, job_id: UUID) -> dict[str, str]:
        env = {
            **os.environ,
            "SONALYZE_JOB_ID": str(job_id),
            "SONALYZE_STORAGE_URL": self.storage_url,
            "SONALYZE_HEARTBEAT_S": str(self.heartbeat_s),
            "SONALYZE_CHUNK_BYTES": str(self.chunk_bytes),
            "SONALYZE_LOG_LEVEL": self.log_level,
        }
        if self.internal_token is not None:
            env["SONALYZE_INTERNAL_TOKEN"] = self.internal_token
        return env


def describe_exit(code: int, tail: collections.deque[str]) -> str:
    """Why a worker stopped, in words (its last log line, if it left one)."""
    if code < 0:
        try:
            how = f"the worker was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"the worker was killed by signal {-code}"
    else:
        how = f"the worker exited with status {code}"
    return f"{how}: {tail[-1]}" if tail else how


class LocalRunner:
    """Runs workers as subprocesses of this service."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        environment: WorkerEnvironment,
        workers: int,
        stale_s: float,
        recover_every_s: float = 30.0,
    ) -> None:
        self._lifecycle = lifecycle
        self._environment = environment
        self._stale_s = stale_s
        self._recover_every_s = recover_every_s
        self._queue: asyncio.Queue[UUID] = asyncio.Queue()
        self._waiting: set[UUID] = set()
        self._running: dict[UUID, asyncio.subprocess.Process] = {}
        self._launches: collections.Counter[UUID] = collections.Counter()
        self._stopping = False
        self._slots = [asyncio.create_task(self._serve()) for _ in range(workers)]

    async def launch(self, job_id: UUID) -> None:
        if job_id in self._waiting or job_id in self._running:
            return
        self._waiting.add(job_id)
        self._queue.put_nowait(job_id)

    async def stop(self, job_id: UUID) -> None:
        self._waiting.discard(job_id)  # its slot will skip it
        process = self._running.get(job_id)
        if process is not None and process.returncode is None:
            process.terminate()

    async def recover(self) -> None:
        storage = self._lifecycle.storage
        for job in await storage.list_simulation_jobs([JobState.queued], limit=1000):
            await self.launch(job.id)
        for job in await storage.list_simulation_jobs([JobState.running], limit=1000):
            if job.id in self._running or job.id in self._waiting:
                continue
            if time.time() - job.updated_at.timestamp() < self._stale_s:
                continue  # a worker is still at it (one that outlived a killed service)
            why = f"its worker stopped reporting ({self._stale_s:g} s without a heartbeat)"
            if await self._lifecycle.worker_stopped(job.id, why):
                await self.launch(job.id)

    async def watch(self) -> None:
        """Recover now and every ``recover_every_s``, until cancelled."""
        while True:
            try:
                await self.recover()
            except StorageError as error:
                logger.warning("simulation jobs not recovered: %s", error)
            await asyncio.sleep(self._recover_every_s)

    async def close(self) -> None:
        """Stop taking jobs, stop the workers, and queue their jobs again."""
        self._stopping = True
        interrupted = list(self._running.items())
        for _, process in interrupted:
            if process.returncode is None:
                process.terminate()
        for _, process in interrupted:
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
            except TimeoutError:
                process.kill()
        for slot in self._slots:
            slot.cancel()
        await asyncio.gather(*self._slots, return_exceptions=True)
        for job_id, _ in interrupted:
            await self._requeue(job_id)

    async def _requeue(self, job_id: UUID) -> None:
        """Queue a job whose worker this service stopped, for the next start to resume."""
        storage = self._lifecycle.storage
        try:
            job = await storage.get_simulation_job(job_id)
            if job.state == JobState.running:
                note = f"attempt {job.attempts}: interrupted, the simulation service stopped"
                body = SimulationJobUpdate(
                    expected_version=job.version, state=JobState.queued, error=note
                )
                await storage.update_simulation_job(job_id, body)
        except (StorageConflict, StorageError) as error:
            logger.warning("simulation %s not queued again on the way out: %s", job_id, error)

    async def _serve(self) -> None:
        """One slot: run queued jobs one after the other."""
        while not self._stopping:
            job_id = await self._queue.get()
            if job_id not in self._waiting:
                continue  # cancelled while it waited
            self._waiting.discard(job_id)
            try:
                again = await self._run(job_id)
            except StorageError as error:
                logger.warning("simulation %s: storage failed: %s; queued again", job_id, error)
                again = True
                await asyncio.sleep(1.0)
            if again and not self._stopping:
                await self.launch(job_id)

    async def _run(self, job_id: UUID) -> bool:
        """Run one worker for the job; whether the job should run again."""
        self._launches[job_id] += 1
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sonalyze_simulation.worker",
            env=self._environment.for_job(job_id),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._running[job_id] = process
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        try:
            assert process.stderr is not None
            async for raw in process.stderr:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                sys.stderr.write(f"worker {job_id}: {line}\n")
            code = await process.wait()
        finally:
            del self._running[job_id]
        if self._stopping:
            return False  # close() queues it again
        if code == 0:
            job = await self._lifecycle.storage.get_simulation_job(job_id)
            if job.state != JobState.running and job.state != JobState.queued:
                self._launches.pop(job_id, None)
                self._lifecycle.ended(job)
                return False
        why = describe_exit(code, tail)
        again = await self._lifecycle.worker_stopped(job_id, why, self._launches[job_id])
        if not again:
            self._launches.pop(job_id, None)
        return again
