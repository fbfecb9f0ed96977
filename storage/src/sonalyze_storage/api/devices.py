"""Devices: the identities that phones hold."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from sonalyze.storage_api import DeviceRead
from sonalyze_storage.api.refusals import refusals
from sonalyze_storage.db import SessionDep
from sonalyze_storage.rows import get_or_404
from sonalyze_storage.tables import Device

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DeviceRead)
async def create_device(session: SessionDep) -> Device:
    device = Device()
    session.add(device)
    await session.commit()
    await session.refresh(device)
    return device


@router.get("/{device_id}", response_model=DeviceRead, responses=refusals(404))
async def get_device(device_id: UUID, session: SessionDep) -> Device:
    return await get_or_404(session, Device, device_id, "device")
