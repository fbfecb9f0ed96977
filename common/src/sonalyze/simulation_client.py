"""A typed async HTTP client for the simulation service (the gateway calls it).

A refusal comes back as the :class:`~sonalyze.errors.ServiceError` the simulation service
raised (see :mod:`sonalyze.service_client`).
"""

from __future__ import annotations

import json
from uuid import UUID

from sonalyze.service_client import ServiceClient
from sonalyze.simulation_api import SimulationRequest, SubmitSimulation
from sonalyze.storage_api import SimulationJobRead


class SimulationClient(ServiceClient):
    """Calls the simulation service's ``/v1/simulations`` API."""

    service = "the simulation service"

    async def __aenter__(self) -> SimulationClient:
        return self

    async def submit(
        self,
        request: SimulationRequest,
        client_request_id: str,
        lobby_id: UUID | None = None,
        device_id: UUID | None = None,
    ) -> SimulationJobRead:
        body = SubmitSimulation(
            client_request_id=client_request_id,
            lobby_id=lobby_id,
            device_id=device_id,
            request=request,
        )
        return SimulationJobRead.model_validate_json(
            await self._send("POST", "/v1/simulations", body)
        )

    async def get(self, job_id: UUID) -> SimulationJobRead:
        return SimulationJobRead.model_validate_json(
            await self._send("GET", f"/v1/simulations/{job_id}")
        )

    async def cancel(self, job_id: UUID) -> SimulationJobRead:
        return SimulationJobRead.model_validate_json(
            await self._send("POST", f"/v1/simulations/{job_id}/cancel")
        )

    async def response_wav(self, job_id: UUID, index: int) -> bytes:
        return await self._send("GET", f"/v1/simulations/{job_id}/responses/{index}.wav")

    async def materials(self) -> list[str]:
        """The material names a request may use."""
        names = json.loads(await self._send("GET", "/v1/materials"))
        return [str(name) for name in names]
