"""Fractional-octave smoothed frequency response: closed-form levels of impulses, a first-order
low-pass and a comb, Butterworth filters' power averaged over each window numerically, windows
clipped at fs / 2, very narrow windows, the frequency grid, the floor, bad input."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest
from scipy import integrate, signal

from sonalyze.acoustics.response import frequency_response

FS = 48_000


def edges(freqs: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Each window's edges, clipped to fs / 2."""
    half = 2 ** (1 / (2 * fraction))
    return freqs / half, np.minimum(freqs * half, FS / 2)


def comb_mean(freqs: np.ndarray, fraction: float, gain: float, delay: int) -> np.ndarray:
    """Mean over each window of ``|1 + g exp(-j w d)|^2 = 1 + g^2 + 2 g cos(w d)``."""
    low, high = edges(freqs, fraction)
    phase = 2 * np.pi * delay / FS
    ripple = (np.sin(phase * high) - np.sin(phase * low)) / (phase * (high - low))
    return 1 + gain**2 + 2 * gain * ripple


def power_average_db(sos: np.ndarray, freqs: np.ndarray, fraction: float) -> np.ndarray:
    """The filter's ``|H|^2`` averaged over each window, by the trapezoid rule on 4001 points."""
    means = []
    for low, high in zip(*edges(freqs, fraction), strict=True):
        grid = np.linspace(low, high, 4001)
        _, response = signal.sosfreqz(sos, grid, fs=FS)
        means.append(integrate.trapezoid(np.abs(response) ** 2, grid) / (high - low))
    return 10 * np.log10(means)


def impulse_response(sos: np.ndarray) -> np.ndarray:
    impulse = np.zeros(FS)
    impulse[0] = 1.0
    return signal.sosfilt(sos, impulse)


def comb(gain: float, delay: int) -> np.ndarray:
    ir = np.zeros(delay + 1)
    ir[0], ir[delay] = 1.0, gain
    return ir


@pytest.mark.parametrize("fraction", [1, 1.5, 3, 6, 12, 24])
@pytest.mark.parametrize("f_max", [None, FS / 2])
def test_a_unit_impulse_is_0_db_everywhere(fraction: float, f_max: float | None) -> None:
    freqs, level = frequency_response([1.0], FS, fraction=fraction, f_max=f_max)
    assert freqs.shape == level.shape
    assert np.abs(level).max() < 1e-9


@pytest.mark.parametrize("gain", [0.5, 2.0, -0.1])
def test_a_scaled_delayed_impulse_is_its_gain_whatever_its_delay(gain: float) -> None:
    levels = []
    for delay in (0, 1, 1000, FS - 1):
        ir = np.zeros(delay + 1)
        ir[delay] = gain
        _, level = frequency_response(ir, FS)
        assert level == pytest.approx(np.full(level.size, 20 * np.log10(abs(gain))), abs=1e-9)
        levels.append(level)
    assert np.ptp(levels, axis=0).max() < 1e-9


@pytest.mark.parametrize("fraction", [1, 3, 12])
@pytest.mark.parametrize("f_max", [None, FS / 2])
def test_a_first_order_low_pass_matches_its_closed_form_power_average(
    fraction: float, f_max: float | None
) -> None:
    # h[n] = (1 - a) a^n: |H|^2 = (1 - a)^2 / (1 - 2 a cos w + a^2), whose integral over w is
    # (1 - a)^2 * 2 / (1 - a^2) * atan((1 + a) / (1 - a) * tan(w / 2)) up to fs / 2. With
    # f_max = fs / 2, the windows reaching above it are averaged over their part below.
    a = np.exp(-2 * np.pi * 1000 / FS)
    ir = (1 - a) * a ** np.arange(4000)
    freqs, level = frequency_response(ir, FS, fraction=fraction, f_max=f_max)

    def antiderivative(f: np.ndarray) -> np.ndarray:
        w = 2 * np.pi * f / FS
        return (1 - a) ** 2 * 2 / (1 - a**2) * np.arctan((1 + a) / (1 - a) * np.tan(w / 2))

    low, high = edges(freqs, fraction)
    mean = (antiderivative(high) - antiderivative(low)) * FS / (2 * np.pi) / (high - low)
    assert level == pytest.approx(10 * np.log10(mean), abs=1e-5)
    assert level[0] == pytest.approx(0, abs=0.01)  # 20 Hz: in the pass band
    assert level[-1] < -20  # above 20 kHz, where |H|^2 -> ((1 - a) / (1 + a)) ** 2


