"""The measurement service's HTTP API (internal: the lobby and the gateway call it)."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status
from pydantic.json_schema import SkipJsonSchema

from sonalyze.auth import require_internal_token
from sonalyze.errors import refusals
from sonalyze.measurement_api import (
    BeginUpload,
    ChunkAck,
    MeasurementStarted,
    MeasurementStatus,
    StartMeasurement,
    UploadStatus,
)
from sonalyze.storage_api import MAX_CHUNKS, AnalysisRead, Crc32
from sonalyze_measurement.measurements import Measurements
from sonalyze_measurement.sweeps import wav


async def _measurements(request: Request) -> Measurements:
    measurements: Measurements = request.app.state.measurements
    return measurements


MeasurementsDep = Annotated[Measurements, Depends(_measurements)]

router = APIRouter(
    prefix="/v1/measurements",
    tags=["measurements"],
    dependencies=[Depends(require_internal_token)],
    responses=refusals(400, 401, 403, 404, 409, 413, 503),
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MeasurementStarted)
async def start(body: StartMeasurement, measurements: MeasurementsDep) -> MeasurementStarted:
    """Design the sweep and record the measurement for the lobby's microphones and speakers."""
    return await measurements.start(body)


@router.get("/{measurement_id}", response_model=MeasurementStarted)
async def get(measurement_id: UUID, measurements: MeasurementsDep) -> MeasurementStarted:
    return await measurements.get(measurement_id)


@router.get(
    "/{measurement_id}/sweep.wav",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
)
async def sweep_wav(measurement_id: UUID, measurements: MeasurementsDep) -> Response:
    """The sweep the speakers play, as a 24-bit WAV file."""
    started = await measurements.get(measurement_id)
    body = await asyncio.to_thread(wav, started.sweep)  # up to a second for the longest
    return Response(body, media_type="audio/wav")


@router.get(
    "/{measurement_id}/responses/{device_id}.wav",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}}},
)
async def response_wav(
    measurement_id: UUID, device_id: UUID, measurements: MeasurementsDep
) -> Response:
    """The impulse response the analysis used for the microphone, as a 32-bit float WAV file
    (404 unless the analysis succeeded with it)."""
    return Response(
        await measurements.response_wav(measurement_id, device_id), media_type="audio/wav"
    )


@router.get("/{measurement_id}/status", response_model=MeasurementStatus)
async def upload_status(measurement_id: UUID, measurements: MeasurementsDep) -> MeasurementStatus:
    """Each recording's state and missing chunks, and the microphones yet to begin."""
    return await measurements.status(measurement_id)


@router.post("/{measurement_id}/recordings", response_model=UploadStatus)
async def begin_upload(
    measurement_id: UUID, body: BeginUpload, measurements: MeasurementsDep
) -> UploadStatus:
    """A microphone begins (or resumes) uploading its recording in the format it declares."""
    return await measurements.begin_upload(measurement_id, body)


@router.put(
    "/{measurement_id}/recordings/{device_id}/chunks/{index}",
    response_model=ChunkAck,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_chunk(
    measurement_id: UUID,
    device_id: UUID,
    index: Annotated[int, Path(ge=0, le=MAX_CHUNKS - 1)],
    request: Request,
    measurements: MeasurementsDep,
    x_content_crc32: Annotated[
        Crc32 | SkipJsonSchema[None],  # optional, but never null
        Header(description="CRC32 of the body (decimal)."),
    ] = None,
    x_final_chunk: Annotated[bool, Header(description="The recording's last chunk.")] = False,
) -> ChunkAck:
    """Store chunk ``index`` of the microphone's recording (the raw body). A chunk already
    stored is acknowledged again with ``created: false``; a CRC mismatch is a 400 (send it
    again). The chunk that leaves none missing has the recording checked: ``state`` says
    complete or invalid."""
    return await measurements.put_chunk(
        measurement_id, device_id, index, await request.body(), x_content_crc32, x_final_chunk
    )


@router.post(
    "/{measurement_id}/analysis",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisRead,
)
async def analyse(measurement_id: UUID, measurements: MeasurementsDep) -> AnalysisRead:
    """Analyse the recordings that have arrived, now; a measurement analysed already answers
    with its analysis. Progress and the result reach the lobby as events."""
    return await measurements.analyse(measurement_id)


@router.get("/{measurement_id}/analysis", response_model=AnalysisRead)
async def analysis(measurement_id: UUID, measurements: MeasurementsDep) -> AnalysisRead:
    """The measurement's analysis: state, progress, and the result once it succeeded."""
    return await measurements.analysis(measurement_id)
