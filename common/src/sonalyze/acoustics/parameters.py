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
from collections.abc import Mapping

import numpy as np

from sonalyze.acoustics.decay import EnergyDecay
from sonalyze.acoustics.signals import Signal

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
    return decay_times(decay, {"": (upper, lower)})[""]


def decay_times(
    decay: EnergyDecay, ranges: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """:func:`decay_time` for several evaluation ranges by name, taking the decay's levels in
    dB once."""
    edc = decay.edc
    deepest = edc < edc[0] * 10 ** (min(lower for _, lower in ranges.values()) / 10)
    stop = int(np.argmax(deepest)) + 1 if deepest.any() else edc.size
    levels = 10 * np.log10(edc[:stop] / edc[0])
    return {name: _fit(levels, decay.fs, *limits) for name, limits in ranges.items()}


def _fit(levels: Signal, fs: int, upper: float, lower: float) -> tuple[float, float]:
    """The least-squares line through the levels from the first at or below ``upper`` to the
    last above ``lower``: its 60 dB decay time and correlation coefficient.

    The abscissae are the samples ``k = 0 .. n-1``, evenly spaced, so their sums are closed
    forms (``sum((k - mean)**2) = n (n**2 - 1) / 12``); the products with the levels are summed
    by ``einsum``, which needs no BLAS: a multithreaded BLAS's threads would wait on each other
    on a busy machine for these vectors.
    """
    first = int(np.argmax(levels <= upper))
    below = levels[first:] < lower
    count = int(np.argmax(below))
    if not below[count] or count < 3:
        return math.nan, math.nan
    y = levels[first : first + count]
    y = y - y.sum() / count
    skk = count * (count**2 - 1) / 12
    sky = float(np.einsum("i,i->", np.arange(count, dtype=np.float64), y))
    syy = float(np.einsum("i,i->", y, y))
    return -60 * skk / (sky * fs), sky / math.sqrt(skk * syy)


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
