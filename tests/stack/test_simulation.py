"""A simulation over the whole stack as ``sonalyze up`` runs it (separate processes, real
Postgres, the local runner's worker subprocesses): a phone asks for a 6 x 5 x 3 m room (a
carpet by name, the rest by coefficients), the lobby hears progress and the result, and the
reverberation times per octave band are within 2 % of pyroomacoustics and sonalyze.acoustics
called directly."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from sonalyze.simulation_api import SimulationRequest
from sonalyze_simulation.simulate import simulate
from tests.conftest import free_port, libpq
from tests.gateway.phone import Phone
from tests.stack.test_up import sonalyze_up, start

pytestmark = pytest.mark.stack
ROOM: dict[str, Any] = {
    "room": {"shape": "shoebox", "dimensions": [6, 5, 3]},
    "materials": {
        "default": {"absorption": [0.3, 0.3, 0.35, 0.4, 0.4, 0.4]},
        "floor": "carpet_cotton",
    },
    "sources": [[1.5, 1.5, 1.5]],
    "receivers": [[4.2, 3.1, 1.2], [3.0, 1.2, 1.6]],
    "sample_rate": 16_000,
}


def test_a_phone_simulates_a_room_through_the_stack(empty_database: str) -> None:
    port = free_port()
    with sonalyze_up("--port", str(port), "--database-url", libpq(empty_database)) as stack:
        start(stack, port)
        status = asyncio.run(ask(f"ws://127.0.0.1:{port}/v1/ws"))
    direct, _ = simulate(SimulationRequest.model_validate(ROOM))
    assert status["result"]["method"] == direct["method"]
    assert direct["method"]["image_source_order"] == 54 and not direct["method"]["ray_tracing"]
    for pair, expected in zip(status["result"]["responses"], direct["responses"], strict=True):
        for key in ("T20", "T30"):
            ours = np.array(pair["parameters"][key], dtype=float)
            theirs = np.array(expected["parameters"][key], dtype=float)
            assert np.isfinite(ours).all(), (key, ours)
            np.testing.assert_allclose(ours, theirs, rtol=0.02, err_msg=key)


async def ask(gateway: str) -> dict[str, Any]:
    phone = await Phone.connect(gateway)
    await phone.ok("lobby.create", {"name": "Studio"})
    queued = await phone.ok("simulation.request", {"client_request_id": "a", "request": ROOM})
    result = (await phone.wait_for_event("simulation.result", within_s=180))["payload"]
    assert (result["job_id"], result["state"]) == (queued["job_id"], "succeeded"), result
    stages = [e["payload"]["stage"] for e in phone.events if e["type"] == "simulation.progress"]
    assert stages[0] == "a worker began" and "impulse responses stored" in stages
    status = await phone.ok("simulation.status", {"job_id": queued["job_id"]})
    await phone.close()
    return status
