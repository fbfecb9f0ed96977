"""The measurement's sweep: its defaults, a changed design validated as a whole, and the WAV
the speakers download decoding back to the very sweep the analysis divides by."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from pydantic import ValidationError

from sonalyze.acoustics import OCTAVES, band_edges
from sonalyze_measurement.sweeps import DEFAULT_SWEEP, design, render, wav


def test_the_default_sweep_covers_the_octave_bands_with_half_an_octave_to_spare() -> None:
    low, _ = band_edges(OCTAVES[2], 1)  # 125 Hz
    _, high = band_edges(OCTAVES[8], 1)  # 8 kHz
    assert DEFAULT_SWEEP.f1 <= low / 2**0.5
    assert DEFAULT_SWEEP.f2 >= high * 2**0.5
    assert DEFAULT_SWEEP.recording_seconds == pytest.approx(14.0)


def test_the_downloaded_wav_is_the_sweep_the_analysis_uses() -> None:
    spec = design(duration=2.0)
    sweep = render(spec)
    samples, rate = soundfile.read(io.BytesIO(wav(spec)), dtype="float64")
    assert rate == spec.sample_rate
    assert samples.size == sweep.signal.size
    np.testing.assert_allclose(samples, sweep.signal, atol=2**-23)
    assert np.max(np.abs(samples)) == pytest.approx(spec.amplitude, abs=1e-3)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"f1": 20_000.0}, "f1 < f2"),
        ({"f2": 30_000.0}, "f1 < f2"),
        ({"amplitude": 1.5}, "amplitude"),
        ({"duration": 0.0}, "duration"),
        ({"fade_in": 6.0, "fade_out": 6.0}, "fades"),
        ({"sample_rate": 4_000}, "sample_rate"),
        ({"loudness": 3}, "loudness"),
    ],
)
def test_a_design_that_cannot_hold_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        design(**changes)
