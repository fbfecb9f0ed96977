"""A measurement's recordings to its results: per microphone, and averaged over the room.

Each microphone's recording (already checked and at the sweep's rate, see
:mod:`sonalyze_measurement.audio`) is deconvolved with the sweep, analysed in the octave bands
125 Hz-8 kHz by :func:`sonalyze.acoustics.room_parameters`, and given a frequency response
(third-octave smoothing). Quality flags, per microphone:

- ``psnr_low_for_t30``: some band's decay is too short above the noise for T30 (ISO 3382-1);
- ``non_linear``: the speaker's harmonic distortion reaches within 20 dB of the linear response
  (the products are separated from the response, but the loudspeaker works outside its range).

The run averages the microphones with :func:`sonalyze.acoustics.spatial_average`.
Results are JSON-ready: NaN becomes ``null`` and the reasons say why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sonalyze.acoustics import (
    OCTAVES,
    Sweep,
    deconvolve,
    frequency_response,
    harmonic_responses,
    room_parameters,
)
from sonalyze.acoustics.analysis import json_number, json_numbers
from sonalyze.acoustics.signals import Signal
from sonalyze.measurement_api import MeasurementKind, RecordingFormat, SweepSpec
from sonalyze_measurement.audio import prepare
from sonalyze_measurement.sweeps import render

BANDS = OCTAVES[2:9]  # 125 Hz to 8 kHz
BAND_LOW_HZ = 50.0  # the frequency response's first point
NON_LINEAR_DB = -20.0
_HARMONICS = 5
# Lag of the linear response's peak in the recording cut for the harmonics, s.
_MARGIN = 0.002


def _harmonic_level(recording: Signal, sweep: Sweep, linear: Signal, peak: int) -> float:
    """The energy of harmonics 2-5 re the linear response's, in dB [Farina 2000]: the recording
    is first cut so that the linear response's peak lands just after lag 0, where
    :func:`harmonic_responses` expects the linear response."""
    start = max(0, peak - round(_MARGIN * sweep.fs))
    harmonics = harmonic_responses(recording[start:], sweep, sweep.fs, _HARMONICS)
    distortion = sum(float(np.sum(h**2)) for h in harmonics)
    return 10 * math.log10(max(distortion, 1e-300) / float(np.sum(linear**2)))


def analyse_recording(recording: Signal, spec: SweepSpec) -> dict[str, Any]:
    """One microphone's impulse response, parameters per band, frequency response and flags.

    The response is analysed from half the gap to the 2nd harmonic before its peak: the
    harmonic products of a short sweep recorded with a lead-in land before the linear response,
    and a strong one must not pass for its onset.
    """
    sweep = render(spec)
    full = deconvolve(recording, sweep, spec.sample_rate)
    peak = int(np.argmax(full**2))
    ir = full[max(0, peak - round(sweep.rate * math.log(2) / 2 * sweep.fs)) :]
    return analyse_response(ir, spec.sample_rate, _harmonic_level(recording, sweep, ir, peak))


def analyse_response(ir: Signal, fs: int, distortion: float | None = None) -> dict[str, Any]:
    """An impulse response's parameters per band, frequency response and flags (with the
    sweep's harmonic level when it came from one)."""
    result = room_parameters(ir, fs, BANDS)
    freqs, level = frequency_response(ir, fs, fraction=3, f_min=BAND_LOW_HZ)
    flags = []
    if any(reason is not None for reason in result.reasons["T30"]):
        flags.append("psnr_low_for_t30")
    if distortion is not None and distortion > NON_LINEAR_DB:
        flags.append("non_linear")
    return {
        **result.to_json(),
        "harmonic_level_db": None if distortion is None else json_number(distortion),
        "frequency_response": {"frequencies": json_numbers(freqs), "level_db": json_numbers(level)},
        "flags": flags,
    }


def analyse_upload(
    data: bytes, declared: dict[str, Any], spec: dict[str, Any], kind: str = "room"
) -> dict[str, Any]:
    """:func:`analyse_recording` of an uploaded sweep recording as stored (decoded, checked and
    resampled first), or :func:`analyse_response` of an uploaded impulse response. Plain
    arguments, so that it runs in a worker process."""
    sweep = SweepSpec.model_validate(spec)
    samples = prepare(data, RecordingFormat.model_validate(declared), sweep.sample_rate, 0.0)
    if kind == MeasurementKind.impulse_response:
        return analyse_response(samples, sweep.sample_rate)
    return analyse_recording(samples, sweep)


def warm_up() -> None:
    """Nothing: submitted once at start so that a worker process exists with this module (and
    numpy and scipy) imported before the first analysis needs it."""
