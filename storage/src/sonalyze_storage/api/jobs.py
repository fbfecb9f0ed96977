"""Analyses and simulation jobs: queued, running (with progress), then a final state."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Query, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sonalyze.domain import FINAL_JOB_STATES, JobState
from sonalyze.storage_api import (
    AnalysisCreate,
    AnalysisRead,
    JobUpdate,
    SimulationJobCreate,
    SimulationJobRead,
    SimulationJobUpdate,
)
from sonalyze_storage.api.refusals import refusals
from sonalyze_storage.db import SessionDep
from sonalyze_storage.event_log import commit_with_events
from sonalyze_storage.rows import conflict, get_or_404, unprocessable, update_versioned
from sonalyze_storage.tables import Analysis, Lobby, Measurement, SimulationJob

router = APIRouter(tags=["jobs"])


def _job_values(body: JobUpdate) -> dict[str, object]:
    values: dict[str, object] = {"state": body.state}
    for field in ("progress", "error", "result"):
        if getattr(body, field) is not None:
            values[field] = getattr(body, field)
    if body.state == JobState.succeeded:
        values["progress"] = 1.0
        values["error"] = None  # an earlier attempt's reason is no error of the outcome
    return values


async def _commit(session: AsyncSession, lobby_id: UUID | None, body: JobUpdate) -> None:
    if body.events and lobby_id is None:
        await session.rollback()
        raise unprocessable("this job belongs to no lobby, so it cannot carry events")
    await commit_with_events(session, lobby_id, body.events)


@router.post(
    "/analyses",
    status_code=status.HTTP_201_CREATED,
    response_model=AnalysisRead,
    responses=refusals(400, 404),
)
async def create_analysis(body: AnalysisCreate, session: SessionDep) -> Analysis:
    if body.measurement_id is not None:
        await get_or_404(session, Measurement, body.measurement_id, "measurement")
    analysis = Analysis(measurement_id=body.measurement_id, params=body.params)
    session.add(analysis)
    await session.commit()
    await session.refresh(analysis)
    return analysis


@router.get(
    "/measurements/{measurement_id}/analyses",
    response_model=list[AnalysisRead],
    responses=refusals(404),
)
async def measurement_analyses(measurement_id: UUID, session: SessionDep) -> list[Analysis]:
    """A measurement's analyses, newest first."""
    await get_or_404(session, Measurement, measurement_id, "measurement")
    query = (
        select(Analysis)
        .where(col(Analysis.measurement_id) == measurement_id)
        .order_by(col(Analysis.created_at).desc())
    )
    return list((await session.exec(query)).all())


@router.get("/analyses/{analysis_id}", response_model=AnalysisRead, responses=refusals(404))
async def get_analysis(analysis_id: UUID, session: SessionDep) -> Analysis:
    return await get_or_404(session, Analysis, analysis_id, "analysis")


@router.patch(
    "/analyses/{analysis_id}", response_model=AnalysisRead, responses=refusals(400, 404, 409)
)
async def update_analysis(analysis_id: UUID, body: JobUpdate, session: SessionDep) -> Analysis:
    """Report progress or an outcome; events go to the measurement's lobby."""
    row = await update_versioned(
        session,
        Analysis,
        analysis_id,
        body.expected_version,
        _job_values(body),
        "analysis",
        FINAL_JOB_STATES,
    )
    lobby_id = None
    if row.measurement_id is not None:
        measurement = await session.get(Measurement, row.measurement_id)
        lobby_id = measurement.lobby_id if measurement is not None else None
    await _commit(session, lobby_id, body)
    return row


@router.post(
    "/simulation-jobs",
    status_code=status.HTTP_201_CREATED,
    response_model=SimulationJobRead,
    responses={
        200: {"description": "The job this client_request_id already created."},
        **refusals(400, 404, 409),
    },
)
async def create_simulation_job(
    body: SimulationJobCreate, session: SessionDep, response: Response
) -> SimulationJob:
    """Queue a job, idempotently by ``client_request_id``: the same request again answers 200
    with the existing job; the same id with another request is refused with 409."""
    if body.events and body.lobby_id is None:
        raise unprocessable("a job without a lobby cannot carry events")
    existing = await _by_request_id(session, body.client_request_id)
    if existing is not None:
        return _same_request(existing, body, response)
    if body.lobby_id is not None:
        await get_or_404(session, Lobby, body.lobby_id, "lobby")
    job = SimulationJob(
        client_request_id=body.client_request_id, lobby_id=body.lobby_id, spec=body.spec
    )
    if body.id is not None:
        job.id = body.id
    session.add(job)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        existing = await _by_request_id(session, body.client_request_id)
        if existing is None:  # not the request id, so the chosen job id was taken
            raise conflict(f"a simulation job with id {body.id} exists already") from None
        return _same_request(existing, body, response)
    await commit_with_events(session, body.lobby_id, body.events)
    await session.refresh(job)
    return job


async def _by_request_id(session: AsyncSession, request_id: str) -> SimulationJob | None:
    query = select(SimulationJob).where(col(SimulationJob.client_request_id) == request_id)
    return (await session.exec(query)).one_or_none()


def _same_request(
    job: SimulationJob, body: SimulationJobCreate, response: Response
) -> SimulationJob:
    if job.spec != body.spec or job.lobby_id != body.lobby_id:
        raise conflict(f"client_request_id {body.client_request_id} was used for another request")
    response.status_code = status.HTTP_200_OK
    return job


@router.get("/simulation-jobs", response_model=list[SimulationJobRead])
async def list_simulation_jobs(
    session: SessionDep,
    state: list[JobState] = Query(default_factory=list, description="Only jobs in these states."),
    limit: int = Query(100, ge=1, le=1000),
) -> list[SimulationJob]:
    """Jobs, oldest first (a runner reconciling after a restart lists the unfinished ones)."""
    query = select(SimulationJob).order_by(col(SimulationJob.created_at)).limit(limit)
    if state:
        query = query.where(col(SimulationJob.state).in_([s.value for s in state]))
    return list((await session.exec(query)).all())


@router.get("/simulation-jobs/{job_id}", response_model=SimulationJobRead, responses=refusals(404))
async def get_simulation_job(job_id: UUID, session: SessionDep) -> SimulationJob:
    return await get_or_404(session, SimulationJob, job_id, "simulation job")


@router.patch(
    "/simulation-jobs/{job_id}", response_model=SimulationJobRead, responses=refusals(400, 404, 409)
)
async def update_simulation_job(
    job_id: UUID, body: SimulationJobUpdate, session: SessionDep
) -> SimulationJob:
    """Report progress or an outcome (409 once the job has ended); a worker beginning a run
    says ``new_attempt``, which counts it and notes the first start."""
    values = _job_values(body)
    if body.new_attempt:
        values["attempts"] = col(SimulationJob.attempts) + 1
        values["started_at"] = sa.func.coalesce(col(SimulationJob.started_at), sa.func.now())
    if body.state in FINAL_JOB_STATES:
        values["finished_at"] = sa.func.now()
    row = await update_versioned(
        session, SimulationJob, job_id, body.expected_version, values, "simulation job",
        FINAL_JOB_STATES,
    )  # fmt: skip
    await _commit(session, row.lobby_id, body)
    return row
