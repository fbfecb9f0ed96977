"""Lundeby's iteration and the noise-compensated decay against known decays and noise: where
the decay meets the noise, the noise's energy, the late slope; a record with no noise floor;
band-limited noise that must not pass for a decay; and decays too weak to analyse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonalyze.acoustics import OCTAVES, filter_bands
from sonalyze.acoustics.decay import DecayError, energy_decay, late_decay, lundeby_window

FS = 48_000


def decay(t60: float, seconds: float, noise_db: float | None, seed: int = 0) -> np.ndarray:
    """A unit decay with random signs (squared, exactly exponential), plus white noise whose
    mean energy is ``noise_db`` below the peak."""
    rng = np.random.default_rng(seed)
    n = np.arange(int(seconds * FS))
    ir = rng.choice([-1.0, 1.0], n.size) * 10 ** (-3 * n / (t60 * FS))
    if noise_db is not None:
        ir += rng.standard_normal(n.size) * 10 ** (-noise_db / 20)
    return ir


@pytest.mark.parametrize("t60", [0.5, 1.0])
@pytest.mark.parametrize("noise_db", [40, 60])
def test_lundeby_finds_where_a_known_decay_meets_known_noise(t60: float, noise_db: float) -> None:
    ir = decay(t60, 1.5 * t60 * noise_db / 60 + 0.2, noise_db)
    late = late_decay(ir**2, FS)
    crossing = t60 * noise_db / 60  # the envelope 10 ** (-6 t / T) reaches the noise
    assert late.end / FS == pytest.approx(crossing, abs=t60 / 30)  # one final block: 2 dB
    assert late.noise == pytest.approx(10 ** (-noise_db / 10), rel=0.03)
    assert -60 / late.slope == pytest.approx(t60, rel=0.02)
    assert energy_decay(ir, FS).inr == pytest.approx(noise_db, abs=1.0)


def test_a_record_without_a_noise_floor_is_integrated_whole() -> None:
    ir = decay(1.0, 0.7, noise_db=None)  # ends 42 dB down, still falling
    result = energy_decay(ir, FS)
    assert result.noise == 0
    assert result.edc.size == ir.size
    assert result.inr == math.inf
    assert result.decay_range == pytest.approx(42, abs=0.1)


def test_digital_silence_after_the_response_is_not_noise() -> None:
    ir = decay(1.0, 0.7, noise_db=None)
    padded = np.concatenate([ir, np.zeros(FS)])
    assert energy_decay(padded, FS).edc.size == ir.size


@pytest.mark.parametrize("seed", range(4))
def test_band_limited_noise_is_never_taken_for_a_decay_still_falling(seed: int) -> None:
    """The test for 'no noise floor' must hold even in the low bands, whose noise fluctuates
    most; a mistake there would stop the noise subtraction."""
    bands = OCTAVES[2:9]
    rows = filter_bands(decay(1.0, 1.4, noise_db=50, seed=seed), FS, bands)
    for band, row in zip(bands, rows, strict=True):
        assert energy_decay(row, FS, lundeby_window(band)).noise > 0, band


def test_the_decay_after_the_crossing_point_continues_exponentially() -> None:
    result = energy_decay(decay(0.5, 1.0, noise_db=50), FS)
    end = result.edc.size
    step = math.exp(-1 / (result.time_constant * FS))
    assert result.remaining(end) == pytest.approx(result.tail)
    assert result.remaining(end + 1000) == pytest.approx(result.tail * step**1000)
    by_sum = result.edc.sum() + sum(result.remaining(end + k) for k in range(200_000))
    assert result.integral() == pytest.approx(by_sum, rel=1e-9)


@pytest.mark.parametrize(
    ("ir", "message"),
    [
        (np.random.default_rng(0).standard_normal(FS), "no decay 10 dB above the noise"),
        (np.linspace(0.01, 1, FS) * np.random.default_rng(0).standard_normal(FS), "no decay"),
        (decay(1.0, 0.2, noise_db=60), "needs 300 ms"),
    ],
    ids=["noise", "rising", "too-short"],
)
def test_no_usable_decay_raises_decay_error_with_the_reason(ir: np.ndarray, message: str) -> None:
    with pytest.raises(DecayError, match=message):
        energy_decay(ir, FS)


@pytest.mark.parametrize("t60", [0.2, 0.5, 2.0])
@pytest.mark.parametrize("noise_db", [40, 60, 80])
def test_a_decay_into_its_noise_is_never_taken_for_a_record_ending_at_a_cliff(
    t60: float, noise_db: float
) -> None:
    """A record cut at a cliff is analysed without a noise floor; a decay that meets its noise,
    in any band, however fast, and after a direct sound 30 dB above the reverberation (a phone
    recording itself), keeps its noise, measured."""
    bands = OCTAVES[2:9]
    seconds = 1.5 * t60 * noise_db / 60 + 0.3
    clean = decay(t60, seconds, noise_db=None, seed=int(10 * t60) + noise_db)
    clean[0] = math.sqrt(1000 * np.sum(clean**2))  # the direct sound
    noise = np.random.default_rng(noise_db).standard_normal(clean.size) * 10 ** (-noise_db / 20)
    rows = filter_bands(clean + noise, FS, bands, zero_phase=True)
    for band, row, alone in zip(bands, rows, filter_bands(noise, FS, bands), strict=True):
        result = energy_decay(row, FS, lundeby_window(band))
        assert result.noise == pytest.approx(np.mean(alone**2), rel=0.5), band
        assert result.edc.size < row.size  # up to the crossing point, not a cut


def test_the_energy_before_the_onset_counts_at_the_onset() -> None:
    ir = decay(0.5, 1.0, noise_db=None)
    plain = energy_decay(ir, FS)
    added = energy_decay(ir, FS, before_onset=2.5)
    assert added.edc[0] == pytest.approx(plain.edc[0] + 2.5)
    np.testing.assert_array_equal(added.edc[1:], plain.edc[1:])


@pytest.mark.parametrize("before", [-1.0, math.nan, math.inf])
def test_a_negative_or_infinite_energy_before_the_onset_is_refused(before: float) -> None:
    with pytest.raises(ValueError, match="before_onset must be a non-negative energy"):
        energy_decay(decay(0.5, 1.0, noise_db=60), FS, before_onset=before)
