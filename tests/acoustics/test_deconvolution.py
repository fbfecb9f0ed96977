"""Deconvolution against known systems: a known impulse response under 40 dB of noise, a start
offset, another sample rate, a memoryless nonlinearity whose harmonics Farina's formula places,
and bad recordings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import signal

from sonalyze.acoustics import deconvolve, exponential_sweep, filter_bands, harmonic_responses

FS = 48_000
SWEEP = exponential_sweep(20, 20_000, 3.0, FS)


def room(seed: int, t60: float = 0.4, seconds: float = 0.5) -> np.ndarray:
    """A direct sound and an exponentially decaying noise tail."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    response = 0.3 * rng.standard_normal(t.size) * np.exp(-6.91 * t / t60)
    response[0] += 3.0
    return response


def nmse_db(estimate: np.ndarray, truth: np.ndarray, band: tuple[float, float]) -> float:
    """Normalised mean square error within ``band`` (both filtered alike, zero phase)."""
    sos = signal.butter(8, band, btype="bandpass", fs=FS, output="sos")
    a, b = signal.sosfiltfilt(sos, estimate), signal.sosfiltfilt(sos, truth)
    return float(10 * np.log10(np.sum((a - b) ** 2) / np.sum(b**2)))


def record(
    response: np.ndarray, snr_db: float, lead: int = 0, seed: int = 0
) -> tuple[np.ndarray, float]:
    """The sweep through ``response`` plus white noise at ``snr_db``, scaled to a level a
    phone records at; and that scale."""
    clean = np.concatenate([np.zeros(lead), np.convolve(SWEEP.signal, response)])
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(clean.size) * np.sqrt(np.mean(clean**2)) * 10 ** (-snr_db / 20)
    recording = clean + noise
    gain = 0.5 / np.max(np.abs(recording))
    return gain * recording, gain


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_known_response_is_recovered_under_40_db_of_noise(seed: int) -> None:
    truth = room(seed)
    lead = FS // 10  # the recording starts 0.1 s before the sweep
    recording, gain = record(truth, snr_db=40, lead=lead, seed=seed)
    estimate = deconvolve(recording, SWEEP, FS)
    assert estimate.dtype == np.float64
    padded = np.zeros(estimate.size)
    padded[lead : lead + truth.size] = truth * gain
    assert nmse_db(estimate, padded, (100, 10_000)) < -40


def test_a_recording_that_starts_early_gives_a_delayed_response() -> None:
    lead = int(0.25 * FS)
    estimate = deconvolve(record(room(4), snr_db=60, lead=lead)[0], SWEEP, FS)
    assert np.argmax(np.abs(estimate)) == lead


def test_the_response_ends_where_the_recording_still_holds_the_whole_sweep() -> None:
    """Later lags would miss the sweep's end, and with it the noise at high frequencies: a
    noise floor that fades out there would mislead the decay analysis."""
    response = np.concatenate([room(6), np.zeros(FS)])  # a second more of room noise
    recording = record(response, snr_db=40, lead=FS // 10)[0]
    estimate = deconvolve(recording, SWEEP, FS)
    assert estimate.size == recording.size - SWEEP.signal.size + 1
    for row in filter_bands(estimate, FS, [125, 8000]):
        tenth = row.size // 10
        last, before = np.mean(row[-tenth:] ** 2), np.mean(row[-2 * tenth : -tenth] ** 2)
        assert abs(10 * np.log10(last / before)) < 3


def test_a_recording_at_another_sample_rate_is_resampled_first() -> None:
    truth = room(5)
    at_48k = record(truth, snr_db=60)[0]
    at_44k = signal.resample_poly(at_48k, 147, 160)
    from_48k = deconvolve(at_48k, SWEEP, FS)
    from_44k = deconvolve(at_44k, SWEEP, 44_100)
    n = min(from_48k.size, from_44k.size)
    assert nmse_db(from_44k[:n], from_48k[:n], (100, 10_000)) < -40


def test_harmonic_products_appear_where_farinas_formula_puts_them() -> None:
    sweep = exponential_sweep(50, 4_000, 3.0, FS)
    x = 0.5 * np.concatenate([sweep.signal, np.zeros(FS)])
    y = x + 0.2 * x**2 + 0.1 * x**3  # a 2nd and a 3rd harmonic, no 4th
    linear = np.abs(signal.hilbert(deconvolve(y, sweep, FS)))
    second, third, fourth = (
        np.abs(signal.hilbert(h)) for h in harmonic_responses(y, sweep, FS, orders=4)
    )
    assert np.argmax(linear) == 0
    assert np.argmax(second) <= 5 and np.argmax(third) <= 5
    assert second.max() > 0.01 * linear.max() and third.max() > 0.002 * linear.max()
    assert fourth.max() < 0.01 * third.max()


CLEAN = record(room(6), snr_db=60)[0]


@pytest.mark.parametrize(
    ("recording", "kwargs", "message"),
    [
        (np.array([]), {}, "empty"),
        (np.where(np.arange(CLEAN.size) == 10, np.nan, CLEAN), {}, "NaN or infinite"),
        (np.where(np.arange(CLEAN.size) == 10, np.inf, CLEAN), {}, "NaN or infinite"),
        (np.clip(CLEAN * 4, -1, 1), {}, "clipped"),
        (np.zeros(CLEAN.size), {}, "silent"),
        (CLEAN[: FS], {}, "shorter than the sweep"),
        (np.stack([CLEAN, CLEAN]), {}, "one channel"),
        (CLEAN, {"fs": 0}, "sample rate"),
        (CLEAN, {"fs": 48_000.0}, "sample rate"),
        (CLEAN, {"f_range": (1000, 100)}, "f_range"),
        (CLEAN, {"f_range": (100, 30_000)}, "f_range"),
    ],
    ids=[
        "empty", "nan", "inf", "clipped", "silent", "too-short", "two-channels", "zero-rate",
        "float-rate", "band-reversed", "band-above-nyquist",
    ],
)  # fmt: skip
def test_bad_recordings_are_refused(
    recording: np.ndarray, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        deconvolve(recording, SWEEP, **{"fs": FS, **kwargs})
