"""``sonalyze demo``: the whole system measuring and simulating a room, without a phone.

Against a running stack (``sonalyze up``), four virtual phones (:mod:`sonalyze.client`) make a
lobby: one speaker and three microphones. The host starts a measurement with the default
sweep; each microphone "records" it in a virtual room (the sweep through that position's
impulse response from pyroomacoustics, with noise), each with its own clock offset (its
recording starts up to a tenth of a second early or late) and one at 44.1 kHz, and uploads it.
The system analyses the recordings as it would real ones. Then the host asks for a simulation
of the same room. What comes back is set side by side per octave band: the measured T20, T30,
EDT and C80 (mean and spread over the microphones), the virtual room's own values (its impulse
responses analysed directly: the truth), the simulated ones, and Sabine's and Eyring's times.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from sonalyze.client import Client

ROOM = (6.0, 5.0, 3.0)  # m
ABSORPTION = 0.25  # every surface, every band (energy)
SOURCE = (1.5, 1.2, 1.4)
# Each microphone: where it is, how far its clock is off (s; positive: it starts recording
# late) and its sample rate.
MICROPHONES = (
    ((4.5, 3.5, 1.2), 0.0, 48_000),
    ((3.0, 3.8, 1.5), 0.08, 48_000),
    ((5.0, 1.5, 1.1), -0.06, 44_100),
)
NOISE = 10 ** (-70 / 20)  # white noise re the recording's peak
PARAMETERS = ("T20", "T30", "EDT", "C80")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Row:
    """One octave band of the table."""

    band: float
    measured: dict[str, float | None]
    spread: dict[str, float | None]
    truth: dict[str, float]
    simulated: dict[str, float | None]
    sabine: float | None
    eyring: float | None


def virtual_room(fs: int) -> Any:
    """The room, its source and the microphones, in pyroomacoustics (impulse responses
    computed)."""
    import numpy as np
    import pyroomacoustics as pra

    room = pra.ShoeBox(
        list(ROOM),
        fs=fs,
        materials=pra.Material(ABSORPTION),
        max_order=30,
        air_absorption=True,
    )
    room.add_source(list(SOURCE))
    room.add_microphone_array(np.array([p for p, _, _ in MICROPHONES]).T)
    room.compute_rir()
    return room


def recordings(sweep: Any, lead_in: float, seconds: float, rirs: list[Any]) -> list[bytes]:
    """What each microphone uploads: 24-bit WAV at its own rate, its clock off as it says."""
    import numpy as np
    import soundfile
    from scipy.signal import fftconvolve, resample_poly

    fs = sweep.fs
    rng = np.random.default_rng(3)
    out = []
    for (_, offset, rate), rir in zip(MICROPHONES, rirs, strict=True):
        start = round((lead_in - offset) * fs)  # the sweep's first sample in this recording
        played = np.concatenate([np.zeros(max(start, 0)), sweep.signal])[max(-start, 0) :]
        heard = fftconvolve(played, rir)[: round(seconds * fs)]
        heard = 0.5 * heard / np.max(np.abs(heard))
        heard = heard + NOISE * rng.standard_normal(heard.size)
        if rate != fs:
            divisor = math.gcd(rate, fs)
            heard = resample_poly(heard, rate // divisor, fs // divisor)
        buffer = io.BytesIO()
        soundfile.write(buffer, heard, rate, format="WAV", subtype="PCM_24")
        out.append(buffer.getvalue())
    return out


def simulation_request() -> dict[str, Any]:
    """The same room, as the simulation service is asked for it."""
    return {
        "room": {"shape": "shoebox", "dimensions": list(ROOM)},
        "materials": {"default": {"absorption": [ABSORPTION] * 6}},
        "sources": [list(SOURCE)],
        "receivers": [list(p) for p, _, _ in MICROPHONES],
    }


async def run(url: str, progress: Progress) -> list[Row]:
    """The demo against the gateway at ``url``: its table, per octave band."""
    async with Client(url) as host:
        phones = [Client(url) for _ in MICROPHONES]
        try:
            for phone in phones:
                await phone.connect()
            return await cycle(host, phones, progress)
        finally:
            for phone in phones:
                await phone.close()


async def cycle(host: Client, phones: list[Client], progress: Progress) -> list[Row]:
    """One whole cycle on connected clients (each may be on a gateway of its own): ``host``
    makes a lobby and is its speaker, ``phones`` (one per :data:`MICROPHONES`) join as its
    microphones; a measurement, then a simulation of the same room. :class:`RuntimeError` when
    the analysis or the simulation fails, the client's errors when a command does."""
    import numpy as np

    from sonalyze.acoustics import exponential_sweep, room_parameters

    joined = await host.command("lobby.create", {"name": "sonalyze demo"})
    progress(f"lobby {joined.code}: one speaker, {len(phones)} microphones")
    for phone in phones:
        await phone.command("lobby.join", {"code": joined.code})
    await host.command("role.assign", {"device_id": str(host.device_id), "role": "speaker"})
    for phone in phones:
        await host.command("role.assign", {"device_id": str(phone.device_id), "role": "microphone"})
    for phone in (host, *phones):
        await phone.command("role.update", {"status": "ready"})
    await host.command("measurement.start")
    started = (await host.wait_for("measurement.started")).payload
    spec = started["sweep"]
    sweep = exponential_sweep(
        spec["f1"], spec["f2"], spec["duration"], spec["sample_rate"],
        fade_in=spec["fade_in"], fade_out=spec["fade_out"], amplitude=spec["amplitude"],
    )  # fmt: skip
    progress(f"measuring: a {spec['duration']:g} s sweep in a {_room()} room")
    room = virtual_room(sweep.fs)
    rirs = [np.asarray(room.rir[m][0]) for m in range(len(MICROPHONES))]
    data = recordings(sweep, spec["lead_in"], started["recording_seconds"], rirs)
    mid = UUID(started["measurement_id"])
    await asyncio.gather(*(p.upload(mid, d) for p, d in zip(phones, data, strict=True)))
    progress("uploaded; analysing")
    result = (await host.wait_for("analysis.result", within_s=600)).payload
    if result["error"]:
        raise RuntimeError(f"the analysis failed: {result['error']}")
    measured = result["result"]
    progress("analysed; simulating the same room")
    # Its own id makes the request safe to send again (the client does, if it is unavailable).
    request = {"client_request_id": uuid4().hex, "request": simulation_request()}
    await host.command("simulation.request", request)
    simulation = (await host.wait_for("simulation.result", within_s=900)).payload
    if simulation["state"] != "succeeded":
        raise RuntimeError(f"the simulation {simulation['state']}: {simulation['error']}")
    bands = [float(b) for b in measured["bands"]]
    truth = [room_parameters(rir, sweep.fs, bands) for rir in rirs]
    return _rows(bands, measured, truth, simulation["summary"])


