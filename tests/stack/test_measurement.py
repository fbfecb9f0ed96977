"""A measurement with virtual phones over the whole stack as ``sonalyze up`` runs it (separate
processes, real Postgres): a room simulated with pyroomacoustics, four microphones each
uploading the sweep through its own impulse response with noise, from its own start offset,
one of them at 44.1 kHz; one of them drops its connection mid-upload, reconnects, resumes and
completes with a byte-identical recording. The room's reverberation times come back within 5 %
of the library's on the clean impulse responses."""

from __future__ import annotations

import asyncio
import io
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pyroomacoustics as pra
import pytest
import soundfile

from sonalyze import upload_frames
from sonalyze.acoustics import resample, room_parameters
from sonalyze.acoustics.recording import BANDS
from sonalyze_measurement.sweeps import design, render
from tests.conftest import free_port, libpq
from tests.gateway.phone import Phone
from tests.stack.test_up import sonalyze_up, start

pytestmark = pytest.mark.stack
FS = 48_000
SWEEP = {"duration": 3.0, "lead_in": 0.5, "tail": 2.0}
MICROPHONES = [(4.5, 2.8, 1.2), (3.0, 3.1, 1.5), (5.0, 1.0, 1.1), (2.5, 2.0, 1.6)]
CHUNK = 200_000


def simulated_room() -> list[np.ndarray]:
    """Impulse responses from one source to each microphone in a 6 x 4 x 3 m room."""
    absorption, order = pra.inverse_sabine(0.6, [6, 4, 3])
    room = pra.ShoeBox([6, 4, 3], fs=FS, materials=pra.Material(absorption), max_order=order)
    room.add_source([1.5, 1.2, 1.4])
    room.add_microphone_array(np.array(MICROPHONES).T)
    room.compute_rir()
    return [np.asarray(rir[0], dtype=float) for rir in room.rir]


