"""The exponential sweep against its closed form: frequency law, synchronisation, fades, and
its inverse filter."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sonalyze.acoustics import exponential_sweep, inverse_filter

FS = 48_000


def test_instantaneous_frequency_follows_f1_exp_t_over_l() -> None:
    sweep = exponential_sweep(50, 16_000, 2.0, FS, fade_out=0.0)
    phase = np.unwrap(np.angle(signal.hilbert(sweep.signal)))
    measured = np.diff(phase) * FS / (2 * np.pi)
    for t in (0.25, 0.5, 1.0, 1.5):
        i = int(t * FS)
        expected = 50 * np.exp(t / sweep.rate)
        assert measured[i - 50 : i + 50].mean() == pytest.approx(expected, rel=0.01)
    assert 50 * np.exp(sweep.duration / sweep.rate) == pytest.approx(16_000, rel=1e-3)


def test_rate_is_synchronised_and_duration_close_to_asked() -> None:
    sweep = exponential_sweep(20, 20_000, 5.0, FS)
    assert sweep.f1 * sweep.rate == pytest.approx(round(sweep.f1 * sweep.rate), abs=1e-9)
    # L is rounded to a multiple of 1 / f1: the length moves by at most half a step.
    assert abs(sweep.duration - 5.0) <= 0.5 / sweep.f1 * np.log(sweep.f2 / sweep.f1) + 1 / FS


def test_amplitude_and_fades() -> None:
    sweep = exponential_sweep(100, 10_000, 1.0, FS, fade_in=0.01, fade_out=0.02, amplitude=0.5)
    assert np.max(np.abs(sweep.signal)) <= 0.5
    assert np.max(np.abs(sweep.signal)) > 0.49
    assert sweep.signal[0] == 0.0
    assert abs(sweep.signal[-1]) < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"f1": 0}, "f1 must be a positive"),
        ({"f1": 2000, "f2": 1000}, "f1 < f2"),
        ({"f2": 30_000}, "f2 <= fs / 2"),
        ({"duration": -1}, "duration must be a positive"),
        ({"duration": float("nan")}, "duration must be a positive"),
        ({"amplitude": 2}, "at most 1"),
        ({"fade_out": 5}, "fades"),
    ],
)
def test_bad_designs_are_refused(kwargs: dict[str, float], message: str) -> None:
    args = {"f1": 20.0, "f2": 20_000.0, "duration": 1.0, "fs": FS, **kwargs}
    with pytest.raises(ValueError, match=message):
        exponential_sweep(args.pop("f1"), args.pop("f2"), args.pop("duration"), **args)


@pytest.mark.parametrize("amplitude", [1.0, 0.25])
def test_the_sweep_through_its_inverse_filter_is_a_flat_impulse(amplitude: float) -> None:
    sweep = exponential_sweep(20, 20_000, 3.0, FS, amplitude=amplitude)
    impulse = np.convolve(sweep.signal, inverse_filter(sweep))
    assert np.argmax(np.abs(impulse)) == sweep.signal.size - 1
    spectrum = np.abs(np.fft.rfft(impulse))
    freqs = np.fft.rfftfreq(impulse.size, 1 / FS)
    level = 20 * np.log10(spectrum[(freqs > 40) & (freqs < 10_000)])
    assert np.median(level) == pytest.approx(0, abs=0.01)
    assert np.all(np.abs(level) < 1)  # the ripple of the sweep's abrupt start
