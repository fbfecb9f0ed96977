"""Simulations from the phones' side, over real WebSockets against real services (storage,
lobby, simulation with its local runner, the gateway): a member asks, every member hears the
job queued, its progress and its result, the result matches pyroomacoustics and
sonalyze.acoustics called directly, the impulse responses download, and a job is cancelled."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import soundfile

from sonalyze.simulation_api import SimulationRequest
from sonalyze_gateway.settings import GatewaySettings
from sonalyze_simulation.app import create_app as create_simulation_app
from sonalyze_simulation.settings import SimulationSettings
from sonalyze_simulation.simulate import simulate
from sonalyze_storage.settings import StorageSettings
from tests.conftest import TOKEN, serving, with_room_for_audio
from tests.gateway.conftest import ORIGIN, SECRET
from tests.gateway.phone import Phone
from tests.simulation.helpers import slow_request
from tests.simulation.test_request import request


@pytest.fixture
def storage_settings(storage_settings: StorageSettings) -> StorageSettings:
    return with_room_for_audio(storage_settings)


@pytest.fixture
def simulation_url(storage_url: str) -> Iterator[str]:
    settings = SimulationSettings(
        storage_url=storage_url, internal_token=TOKEN, worker_chunk_bytes=64 * 1024
    )
    with serving(create_simulation_app(settings)) as url:
        yield url


@pytest.fixture
def gateway_settings(storage_url: str, lobby_url: str, simulation_url: str) -> GatewaySettings:
    return GatewaySettings(
        storage_url=storage_url,
        lobby_url=lobby_url,
        simulation_url=simulation_url,
        internal_token=TOKEN,
        device_token_secrets=[SECRET],
        allowed_origins=[ORIGIN],
    )


async def lobby_of_two(gateway: str) -> tuple[Phone, Phone, Phone]:
    """A host, a member of its lobby, and a stranger in a lobby of its own."""
    host, member, stranger = [await Phone.connect(gateway) for _ in range(3)]
    code = (await host.ok("lobby.create", {}))["code"]
    await member.ok("lobby.join", {"code": code})
    await stranger.ok("lobby.create", {})
    return host, member, stranger


def test_a_member_simulates_a_room_and_every_member_hears_the_result(gateway: str) -> None:
    http = gateway.replace("ws://", "http://").removesuffix("/v1/ws")
    body = request(receivers=[[3.8, 2.9, 1.2], [2.0, 1.5, 1.7]])

    async def scenario() -> None:
        host, member, stranger = await lobby_of_two(gateway)
        ask = {"client_request_id": "room-a", "request": body}
        queued = await member.ok("simulation.request", ask)
        assert (queued["state"], queued["attempts"], queued["result"]) == ("queued", 0, None)
        job_id = queued["job_id"]
        heard = (await host.wait_for_event("simulation.queued"))["payload"]
        assert heard == {"job_id": job_id, "device_id": member.device_id}
        result = (await host.wait_for_event("simulation.result", within_s=300))["payload"]
        assert (result["job_id"], result["state"], result["error"]) == (job_id, "succeeded", None)
        progress = [e["payload"]["progress"] for e in host.events
                    if e["type"] == "simulation.progress"]  # fmt: skip
        assert progress == sorted(progress) and len(progress) >= 3
        assert (await member.wait_for_event("simulation.result"))["payload"] == result

        again = await member.ok("simulation.request", ask)
        assert (again["job_id"], again["state"]) == (job_id, "succeeded")
        status = await host.ok("simulation.status", {"job_id": job_id})
        direct, responses = simulate(SimulationRequest.model_validate(body))
        assert status["result"]["bands"] == direct["bands"] == result["summary"]["bands"]
        for pair, expected in zip(status["result"]["responses"], direct["responses"], strict=True):
            ours = np.array(pair["parameters"]["T30"], dtype=float)
            theirs = np.array(expected["parameters"]["T30"], dtype=float)
            np.testing.assert_allclose(ours, theirs, rtol=0.02)
        assert result["summary"]["eyring"] == pytest.approx(direct["eyring"])

        url = f"/v1/simulations/{job_id}/responses/1.wav"
        async with httpx.AsyncClient(base_url=http) as client:
            wav = await client.get(url, headers={"Authorization": f"Bearer {member.token}"})
            assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
            samples, fs = soundfile.read(io.BytesIO(wav.content), dtype="float32")
            assert fs == body["sample_rate"]
            np.testing.assert_array_equal(samples, responses[1][0].astype(np.float32))
            assert (await client.get(url)).status_code == 401
            outsider = {"Authorization": f"Bearer {stranger.token}"}
            assert (await client.get(url, headers=outsider)).json()["code"] == "forbidden"
            missing = f"/v1/simulations/{job_id}/responses/9.wav"
            own = {"Authorization": f"Bearer {host.token}"}
            assert (await client.get(missing, headers=own)).json()["code"] == "not_found"

        refused = await stranger.command("simulation.status", {"job_id": job_id})
        assert refused["payload"]["code"] == "forbidden"
        kinds = [e["type"] for e in host.events]
        assert kinds.count("simulation.queued") == kinds.count("simulation.result") == 1
        for phone in (host, member, stranger):
            await phone.close()

    asyncio.run(scenario())


def test_a_bad_request_is_refused_naming_the_field_and_nobody_hears_of_it(gateway: str) -> None:
    async def scenario() -> None:
        host, member, stranger = await lobby_of_two(gateway)
        unknown = request(materials={"default": "unobtainium"})
        refused = await member.command("simulation.request", {"request": unknown})
        assert refused["payload"]["code"] == "bad_request"
        assert (
            "request.materials.east: unknown material 'unobtainium'"
            in (refused["payload"]["message"])
        )
        outside = request(receivers=[[9.0, 1.0, 1.0]])
        refused = await member.command("simulation.request", {"request": outside})
        assert (
            "payload.request: Value error, receivers[0] [9.0, 1.0, 1.0] is not inside"
            in (refused["payload"]["message"])
        )
        await host.ok("ping", {})
        assert not [e for e in host.events if e["type"].startswith("simulation.")]
        for phone in (host, member, stranger):
            await phone.close()

    asyncio.run(scenario())


def test_a_member_cancels_a_simulation_and_the_lobby_hears_it(gateway: str) -> None:
    async def scenario() -> None:
        host, member, stranger = await lobby_of_two(gateway)
        queued = await host.ok("simulation.request", {"request": slow_request()})
        # A worker's first report follows its imports: seconds, or a minute on a busy machine.
        await member.wait_for_event("simulation.progress", within_s=180)
        refused = await stranger.command("simulation.cancel", {"job_id": queued["job_id"]})
        assert refused["payload"]["code"] == "forbidden"
        cancelled = await member.ok("simulation.cancel", {"job_id": queued["job_id"]})
        assert cancelled["state"] == "cancelled"
        result = (await host.wait_for_event("simulation.result", within_s=60))["payload"]
        assert (result["state"], result["summary"]) == ("cancelled", None)
        again = await member.command("simulation.cancel", {"job_id": queued["job_id"]})
        assert again["payload"]["code"] == "conflict"
        for phone in (host, member, stranger):
            await phone.close()

    asyncio.run(scenario())