def recorded(ir: np.ndarray, rate: int, seed: int) -> bytes:
    """The sweep through ``ir``, from a start offset of the phone's own, with noise, as the
    phone encodes it (24-bit WAV at ``rate``)."""
    spec = design(**SWEEP)
    rng = np.random.default_rng(seed)
    lead = np.zeros(int(spec.lead_in * FS) + int(rng.integers(0, FS // 4)))
    heard = np.convolve(np.concatenate([lead, render(spec).signal]), ir)
    heard = 0.4 * heard / np.max(np.abs(heard)) + rng.standard_normal(heard.size) * 10**-3.5
    if rate != FS:
        heard = resample(heard, FS, rate)
    buffer = io.BytesIO()
    soundfile.write(buffer, heard, rate, format="WAV", subtype="PCM_24")
    return buffer.getvalue()


async def upload(phone: Phone, measurement_id: str, data: bytes, indexes: list[int]) -> list[Any]:
    """Send these chunks of ``data`` and wait for their replies."""
    parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    mid = UUID(measurement_id)
    for index in indexes:
        frame = upload_frames.encode(mid, index, parts[index], final=index == len(parts) - 1)
        await phone.send_raw(frame)

    def replies() -> list[dict[str, Any]]:
        return [e for e in phone.events if e["type"].startswith("upload.")]

    await phone.wait_until(lambda: len(replies()) >= len(indexes), within_s=60)
    answered = replies()
    for reply in answered:
        phone.events.remove(reply)
    return answered


def test_virtual_phones_measure_a_simulated_room(empty_database: str) -> None:
    responses = simulated_room()
    recordings = [recorded(ir, 44_100 if i == 3 else FS, i) for i, ir in enumerate(responses)]
    port = free_port()
    with sonalyze_up("--port", str(port), "--database-url", libpq(empty_database)) as stack:
        start(stack, port)
        gateway = f"ws://127.0.0.1:{port}/v1/ws"
        asyncio.run(measure(gateway, empty_database, responses, recordings))


async def measure(
    gateway: str, database: str, responses: list[np.ndarray], recordings: list[bytes]
) -> None:
    host = await Phone.connect(gateway)
    code = (await host.ok("lobby.create", {"name": "Studio"}))["code"]
    mics = [await Phone.connect(gateway) for _ in responses]
    for mic in mics:
        await mic.ok("lobby.join", {"code": code})
        await host.ok("role.assign", {"device_id": mic.device_id, "role": "microphone"})
        await mic.ok("role.update", {"status": "ready"})
    await host.ok("role.assign", {"device_id": host.device_id, "role": "speaker"})
    await host.ok("role.update", {"status": "ready"})
    await host.ok("measurement.start", {"sweep": SWEEP})
    mid = (await host.wait_for_event("measurement.started"))["payload"]["measurement_id"]
    wav = {"container": "wav"}

    for mic, data in zip(mics[1:], recordings[1:], strict=True):
        await mic.ok("measurement.upload", {"measurement_id": mid, "format": wav})
        parts = -(-len(data) // CHUNK)
        replies = await upload(mic, mid, data, list(range(parts)))
        assert replies[-1]["payload"]["state"] == "complete", replies[-1]

    # The first microphone drops its connection mid-upload, comes back and resumes.
    first, data = mics[0], recordings[0]
    parts = -(-len(data) // CHUNK)
    await first.ok("measurement.upload", {"measurement_id": mid, "format": wav})
    await upload(first, mid, data, [0, 2])
    token = first.token
    await first.close()
    again = await Phone.connect(gateway, token=token)
    lobby_id = (await host.wait_for_event("measurement.started"))["lobby"]
    await again.ok("resume", {"lobby_id": lobby_id, "after_seq": 1})
    status = await again.ok("measurement.upload", {"measurement_id": mid, "format": wav})
    assert status["received"] == 2 and status["missing"] == [1], status
    rest = [1, *range(3, parts)]
    replies = await upload(again, mid, data, rest)
    assert replies[-1]["payload"]["state"] == "complete"

    result = (await host.wait_for_event("analysis.result", within_s=180))["payload"]
    assert result["error"] is None, result
    devices = [again.device_id, *(m.device_id for m in mics[1:])]
    for device, ir in zip(devices, responses, strict=True):
        t30 = np.array(result["result"]["microphones"][device]["parameters"]["T30"], float)
        clean = room_parameters(ir, FS, BANDS)["T30"]
        np.testing.assert_allclose(t30[2:6], clean[2:6], rtol=0.05, err_msg=device)
    # Every microphone's T30 is averaged, or left out as doubtful (a shoebox's image-source
    # decay may be curved beyond ISO 3382-2's limit) with the reason.
    t30 = result["result"]["average"]["T30"]
    assert [c + o for c, o in zip(t30["count"], t30["left_out"], strict=True)][2:6] == [4] * 4
    mics_t30 = [result["result"]["microphones"][d]["suspect"]["T30"] for d in devices]
    doubted = [sum(bool(doubts[band]) for doubts in mics_t30) for band in range(len(BANDS))]
    assert doubted == t30["left_out"]
    assert stored_recording(database, mid, again.device_id) == data, "byte-identical"

    def workflow() -> list[str]:
        return [e["payload"]["state"] for e in host.events if e["type"] == "workflow.changed"]

    await host.wait_until(lambda: workflow()[-1] == "ready", within_s=30)  # the next one
    for phone in (host, again, *mics[1:]):
        await phone.close()


def stored_recording(database: str, mid: str, device: str) -> bytes:
    """The recording as stored (read from Postgres: the stack's internal token is its own)."""
    with psycopg.connect(libpq(database)) as conn:
        (blob,) = conn.execute(
            "SELECT blob_id FROM recordings WHERE measurement_id = %s AND device_id = %s",
            (mid, device),
        ).fetchone() or (None,)
        rows = conn.execute(
            "SELECT data FROM blob_chunks WHERE blob_id = %s ORDER BY idx", (blob,)
        ).fetchall()
    return b"".join(bytes(row[0]) for row in rows)
