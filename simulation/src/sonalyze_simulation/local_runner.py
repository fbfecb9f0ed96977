"""The local runner: each job's worker is a subprocess running the very entry point a
Kubernetes Job runs (``python -m sonalyze_simulation.worker``), at most ``workers`` at a time.

Jobs wait in a first-in, first-out queue. A worker's log lines pass through to the service's
standard error, prefixed with its job, and the last few are kept to explain a crash. A worker
that stops without an outcome after claiming its job goes to :meth:`Lifecycle.worker_stopped
<sonalyze_simulation.jobs.Lifecycle.worker_stopped>`, which queues the job again or fails it;
one that stops before claiming it (storage unreachable, say) had no attempt, and the job is
launched again after a growing wait (1 s, doubling to a minute). A worker running past
``deadline_s`` is killed and its job failed, as Kubernetes' ``activeDeadlineSeconds`` does.

Recovery (at start, then every ``recover_every_s``) launches every queued job, and treats a
running job that no worker here runs and whose heartbeat is older than ``stale_s`` as one
whose worker died. Workers run in their own session, so that a Ctrl-C reaches the service
only, and watch it (:mod:`sonalyze.lifeline`): a worker stops once its service is gone, killed
or not, and the next start finds its job without a heartbeat and runs it again. On an orderly
stop the service stops its workers and queues their jobs again (the attempt is counted), so
the next start resumes them.
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

from sonalyze.domain import FINAL_JOB_STATES, JobState
from sonalyze.lifeline import child_environment
from sonalyze.storage_api import SimulationJobUpdate
from sonalyze.storage_client import StorageConflict, StorageError
from sonalyze_simulation.jobs import Lifecycle

logger = logging.getLogger(__name__)
_TAIL_LINES = 5
_STOP_GRACE_S = 5.0
_RETRY_WAIT_S = (1.0, 60.0)  # the first and the longest wait before launching again
# One BLAS thread per worker, unless the service's environment says otherwise: workers run side
# by side, and a multithreaded BLAS's threads wait on each other on a busy machine.
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class WorkerEnvironment:
    """What a worker subprocess is told (the same variables a Job's container gets)."""

    storage_url: str
    internal_token: str | None
    heartbeat_s: float
    chunk_bytes: int
    max_attempts: int
    log_level: str = "info"

    def for_job(self, job_id: UUID) -> dict[str, str]:
        env = {
            **BLAS_THREADS,
            **os.environ,
            **child_environment(),  # it stops if this service dies
            "SONALYZE_JOB_ID": str(job_id),
            "SONALYZE_STORAGE_URL": self.storage_url,
            "SONALYZE_HEARTBEAT_S": str(self.heartbeat_s),
            "SONALYZE_CHUNK_BYTES": str(self.chunk_bytes),
            "SONALYZE_MAX_ATTEMPTS": str(self.max_attempts),
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
        deadline_s: float = 3600.0,
    ) -> None:
        self._lifecycle = lifecycle
        self._storage = lifecycle.storage
        self._environment = environment
        self._stale_s = stale_s
        self._recover_every_s = recover_every_s
        self._deadline_s = deadline_s
        self._queue: asyncio.Queue[UUID] = asyncio.Queue()
        self._waiting: set[UUID] = set()  # in the queue
        self._busy: set[UUID] = set()  # taken by a slot, until its worker is dealt with
        self._running: dict[UUID, asyncio.subprocess.Process] = {}
        self._retry_wait: dict[UUID, float] = {}
        self._later: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._slots = [asyncio.create_task(self._serve()) for _ in range(workers)]

    async def launch(self, job_id: UUID) -> None:
        if job_id in self._waiting or job_id in self._busy or self._stopping:
            return
        self._waiting.add(job_id)
        self._queue.put_nowait(job_id)

    async def stop(self, job_id: UUID) -> None:
        self._waiting.discard(job_id)  # its slot will skip it
        process = self._running.get(job_id)
        if process is not None and process.returncode is None:
            process.terminate()

    async def recover(self) -> None:
        for job in await self._storage.list_simulation_jobs([JobState.queued], limit=1000):
            await self.launch(job.id)
        for job in await self._storage.list_simulation_jobs([JobState.running], limit=1000):
            if job.id in self._busy or job.id in self._waiting:
                continue
            if time.time() - job.updated_at.timestamp() < self._stale_s:
                continue  # its worker may still be at it
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
        for task in self._later:
            task.cancel()
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
        await asyncio.gather(*self._slots, *self._later, return_exceptions=True)
        for job_id, _ in interrupted:
            await self._requeue(job_id)

    async def _requeue(self, job_id: UUID) -> None:
        """Queue a job whose worker this service stopped, for the next start to resume."""
        try:
            job = await self._storage.get_simulation_job(job_id)
            if job.state == JobState.running:
                note = f"attempt {job.attempts}: interrupted, the simulation service stopped"
                body = SimulationJobUpdate(
                    expected_version=job.version, state=JobState.queued, progress=0.0, error=note
                )
                await self._storage.update_simulation_job(job_id, body)
        except (StorageConflict, StorageError) as error:
            logger.warning("simulation %s not queued again on the way out: %s", job_id, error)

    async def _serve(self) -> None:
        """One slot: run queued jobs one after the other."""
        while not self._stopping:
            job_id = await self._queue.get()
            if job_id not in self._waiting:
                continue  # cancelled while it waited
            self._waiting.discard(job_id)
            self._busy.add(job_id)
            try:
                again = await self._run(job_id)
            except StorageError as error:
                logger.warning("simulation %s: storage failed: %s", job_id, error)
                again = True
            except Exception:  # a slot must outlive whatever one job does
                logger.exception("simulation %s: the runner failed", job_id)
                again = True
            finally:
                self._busy.discard(job_id)
            if again and not self._stopping:
                self._launch_later(job_id)

    def _launch_later(self, job_id: UUID) -> None:
        """Launch the job again after its growing wait (nothing at once: storage may be
        down, or the worker unable to start)."""
        first, longest = _RETRY_WAIT_S
        wait = self._retry_wait.get(job_id, 0.0)
        self._retry_wait[job_id] = min(2 * wait or first, longest)

        async def later() -> None:
            await asyncio.sleep(wait)
            await self.launch(job_id)

        task = asyncio.create_task(later())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _run(self, job_id: UUID) -> bool:
        """Run one worker for the job; whether the job should run again."""
        before = await self._storage.get_simulation_job(job_id)
        if before.state in FINAL_JOB_STATES:
            self._retry_wait.pop(job_id, None)
            return False
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sonalyze_simulation.worker",
            env=self._environment.for_job(job_id),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._running[job_id] = process
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        try:
            code = await asyncio.wait_for(self._relay(job_id, process, tail), self._deadline_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            job = await self._storage.get_simulation_job(job_id)
            await self._lifecycle.fail(job, f"the worker ran past the deadline of "
                                            f"{self._deadline_s:g} s")  # fmt: skip
            return False
        finally:
            self._running.pop(job_id, None)
        if self._stopping:
            return False  # close() queues it again
        job = await self._storage.get_simulation_job(job_id)
        if job.state in FINAL_JOB_STATES:
            self._retry_wait.pop(job_id, None)
            self._lifecycle.ended(job)
            return False
        why = describe_exit(code, tail)
        if job.attempts == before.attempts:  # it stopped before it claimed the job
            logger.warning("simulation %s: a worker stopped before it began: %s", job_id, why)
            return True
        self._retry_wait.pop(job_id, None)
        return await self._lifecycle.worker_stopped(job_id, why)

    @staticmethod
    async def _relay(
        job_id: UUID, process: asyncio.subprocess.Process, tail: collections.deque[str]
    ) -> int:
        """Pass the worker's log lines on (keeping the last few) until it exits."""
        assert process.stderr is not None
        pending = b""
        while chunk := await process.stderr.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                sys.stderr.write(f"worker {job_id}: {line}\n")
        if pending:
            tail.append(pending.decode(errors="replace").rstrip())
        return await process.wait()
