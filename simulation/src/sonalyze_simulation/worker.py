"""``python -m sonalyze_simulation.worker``: run one simulation job to its end.

The local runner starts it as a subprocess and the Kubernetes runner as a Job's container; the
environment names the job (``SONALYZE_JOB_ID``) and storage (``SONALYZE_STORAGE_URL``, with
``SONALYZE_INTERNAL_TOKEN``). The worker claims the job (running, one more attempt), reads its
request, simulates it (:func:`~sonalyze_simulation.simulate.simulate`), stores each impulse
response as a 32-bit float WAV blob and then the result, which names the blobs. It reports
progress as it goes (``simulation.progress`` in the lobby) and a heartbeat in between, so that
a runner can tell a live worker from a dead one.

Exit status:

- 0: the job succeeded, or there was nothing to do (it had ended, or it was cancelled or handed
  to another worker meanwhile; a worker whose job moved without it stops at once);
- 2 (:data:`EXIT_FAILED`): the job failed for good, its request being one that cannot be
  simulated (or its result one storage refuses as too large), or its attempts
  (``SONALYZE_MAX_ATTEMPTS``) used up by workers before this one; the reason is recorded on
  the job, and ``simulation.result`` says it;
- 1 (:data:`EXIT_RETRY`): something a retry may not meet (storage unreachable, out of memory):
  the reason is noted on the job if storage can be reached, and the job is left to its runner.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import numpy as np
import soundfile as sf
from pydantic import Field, ValidationError

from sonalyze.lifeline import watch_parent
from sonalyze.logs import configure_logging
from sonalyze.settings import StorageClientSettings
from sonalyze.simulation_api import SimulationRequest
from sonalyze.storage_client import (
    StorageBadRequest,
    StorageClient,
    StorageError,
    StorageTooLarge,
)
from sonalyze_simulation.job_reporter import AttemptsUsedUp, JobEnded, JobReporter
from sonalyze_simulation.rooms import RoomError
from sonalyze_simulation.simulate import simulate, summary

logger = logging.getLogger("sonalyze_simulation.worker")
EXIT_OK, EXIT_RETRY, EXIT_FAILED = 0, 1, 2


class WorkerSettings(StorageClientSettings):
    """The worker's settings (environment prefix ``SONALYZE_``)."""

    job_id: UUID = Field(description="The simulation job to run.")
    heartbeat_s: float = Field(
        10.0, gt=0, le=300, description="How often a running worker says it is alive."
    )
    max_attempts: int = Field(
        3, ge=1, le=10, description="Workers a job gets in all; past them, it fails."
    )
    chunk_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Chunk size of the impulse responses' upload; at most storage's "
        "SONALYZE_MAX_CHUNK_BYTES.",
    )


def wav(response: np.ndarray, sample_rate: int) -> bytes:
    """An impulse response as a mono 32-bit float WAV file."""
    out = io.BytesIO()
    sf.write(
        out, np.asarray(response, dtype=np.float32), sample_rate, format="WAV", subtype="FLOAT"
    )
    return out.getvalue()


async def store_blob(storage: StorageClient, data: bytes, chunk_bytes: int) -> UUID:
    """Upload ``data`` as one audio/wav blob, chunk by chunk; the last one seals it."""
    blob = await storage.create_blob("audio/wav")
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
    for index, chunk in enumerate(chunks):
        final = index == len(chunks) - 1
        await storage.put_chunk(blob.id, index, chunk, zlib.crc32(chunk), final=final)
    return blob.id


