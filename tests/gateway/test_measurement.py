"""A measurement from the phones' side, over real WebSockets against the real stack (storage,
lobby, measurement and the gateway): the host starts it, every member hears of it (and when the
sweep plays), a speaker fetches the sweep, a microphone uploads its recording in binary frames
(one corrupted and sent again), the lobby hears the recording arrive and the room's parameters,
and members download the measured impulse response."""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import pytest
import soundfile
from scipy.signal import fftconvolve

from sonalyze import upload_frames
from sonalyze.acoustics import room_parameters
from sonalyze.acoustics.recording import BANDS
from sonalyze.client import Client
from sonalyze_gateway.settings import GatewaySettings
from sonalyze_lobby.app import create_app as create_lobby_app
from sonalyze_lobby.settings import LobbySettings
from sonalyze_measurement.app import create_app as create_measurement_app
from sonalyze_measurement.settings import MeasurementSettings
from sonalyze_measurement.sweeps import design, render
from sonalyze_storage.settings import StorageSettings
from tests.conftest import TOKEN, free_port, serving, with_room_for_audio
from tests.gateway.conftest import ORIGIN, SECRET, gateway_serving
from tests.gateway.phone import Phone
from tests.measurement.test_analysis import room

SWEEP = {"duration": 1.0, "lead_in": 0.5, "tail": 2.0}


@pytest.fixture
def storage_settings(storage_settings: StorageSettings) -> StorageSettings:
    return with_room_for_audio(storage_settings)


@pytest.fixture
def lobby_port() -> int:
    """The lobby's port, known before it starts: the measurement service calls it too."""
    return free_port()


@pytest.fixture
def measurement_url(storage_url: str, lobby_port: int) -> Iterator[str]:
    settings = MeasurementSettings(
        storage_url=storage_url,
        lobby_url=f"http://127.0.0.1:{lobby_port}",
        internal_token=TOKEN,
        max_chunk_bytes=64 * 1024,
    )
    with serving(create_measurement_app(settings)) as url:
        yield url


@pytest.fixture
def lobby_url(storage_url: str, measurement_url: str, lobby_port: int) -> Iterator[str]:
    settings = LobbySettings(
        storage_url=storage_url, internal_token=TOKEN, measurement_url=measurement_url
    )
    with serving(create_lobby_app(settings), port=lobby_port) as url:
        yield url


@pytest.fixture
def gateway_settings(storage_url: str, lobby_url: str, measurement_url: str) -> GatewaySettings:
    return GatewaySettings(
        storage_url=storage_url,
        lobby_url=lobby_url,
        measurement_url=measurement_url,
        internal_token=TOKEN,
        device_token_secrets=[SECRET],
        allowed_origins=[ORIGIN],
        max_upload_chunk_bytes=64 * 1024,
    )


def recording(ir: np.ndarray) -> bytes:
    """What the microphone records: the sweep through ``ir`` after the lead-in, with noise."""
    spec = design(**SWEEP)
    rng = np.random.default_rng(7)
    played = np.concatenate([np.zeros(int(spec.lead_in * spec.sample_rate)), render(spec).signal])
    heard = fftconvolve(played, ir)
    heard = 0.4 * heard / np.max(np.abs(heard)) + rng.standard_normal(heard.size) * 10**-3.75
    buffer = io.BytesIO()
    soundfile.write(buffer, heard, spec.sample_rate, format="WAV", subtype="PCM_24")
    return buffer.getvalue()


async def ready_lobby(gateway: str) -> tuple[Phone, Phone]:
    """A host that is a ready speaker, and a ready microphone in its lobby."""
    host, mic = await Phone.connect(gateway), await Phone.connect(gateway)
    code = (await host.ok("lobby.create", {}))["code"]
    await mic.ok("lobby.join", {"code": code})
    for phone, role in ((host, "speaker"), (mic, "microphone")):
        await host.ok("role.assign", {"device_id": phone.device_id, "role": role})
    for phone in (host, mic):
        await phone.ok("role.update", {"status": "ready"})
    return host, mic


