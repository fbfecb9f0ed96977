"""The simulation service's HTTP API (internal: the gateway calls it for the phones)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, Response, status

from sonalyze.auth import require_internal_token
from sonalyze.errors import ErrorCode, ServiceError, refusals
from sonalyze.simulation_api import SubmitSimulation
from sonalyze.storage_api import SimulationJobRead
from sonalyze.storage_client import StorageError
from sonalyze_simulation.jobs import SimulationJobs
from sonalyze_simulation.rooms import material_names


async def _jobs(request: Request) -> SimulationJobs:
    jobs: SimulationJobs = request.app.state.jobs
    return jobs


JobsDep = Annotated[SimulationJobs, Depends(_jobs)]

router = APIRouter(
    prefix="/v1",
    tags=["simulations"],
    dependencies=[Depends(require_internal_token)],
    responses=refusals(400, 401, 404, 409, 503),
)


@router.post("/simulations", status_code=status.HTTP_202_ACCEPTED, response_model=SimulationJobRead)
async def submit(body: SubmitSimulation, jobs: JobsDep) -> SimulationJobRead:
    """Queue a simulation; the same ``client_request_id`` again answers with its job. A
    request that cannot be simulated is refused (400 or 422, the message naming the field)
    and queues nothing."""
    return await jobs.submit(body)


@router.get("/simulations/{job_id}", response_model=SimulationJobRead)
async def get(job_id: UUID, jobs: JobsDep) -> SimulationJobRead:
    """The job: its state and progress, then its result (or the reason it failed)."""
    return await jobs.get(job_id)


@router.post("/simulations/{job_id}/cancel", response_model=SimulationJobRead)
async def cancel(job_id: UUID, jobs: JobsDep) -> SimulationJobRead:
    """Cancel the job and stop its worker (409 if it has ended)."""
    return await jobs.cancel(job_id)


@router.get(
    "/simulations/{job_id}/responses/{index}.wav",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
)
async def response_wav(
    job_id: UUID, index: Annotated[int, Path(ge=0)], request: Request, jobs: JobsDep
) -> Response:
    """The impulse response of ``result.responses[index]`` (a receiver and a source), as a
    32-bit float WAV file."""
    job = await jobs.get(job_id)
    pairs = (job.result or {}).get("responses", [])
    if index >= len(pairs) or "blob_id" not in pairs[index]:
        raise ServiceError(
            ErrorCode.not_found, f"simulation {job_id} has no response {index} ({job.state})"
        )
    try:
        data = await request.app.state.storage.read_blob(UUID(pairs[index]["blob_id"]))
    except StorageError:
        raise ServiceError(ErrorCode.unavailable, "storage is unavailable; retry") from None
    return Response(data, media_type="audio/wav")


@router.get("/materials", response_model=list[str])
async def materials() -> list[str]:
    """The material names a request may use (pyroomacoustics' database)."""
    return material_names()
