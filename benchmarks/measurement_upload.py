"""Benchmark of a measurement's uploads and analysis through the whole stack.

Starts ``sonalyze up`` (embedded Postgres in a temporary directory, the five services as their
own processes) and, for each of ``--rounds`` rounds, a lobby with a speaker and
``--microphones`` microphones as WebSocket clients of the gateway. The host starts a
measurement with the default sweep (``--sweep-seconds`` long); every microphone then uploads
its recording at once, as a 24-bit WAV (the sweep through its own impulse response from a
pyroomacoustics room, with noise), in binary frames of ``--chunk-bytes``, each acknowledged
through gateway, measurement service, storage and Postgres. It reports:

- upload throughput: the recordings' bytes over the time from the first frame sent to the last
  acknowledged, for all microphones together (MB/s and recordings/s);
- from the last chunk's acknowledgement to ``analysis.result`` at the host: the checks, the
  deconvolution and parameters of every recording in the analysis worker, and the result.

Run from the workspace root:

    python3.11 -m uv run python benchmarks/measurement_upload.py              # 3 rounds
    python3.11 -m uv run python benchmarks/measurement_upload.py --rounds 1   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import io
import platform
import statistics
import time
from uuid import UUID

import numpy as np
import pyroomacoustics as pra
import soundfile
from stack import sonalyze_up

from sonalyze.client import Client
from sonalyze_measurement.sweeps import design, render

FS = 48_000
MICROPHONES = [(4.5, 2.8, 1.2), (3.0, 3.1, 1.5), (5.0, 1.0, 1.1), (2.5, 2.0, 1.6)]


def recordings(count: int, sweep_seconds: float) -> list[bytes]:
    """Each microphone's recording of the default sweep in a 6 x 4 x 3 m room."""
    absorption, order = pra.inverse_sabine(0.6, [6, 4, 3])
    room = pra.ShoeBox([6, 4, 3], fs=FS, materials=pra.Material(absorption), max_order=order)
    room.add_source([1.5, 1.2, 1.4])
    room.add_microphone_array(np.array([MICROPHONES[i % 4] for i in range(count)]).T)
    room.compute_rir()
    spec = design(duration=sweep_seconds)
    played = np.concatenate([np.zeros(int(spec.lead_in * FS)), render(spec).signal])
    rng = np.random.default_rng(1)
    out = []
    for rir in room.rir:
        heard = np.convolve(played, rir[0])[: int(spec.recording_seconds * FS)]
        heard = 0.4 * heard / np.max(np.abs(heard)) + rng.standard_normal(heard.size) * 1e-4
        buffer = io.BytesIO()
        soundfile.write(buffer, heard, FS, format="WAV", subtype="PCM_24")
        out.append(buffer.getvalue())
    return out


async def upload(phone: Client, mid: UUID, data: bytes, chunk: int) -> float:
    """Upload the recording (every chunk acknowledged); the time the last ack arrived."""
    ack = await phone.upload(mid, data, chunk_bytes=chunk)
    if ack.state != "complete":
        raise RuntimeError(f"the recording is {ack.state}: {ack.error}")
    return time.perf_counter()


async def one_round(url: str, data: list[bytes], args: argparse.Namespace) -> tuple[float, float]:
    host = Client(url)
    mics = [Client(url) for _ in data]
    for phone in (host, *mics):
        await phone.connect()
    code = (await host.command("lobby.create")).code
    for mic in mics:
        await mic.command("lobby.join", {"code": code})
        await host.command("role.assign", {"device_id": str(mic.device_id), "role": "microphone"})
        await mic.command("role.update", {"status": "ready"})
    await host.command("role.assign", {"device_id": str(host.device_id), "role": "speaker"})
    await host.command("role.update", {"status": "ready"})
    await host.command("measurement.start", {"sweep": {"duration": args.sweep_seconds}})
    started = await host.wait_for("measurement.started")
    mid = UUID(started.payload["measurement_id"])
    begun = time.perf_counter()
    sends = (upload(m, mid, d, args.chunk_bytes) for m, d in zip(mics, data, strict=True))
    last = max(await asyncio.gather(*sends))
    result = await host.wait_for("analysis.result", within_s=600)
    arrived = time.perf_counter()
    if result.payload["error"]:
        raise RuntimeError(result.payload["error"])
    for phone in (host, *mics):
        await phone.close()
    return last - begun, arrived - last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--microphones", type=int, default=4)
    parser.add_argument("--sweep-seconds", type=float, default=10.0)
    parser.add_argument("--chunk-bytes", type=int, default=256 * 1024)
    args = parser.parse_args()
    data = recordings(args.microphones, args.sweep_seconds)
    total = sum(len(d) for d in data)
    seconds = design(duration=args.sweep_seconds).recording_seconds
    print(f"python {platform.python_version()}; {args.microphones} microphones, "
          f"{total / len(data) / 1e6:.2f} MB each ({seconds:.0f} s of 24-bit WAV at {FS} Hz), "
          f"chunks of {args.chunk_bytes // 1024} KiB")  # fmt: skip
    uploads, analyses = [], []
    with sonalyze_up() as (url, _):
        for round_ in range(1, args.rounds + 1):
            upload_s, analysis_s = asyncio.run(one_round(url, data, args))
            uploads.append(upload_s)
            analyses.append(analysis_s)
            print(f"round {round_}: uploads {upload_s:.2f} s ({total / upload_s / 1e6:.1f} MB/s, "
                  f"{len(data) / upload_s:.1f} recordings/s); last chunk to analysis.result "
                  f"{analysis_s:.2f} s")  # fmt: skip
    upload_s, analysis_s = statistics.median(uploads), statistics.median(analyses)
    print(f"median: {total / upload_s / 1e6:.1f} MB/s, {len(data) / upload_s:.1f} recordings/s; "
          f"last chunk to analysis.result {analysis_s:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