async def acks(phone: Phone, count: int, within_s: float = 20) -> list[dict[str, Any]]:
    """The next ``count`` replies to upload frames."""
    await phone.wait_until(
        lambda: len([e for e in phone.events if e["type"].startswith("upload.")]) >= count,
        within_s,
    )
    replies = [e for e in phone.events if e["type"].startswith("upload.")]
    for reply in replies:
        phone.events.remove(reply)
    return replies


def test_a_measurement_from_start_to_the_rooms_parameters(gateway: str) -> None:
    http = gateway.replace("ws://", "http://").removesuffix("/v1/ws")
    ir = room(3)

    async def scenario() -> None:
        host, mic = await ready_lobby(gateway)
        stranger = await Phone.connect(gateway)
        await host.ok("measurement.start", {"sweep": SWEEP})
        started = (await mic.wait_for_event("measurement.started"))["payload"]
        assert (started["microphones"], started["speakers"]) == ([mic.device_id], [host.device_id])
        assert started["play_at_ms"] == started["start_at_ms"] + 500, "after the 0.5 s lead-in"
        assert (await host.wait_for_event("measurement.started"))["payload"] == started
        mid = started["measurement_id"]
        early = await mic.command("analysis.request", {"measurement_id": mid})
        assert early["payload"]["code"] == "forbidden", "only the host starts an analysis"
        early = await host.command("analysis.request", {"measurement_id": mid})
        assert early["payload"]["code"] == "conflict", "not before the recording's end"

        async with httpx.AsyncClient(base_url=http) as client:
            url = started["sweep_path"]
            wav = await client.get(url, headers={"Authorization": f"Bearer {host.token}"})
            assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
            samples, _ = soundfile.read(io.BytesIO(wav.content), dtype="float64")
            np.testing.assert_allclose(samples, render(design(**SWEEP)).signal, atol=2**-23)
            assert (await client.get(url)).status_code == 401
            outsider = {"Authorization": f"Bearer {stranger.token}"}
            assert (await client.get(url, headers=outsider)).json()["code"] == "forbidden"

        status = await mic.ok(
            "measurement.upload", {"measurement_id": mid, "format": {"container": "wav"}}
        )
        assert (status["state"], status["missing"]) == ("uploading", [])
        data = recording(ir)
        parts = [data[i : i + 60_000] for i in range(0, len(data), 60_000)]
        corrupted = bytearray(upload_frames.encode(UUID(mid), 0, parts[0]))
        corrupted[-1] ^= 0xFF
        await mic.send_raw(bytes(corrupted))
        (refused,) = await acks(mic, 1)
        assert refused["type"] == "upload.refused"
        assert (refused["payload"]["code"], refused["payload"]["index"]) == ("bad_request", 0)
        await mic.send_raw(upload_frames.encode(UUID(mid), 2_000_000, parts[0]))
        (beyond,) = await acks(mic, 1)
        assert (beyond["type"], beyond["payload"]["code"]) == ("upload.refused", "bad_request")
        message = beyond["payload"]["message"]
        assert message.startswith("index: ") and "{" not in message, "its words, not JSON"
        for index, part in enumerate(parts):
            final = index == len(parts) - 1
            await mic.send_raw(upload_frames.encode(UUID(mid), index, part, final=final))
        replies = await acks(mic, len(parts))
        assert all(r["type"] == "upload.ack" for r in replies)
        assert replies[-1]["payload"]["state"] == "complete"

        received = await host.wait_for_event("recording.received")
        assert received["payload"]["device_id"] == mic.device_id
        result = (await mic.wait_for_event("analysis.result", within_s=120))["payload"]
        assert result["error"] is None
        t30 = np.array(result["result"]["microphones"][mic.device_id]["parameters"]["T30"], float)
        clean = room_parameters(ir, 48_000, BANDS)["T30"]
        np.testing.assert_allclose(t30[2:6], clean[2:6], rtol=0.05)
        summary = result["result"]["microphones"][mic.device_id]
        assert "decay_curves" not in summary and "frequency_response" not in summary
        await downloads_of_the_response(http, mid, host, mic, stranger, t30)

        def workflow() -> list[str]:
            return [e["payload"]["state"] for e in host.events if e["type"] == "workflow.changed"]

        await host.wait_until(lambda: workflow()[-1] == "ready", within_s=30)
        assert workflow()[-5:] == ["measuring", "uploading", "analyzing", "idle", "ready"]
        analysis = await mic.ok("analysis.request", {"measurement_id": mid})
        assert analysis["state"] == "succeeded"
        assert analysis["result"]["average"] == result["result"]["average"]
        refused_status = await stranger.command("measurement.status", {"measurement_id": mid})
        assert refused_status["payload"]["code"] == "bad_request", "not in any lobby"
        for phone in (host, mic, stranger):
            await phone.close()

    asyncio.run(scenario())