@pytest.mark.parametrize(
    ("order", "corner", "btype"),
    [(4, 1000.0, "lowpass"), (6, 100.0, "highpass"), (3, (300.0, 3000.0), "bandpass")],
)
@pytest.mark.parametrize("fraction", [1, 3, 12])
def test_a_butterworth_filter_matches_its_power_averaged_over_each_window(
    order: int,
    corner: float | tuple[float, float],
    btype: Literal["lowpass", "highpass", "bandpass"],
    fraction: float,
) -> None:
    sos = signal.butter(order, corner, btype, fs=FS, output="sos")
    freqs, level = frequency_response(impulse_response(sos), FS, fraction=fraction)
    reference_db = power_average_db(sos, freqs, fraction)
    resolved = reference_db > -100  # below, the floor (107 dB below sum(h^2)) may show
    assert resolved.sum() > 0.9 * freqs.size
    assert level[resolved] == pytest.approx(reference_db[resolved], abs=0.03)


def test_smoothing_a_comb_leaves_its_mean_power_at_high_frequencies() -> None:
    gain, delay = 0.5, 480  # an echo at -6 dB after 10 ms: ripple every 100 Hz
    freqs, level = frequency_response(comb(gain, delay), FS, fraction=3, f_max=FS / 2)
    mean = 1 + gain**2
    # The windows' mean power, also for the windows clipped at fs / 2.
    assert level == pytest.approx(10 * np.log10(comb_mean(freqs, 3, gain, delay)), abs=0.01)
    # What is left of the ripple: 2 g |sin - sin| / (w d) <= 2 g fs / (pi d width).
    low, high = edges(freqs, 3)
    bound = 2 * gain * FS / (np.pi * delay * (high - low))
    assert np.all(np.abs(10 ** (level / 10) - mean) <= bound + 1e-12)
    high_band = freqs >= 2000
    assert np.abs(level[high_band] - 10 * np.log10(mean)).max() < 0.25
    # Windows narrower than the ripple keep it: unsmoothed, it spans +3.5 to -6 dB.
    low_band = (freqs >= 50) & (freqs <= 200)
    assert np.ptp(level[low_band]) > 3


def test_very_narrow_windows_follow_the_unsmoothed_response() -> None:
    # Windows of 1/10000 octave: below 160 Hz narrower than a bin of the longest transform.
    gain, delay = 0.5, 480
    freqs, level = frequency_response(comb(gain, delay), FS, fraction=10_000, points_per_octave=48)
    unsmoothed = 1 + gain**2 + 2 * gain * np.cos(2 * np.pi * freqs * delay / FS)
    assert level == pytest.approx(10 * np.log10(unsmoothed), abs=0.01)
    assert level == pytest.approx(10 * np.log10(comb_mean(freqs, 10_000, gain, delay)), abs=1e-3)


def test_the_grid_is_log_spaced_from_f_min_to_f_max() -> None:
    freqs, level = frequency_response([1.0], FS, points_per_octave=3, f_max=20_480)
    assert freqs == pytest.approx(20 * 2 ** (np.arange(31) / 3), rel=1e-12)
    assert freqs[-1] == 20_480
    assert level.size == freqs.size
    # By default the last window's top edge reaches fs / 2, and the next would pass it.
    freqs, _ = frequency_response([1.0], FS, fraction=3, points_per_octave=24, f_min=100.0)
    top = FS / 2 / 2 ** (1 / 6)
    assert freqs[0] == 100.0
    assert freqs[-1] <= top < freqs[-1] * 2 ** (1 / 24)
    assert np.diff(np.log2(freqs)) == pytest.approx(np.full(freqs.size - 1, 1 / 24))


