"""Clock drift between the phone that plays the sweep and one that records it, on a room
simulated with pyroomacoustics (6 x 5 x 3 m): the drift applied by FFT resampling at an exact
whole-sample ratio (scipy's, independent of the chirp z-transform that corrects it), estimated
from the recording and corrected, so that the response and its DRR come back and without the
correction do not; phone-like band limits, repeated sweeps, mislabelled sample rates and bad
input."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pyroomacoustics as pra
import pytest
from scipy import signal

from sonalyze.acoustics import (
    MAX_DRIFT_PPM,
    correct_drift,
    deconvolve,
    estimate_drift,
    exponential_sweep,
    onset,
    room_parameters,
)

FS = 48_000
SWEEP = exponential_sweep(50, 16_000, 10, FS, fade_in=0.05, fade_out=0.02, amplitude=0.5)
LEAD, TAIL = FS, 3 * FS
# The drifted recording is padded to a multiple of UNIT samples, so that every drift tested
# (a multiple of 20 ppm) stretches it by a whole number of samples, which FFT resampling
# applies exactly.
UNIT = 50_000
TOLERANCE_PPM = 0.5
NMSE_LIMIT_DB = -20.0
DRR_LIMIT_DB = 0.5
# Speaker and microphone 3.3 m apart, the first reflection 2.6 ms after the direct sound.
PLACEMENT = ((1.5, 1.2, 1.4), (4.2, 3.1, 1.2))
# Both 0.2 m above the floor, 2.9 m apart: the floor's reflection 0.08 ms after the direct
# sound and nearly as strong.
LOW = ((1.5, 2.0, 0.2), (4.2, 3.0, 0.2))


@cache
def room(placement: tuple[tuple[float, ...], ...] = PLACEMENT) -> np.ndarray:
    """The impulse response from the source to the microphone (T30 0.64 s)."""
    shoebox = pra.ShoeBox([6, 5, 3], fs=FS, materials=pra.Material(0.2), max_order=40)
    shoebox.add_source(list(placement[0]))
    shoebox.add_microphone(list(placement[1]))
    shoebox.compute_rir()
    return np.asarray(shoebox.rir[0][0], dtype=np.float64)


@cache
def heard(
    repeats: int = 1,
    speaker: int = 0,
    tail: int = TAIL,
    placement: tuple[tuple[float, ...], ...] = PLACEMENT,
) -> np.ndarray:
    """A lead-in, the sweep ``repeats`` times back to back and a tail, through the room; with
    ``speaker`` > 0 a phone's band limits: the speaker high-passed at 300 Hz (Butterworth of
    that order) and the microphone at 150 Hz."""
    played = np.concatenate([np.zeros(LEAD), np.tile(SWEEP.signal, repeats), np.zeros(tail)])
    if speaker:
        played = signal.sosfilt(
            signal.butter(speaker, 300, "highpass", fs=FS, output="sos"), played
        )
    arrived = signal.fftconvolve(played, room(placement))[: played.size]
    if speaker:
        arrived = signal.sosfilt(signal.butter(2, 150, "highpass", fs=FS, output="sos"), arrived)
    return arrived


def drifted(samples: np.ndarray, ppm: int) -> np.ndarray:
    """``samples`` as a microphone whose clock runs ``ppm`` fast records them: band-limited
    interpolation at ``m / (1 + ppm * 1e-6)``."""
    n = -(-samples.size // UNIT) * UNIT
    stretched = n * (1_000_000 + ppm)
    assert stretched % 1_000_000 == 0, "the drift must stretch the padded recording exactly"
    padded = np.concatenate([samples, np.zeros(n - samples.size)])
    return signal.resample(padded, stretched // 1_000_000) if ppm else padded


def noisy(samples: np.ndarray, seed: int = 0) -> np.ndarray:
    """White noise 60 dB below the peak added."""
    rng = np.random.default_rng(seed)
    return samples + rng.standard_normal(samples.size) * np.max(np.abs(samples)) * 1e-3


def recording(ppm: int, seed: int = 0, **kwargs: Any) -> np.ndarray:
    return noisy(drifted(heard(**kwargs), ppm), seed)


@cache
def reference() -> tuple[np.ndarray, float]:
    """The response without drift (other noise) and its DRR."""
    response = deconvolve(recording(0, seed=99), SWEEP, FS)
    return response, float(room_parameters(response, FS)["DRR"])


def nmse_db(response: np.ndarray, truth: np.ndarray) -> float:
    """``sum((a - b)**2) / sum(b**2)`` in dB over 0.5 s from 5 ms before the truth's onset,
    the response first shifted by the whole samples that best align it."""
    start = onset(truth) - FS // 200
    b = truth[start : start + FS // 2]
    lags = np.arange(-50, 51)
    shift = lags[np.argmax([b @ response[start + lag : start + lag + b.size] for lag in lags])]
    a = response[start + shift : start + shift + b.size]
    return float(10 * np.log10(np.sum((a - b) ** 2) / np.sum(b**2)))


def sweep_formula(t: np.ndarray) -> np.ndarray:
    """The sweep's formula (without its fades) at times ``t`` from its start, zero outside."""
    phase = 2 * np.pi * SWEEP.f1 * SWEEP.rate * (np.exp(t / SWEEP.rate) - 1)
    return np.where((t >= 0) & (t < SWEEP.duration), 0.5 * np.sin(phase), 0.0)


