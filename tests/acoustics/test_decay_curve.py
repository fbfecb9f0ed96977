"""The decay curve for a chart against its closed form: the Schroeder integral of an exactly
exponential decay of reverberation time ``T`` is the straight line ``-60 t / T`` dB, with or
without a whole number of samples per point; under noise the compensated curve stays on that
line and stops at the crossing point; per band, it is the decay room_parameters measured."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonalyze.acoustics import OCTAVES, decay_curve, energy_decay, filter_bands, room_parameters

FS = 48_000


def exponential(t60: float, seconds: float, fs: int, noise_db: float | None = None) -> np.ndarray:
    """Random signs whose squares are exactly ``10 ** (-6 t / T)``, plus white noise whose mean
    energy is ``noise_db`` below the unit peak."""
    rng = np.random.default_rng(3)
    n = np.arange(int(seconds * fs))
    ir = rng.choice([-1.0, 1.0], n.size) * 10 ** (-3 * n / (t60 * fs))
    if noise_db is not None:
        ir += rng.standard_normal(n.size) * 10 ** (-noise_db / 20)
    return ir


@pytest.mark.parametrize(("fs", "step"), [(48_000, 0.005), (44_100, 0.005), (48_000, 0.01)])
def test_an_exponential_decay_is_a_straight_line_of_slope_minus_60_over_t(
    fs: int, step: float
) -> None:
    """At 44.1 kHz a 5 ms step is 220.5 samples: each point is the nearest sample's level."""
    t60 = 0.6
    decay = energy_decay(exponential(t60, 1.0, fs), fs)  # no noise floor: integrated whole
    curve = decay_curve(decay, step)
    samples = np.rint(np.arange(curve.size) * step * fs)
    assert samples[-1] < decay.edc.size <= np.rint(curve.size * step * fs)
    line = -60 * samples / fs / t60
    assert curve[0] == 0.0
    upper = line > -60
    np.testing.assert_allclose(curve[upper], line[upper], atol=1e-6)
    np.testing.assert_allclose(curve, line, atol=0.05)  # (the extrapolated tail's share)


@pytest.mark.parametrize("noise_db", [50, 70])
def test_under_noise_the_curve_stays_on_the_line_and_ends_at_the_crossing_point(
    noise_db: float,
) -> None:
    t60 = 0.8
    decay = energy_decay(exponential(t60, 2.0, FS, noise_db), FS)
    curve = decay_curve(decay, 0.005)
    t = np.arange(curve.size) * 0.005
    crossing = t60 * noise_db / 60  # where the envelope 10 ** (-6 t / T) meets the noise
    assert t[-1] == pytest.approx(crossing, abs=0.03)
    assert np.all(np.isfinite(curve))
    error = np.abs(curve - -60 * t / t60)
    assert error[curve > -(noise_db - 10)].max() < 0.2
    assert error.max() < 1.0


def test_per_band_it_is_the_decay_room_parameters_measured() -> None:
    """The curve's own fit from -5 to -25 dB gives the band's T20."""
    bands = OCTAVES[2:9]
    rng = np.random.default_rng(1)
    t = np.arange(2 * FS) / FS
    rows = filter_bands(rng.standard_normal(t.size), FS, bands)
    times = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
    ir = 0.2 * sum(row * 10 ** (-3 * t / t60) for row, t60 in zip(rows, times, strict=True))
    result = room_parameters(ir + 1e-5 * rng.standard_normal(t.size), FS, bands)
    assert len(result.decays) == len(bands)
    for band, decay, t20 in zip(bands, result.decays, result["T20"], strict=True):
        assert decay is not None
        curve = decay_curve(decay, 0.005)
        seconds = np.arange(curve.size) * 0.005
        fit = (curve <= -5) & (curve >= -25)
        slope = np.polyfit(seconds[fit], curve[fit], 1)[0]
        assert -60 / slope == pytest.approx(t20, rel=0.01), band


def test_a_band_without_a_decay_has_none_and_the_reasons_say_why() -> None:
    noise = np.random.default_rng(0).standard_normal(FS)
    result = room_parameters(noise, FS)
    assert result.decays == (None,)
    assert "no decay 10 dB above the noise" in str(result.reasons["T20"][0])


@pytest.mark.parametrize("step", [0, -0.01, math.nan, math.inf, "5 ms"])
def test_a_step_that_is_not_a_positive_time_is_refused(step: object) -> None:
    decay = energy_decay(exponential(0.5, 1.0, FS), FS)
    with pytest.raises(ValueError, match="step must be a positive number of seconds"):
        decay_curve(decay, step)  # type: ignore[arg-type]
