"""The frequency response of an impulse response, smoothed over fractional octaves.

The level at ``f`` is the mean of ``|H|^2`` over the window ``[f * 2 ** (-1 / (2 b)),
f * 2 ** (1 / (2 b))]`` (``b`` = ``fraction``), in dB re unity gain, ``H`` being the response's
discrete-time Fourier transform: a rectangular window of constant relative width, symmetric
about ``f`` on a log axis (base-2 octaves, not IEC 61260-1's base-10 ones: the edges differ by
about 0.1 %), the mean taken over linear frequency. This is power (energy-preserving) smoothing
[1]_: the mean times the window's width is the energy an ideal band-pass with the window's edges
passes, so the level is that of white noise through the response re the noise itself, as an
ideal ``1/b``-octave analyser shows it, and the response's delay and phase do not change it.
Averaging magnitudes or dB values instead would let deep notches pull the level down, and
averaging complex values would depend on the delay. A mean over log frequency would keep a
log-symmetric response symmetric [2]_; over linear frequency, a sloping spectrum moves by
hundredths of a dB with third-octave windows, tenths at most with octave ones (``1/f`` reads
0.01 dB and 0.09 dB low). Windows are clipped to ``[0, fs / 2]``: with an explicit ``f_max``,
those reaching above ``fs / 2`` are the mean over their part below it.

How it is computed: one real FFT of the response, zero-padded to ``n`` points (at least 4 times
its length and enough for the narrowest window, at ``f_min``, to span 16 bins, up to
``2 ** 22``), gives ``|H|^2`` per bin; a window's mean is the difference of its running integral
(trapezoid rule, interpolated linearly) at the window's edges over its width, or for windows
narrower than a bin ``|H|^2`` interpolated at the middle. Butterworth filters and combs come
within 0.02 dB of their exact means.

Dynamic range: the running sum rounds each bin's addition by up to ``eps / 2`` (``eps`` =
2.2e-16) of its total, ``n / 2`` times the response's mean power ``sum(h ** 2)``, so levels are
resolved down to about ``eps * n / 2`` times that mean power: 107 dB below it for a short
response with the default thirds from 20 Hz, 104 dB for a 2 s one at 48 kHz, 93 dB at
``n = 2 ** 22``. Levels below read at that floor, never as ``-inf`` or NaN.

References
----------
.. [1] P. D. Hatziantoniou, J. N. Mourjopoulos, "Generalized fractional-octave smoothing of
   audio and acoustic responses", J. Audio Eng. Soc. 48(4), 259-280, 2000.
.. [2] J. G. Tylka, B. B. Boren, E. Y. Choueiri, "A generalized method for fractional-octave
   smoothing of transfer functions that preserves log-frequency symmetry", J. Audio Eng. Soc.
   65(3), 239-245, 2017.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft

from sonalyze.acoustics.signals import Signal, as_signal, sample_rate

MIN_BINS = 16  # the narrowest window spans at least this many bins, up to MAX_LENGTH points
OVERSAMPLING = 4  # transform points per sample of the response, at least
MAX_LENGTH = 2**22


def frequency_response(
    ir: ArrayLike,
    fs: int,
    *,
    fraction: float = 3,
    points_per_octave: int = 24,
    f_min: float = 20.0,
    f_max: float | None = None,
) -> tuple[Signal, Signal]:
    """The response's level in dB, power-averaged over a ``1/fraction``-octave window per point.

    Parameters
    ----------
    ir : array_like
        An impulse response (one channel), in any units: the level is re unity gain.
    fs : int
        Sample rate in Hz.
    fraction : float
        Windows per octave, any positive number: each spans ``1 / fraction`` octave.
    points_per_octave : int
        Density of the frequency grid.
    f_min, f_max : float
        The grid's limits in Hz, ``f_max`` at most ``fs / 2`` (windows reaching above it are
        clipped to it); by default the last window's top edge is ``fs / 2``.

    Returns
    -------
    frequencies, level : ndarray
        The grid, ``f_min * 2 ** (k / points_per_octave)`` up to ``f_max``, and the level at
        each of its points in dB (see the module's notes).

    Raises
    ------
    ValueError
        For an empty, multi-channel, non-finite or all-zero response, or an argument out of
        range (a ``fraction`` so small that its windows' edges overflow, too).
    """
    response = as_signal(ir, "the impulse response")
    if not np.any(response):
        raise ValueError("the impulse response is all zeros")
    fs = sample_rate(fs)
    bands = _real(fraction)
    if not 0 < bands < math.inf:
        raise ValueError(f"fraction must be a positive number (3 for thirds), not {fraction!r}")
    if not _positive_int(points_per_octave):
        raise ValueError(f"points_per_octave must be a positive integer, not {points_per_octave!r}")
    low_end = _real(f_min)
    if not 0 < low_end < math.inf:
        raise ValueError(f"f_min must be a frequency above 0 Hz, not {f_min!r}")
    top = math.nan if f_max is None else _real(f_max)
    if f_max is not None and not top <= fs / 2:
        raise ValueError(f"f_max must be at most fs / 2 ({fs / 2:g} Hz), not {f_max!r}")
    half = 2.0 ** (0.5 / bands) if 0.5 / bands < 1024 else math.inf  # top edge over middle
    if not math.isfinite(fs * half):
        raise ValueError(f"fraction {fraction!r} is too small: its windows have no finite edges")
    if f_max is None:
        top = fs / 2 / half
    if not low_end < top:
        raise ValueError(
            f"f_min ({low_end:g} Hz) must be below f_max ({top:g} Hz"
            + (", the default: the last window's top edge at fs / 2)" if f_max is None else ")")
        )

    count = math.floor(points_per_octave * (math.log2(top) - math.log2(low_end)) + 1e-9) + 1
    octaves, steps = np.divmod(np.arange(count), points_per_octave)
    grid = np.ldexp(low_end * 2.0 ** (steps / points_per_octave), octaves)
    freqs: Signal = np.minimum(grid, top)  # the last point may pass f_max by a rounding error
    narrowest = low_end * (half - 1 / half)  # in Hz
    wanted = MAX_LENGTH if narrowest * MAX_LENGTH <= MIN_BINS * fs else MIN_BINS * fs / narrowest
    n = 2 * fft.next_fast_len(math.ceil(max(OVERSAMPLING * response.size, wanted) / 2))
    power = np.abs(fft.rfft(response, n)) ** 2
    bins = np.arange(power.size)
    integral = np.concatenate([[0.0], np.cumsum((power[:-1] + power[1:]) / 2)])
    # Window edges in bins (fs / n Hz each), clipped to fs / 2.
    low, high = freqs / half * (n / fs), np.minimum(freqs * half * (n / fs), n / 2)
    average = (np.interp(high, bins, integral) - np.interp(low, bins, integral)) / (high - low)
    mean = np.where(high - low >= 1, average, np.interp((low + high) / 2, bins, power))
    level: Signal = 10 * np.log10(np.maximum(mean, np.finfo(np.float64).eps * integral[-1]))
    return freqs, level


def _positive_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value > 0)


def _real(value: object) -> float:
    """``value`` as a float (beyond float's range: infinite), or NaN if it is no real number."""
    if not isinstance(value, Real) or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return -math.inf if value < 0 else math.inf
