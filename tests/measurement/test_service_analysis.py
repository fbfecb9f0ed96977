"""The measurement service's analysis run over real HTTP on real storage: once every microphone
has uploaded its recording of the sweep through the room, the analysis runs in a worker
process, reports progress, and stores and announces the room's parameters per microphone and
their spatial average; the stored result has each band's decay curve, and each microphone's
impulse response is a WAV to download."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import numpy as np
import soundfile
from scipy.signal import fftconvolve

from sonalyze.acoustics import resample, room_parameters
from sonalyze.acoustics.recording import BANDS
from sonalyze.events import MeasurementResult, MeasurementSummary
from sonalyze_measurement.sweeps import design, render
from tests.measurement.helpers import begin, chunks, put, room_with_roles, started
from tests.measurement.test_analysis import room

SWEEP = {"duration": 1.0, "lead_in": 0.5, "tail": 2.0}
# Where the analysed response has its peak: half the gap to the 2nd harmonic after its start.
HALF_GAP = round(render(design(**SWEEP)).rate * math.log(2) / 2 * 48_000)
UPLOADED: dict[str, int] = {}  # bytes per microphone
UPLOADED_CHUNKS: dict[str, list[bytes]] = {}


def upload(client: httpx.Client, mid: str, mic: str, ir: np.ndarray, rate: int, seed: int) -> None:
    """The sweep through ``ir``, recorded at ``rate`` from a moment of its own, with noise."""
    spec = design(**SWEEP)
    rng = np.random.default_rng(seed)
    offset = np.zeros(int(rng.integers(0, spec.sample_rate // 4)))
    played = np.concatenate([np.zeros(int(spec.lead_in * spec.sample_rate)), render(spec).signal])
    heard = np.concatenate([offset, fftconvolve(played, ir)])
    heard = 0.4 * heard / np.max(np.abs(heard))
    heard += rng.standard_normal(heard.size) * 10 ** (-75 / 20)
    if rate != spec.sample_rate:
        heard = resample(heard, spec.sample_rate, rate)
    buffer = io.BytesIO()
    soundfile.write(buffer, heard, rate, format="WAV", subtype="FLOAT")
    assert begin(client, mid, mic).status_code == 200
    UPLOADED[mic] = len(buffer.getvalue())
    parts = chunks(buffer.getvalue(), 60_000)
    UPLOADED_CHUNKS[mic] = parts
    for index, part in enumerate(parts):
        response = put(client, mid, mic, index, part, final=index == len(parts) - 1)
        assert response.status_code == 200, response.text


def finished(client: httpx.Client, mid: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/v1/measurements/{mid}/analysis")
        if response.status_code == 200 and response.json()["state"] in ("succeeded", "failed"):
            return dict(response.json())
        time.sleep(0.2)
    raise AssertionError("the analysis did not finish")


def test_the_rooms_parameters_arrive_once_every_microphone_has_uploaded(
    measurement: httpx.Client, api: httpx.Client
) -> None:
    room_, mics, _ = room_with_roles(api, microphones=3)
    mid = started(measurement, room_, **SWEEP)["measurement_id"]
    responses = [room(seed) for seed in range(3)]
    for seed, (mic, ir) in enumerate(zip(mics, responses, strict=True)):
        upload(measurement, mid, mic, ir, 44_100 if seed == 2 else 48_000, seed)
    analysis = finished(measurement, mid)
    assert analysis["state"] == "succeeded", analysis["error"]
    result = analysis["result"]
    assert result["bands"] == list(BANDS) and result["unusable"] == {}
    mid_bands = slice(2, 6)  # 500 Hz to 4 kHz
    for mic, ir in zip(mics, responses, strict=True):
        t30 = np.array(result["microphones"][mic]["parameters"]["T30"], dtype=float)
        clean = room_parameters(ir, 48_000, BANDS)["T30"]
        np.testing.assert_allclose(t30[mid_bands], clean[mid_bands], rtol=0.05)
    assert result["average"]["T30"]["count"][mid_bands] == [3, 3, 3, 3]
    log = api.get(f"/v1/lobbies/{room_['id']}/events").json()
    progress = [e["payload"]["done"] for e in log if e["type"] == "analysis.progress"]
    assert progress == [0, 1, 2, 3]
    (announced,) = [e["payload"] for e in log if e["type"] == "analysis.result"]
    assert announced["error"] is None
    assert announced["result"]["average"] == result["average"]
    typed = MeasurementResult.model_validate(result)
    assert MeasurementSummary.model_validate(announced["result"]) == typed.summary()
    for mic in mics:
        summary = announced["result"]["microphones"][mic]
        assert "frequency_response" not in summary and "decay_curves" not in summary
        stored = result["microphones"][mic]
        assert "frequency_response" in stored, "stored, for later"
        curves = stored["decay_curves"]
        assert curves["step_s"] > 0 and len(curves["levels_db"]) == len(BANDS)
        assert all(levels and levels[0] == 0.0 for levels in curves["levels_db"])
        assert summary["response_blob_id"] == stored["response_blob_id"] is not None
    for seed, mic in enumerate(mics):
        wav = measurement.get(f"/v1/measurements/{mid}/responses/{mic}.wav")
        assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
        response, rate = soundfile.read(io.BytesIO(wav.content), dtype="float64")
        assert rate == 48_000, "the sweep's rate, whatever the microphone's"
        assert int(np.argmax(np.abs(response))) == HALF_GAP, seed
        t30 = room_parameters(response, rate, BANDS)["T30"]
        stored_t30 = result["microphones"][mic]["parameters"]["T30"]
        np.testing.assert_allclose(t30, np.array(stored_t30, dtype=float), rtol=1e-3)
    nobody = measurement.get(f"/v1/measurements/{mid}/responses/{room_['host_device_id']}.wav")
    assert nobody.status_code == 404 and nobody.json()["code"] == "not_found"
    assert "not one of the measurement's microphones" in nobody.json()["message"]
    assert api.get(f"/v1/measurements/{mid}").json()["state"] == "completed"
    again = measurement.post(f"/v1/measurements/{mid}/analysis")
    assert again.status_code == 202 and again.json()["id"] == analysis["id"], "one analysis"
    metrics = measurement.get("/metrics").text
    for line in (
        'sonalyze_measurement_recordings_total{outcome="complete"} 3.0',
        'sonalyze_measurement_analyses_total{outcome="succeeded"} 1.0',
        "sonalyze_measurement_measurements_started_total 1.0",
        "sonalyze_measurement_analysis_duration_seconds_count 1.0",
        "sonalyze_measurement_recording_analysis_duration_seconds_count 3.0",
    ):
        assert line in metrics, line
    (total,) = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("sonalyze_measurement_upload_bytes_total ")
    ]
    assert total == sum(UPLOADED.values())


def test_an_analysis_asked_for_early_analyses_what_has_arrived(
    measurement: httpx.Client, api: httpx.Client
) -> None:
    room_, mics, _ = room_with_roles(api, microphones=2)
    mid = started(measurement, room_, **SWEEP)["measurement_id"]
    assert measurement.get(f"/v1/measurements/{mid}/analysis").status_code == 404
    early = measurement.get(f"/v1/measurements/{mid}/responses/{mics[0]}.wav")
    assert early.status_code == 404 and early.json()["code"] == "not_found"
    upload(measurement, mid, mics[0], room(0), 48_000, seed=0)
    assert measurement.get(f"/v1/measurements/{mid}/status").json()["waiting_for"] == [mics[1]]
    started_now = measurement.post(f"/v1/measurements/{mid}/analysis")
    assert started_now.status_code == 202, started_now.text
    result = finished(measurement, mid)["result"]
    assert list(result["microphones"]) == [mics[0]]
    assert result["unusable"] == {mics[1]: "no recording arrived"}
    assert result["average"]["T30"]["count"][3] == 1
    silent = measurement.get(f"/v1/measurements/{mid}/responses/{mics[1]}.wav")
    assert silent.status_code == 404 and "no recording arrived" in silent.json()["message"]
    assert measurement.get(f"/v1/measurements/{mid}/responses/{mics[0]}.wav").status_code == 200
    retried = put(measurement, mid, mics[0], 0, UPLOADED_CHUNKS[mics[0]][0])
    assert (retried.status_code, retried.json()["created"]) == (200, False), "a retry, acked"
    late = begin(measurement, mid, mics[1])
    assert late.status_code == 409 and "uploads are closed" in late.text
    again = begin(measurement, mid, mics[0])  # its last ack lost: where does it stand?
    assert again.status_code == 200, again.text
    assert (again.json()["state"], again.json()["missing"]) == ("complete", [])
    chunk = put(measurement, mid, mics[0], 99, b"late")
    assert chunk.status_code == 409 and "uploads are closed" in chunk.text


def test_at_the_deadline_the_analysis_runs_with_what_has_arrived(
    service: Callable[..., AbstractContextManager[httpx.Client]], api: httpx.Client
) -> None:
    """Half a second after the recording's scheduled end: one microphone of three silent, one
    half-way through its upload."""
    with service(start_delay_s=0.5, upload_grace_s=0.5) as measurement:
        room_, mics, _ = room_with_roles(api, microphones=3)
        mid = started(measurement, room_, **SWEEP)["measurement_id"]
        upload(measurement, mid, mics[0], room(0), 48_000, seed=0)
        begin(measurement, mid, mics[2])
        put(measurement, mid, mics[2], 0, b"the first chunk of three")
        result = finished(measurement, mid)["result"]
    assert list(result["microphones"]) == [mics[0]]
    assert result["unusable"] == {
        mics[1]: "no recording arrived",
        mics[2]: "upload incomplete",
    }


def test_an_analysis_whose_process_stopped_is_run_again(
    service: Callable[..., AbstractContextManager[httpx.Client]], api: httpx.Client
) -> None:
    """A measurement left analysing, its analysis running with no process behind it (as a crash
    leaves them): a service that starts finds it, marks it abandoned and runs it again."""
    with service() as first:
        room_, mics, _ = room_with_roles(api, microphones=2)
        mid = started(first, room_, **SWEEP)["measurement_id"]
        upload(first, mid, mics[0], room(0), 48_000, seed=0)
    # What the crashed process had done: claimed the measurement and begun its analysis.
    version = api.get(f"/v1/measurements/{mid}").json()["version"]
    api.patch(f"/v1/measurements/{mid}", json={"expected_version": version, "state": "analyzing"})
    stuck = api.post("/v1/analyses", json={"measurement_id": mid}).json()
    api.patch(f"/v1/analyses/{stuck['id']}", json={"expected_version": 1, "state": "running"})
    with service(analysis_stale_s=0) as second:
        deadline = time.monotonic() + 120
        while True:
            analysis = second.get(f"/v1/measurements/{mid}/analysis").json()
            if analysis["id"] != stuck["id"] and analysis["state"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline, "not run again"
            time.sleep(0.2)
    assert analysis["state"] == "succeeded", analysis["error"]
    assert list(analysis["result"]["microphones"]) == [mics[0]]
    abandoned = api.get(f"/v1/analyses/{stuck['id']}").json()
    assert abandoned["state"] == "failed" and abandoned["error"].startswith("abandoned")