def test_levels_below_the_rounding_floor_read_at_it() -> None:
    # The floor: eps times the running sum's total, n / 2 times the response's energy.
    eps = np.finfo(np.float64).eps
    # [1, 0, 1] has a zero at fs / 4, which a 1/10^6-octave window (n = 2^22) hardly leaves.
    freqs, level = frequency_response(
        [1.0, 0.0, 1.0], FS, fraction=1e6, f_min=FS / 4 / 512, f_max=FS / 4
    )
    assert freqs[-1] == FS / 4
    assert np.all(np.isfinite(level))
    assert level[-1] == level.min() == pytest.approx(10 * np.log10(eps * 2**21 * 2), abs=1e-9)
    # A steep low-pass: its stop band follows |H|^2 down to the floor, then stays there.
    sos = signal.butter(8, 1000, fs=FS, output="sos")
    ir = impulse_response(sos)
    freqs, level = frequency_response(ir, FS)
    assert np.all(np.isfinite(level))
    floor_db = 10 * np.log10(eps * 4 * ir.size / 2 * np.sum(ir**2))  # n = 4 * 48000
    assert level.min() == pytest.approx(floor_db, abs=1e-9)
    assert -125 < floor_db < -115
    assert np.sum(level == level.min()) > 20  # the top of the stop band
    reference_db = power_average_db(sos, freqs, 3)
    deep = (reference_db < -60) & (reference_db > -100)
    assert deep.sum() > 10
    assert level[deep] == pytest.approx(reference_db[deep], abs=0.03)


def test_the_input_is_left_alone_and_may_be_a_list_of_integers() -> None:
    ir = np.array([1.0, 0.5, 0.25])
    frequency_response(ir, FS)
    assert ir.tolist() == [1.0, 0.5, 0.25]
    _, level = frequency_response([0, 0, 2], 8000, f_min=100.0)
    assert level == pytest.approx(np.full(level.size, 20 * np.log10(2)), abs=1e-9)


@pytest.mark.parametrize(
    ("ir", "kwargs", "message"),
    [
        ([], {}, "is empty"),
        (np.zeros((2, 10)), {}, "one channel"),
        ([1.0, np.nan], {}, "NaN or infinite"),
        ([1.0, np.inf], {}, "NaN or infinite"),
        (np.zeros(10), {}, "all zeros"),
        ([1.0], {"fs": 0}, "sample rate must be a positive integer"),
        ([1.0], {"fs": -FS}, "sample rate must be a positive integer"),
        ([1.0], {"fs": 48_000.0}, "sample rate must be a positive integer"),
        ([1.0], {"fs": True}, "sample rate must be a positive integer"),
        ([1.0], {"fraction": 0}, "fraction must be a positive number"),
        ([1.0], {"fraction": -3}, "fraction must be a positive number"),
        ([1.0], {"fraction": np.nan}, "fraction must be a positive number"),
        ([1.0], {"fraction": np.inf}, "fraction must be a positive number"),
        ([1.0], {"fraction": None}, "fraction must be a positive number"),
        ([1.0], {"fraction": 1e-5}, "fraction 1e-05 is too small"),
        ([1.0], {"points_per_octave": 0}, "points_per_octave must be a positive integer"),
        ([1.0], {"points_per_octave": 2.5}, "points_per_octave must be a positive integer"),
        ([1.0], {"f_min": 0}, "f_min must be a frequency above 0 Hz"),
        ([1.0], {"f_min": -20.0}, "f_min must be a frequency above 0 Hz"),
        ([1.0], {"f_min": np.nan}, "f_min must be a frequency above 0 Hz"),
        ([1.0], {"f_min": 1e3, "f_max": 1e3}, r"f_min \(1000 Hz\) must be below f_max \(1000 Hz\)"),
        ([1.0], {"f_min": 1000.0, "f_max": 500.0}, r"f_min \(1000 Hz\) must be below f_max"),
        ([1.0], {"f_min": 22_000.0}, r"below f_max \(21381.6 Hz, the default"),
        ([1.0], {"f_max": 24_001.0}, r"f_max must be at most fs / 2 \(24000 Hz\)"),
        ([1.0], {"f_max": np.nan}, "f_max must be at most fs / 2"),
    ],
)
def test_bad_input_is_refused(ir: Any, kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"fs": FS, **kwargs}
    with pytest.raises(ValueError, match=message):
        frequency_response(ir, **arguments)
