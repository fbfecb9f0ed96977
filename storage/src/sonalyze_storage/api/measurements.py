"""Measurements and the recordings their microphones upload."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Query, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from sonalyze.domain import MeasurementState
from sonalyze.storage_api import (
    MeasurementCreate,
    MeasurementRead,
    MeasurementUpdate,
    RecordingCreate,
    RecordingRead,
    RecordingUpdate,
)
from sonalyze_storage.api.refusals import refusals
from sonalyze_storage.db import SessionDep
from sonalyze_storage.event_log import commit_with_events
from sonalyze_storage.rows import conflict, get_or_404, update_versioned
from sonalyze_storage.tables import Blob, Device, Lobby, Measurement, Recording

router = APIRouter(tags=["measurements"])

_FINAL = (MeasurementState.completed, MeasurementState.failed, MeasurementState.aborted)


@router.post(
    "/measurements",
    status_code=status.HTTP_201_CREATED,
    response_model=MeasurementRead,
    responses=refusals(400, 404),
)
async def create_measurement(body: MeasurementCreate, session: SessionDep) -> Measurement:
    await get_or_404(session, Lobby, body.lobby_id, "lobby")
    measurement = Measurement(lobby_id=body.lobby_id, spec=body.spec)
    session.add(measurement)
    await session.flush()
    await commit_with_events(session, body.lobby_id, body.events)
    await session.refresh(measurement)
    return measurement


@router.get("/measurements", response_model=list[MeasurementRead])
async def list_measurements(
    session: SessionDep,
    state: list[MeasurementState] = Query(
        default_factory=list, description="Only measurements in these states."
    ),
    limit: int = Query(100, ge=1, le=1000),
) -> list[Measurement]:
    """Measurements, oldest first (the measurement service, after a restart, lists the ones
    it must look after)."""
    query = select(Measurement).order_by(col(Measurement.created_at)).limit(limit)
    if state:
        query = query.where(col(Measurement.state).in_([s.value for s in state]))
    return list((await session.exec(query)).all())


@router.get(
    "/measurements/{measurement_id}", response_model=MeasurementRead, responses=refusals(404)
)
async def get_measurement(measurement_id: UUID, session: SessionDep) -> Measurement:
    return await get_or_404(session, Measurement, measurement_id, "measurement")


@router.get(
    "/lobbies/{lobby_id}/measurements",
    response_model=list[MeasurementRead],
    responses=refusals(404),
)
async def lobby_measurements(lobby_id: UUID, session: SessionDep) -> list[Measurement]:
    """A lobby's measurements, newest first."""
    await get_or_404(session, Lobby, lobby_id, "lobby")
    query = (
        select(Measurement)
        .where(col(Measurement.lobby_id) == lobby_id)
        .order_by(col(Measurement.created_at).desc())
    )
    return list((await session.exec(query)).all())


@router.patch(
    "/measurements/{measurement_id}",
    response_model=MeasurementRead,
    responses=refusals(400, 404, 409),
)
async def update_measurement(
    measurement_id: UUID, body: MeasurementUpdate, session: SessionDep
) -> Measurement:
    """Move a measurement to another state (409 on another version or once it has ended)."""
    row = await update_versioned(
        session,
        Measurement,
        measurement_id,
        body.expected_version,
        {"state": body.state},
        "measurement",
        _FINAL,
    )
    await commit_with_events(session, row.lobby_id, body.events)
    return row


@router.post(
    "/measurements/{measurement_id}/recordings",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordingRead,
    responses=refusals(400, 404, 409),
)
async def create_recording(
    measurement_id: UUID, body: RecordingCreate, session: SessionDep
) -> Recording:
    """One recording per microphone and measurement; its audio is the blob ``blob_id``."""
    for table, ident, what in (
        (Measurement, measurement_id, "measurement"),
        (Device, body.device_id, "device"),
        (Blob, body.blob_id, "blob"),
    ):
        await get_or_404(session, table, ident, what)
    recording = Recording(
        measurement_id=measurement_id,
        device_id=body.device_id,
        blob_id=body.blob_id,
        format=body.format,
    )
    session.add(recording)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise conflict(
            f"device {body.device_id} already has a recording in measurement {measurement_id}"
        ) from None
    await session.refresh(recording)
    return recording


@router.get(
    "/measurements/{measurement_id}/recordings",
    response_model=list[RecordingRead],
    responses=refusals(404),
)
async def measurement_recordings(measurement_id: UUID, session: SessionDep) -> list[Recording]:
    await get_or_404(session, Measurement, measurement_id, "measurement")
    query = (
        select(Recording)
        .where(col(Recording.measurement_id) == measurement_id)
        .order_by(col(Recording.created_at))
    )
    return list((await session.exec(query)).all())


@router.get("/recordings/{recording_id}", response_model=RecordingRead, responses=refusals(404))
async def get_recording(recording_id: UUID, session: SessionDep) -> Recording:
    return await get_or_404(session, Recording, recording_id, "recording")


@router.patch(
    "/recordings/{recording_id}", response_model=RecordingRead, responses=refusals(400, 404, 409)
)
async def update_recording(
    recording_id: UUID, body: RecordingUpdate, session: SessionDep
) -> Recording:
    """Mark a recording (complete, invalid); its events go to the measurement's lobby in the
    same transaction."""
    row = await update_versioned(
        session,
        Recording,
        recording_id,
        body.expected_version,
        {"state": body.state, "error": body.error},
        "recording",
    )
    measurement = await get_or_404(session, Measurement, row.measurement_id, "measurement")
    await commit_with_events(session, measurement.lobby_id, body.events)
    return row
