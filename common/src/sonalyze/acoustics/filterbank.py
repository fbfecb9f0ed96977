"""Octave and third-octave band filters per IEC 61260-1.

Design. Mid-band frequencies are the standard's base-10 series ``fm = 1000 * G ** (x / b)``
with ``G = 10 ** (3 / 10)`` and ``b`` bands per octave (1 or 3); the band edges are
``fm * G ** (+-1 / (2 b))``. Each band is a Butterworth band-pass of order ``2 * order`` (in
second-order sections, designed at the exact edges with the bilinear transform's pre-warping),
so it passes its mid-band frequency at 0 dB and its edges at -3 dB; the upper edge must lie
below ``fs / 2``. Adjacent bands overlap in their skirts: white noise through all of them
carries about 0.2 dB more energy than through one band-pass over the same range.

Phase. The filters are causal and have a Butterworth filter's non-linear phase and group delay
(largest at the band edges, longer in lower bands). For decay analysis of short reverberation
times, ISO 3382-1 and Kuttruff advise filtering the time-reversed response so that the filter's
own decay lands before the response instead of after it: ``reverse=True`` does that.

References
----------
.. [1] IEC 61260-1:2014, "Electroacoustics - Octave-band and fractional-octave-band filters -
   Part 1: Specifications".
.. [2] ISO 3382-1:2009, Annex A.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

from sonalyze.acoustics.signals import Signal, as_signal

G = 10 ** (3 / 10)
OCTAVES = (31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)
THIRD_OCTAVES = (
    25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250,
    1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000,
)  # fmt: skip


def mid_band(nominal: float, fraction: int) -> float:
    """The exact mid-band frequency of the band with this nominal frequency [1]_."""
    if fraction not in (1, 3):
        raise ValueError(f"fraction must be 1 (octaves) or 3 (third octaves), not {fraction!r}")
    table = OCTAVES if fraction == 1 else THIRD_OCTAVES
    if nominal not in table:
        raise ValueError(f"{nominal} Hz is not a nominal 1/{fraction}-octave frequency: {table}")
    x = round(fraction * np.log(nominal / 1000) / np.log(G))
    return float(1000 * G ** (x / fraction))


def band_edges(nominal: float, fraction: int) -> tuple[float, float]:
    """Lower and upper edge of the band in Hz: ``fm * G ** (+-1 / (2 b))`` [1]_."""
    fm = mid_band(nominal, fraction)
    half = G ** (1 / (2 * fraction))
    return fm / half, fm * half


def band_filter(nominal: float, fraction: int, fs: int, order: int = 3) -> Signal:
    """Second-order sections of the band's Butterworth band-pass (order ``2 * order``)."""
    low, high = band_edges(nominal, fraction)
    if high >= fs / 2:
        raise ValueError(
            f"the {nominal} Hz band reaches {high:.0f} Hz, above half the sample rate {fs}"
        )
    sos: Signal = signal.butter(order, (low, high), btype="bandpass", fs=fs, output="sos")
    return sos


def filter_bands(
    x: ArrayLike,
    fs: int,
    bands: Sequence[float],
    fraction: int = 1,
    *,
    order: int = 3,
    reverse: bool = False,
) -> Signal:
    """``x`` through each band's filter: one row per band, in the order of ``bands``.

    Parameters
    ----------
    x : array_like
        One channel.
    fs : int
        Sample rate in Hz.
    bands : sequence of float
        Nominal mid-band frequencies (e.g. ``OCTAVES``).
    fraction : int
        1 for octave bands, 3 for third-octave bands.
    order : int
        Half the band-pass order.
    reverse : bool
        Filter the time-reversed signal and reverse the result (see the module's notes).

    Raises
    ------
    ValueError
        For an empty or non-finite signal, an unknown nominal frequency or a band reaching
        ``fs / 2``.
    """
    samples = as_signal(x, "the signal")
    rows = []
    for nominal in bands:
        sos = band_filter(nominal, fraction, fs, order)
        if reverse:
            rows.append(signal.sosfilt(sos, samples[::-1])[::-1])
        else:
            rows.append(signal.sosfilt(sos, samples))
    return np.array(rows)