def _rows(
    bands: list[float], measured: dict[str, Any], truth: list[Any], simulated: dict[str, Any]
) -> list[Row]:
    simulated_bands = [float(b) for b in simulated["bands"]]
    rows = []
    for index, band in enumerate(bands):
        at = simulated_bands.index(band) if band in simulated_bands else None
        average = measured["average"]
        rows.append(
            Row(
                band=band,
                measured={k: average[k]["mean"][index] for k in PARAMETERS},
                spread={k: average[k]["std"][index] for k in PARAMETERS},
                truth={k: _mean([float(t[k][index]) for t in truth]) for k in PARAMETERS},
                simulated={
                    k: None if at is None else simulated["average"][k]["mean"][at]
                    for k in PARAMETERS
                },
                sabine=None if at is None else simulated["sabine"][at],
                eyring=None if at is None else simulated["eyring"][at],
            )
        )
    return rows


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _room() -> str:
    return " x ".join(f"{d:g}" for d in ROOM) + " m"


def table(rows: list[Row]) -> str:
    """The rows as a text table: per parameter the measured mean (with its spread over the
    microphones), the virtual room's own value and the simulated one; Sabine and Eyring."""
    head = ["band Hz"]
    for key in PARAMETERS:
        unit = "dB" if key == "C80" else "s"
        head += [f"{key} measured ({unit})", "true", "simulated"]
    body = []
    for row in rows:
        cells = [f"{row.band:g}"]
        for key in PARAMETERS:
            digits = 1 if key == "C80" else 2
            spread = row.spread[key]
            measured = _fmt(row.measured[key], digits)
            if spread is not None and math.isfinite(spread):
                measured += f" ± {spread:.{digits}f}"
            cells += [measured, _fmt(row.truth[key], digits), _fmt(row.simulated[key], digits)]
        body.append([*cells, _fmt(row.sabine, 2), _fmt(row.eyring, 2)])
    head += ["Sabine (s)", "Eyring (s)"]
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in (head, *body)
    ]
    room = f"{_room()}, absorption {ABSORPTION:g} on every surface"
    return "\n".join([*lines, f"({room}; ± the spread over the microphones; - none)"])


def _finite(values: dict[str, Any]) -> dict[str, float | None]:
    """JSON has no NaN: a value that is not there is null."""
    return {k: v if v is not None and math.isfinite(v) else None for k, v in values.items()}


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def as_json(rows: list[Row]) -> str:
    """The rows as JSON, each value under a key that says what it is."""
    return json.dumps(
        {
            "room": {"dimensions_m": list(ROOM), "absorption": ABSORPTION},
            "bands": [
                {
                    "band_hz": row.band,
                    "measured": _finite(row.measured),
                    "measured_std": _finite(row.spread),
                    "truth": _finite(row.truth),
                    "simulated": _finite(row.simulated),
                    "sabine_s": row.sabine,
                    "eyring_s": row.eyring,
                }
                for row in rows
            ],
        },
        indent=2,
    )