def test_the_simulated_drift_is_the_sweep_on_a_stretched_time_axis() -> None:
    """The simulation itself: the sweep drifted by 200 ppm is its formula evaluated at
    ``m / (fs (1 + 200e-6))``, away from the fades."""
    ppm = 200
    played = drifted(np.concatenate([np.zeros(LEAD), SWEEP.signal, np.zeros(TAIL)]), ppm)
    t = np.arange(played.size) / (FS * (1 + ppm * 1e-6)) - LEAD / FS
    middle = (t > 0.1) & (t < SWEEP.duration - 0.1)
    error = played[middle] - sweep_formula(t[middle])
    assert 10 * np.log10(np.sum(error**2) / np.sum(sweep_formula(t[middle]) ** 2)) < -80


@pytest.mark.parametrize(
    ("ppm", "drr_off"),
    # Uncorrected, the DRR (-11.7 dB at this distance) is 4.2 dB off at -200 ppm, 0.7 dB at
    # +100 and +200, but within 0.1 dB at -100 and +/-20; the response itself is off at all.
    [(-200, True), (-100, False), (-20, False), (20, False), (100, True), (200, True)],
)
def test_drift_is_estimated_and_corrected(ppm: int, drr_off: bool) -> None:
    drifting = recording(ppm)
    estimate = estimate_drift(drifting, SWEEP, FS)
    assert estimate.ppm == pytest.approx(ppm, abs=TOLERANCE_PPM)
    assert estimate.uncertainty_ppm < TOLERANCE_PPM
    assert estimate.plausible
    truth, truth_drr = reference()
    corrected = deconvolve(correct_drift(drifting, estimate.ppm), SWEEP, FS)
    assert nmse_db(corrected, truth) < NMSE_LIMIT_DB
    drr = float(room_parameters(corrected, FS)["DRR"])
    assert drr == pytest.approx(truth_drr, abs=DRR_LIMIT_DB)
    # Without the correction the response is smeared: the same limits fail.
    uncorrected = deconvolve(drifting, SWEEP, FS)
    assert nmse_db(uncorrected, truth) > NMSE_LIMIT_DB
    drr = float(room_parameters(uncorrected, FS)["DRR"])
    assert (abs(drr - truth_drr) > DRR_LIMIT_DB) == drr_off


def test_no_drift_is_estimated_as_none_and_the_correction_changes_nothing() -> None:
    still = recording(0)
    assert estimate_drift(still, SWEEP, FS).ppm == pytest.approx(0, abs=TOLERANCE_PPM)
    corrected = correct_drift(still, 0.0)
    np.testing.assert_allclose(corrected, still, rtol=0, atol=1e-12 * np.max(np.abs(still)))


@pytest.mark.parametrize("order", [2, 4])
def test_a_phones_band_limits_leave_the_estimate_within_tolerance(order: int) -> None:
    estimate = estimate_drift(recording(-60, speaker=order), SWEEP, FS)
    assert estimate.ppm == pytest.approx(-60, abs=TOLERANCE_PPM)


def test_repeated_sweeps_give_the_drift_from_their_spacing() -> None:
    """Three sweeps back to back through a phone's band limits: exact to a hundredth of a ppm."""
    estimate = estimate_drift(recording(100, repeats=3, speaker=4), SWEEP, FS, repeats=3)
    assert estimate.ppm == pytest.approx(100, abs=0.01)
    assert estimate.uncertainty_ppm < 0.01


