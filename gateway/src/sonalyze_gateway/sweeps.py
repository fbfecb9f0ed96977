"""``GET /v1/measurements/{id}/sweep.wav``: the sweep a speaker plays, for the lobby's members.

The phone authenticates with its device token (``Authorization: Bearer <token>``, the token
from ``welcome``) and must be a member of the measurement's lobby.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.storage_client import StorageError
from sonalyze_gateway import tokens
from sonalyze_gateway.gateway import Gateway

router = APIRouter(tags=["measurements"])


@router.get(
    "/v1/measurements/{measurement_id}/sweep.wav",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}},
        401: {"description": "`{code, message}`: no device token, or an invalid one"},
        403: {"description": "`{code, message}`: the device is not in the measurement's lobby"},
        404: {"description": "`{code, message}`: no such measurement"},
    },
)
async def sweep_wav(measurement_id: UUID, request: Request) -> Response:
    """The measurement's sweep as a 24-bit WAV file."""
    gateway: Gateway = request.app.state.gateway
    device_id = _device(request, gateway)
    measurement = await gateway.measurements.get(measurement_id)
    try:
        lobby = await gateway.storage.get_lobby(measurement.lobby_id)
    except StorageError:
        raise ServiceError(ErrorCode.unavailable, "storage is unavailable; retry") from None
    if all(p.device_id != device_id for p in lobby.participants):
        raise ServiceError(ErrorCode.forbidden, "this device is not in that lobby")
    wav = await gateway.measurements.sweep_wav(measurement_id)
    return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


def _device(request: Request, gateway: Gateway) -> UUID:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(ErrorCode.unauthorized, "send the device token: Authorization: Bearer")
    return tokens.verify(token, gateway.secrets)
