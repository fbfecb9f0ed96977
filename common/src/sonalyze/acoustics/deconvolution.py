"""From a recorded sweep to an impulse response, and to its harmonic-distortion products.

The recording is divided by the sweep in the frequency domain, in float64, with Kirkeby's
regularisation: negligible inside the sweep's band, strong outside it, so that the bands the
sweep never excited add no noise [1]_. The transform is long enough for a linear (not circular)
deconvolution: the linear response lands at lags from 0 on, and the k-th harmonic product of an
exponential sweep ``L * ln(k)`` seconds *before* it, at negative lags, where it is cut off [2]_.

References
----------
.. [1] O. Kirkeby, P. A. Nelson, "Digital filter design for inversion problems in sound
   reproduction", J. Audio Eng. Soc. 47(7/8), 583-595, 1999.
.. [2] A. Farina, "Simultaneous measurement of impulse response and distortion with a
   swept-sine technique", 108th AES Convention, Paris, 2000, preprint 5093.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft

from sonalyze.acoustics.signals import (
    CLIPPED_RUN,
    Signal,
    as_signal,
    clipped,
    resample,
    sample_rate,
)
from sonalyze.acoustics.sweep import Sweep

# Regularisation relative to the sweep's peak power: inside and outside its band.
_INSIDE = 1e-10
_OUTSIDE = 1.0


def _check_not_clipped(recording: Signal) -> None:
    peak = np.max(np.abs(recording))
    if peak == 0:
        raise ValueError("the recording is silent")
    if clipped(recording):
        raise ValueError(
            f"the recording is clipped ({CLIPPED_RUN} or more consecutive samples at its peak "
            f"{peak:.3g}); record again at a lower level"
        )


def _spectral_division(
    recording: Signal, sweep: Signal, fs: int, f_range: tuple[float, float]
) -> Signal:
    """The full linear deconvolution: lags 0 .. n-1, negative lags wrapped to the end."""
    n = fft.next_fast_len(len(recording) + len(sweep) - 1, real=True)
    x = fft.rfft(sweep, n)
    y = fft.rfft(recording, n)
    power = np.abs(x) ** 2
    freqs = fft.rfftfreq(n, 1 / fs)
    # Half an octave of raised-cosine transition on each side of the band.
    low, high = f_range
    inside = _band_window(freqs, low, high)
    eps = power.max() * (_INSIDE * inside + _OUTSIDE * (1 - inside))
    return fft.irfft(y * np.conj(x) / (power + eps), n)


def _band_window(freqs: Signal, low: float, high: float) -> Signal:
    """1 inside [low, high], 0 beyond half an octave outside, raised cosine between."""
    octaves = np.log2(np.maximum(freqs, 1e-12))  # 0 Hz: far below any band
    below = np.clip((octaves - (np.log2(low) - 0.5)) / 0.5, 0, 1)
    above = np.clip(((np.log2(high) + 0.5) - octaves) / 0.5, 0, 1)
    window: Signal = 0.5 - 0.5 * np.cos(np.pi * np.minimum(below, above))
    return window


def _prepare(
    recording: ArrayLike, sweep: Sweep | ArrayLike, fs: int, f_range: tuple[float, float] | None
) -> tuple[Signal, Signal, int, tuple[float, float]]:
    fs = sample_rate(fs)
    rec = as_signal(recording, "recording")
    _check_not_clipped(rec)
    if isinstance(sweep, Sweep):
        played, rate = sweep.signal, sweep.fs
        default = (sweep.f1, sweep.f2)
    else:
        played, rate = as_signal(sweep, "sweep"), fs
        default = (20.0, rate / 2)
    if rate != fs:
        rec = resample(rec, fs, rate)
    low, high = f_range if f_range is not None else default
    if not 0 < low < high <= rate / 2:
        raise ValueError(f"f_range must satisfy 0 < low < high <= fs / 2, got ({low}, {high})")
    if len(rec) < len(played):
        raise ValueError(
            f"the recording ({len(rec) / rate:.3f} s) is shorter than the sweep "
            f"({len(played) / rate:.3f} s)"
        )
    return rec, played, rate, (float(low), float(high))


def deconvolve(
    recording: ArrayLike,
    sweep: Sweep | ArrayLike,
    fs: int,
    f_range: tuple[float, float] | None = None,
) -> Signal:
    """The linear impulse response of the system that turned ``sweep`` into ``recording``.

    Parameters
    ----------
    recording : array_like
        One channel, any length at least the sweep's, starting any time before the sweep
        does (the response is then delayed by as much).
    sweep : Sweep or array_like
        What was played. A :class:`Sweep` carries its own sample rate; a plain array is taken
        to be at ``fs``.
    fs : int
        The recording's sample rate; it is resampled to the sweep's first if they differ.
    f_range : (float, float), optional
        The band to recover in Hz; by default the sweep's (or 20 Hz to Nyquist).

    Returns
    -------
    numpy.ndarray
        The impulse response in float64 at the sweep's sample rate, at the lags for which the
        whole sweep lies within the (resampled) recording: ``len(recording) - len(sweep) + 1``
        samples. At later lags the sweep's end would be missing, and with it the noise of the
        high frequencies, so record at least the room's decay after the sweep ends. The
        harmonic-distortion products are not in it (see :func:`harmonic_responses`).

    Raises
    ------
    ValueError
        For an empty, non-finite, silent or clipped recording, a recording shorter than the
        sweep, a bad sample rate or a band outside (0, fs / 2].
    """
    rec, played, rate, band = _prepare(recording, sweep, fs, f_range)
    return _spectral_division(rec, played, rate, band)[: len(rec) - len(played) + 1]


def deconvolve_all_lags(recording: ArrayLike, sweep: Sweep, fs: int) -> Signal:
    """:func:`deconvolve` at every lag, negative ones included: index ``k`` holds lag ``k``,
    and lag ``-k`` sits at index ``len(result) - k``.

    The linear response of a recording that began after the sweep did lies at negative lags,
    as do the harmonic products; any lag from ``-(len(sweep) - 1)`` to ``len(recording) - 1``
    is there without circular aliasing. The recording is resampled to the sweep's rate first.

    Raises
    ------
    ValueError
        As :func:`deconvolve`.
    """
    rec, played, rate, band = _prepare(recording, sweep, fs, None)
    return _spectral_division(rec, played, rate, band)


def harmonic_delays(sweep: Sweep, orders: int) -> Signal:
    """How long before the linear response the harmonic products 2 .. ``orders`` appear, in s:
    ``L * ln(k)`` [2]_."""
    if orders < 2:
        raise ValueError("orders must be at least 2")
    return sweep.rate * np.log(np.arange(2, orders + 1))


def harmonic_responses(
    recording: ArrayLike, sweep: Sweep, fs: int, orders: int = 5
) -> list[Signal]:
    """The impulse responses of harmonics 2 .. ``orders``, each starting at its own lag 0.

    Each is as long as the gap to the next higher harmonic (at most the linear part's length),
    so that neighbouring products do not overlap.

    Raises
    ------
    ValueError
        As :func:`deconvolve`, and for fewer than 2 orders.
    """
    rec, played, rate, band = _prepare(recording, sweep, fs, (sweep.f1, sweep.f2))
    full = _spectral_division(rec, played, rate, band)
    n = len(full)
    delays = harmonic_delays(sweep, orders + 1) * rate
    responses = []
    for k in range(orders - 1):
        start = n - round(delays[k])
        length = min(round(delays[k + 1] - delays[k]), len(rec))
        responses.append(np.roll(full, -start)[:length])
    return responses