def test_a_reflection_as_strong_as_the_direct_sound_shows_in_the_uncertainty() -> None:
    """A close, strong reflection is a group delay that one sweep cannot tell from drift: the
    estimate is off, by less than three times its uncertainty; two sweeps are exact."""
    once = estimate_drift(recording(60, placement=LOW), SWEEP, FS)
    assert once.uncertainty_ppm > 10
    assert abs(once.ppm - 60) < 3 * once.uncertainty_ppm
    twice = estimate_drift(recording(60, repeats=2, placement=LOW), SWEEP, FS, repeats=2)
    assert twice.ppm == pytest.approx(60, abs=0.01)


@pytest.mark.parametrize("ppm", [-200.0, 200.0, 88_435.0])
def test_the_correction_undoes_a_known_stretch(ppm: float) -> None:
    """The sweep's formula sampled on a stretched time axis, corrected, is the sweep on the
    speaker's, away from the fades."""
    n = round((LEAD + SWEEP.signal.size + TAIL) * (1 + ppm * 1e-6))
    stretched = sweep_formula(np.arange(n) / (FS * (1 + ppm * 1e-6)) - LEAD / FS)
    corrected = correct_drift(stretched, ppm)
    t = np.arange(corrected.size) / FS - LEAD / FS
    middle = (t > 0.1) & (t < SWEEP.duration - 0.1)
    error = corrected[middle] - sweep_formula(t[middle])
    assert 10 * np.log10(np.sum(error**2) / np.sum(sweep_formula(t[middle]) ** 2)) < -80


@pytest.mark.parametrize(
    ("up", "down", "tail"),
    [
        (147, 160, TAIL),  # 44.1 kHz data read as 48 kHz: -81,250 ppm
        (160, 147, TAIL),  # 48 kHz data read as 44.1 kHz: +88,435 ppm
        (1, 3, 22 * FS),  # 16 kHz data read as 48 kHz, recorded long enough to hold the sweep
    ],
)
def test_a_mislabelled_sample_rate_is_told_from_drift(up: int, down: int, tail: int) -> None:
    mislabelled = noisy(signal.resample_poly(heard(tail=tail), up, down))
    estimate = estimate_drift(mislabelled, SWEEP, FS)
    assert abs(estimate.ppm) > MAX_DRIFT_PPM and not estimate.plausible
    assert estimate.ratio == pytest.approx(up / down, rel=1e-4)


def test_a_recording_without_the_repeats_it_is_said_to_hold_is_refused() -> None:
    once = recording(0, tail=11 * FS)  # as long as two sweeps, but one
    with pytest.raises(ValueError, match="does not hold 2 sweeps"):
        estimate_drift(once, SWEEP, FS, repeats=2)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda r: np.array([]), {}, "empty"),
        (lambda r: np.where(np.arange(r.size) == 10, np.nan, r), {}, "NaN or infinite"),
        (lambda r: np.stack([r, r]), {}, "one channel"),
        (lambda r: np.zeros(r.size), {}, "silent"),
        (lambda r: r[: SWEEP.signal.size - 1], {}, r"shorter than 1 sweep\(s\)"),
        (lambda r: r, {"repeats": 2}, r"shorter than 2 sweep\(s\)"),
        (lambda r: r[::3], {}, "shorter than"),  # 16 kHz data read as 48 kHz
        (lambda r: r, {"repeats": 0}, "repeats must be a positive integer"),
        (lambda r: r, {"repeats": 1.5}, "repeats must be a positive integer"),
        (lambda r: r, {"repeats": True}, "repeats must be a positive integer"),
        (lambda r: r, {"fs": 44_100}, "must be the sweep's"),
        (lambda r: r, {"fs": 0}, "sample rate"),
    ],
)
def test_bad_input_to_the_estimate_is_refused(
    make: Any, kwargs: dict[str, Any], message: str
) -> None:
    arguments = {"fs": FS, **kwargs}
    with pytest.raises(ValueError, match=message):
        estimate_drift(make(recording(0)), SWEEP, **arguments)


@pytest.mark.parametrize(
    ("samples", "ppm", "message"),
    [
        (np.array([]), 10.0, "empty"),
        (np.array([0.0, np.inf]), 10.0, "NaN or infinite"),
        (np.ones(8), float("nan"), "ppm must be finite"),
        (np.ones(8), -1e6, "above -1e6"),
    ],
)
def test_bad_input_to_the_correction_is_refused(
    samples: np.ndarray, ppm: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        correct_drift(samples, ppm)