async def downloads_of_the_response(
    http: str, mid: str, host: Phone, mic: Phone, stranger: Phone, t30: np.ndarray
) -> None:
    """The microphone's impulse response, as the analysis used it, for the lobby's members
    only; refusals are {code, message}."""
    url = f"/v1/measurements/{mid}/responses/{mic.device_id}.wav"
    async with httpx.AsyncClient(base_url=http) as client:
        wav = await client.get(url, headers={"Authorization": f"Bearer {host.token}"})
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        response, rate = soundfile.read(io.BytesIO(wav.content), dtype="float64")
        assert rate == 48_000
        half_gap = round(render(design(**SWEEP)).rate * math.log(2) / 2 * rate)
        assert int(np.argmax(np.abs(response))) == half_gap, "just after its start"
        again = room_parameters(response, rate, BANDS)["T30"]
        np.testing.assert_allclose(again, t30, rtol=1e-3)
        refusals = {
            401: await client.get(url),
            403: await client.get(url, headers={"Authorization": f"Bearer {stranger.token}"}),
            404: await client.get(
                url.replace(mic.device_id, host.device_id),
                headers={"Authorization": f"Bearer {mic.token}"},
            ),
        }
        for status, refusal in refusals.items():
            assert refusal.status_code == status, refusal.text
            body = refusal.json()
            assert set(body) == {"code", "message"}, body
        assert [r.json()["code"] for r in refusals.values()] == [
            "unauthorized",
            "forbidden",
            "not_found",
        ]


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 48_000, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_a_phone_has_its_own_upload_analysed_outside_a_room_measurement(gateway: str) -> None:
    """An impulse response, and a recording of a sweep, each from one phone in a lobby, without
    roles or a schedule; the lobby's workflow stays where it was."""
    http = gateway.replace("ws://", "http://").removesuffix("/v1/ws")
    ir = room(5)
    spec = design(**SWEEP)
    played = np.concatenate([np.zeros(int(spec.lead_in * 48_000)), render(spec).signal])
    heard = fftconvolve(played, ir)
    heard = 0.4 * heard / np.max(np.abs(heard)) + np.random.default_rng(1).normal(
        0, 1e-4, heard.size
    )
    uploads = {
        "impulse_response": wav_bytes(0.5 * ir / np.max(np.abs(ir))),
        "sweep_recording": wav_bytes(heard),
    }

    async def scenario() -> None:
        phone = await Phone.connect(gateway)
        await phone.ok("lobby.create", {})
        for kind, data in uploads.items():
            waiting = await phone.ok("analysis.request", {"kind": kind, "sweep": SWEEP})
            assert (waiting["analysis_id"], waiting["state"]) == (None, "queued")
            mid = waiting["measurement_id"]
            await phone.ok(
                "measurement.upload", {"measurement_id": mid, "format": {"container": "wav"}}
            )
            parts = [data[i : i + 60_000] for i in range(0, len(data), 60_000)]
            for index, part in enumerate(parts):
                final = index == len(parts) - 1
                await phone.send_raw(upload_frames.encode(UUID(mid), index, part, final=final))

            def result_of(mid: str = mid) -> dict[str, Any] | None:
                return next(
                    (e["payload"] for e in phone.events
                     if e["type"] == "analysis.result" and e["payload"]["measurement_id"] == mid),
                    None,
                )  # fmt: skip

            await phone.wait_until(lambda: result_of() is not None, within_s=60)
            result = result_of()
            assert result is not None
            assert result["error"] is None, result
            t30 = np.array(
                result["result"]["microphones"][phone.device_id]["parameters"]["T30"], float
            )
            clean = room_parameters(ir, 48_000, BANDS)["T30"]
            tolerance = 0.01 if kind == "impulse_response" else 0.05
            np.testing.assert_allclose(t30[2:6], clean[2:6], rtol=tolerance, err_msg=kind)
            async with httpx.AsyncClient(base_url=http) as client:
                wav = await client.get(
                    f"/v1/measurements/{mid}/responses/{phone.device_id}.wav",
                    headers={"Authorization": f"Bearer {phone.token}"},
                )
            assert wav.status_code == 200, wav.text
            response, _ = soundfile.read(io.BytesIO(wav.content), dtype="float32")
            if kind == "impulse_response":  # analysed as it came
                uploaded, _ = soundfile.read(io.BytesIO(data), dtype="float32")
                np.testing.assert_array_equal(response, uploaded)
        assert not [e for e in phone.events if e["type"] == "workflow.changed"]
        for bad in ({}, {"kind": "impulse_response", "measurement_id": str(UUID(int=1))}):
            refused = await phone.command("analysis.request", bad)
            assert refused["payload"]["code"] == "bad_request", bad
        await phone.close()

    asyncio.run(scenario())


