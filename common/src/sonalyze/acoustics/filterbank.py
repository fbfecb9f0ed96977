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

Zero phase, for the energy parameters. A causal filter delays each band's envelope by its group
delay at mid-band: 7 ms at 125 Hz for these octave filters (order 6), 1.8 ms at 500 Hz; 32 and
8 ms for pyfar's order-14 octave filters. C50, C80 and D50 split a band's energy 50 and 80 ms
after the direct sound, and Ts weighs it by its time, so the delay moves energy past the
boundaries and adds itself to Ts: for a decay of reverberation time ``T``, with
``r = 6 ln(10) / T`` and the delay ``d``, C50 reads ``10 log10((exp(r (0.05 - d)) - 1) /
(exp(0.05 r) - 1))`` dB low and Ts ``d`` long: at 125 Hz and ``T = 1`` s, 0.9 dB and 7 ms with
these filters, 5.5 dB and 32 ms with pyfar's. ``reverse=True`` moves the filters' ringing before
the response, and with it the band's share of the direct sound, which then falls before the
onset. ``zero_phase=True`` filters forward and backward (as ``scipy.signal.sosfiltfilt`` does)
with a band-pass designed so that its *squared* magnitude, the response of the two passes, is the
band's: 0 dB at mid-band, -3 dB at the edges, and steeper skirts than the causal filter's. It
moves no energy in time: a band's envelope is smeared symmetrically about where it was, and an
exponential decay smeared so keeps its shape (scaled alike before and after a boundary), so the
definitions' time axis holds in every band. The one asymmetry is at the response's start: the
direct sound's band-limited pulse spreads before its arrival as much as after it, over
:func:`zero_phase_spread`, and that part counts as arriving with it (see
:func:`sonalyze.acoustics.room_parameters`). The signal is taken as silent before its first
sample and after its last.

References
----------
.. [1] IEC 61260-1:2014, "Electroacoustics - Octave-band and fractional-octave-band filters -
   Part 1: Specifications".
.. [2] ISO 3382-1:2009, Annex A.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

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


def band_filter(
    nominal: float, fraction: int, fs: int, order: int = 3, *, zero_phase: bool = False
) -> Signal:
    """Second-order sections of the band's Butterworth band-pass (order ``2 * order``).

    With ``zero_phase``, the band-pass for filtering forward and backward: its edges are moved
    out so that its squared magnitude is -3 dB at the band's edges. For a Butterworth prototype
    of order ``N``, ``|H|**2 = 1 / (1 + W**(2 N))``; ``|H|**4 = 1 / 2`` at ``W = q =
    (sqrt(2) - 1) ** (1 / (2 N))``, so the prototype's bandwidth is the band's divided by ``q``,
    about the same geometric centre (in the bilinear transform's pre-warped frequencies).
    """
    sos = _design(float(nominal), fraction, fs, order, zero_phase).copy()
    return sos


@lru_cache(maxsize=256)  # shared: filter with it, never change it
def _design(nominal: float, fraction: int, fs: int, order: int, zero_phase: bool) -> Signal:
    low, high = band_edges(nominal, fraction)
    if high >= fs / 2:
        raise ValueError(
            f"the {nominal:g} Hz band reaches {high:.0f} Hz, above half the sample rate {fs}"
        )
    if zero_phase:
        warped_low, warped_high = _warp(low, fs), _warp(high, fs)
        width = (warped_high - warped_low) / (math.sqrt(2) - 1) ** (1 / (2 * order))
        warped_high = (width + math.sqrt(width**2 + 4 * warped_low * warped_high)) / 2
        warped_low = warped_low * _warp(high, fs) / warped_high
        low, high = _unwarp(warped_low, fs), _unwarp(warped_high, fs)
    sos: Signal = signal.butter(order, (low, high), btype="bandpass", fs=fs, output="sos")
    return sos


def _warp(frequency: float, fs: int) -> float:
    """The bilinear transform's pre-warped (analogue) angular frequency of ``frequency`` Hz."""
    return 2 * fs * math.tan(math.pi * frequency / fs)


def _unwarp(warped: float, fs: int) -> float:
    return fs / math.pi * math.atan(warped / (2 * fs))


def zero_phase_spread(nominal: float, fraction: int) -> float:
    """How far (s) a band's zero-phase filter spreads an impulse each side of it: four times
    the reciprocal bandwidth, beyond which lies less than 1e-5 of its response's energy
    (``order`` 3, octave and third-octave bands up to 8 kHz at 48 kHz)."""
    low, high = band_edges(nominal, fraction)
    return 4 / (high - low)


def filter_bands(
    x: ArrayLike,
    fs: int,
    bands: Sequence[float],
    fraction: int = 1,
    *,
    order: int = 3,
    reverse: bool = False,
    zero_phase: bool = False,
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
    zero_phase : bool
        Filter forward and backward with the zero-phase design (see the module's notes).

    Raises
    ------
    ValueError
        For an empty or non-finite signal, an unknown nominal frequency, a band reaching
        ``fs / 2``, or both ``reverse`` and ``zero_phase``.
    """
    samples = as_signal(x, "the signal")
    if reverse and zero_phase:
        raise ValueError("filter reversed or zero-phase, not both")
    rows = np.empty((len(bands), samples.size))
    for row, nominal in zip(rows, bands, strict=True):
        sos = _design(float(nominal), fraction, fs, order, zero_phase)
        if zero_phase:
            # Silent outside the record: forward from rest, then backward from rest once the
            # forward pass has rung out in the padding.
            pad = round(zero_phase_spread(nominal, fraction) * fs)
            forward = signal.sosfilt(sos, np.pad(samples, pad))
            row[:] = signal.sosfilt(sos, forward[::-1])[::-1][pad : pad + samples.size]
        elif reverse:
            row[:] = signal.sosfilt(sos, samples[::-1])[::-1]
        else:
            row[:] = signal.sosfilt(sos, samples)
    return rows
