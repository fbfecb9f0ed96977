"""A measurement's recordings to its results: per microphone, and averaged over the room.

Each microphone's recording (already checked and at the sweep's rate, see
:mod:`sonalyze_measurement.audio`) is deconvolved with the sweep, analysed in the octave bands
125 Hz-8 kHz by :func:`sonalyze.acoustics.room_parameters`, and given a frequency response
(third-octave smoothing) and each band's decay curve, sampled for a chart
(:func:`sonalyze.acoustics.decay_curve`). The impulse response analysed comes back beside the
result as a 32-bit float WAV file, for the service to store. Quality flags, per microphone:

- ``psnr_low_for_t30``: some band's decay is too short above the noise for T30 (ISO 3382-1);
- ``non_linear``: the speaker's harmonic distortion reaches within 20 dB of the linear response
  (the products are separated from the response, but the loudspeaker works outside its range).

The run averages the microphones with :func:`sonalyze.acoustics.spatial_average`. Results are
:class:`sonalyze.events.MicrophoneResult` models, JSON-ready: NaN becomes ``null`` and the
reasons say why.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import soundfile

from sonalyze.acoustics import (
    OCTAVES,
    EnergyDecay,
    Sweep,
    decay_curve,
    deconvolve,
    frequency_response,
    harmonic_responses,
    room_parameters,
)
from sonalyze.acoustics.analysis import json_number, json_numbers
from sonalyze.acoustics.signals import Signal
from sonalyze.events import AnalysisFlag, DecayCurves, FrequencyResponse, MicrophoneResult
from sonalyze.measurement_api import MeasurementKind, RecordingFormat, SweepSpec
from sonalyze_measurement.audio import prepare
from sonalyze_measurement.sweeps import render

BANDS = OCTAVES[2:9]  # 125 Hz to 8 kHz
BAND_LOW_HZ = 50.0  # the frequency response's first point
NON_LINEAR_DB = -20.0
_HARMONICS = 5
# Lag of the linear response's peak in the recording cut for the harmonics, s.
_MARGIN = 0.002
# Decay curves for a chart: the finest of these steps (s) at which every band's curve has at
# most DECAY_POINTS points (0.005 s shows 1.5 s of decay, 0.1 s 30 s), levels to 0.01 dB.
DECAY_STEPS = (0.005, 0.01, 0.02, 0.05, 0.1)
DECAY_POINTS = 300


class Analysed(NamedTuple):
    """One microphone's analysis: the result (without ``response_blob_id``, which the service
    sets once it has stored the response) and the impulse response analysed."""

    result: MicrophoneResult
    response: Signal


def _harmonic_level(recording: Signal, sweep: Sweep, linear: Signal, peak: int) -> float:
    """The energy of harmonics 2-5 re the linear response's, in dB [Farina 2000]: the recording
    is first cut so that the linear response's peak lands just after lag 0, where
    :func:`harmonic_responses` expects the linear response."""
    start = max(0, peak - round(_MARGIN * sweep.fs))
    harmonics = harmonic_responses(recording[start:], sweep, sweep.fs, _HARMONICS)
    distortion = sum(float(np.sum(h**2)) for h in harmonics)
    return 10 * math.log10(max(distortion, 1e-300) / float(np.sum(linear**2)))


def analyse_recording(recording: Signal, spec: SweepSpec) -> Analysed:
    """One microphone's impulse response, parameters per band, frequency response, decay
    curves and flags.

    The response is analysed from half the gap to the 2nd harmonic before its peak: the
    harmonic products of a short sweep recorded with a lead-in land before the linear response,
    and a strong one must not pass for its onset.
    """
    sweep = render(spec)
    full = deconvolve(recording, sweep, spec.sample_rate)
    peak = int(np.argmax(full**2))
    ir = full[max(0, peak - round(sweep.rate * math.log(2) / 2 * sweep.fs)) :]
    return analyse_response(ir, spec.sample_rate, _harmonic_level(recording, sweep, ir, peak))


def analyse_response(ir: Signal, fs: int, distortion: float | None = None) -> Analysed:
    """An impulse response's parameters per band, frequency response, decay curves and flags
    (with the sweep's harmonic level when it came from one)."""
    result = room_parameters(ir, fs, BANDS)
    freqs, level = frequency_response(ir, fs, fraction=3, f_min=BAND_LOW_HZ)
    flags = []
    if any(reason is not None for reason in result.reasons["T30"]):
        flags.append(AnalysisFlag.psnr_low_for_t30)
    if distortion is not None and distortion > NON_LINEAR_DB:
        flags.append(AnalysisFlag.non_linear)
    analysed = MicrophoneResult(
        **result.to_json(),
        harmonic_level_db=None if distortion is None else json_number(distortion),
        flags=flags,
        response_blob_id=None,
        frequency_response=FrequencyResponse(
            frequencies=json_numbers(freqs), level_db=json_numbers(level)
        ),
        decay_curves=decay_curves(result.decays),
    )
    return Analysed(analysed, ir)


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
    """:func:`analyse_recording` of an uploaded sweep recording as stored (decoded, checked and
    resampled first), or :func:`analyse_response` of an uploaded impulse response; the result,
    and the response analysed as a WAV file (:func:`response_wav`). Plain arguments, so that
    it runs in a worker process."""
    sweep = SweepSpec.model_validate(spec)
    samples = prepare(data, RecordingFormat.model_validate(declared), sweep.sample_rate, 0.0)
    if kind == MeasurementKind.impulse_response:
        analysed = analyse_response(samples, sweep.sample_rate)
    else:
        analysed = analyse_recording(samples, sweep)
    return analysed.result, response_wav(analysed.response, sweep.sample_rate)


def warm_up() -> None:
    """Nothing: submitted once at start so that a worker process exists with this module (and
    numpy and scipy) imported before the first analysis needs it."""