def test_a_measurement_through_the_python_client(gateway_settings: GatewaySettings) -> None:
    """sonalyze.client as a phone uses it: the sweep downloaded, the recording uploaded in
    chunks (all acknowledged, the last one completing it, those refused for coming too fast
    sent again), the analysis heard."""
    ir = room(3)
    slow = gateway_settings.model_copy(update={"uploads_per_s": 4.0, "upload_burst": 3})

    async def scenario() -> None:
        async with Client(gateway) as host, Client(gateway) as mic:
            joined = await host.command("lobby.create")
            await mic.command("lobby.join", {"code": joined.code})
            for phone, role in ((host, "speaker"), (mic, "microphone")):
                await host.command("role.assign", {"device_id": str(phone.device_id), "role": role})
            for phone in (host, mic):
                await phone.command("role.update", {"status": "ready"})
            await host.command("measurement.start", {"sweep": SWEEP})
            started = (await mic.wait_for("measurement.started")).payload
            wav = await host.download(started["sweep_path"])
            samples, _ = soundfile.read(io.BytesIO(wav), dtype="float64")
            np.testing.assert_allclose(samples, render(design(**SWEEP)).signal, atol=2**-23)
            mid = UUID(started["measurement_id"])
            last = await mic.upload(mid, recording(ir), chunk_bytes=60_000)
            assert last.state == "complete"
            result = (await host.wait_for("analysis.result", within_s=180)).payload
            assert result["error"] is None
            assert str(mic.device_id) in result["result"]["microphones"]

    with gateway_serving(slow) as gateway:
        asyncio.run(scenario())
        metrics = httpx.get(gateway.replace("ws://", "http://")[: -len("/v1/ws")] + "/metrics")
    limited = 'sonalyze_ws_rate_limited_total{limit="uploads"}'
    assert limited in metrics.text and f"{limited} 0.0" not in metrics.text, "chunks were resent"
