"""ISO 3382-1 room parameters from a noise-compensated energy decay.

Every function takes an :class:`~sonalyze.acoustics.decay.EnergyDecay` that starts at the
response's onset, so that ``remaining(n)`` is the energy from ``n`` samples after the onset on;
energies past the crossing point come from the late decay continued (see
:mod:`sonalyze.acoustics.decay`).

References
----------
.. [1] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", Annex A (EDT, C50, C80, D50, Ts) and 5.3 (T20, T30).
.. [2] ISO 3382-2:2008, "Acoustics - Measurement of room acoustic parameters - Part 2:
   Reverberation time in ordinary rooms", Annex B (the fit's correlation coefficient).
"""

from __future__ import annotations

import math

import numpy as np

from sonalyze.acoustics.decay import EnergyDecay

# The direct sound's window around its peak, each side (s): 2.5 ms is 0.86 m of path, long
# enough for a band-limited direct sound and short enough that a first reflection from a wall
# or floor a metre away falls outside it.
DIRECT_WINDOW = 0.0025


def _db_ratio(numerator: float, denominator: float) -> float:
    if numerator <= 0 or denominator <= 0:
        return math.nan
    return 10 * math.log10(numerator / denominator)


def decay_time(decay: EnergyDecay, upper: float, lower: float) -> tuple[float, float]:
    """Reverberation time from the least-squares line through the decay between two levels.

    Parameters
    ----------
    decay : EnergyDecay
    upper, lower : float
        Evaluation range in dB below the decay's start: ``(0, -10)`` for EDT, ``(-5, -25)`` for
        T20, ``(-5, -35)`` for T30 [1]_.

    Returns
    -------
    tuple of float
        The time for a 60 dB decay at the line's slope (s), and the correlation coefficient
        of the fit (-1 for a perfectly straight decay) [2]_. Both NaN when the decay does not
        reach ``lower`` before the crossing point.
    """
    levels = 10 * np.log10(np.maximum(decay.edc, np.finfo(np.float64).tiny) / decay.edc[0])
    first = int(np.argmax(levels <= upper))
    below = np.flatnonzero(levels[first:] < lower)
    if not below.size or below[0] < 3:
        return math.nan, math.nan
    y = levels[first : first + int(below[0])]
    x = np.arange(y.size, dtype=np.float64) / decay.fs
    dx, dy = x - x.mean(), y - y.mean()
    sxy = float(dx @ dy)
    slope = sxy / float(dx @ dx)
    correlation = sxy / math.sqrt(float(dx @ dx) * float(dy @ dy))
    return -60 / slope, correlation


def _early_energy(decay: EnergyDecay, limit: float) -> tuple[float, float]:
    """Energy before and after ``limit`` seconds from the onset."""
    late = decay.remaining(round(limit * decay.fs))
    return decay.remaining(0) - late, late


def clarity(decay: EnergyDecay, limit: float) -> float:
    """Early-to-late energy ratio in dB with the boundary ``limit`` s after the onset (C50 at
    0.05, C80 at 0.08) [1]_."""
    early, late = _early_energy(decay, limit)
    return _db_ratio(early, late)


def definition(decay: EnergyDecay, limit: float = 0.05) -> float:
    """Early-to-total energy ratio with the boundary ``limit`` s after the onset (D50) [1]_."""
    early, _ = _early_energy(decay, limit)
    return early / decay.remaining(0)


def centre_time(decay: EnergyDecay) -> float:
    """The squared response's centre of gravity in seconds after the onset (Ts) [1]_.

    ``sum(n * e[n]) / sum(e[n])`` equals ``sum(E[n] for n >= 1) / E[0]`` for the backward
    integral ``E`` of the energy ``e``.
    """
    total = decay.remaining(0)
    return (decay.integral() - total) / total / decay.fs


def direct_to_reverberant(decay: EnergyDecay, peak: int, window: float = DIRECT_WINDOW) -> float:
    """Direct-to-reverberant ratio in dB: the energy within ``window`` s of the direct sound's
    peak (``peak`` samples after the onset) against all the energy after it."""
    half = round(window * decay.fs)
    reverberant = decay.remaining(peak + half + 1)
    direct = decay.remaining(max(peak - half, 0)) - reverberant
    return _db_ratio(direct, reverberant)


def peak_to_noise(peak_energy: float, decay: EnergyDecay) -> float:
    """Peak-to-noise ratio in dB: the squared peak against the noise's mean energy per sample
    (infinite without a noise floor)."""
    if decay.noise == 0:
        return math.inf
    return _db_ratio(peak_energy, decay.noise)
