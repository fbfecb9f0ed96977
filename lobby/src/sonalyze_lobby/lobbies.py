"""Lobby commands against storage: read, decide by :mod:`sonalyze_lobby.rules`, write with the
version read, and decide again on fresh data when another change got there first.

The service remembers the last state it saw of each lobby (bounded, least recently used
first out) and decides on it without reading storage first. That is safe because storage
refuses a change based on any other version; only a decision to change something is taken
on remembered state. "Nothing to change" and refusals are decided on fresh state.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from sonalyze.domain import MeasurementState, WorkflowState
from sonalyze.errors import ErrorCode, ServiceError
from sonalyze.events import event
from sonalyze.measurement_client import MeasurementClient
from sonalyze.storage_api import (
    LobbyChange,
    LobbyChanged,
    LobbyCreate,
    LobbyRead,
    MeasurementUpdate,
)
from sonalyze.storage_client import (
    StorageClient,
    StorageConflict,
    StorageError,
    StorageNotFound,
)
from sonalyze_lobby import rules

Decide = Callable[[LobbyRead], LobbyChange | None]
_ENDED = (MeasurementState.completed, MeasurementState.failed, MeasurementState.aborted)
logger = logging.getLogger(__name__)


class Lobbies:
    """The lobby service's operations; ``attempts`` bounds retries after lost races."""

    def __init__(
        self,
        storage: StorageClient,
        measurements: MeasurementClient,
        max_members: int,
        attempts: int = 20,
        remembered: int = 10_000,
    ) -> None:
        self._storage = storage
        self._measurements = measurements
        self._max_members = max_members
        self._attempts = attempts
        self._remembered = remembered
        self._seen: OrderedDict[UUID, LobbyRead] = OrderedDict()

    def _remember(self, lobby: LobbyRead) -> LobbyRead:
        self._seen[lobby.id] = lobby
        self._seen.move_to_end(lobby.id)
        while len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        return lobby

    def _forget(self, lobby_id: UUID) -> None:
        self._seen.pop(lobby_id, None)

    async def create(self, device_id: UUID, name: str | None) -> LobbyChanged:
        """A new open lobby with a fresh join code, hosted by ``device_id``."""
        await self._device(device_id)
        for _ in range(self._attempts):
            body = LobbyCreate(
                code=rules.new_join_code(),
                host_device_id=device_id,
                name=name,
                max_members=self._max_members,
                events=[
                    event("lobby.created", host_device_id=device_id, name=name),
                    event("participant.joined", device_id=device_id),
                ],
            )
            try:
                created = await self._storage.create_lobby(body)
                self._remember(created.lobby)
                return created
            except StorageConflict:
                continue  # the code is taken by an open lobby: draw another
        raise ServiceError(ErrorCode.unavailable, "no free join code found; try again")

    async def get(self, lobby_id: UUID) -> LobbyRead:
        try:
            return self._remember(await self._storage.get_lobby(lobby_id))
        except StorageNotFound:
            self._forget(lobby_id)
            raise ServiceError(ErrorCode.not_found, f"lobby {lobby_id} not found") from None

    async def join(self, device_id: UUID, typed_code: str) -> LobbyChanged:
        code = rules.normalize_code(typed_code)
        await self._device(device_id)
        try:
            lobby = await self._storage.get_open_lobby_by_code(code)
        except StorageNotFound:
            raise ServiceError(ErrorCode.not_found, f"no open lobby has the code {code}") from None
        return await self.apply(lobby.id, lambda lobby: rules.join(lobby, device_id))

    async def apply(self, lobby_id: UUID, decide: Decide) -> LobbyChanged:
        """Decide on the lobby as it is now and write the change; again if it moved meanwhile."""
        remembered = self._seen.get(lobby_id)
        for attempt in range(self._attempts):
            lobby = remembered or await self.get(lobby_id)
            change = None
            try:
                if lobby.closed_at is not None:
                    raise ServiceError(ErrorCode.not_found, f"lobby {lobby_id} is closed")
                change = decide(lobby)
            except ServiceError:
                if remembered is None:
                    raise
            if change is None:
                if remembered is None:
                    return LobbyChanged(lobby=lobby, events=[])
                remembered = None  # decide "nothing to change" or "refused" on fresh state
                continue
            remembered = None
            try:
                changed = await self._storage.change_lobby(lobby_id, change)
            except StorageConflict:
                # Another change came first: decide again on what it left, after a random
                # pause growing with each loss, so that colliding writers fall out of step.
                await asyncio.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
                continue
            self._remember(changed.lobby)
            return changed
        raise ServiceError(ErrorCode.conflict, "the lobby kept changing; try again")

    async def start_measurement(
        self, lobby_id: UUID, by: UUID, sweep: dict[str, Any]
    ) -> LobbyChanged:
        """The host starts a measurement: the measurement service designs and records it, then
        the lobby moves to measuring and announces it. If the lobby stopped being ready in
        between, the measurement is marked aborted and the refusal stands."""
        rules.may_start_measurement(await self.get(lobby_id), by)
        started = await self._measurements.start(lobby_id, sweep)
        try:
            return await self.apply(
                lobby_id, lambda lobby: rules.start_measurement(lobby, by, started)
            )
        except ServiceError:
            await self._abort(started.measurement_id)
            raise

    async def move_workflow(
        self, lobby_id: UUID, to: WorkflowState, by: UUID | None
    ) -> LobbyChanged:
        """Move the workflow; to aborted, the lobby's measurement under way ends with it."""
        changed = await self.apply(lobby_id, lambda lobby: rules.move_workflow(lobby, to, by))
        if to == WorkflowState.aborted and changed.events:
            for measurement in await self._storage.lobby_measurements(lobby_id):
                if measurement.state not in _ENDED:
                    await self._abort(measurement.id)
        return changed

    async def _abort(self, measurement_id: UUID) -> None:
        try:
            row = await self._storage.get_measurement(measurement_id)
            update = MeasurementUpdate(expected_version=row.version, state=MeasurementState.aborted)
            await self._storage.update_measurement(measurement_id, update)
        except StorageError:
            logger.warning("measurement %s was not marked aborted", measurement_id, exc_info=True)

    async def _device(self, device_id: UUID) -> None:
        try:
            await self._storage.get_device(device_id)
        except StorageNotFound:
            raise ServiceError(ErrorCode.not_found, f"device {device_id} not found") from None
