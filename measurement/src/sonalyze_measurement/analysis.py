"""A measurement's recordings to its results: per microphone, and averaged over the room.

Each microphone's recording (already checked and at the sweep's rate, see
:mod:`sonalyze_measurement.audio`) goes through :func:`sonalyze.acoustics.analyse_recording`,
the library's whole per-recording analysis: clock drift corrected, late starts, disturbed
repetitions, band limits and distortion found, parameters in the octave bands 125 Hz-8 kHz
with ISO 3382-2's straightness checks, and its flags. An uploaded impulse response is
analysed as it is (:func:`sonalyze.acoustics.room_parameters`). This module turns either into
a :class:`sonalyze.events.MicrophoneResult`, with the frequency response (third-octave
smoothing) and each band's decay curve sampled for a chart
(:func:`sonalyze.acoustics.decay_curve`); the impulse response analysed comes back beside it
as a 32-bit float WAV file, for the service to store.

The run averages the microphones with :func:`sonalyze.acoustics.spatial_average`, leaving
doubtful values out. Results are JSON-ready: NaN becomes ``null`` and the reasons say why.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import soundfile

from sonalyze.acoustics import (
    EnergyDecay,
    RoomParameters,
    analyse_recording,
    decay_curve,
    frequency_response,
    room_parameters,
)
from sonalyze.acoustics.analysis import json_number, json_numbers
from sonalyze.acoustics.recording import BANDS
from sonalyze.acoustics.signals import Signal
from sonalyze.events import (
    AnalysisFlag,
    DecayCurves,
    FrequencyResponse,
    MicrophoneResult,
    Repetitions,
)
from sonalyze.measurement_api import MeasurementKind, RecordingFormat, SweepSpec
from sonalyze_measurement.audio import prepare
from sonalyze_measurement.sweeps import render

BAND_LOW_HZ = 50.0  # the frequency response's first point
# Decay curves for a chart: the finest of these steps (s) at which every band's curve has at
# most DECAY_POINTS points (0.005 s shows 1.5 s of decay, 0.1 s 30 s), levels to 0.01 dB.
DECAY_STEPS = (0.005, 0.01, 0.02, 0.05, 0.1)
DECAY_POINTS = 300


class Analysed(NamedTuple):
    """One microphone's analysis: the result (without ``response_blob_id``, which the service
    sets once it has stored the response) and the impulse response analysed."""

    result: MicrophoneResult
    response: Signal


def analyse_sweep_recording(recording: Signal, spec: SweepSpec) -> Analysed:
    """One microphone's recording of the measurement's sweep(s), analysed whole by
    :func:`sonalyze.acoustics.analyse_recording`."""
    analysis = analyse_recording(
        recording, spec.sample_rate, render(spec), repeats=spec.repeats, bands=BANDS
    )
    harmonics = analysis.harmonics
    result = _result(
        analysis.parameters,
        analysis.response,
        analysis.fs,
        [AnalysisFlag(flag) for flag in analysis.flags],
        harmonic_level_db=json_number(harmonics.level_db),
        harmonic_floor_db=json_number(harmonics.floor_db),
        leakage=json_numbers(analysis.leakage),
        clock_drift_ppm=json_number(round(analysis.clock_drift_ppm, 2)),
        start_s=round(analysis.start_s, 4),
        repetitions=Repetitions(
            kept=list(analysis.kept), dropped=analysis.dropped, warnings=list(analysis.warnings)
        ),
    )
    return Analysed(result, analysis.response)


def analyse_response(ir: Signal, fs: int) -> Analysed:
    """An uploaded impulse response's parameters per band, frequency response, decay curves
    and flags."""
    parameters = room_parameters(ir, fs, BANDS)
    flags = []
    if any(reason is not None for reason in parameters.reasons["T30"]):
        flags.append(AnalysisFlag.psnr_low_for_t30)
    if any(r is not None for doubts in parameters.suspect.values() for r in doubts):
        flags.append(AnalysisFlag.decay_not_straight)
    return Analysed(_result(parameters, ir, fs, flags, harmonic_level_db=None), ir)


def _result(
    parameters: RoomParameters, ir: Signal, fs: int, flags: list[AnalysisFlag], **extra: Any
) -> MicrophoneResult:
    freqs, level = frequency_response(ir, fs, fraction=3, f_min=BAND_LOW_HZ)
    return MicrophoneResult(
        **parameters.to_json(),
        **extra,
        flags=flags,
        response_blob_id=None,
        frequency_response=FrequencyResponse(
            frequencies=json_numbers(freqs), level_db=json_numbers(level)
        ),
        decay_curves=decay_curves(parameters.decays),
    )


def decay_curves(decays: Sequence[EnergyDecay | None]) -> DecayCurves:
    """Each band's decay curve (none for a band without a decay), all at the finest of
    :data:`DECAY_STEPS` that keeps the longest within :data:`DECAY_POINTS` points (and cut
    there, should even the coarsest not)."""
    seconds = max((d.edc.size / d.fs for d in decays if d is not None), default=0.0)
    step = next((s for s in DECAY_STEPS if seconds / s <= DECAY_POINTS), DECAY_STEPS[-1])
    levels = [
        [] if d is None else json_numbers(np.round(decay_curve(d, step)[:DECAY_POINTS], 2))
        for d in decays
    ]
    return DecayCurves(step_s=step, levels_db=levels)


def response_wav(ir: Signal, fs: int) -> bytes:
    """An impulse response as a mono 32-bit float WAV file (its level as analysed)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.asarray(ir, dtype=np.float32), fs, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def analyse_upload(
    data: bytes, declared: dict[str, Any], spec: dict[str, Any], kind: str = "room"
) -> tuple[MicrophoneResult, bytes]:
    """:func:`analyse_sweep_recording` of an uploaded sweep recording as stored (decoded,
    checked and resampled first), or :func:`analyse_response` of an uploaded impulse
    response; the result, and the response analysed as a WAV file (:func:`response_wav`).
    Plain arguments, so that it runs in a worker process."""
    sweep = SweepSpec.model_validate(spec)
    samples = prepare(data, RecordingFormat.model_validate(declared), sweep.sample_rate, 0.0)
    if kind == MeasurementKind.impulse_response:
        analysed = analyse_response(samples, sweep.sample_rate)
    else:
        analysed = analyse_sweep_recording(samples, sweep)
    return analysed.result, response_wav(analysed.response, sweep.sample_rate)


def warm_up() -> None:
    """Nothing: submitted once at start so that a worker process exists with this module (and
    numpy and scipy) imported before the first analysis needs it."""
