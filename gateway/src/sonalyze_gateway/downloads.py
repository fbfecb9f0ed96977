"""The gateway's HTTP downloads for the lobby's members: a measurement's sweep (for the speaker
to play) and its measured impulse responses, and a simulation's impulse responses.

The phone authenticates with its device token (``Authorization: Bearer <token>``, the token
from ``welcome``) and must be a member of the lobby the measurement or simulation belongs to.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Request, Response

from sonalyze.errors import ErrorBody, ErrorCode, ServiceError, refusals
from sonalyze.storage_client import StorageError
from sonalyze_gateway import tokens
from sonalyze_gateway.gateway import Gateway

router = APIRouter()
REFUSALS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": {}}},
    **refusals(503),
    401: {"model": ErrorBody, "description": "No device token, or an invalid one."},
    403: {"model": ErrorBody, "description": "The device is not in the lobby."},
    404: {"model": ErrorBody, "description": "No such measurement, simulation or response."},
}


@router.get(
    "/v1/measurements/{measurement_id}/sweep.wav",
    response_class=Response,
    responses=REFUSALS,
    tags=["measurements"],
)
async def sweep_wav(measurement_id: UUID, request: Request) -> Response:
    """The measurement's sweep as a 24-bit WAV file."""
    gateway = await _measurement_member(request, measurement_id)
    wav = await gateway.measurements.sweep_wav(measurement_id)
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/v1/measurements/{measurement_id}/responses/{device_id}.wav",
    response_class=Response,
    responses=REFUSALS,
    tags=["measurements"],
)
async def measured_response_wav(
    measurement_id: UUID, device_id: UUID, request: Request
) -> Response:
    """The impulse response the analysis used for the microphone ``device_id`` (its
    ``response_blob_id`` in the result) as a 32-bit float WAV file."""
    gateway = await _measurement_member(request, measurement_id)
    wav = await gateway.measurements.response_wav(measurement_id, device_id)
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/v1/simulations/{job_id}/responses/{index}.wav",
    response_class=Response,
    responses=REFUSALS,
    tags=["simulations"],
)
async def simulated_response_wav(
    job_id: UUID, index: Annotated[int, Path(ge=0)], request: Request
) -> Response:
    """The impulse response of the simulation's ``result.responses[index]`` (a receiver and a
    source) as a 32-bit float WAV file."""
    gateway: Gateway = request.app.state.gateway
    device_id = _device(request, gateway)
    job = await gateway.simulations.get(job_id)
    if job.lobby_id is None:
        raise ServiceError(ErrorCode.forbidden, "that simulation belongs to no lobby")
    await _member(gateway, device_id, job.lobby_id)
    wav = await gateway.simulations.response_wav(job_id, index)
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


async def _measurement_member(request: Request, measurement_id: UUID) -> Gateway:
    """The gateway, once the request's device is known to be in the measurement's lobby."""
    gateway: Gateway = request.app.state.gateway
    device_id = _device(request, gateway)
    measurement = await gateway.measurements.get(measurement_id)
    await _member(gateway, device_id, measurement.lobby_id)
    return gateway


def _device(request: Request, gateway: Gateway) -> UUID:
    """The device whose token the request carries (checked before anything is looked up)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(ErrorCode.unauthorized, "send the device token: Authorization: Bearer")
    return tokens.verify(token, gateway.secrets)


async def _member(gateway: Gateway, device_id: UUID, lobby_id: UUID) -> None:
    """Refuse unless the device is a member of ``lobby_id``."""
    try:
        lobby = await gateway.storage.get_lobby(lobby_id)
    except StorageError:
        raise ServiceError(ErrorCode.unavailable, "storage is unavailable; retry") from None
    if all(p.device_id != device_id for p in lobby.participants):
        raise ServiceError(ErrorCode.forbidden, "this device is not in that lobby")