async def run(settings: WorkerSettings) -> int:
    """Run the job; the exit status (see the module's text)."""
    async with StorageClient(
        settings.storage_url, settings.internal_token_value(), settings.storage_timeout_s
    ) as storage:
        try:
            reporter = await JobReporter.claim(storage, settings.job_id, settings.max_attempts)
        except StorageError as error:
            logger.error("job %s not claimed: %s", settings.job_id, error)
            return EXIT_RETRY
        except AttemptsUsedUp as used_up:
            logger.error("job %s failed: %s", settings.job_id, used_up)
            return EXIT_FAILED
        if reporter is None:
            logger.info("job %s has ended already; nothing to do", settings.job_id)
            return EXIT_OK
        quiet = asyncio.Event()
        heartbeat = asyncio.create_task(_keep_beating(reporter, settings.heartbeat_s, quiet))
        work = asyncio.create_task(_work(storage, reporter, settings))
        done, _ = await asyncio.wait({heartbeat, work}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:  # the heartbeat found the job moved on without this worker
            logger.info("job %s moved on without this worker; stopping", settings.job_id)
            return EXIT_OK
        quiet.set()
        await heartbeat  # not cancelled: a heartbeat under way finishes, its version kept
        return await _conclude(reporter, work)


async def _keep_beating(reporter: JobReporter, every_s: float, quiet: asyncio.Event) -> None:
    """A heartbeat every ``every_s`` until ``quiet`` is set (or the job moved on)."""
    while True:
        try:
            await asyncio.wait_for(quiet.wait(), every_s)
            return
        except TimeoutError:
            pass
        try:
            await reporter.heartbeat()
        except JobEnded:
            return
        except StorageError as error:  # storage will be back, or the work will fail too
            logger.warning("heartbeat of job %s not stored: %s", reporter.job.id, error)


async def _work(
    storage: StorageClient, reporter: JobReporter, settings: WorkerSettings
) -> tuple[dict[str, Any], dict[str, Any]]:
    request = SimulationRequest.model_validate(reporter.job.spec)
    loop = asyncio.get_running_loop()

    def progress(done: float, stage: str) -> None:  # from the simulation's thread
        asyncio.run_coroutine_threadsafe(reporter.progress(0.9 * done, stage), loop).result()

    # Not the default executor: asyncio.run would wait for this thread on the way out.
    simulating = ThreadPoolExecutor(1, thread_name_prefix="simulate")
    result, responses = await loop.run_in_executor(simulating, simulate, request, progress)
    simulating.shutdown(wait=False)
    by_pair = {(p["receiver"], p["source"]): p for p in result["responses"]}
    for r, per_source in enumerate(responses):
        for s, response in enumerate(per_source):
            data = await asyncio.to_thread(wav, response, request.sample_rate)
            by_pair[r, s]["blob_id"] = str(await store_blob(storage, data, settings.chunk_bytes))
    await reporter.progress(0.95, "impulse responses stored")
    return result, summary(result)


async def _conclude(
    reporter: JobReporter, work: asyncio.Task[tuple[dict[str, Any], dict[str, Any]]]
) -> int:
    job_id = reporter.job.id
    try:
        result, brief = work.result()
        await reporter.succeed(result, brief)
        logger.info("job %s succeeded (attempt %d)", job_id, reporter.attempt)
        return EXIT_OK
    except JobEnded:
        logger.info("job %s moved on without this worker; stopping", job_id)
        return EXIT_OK
    except (ValidationError, RoomError, ValueError) as error:  # the request itself
        reason = f"the room cannot be simulated: {error}"
        code = EXIT_FAILED
    except (StorageTooLarge, StorageBadRequest) as error:  # as refused the next time
        reason = f"storage refused the result: {error}"
        code = EXIT_FAILED
    except StorageError as error:
        logger.error("job %s: storage failed: %s", job_id, error)
        return EXIT_RETRY
    except Exception as error:  # a retry may not meet it (memory, say)
        logger.exception("job %s failed unexpectedly", job_id)
        reason, code = f"attempt {reporter.attempt}: {type(error).__name__}: {error}", EXIT_RETRY
    try:
        await (reporter.fail(reason) if code == EXIT_FAILED else reporter.note(reason))
    except (StorageError, JobEnded) as error:
        logger.error("job %s: the reason was not recorded (%s): %s", job_id, error, reason)
    return code


def main() -> None:
    settings = WorkerSettings()
    configure_logging("simulation-worker", settings.log_level, settings.log_format)
    if settings.parent_pid is not None:  # the local runner's service
        watch_parent(settings.parent_pid)
    code = asyncio.run(run(settings))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # The simulation's thread cannot be interrupted; a worker whose job moved on leaves it.
    os._exit(code)


if __name__ == "__main__":
    main()
