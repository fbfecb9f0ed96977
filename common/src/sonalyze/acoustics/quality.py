"""How far a band's values can be trusted: ISO 3382-2's checks that its decay is straight, and
the reverberation time a reader should take from it.

Straightness. ISO 3382-2:2008, Annex B (informative), judges the decay curve a reverberation
time is read from by two figures [1]_ (ISO 3382-1 does not define them):

- B.2, the non-linearity parameter ``xi = 1000 (1 - r**2)`` per mille, ``r`` being the
  correlation coefficient of the least-squares line through the evaluation range: typical values
  are 0 to 5 per mille, and more than :data:`NONLINEARITY_LIMIT` (10 per mille) marks the decay as
  not straight;
- B.3, the curvature ``C = 100 (T30 / T20 - 1)`` per cent: typical values are 0 to 5 %, and more
  than :data:`CURVATURE_LIMIT` (10 %) marks a curved decay.

Which bands are suspect. A diffuse decay is itself random (noise under an exponential
envelope), and its Schroeder curve wiggles the more, the fewer degrees of freedom the band has:
their number is the bandwidth-time product ``B T`` (``B`` the band's width in Hz, ``T`` its
reverberation time), whose square root ISO 3382-2's Annex A divides T20's and T30's uncertainty
by. Measured on such decays (Gaussian noise times an exponential, 16 per case, octave and
third-octave bands, ``T`` 0.3-2 s): ``xi`` of the T20 fit has a median of about ``1300 / (B T)``
and a 99th percentile of about ``4000 / (B T)``, the T30 fit's about ``2500 / (B T)``, and
``|C|`` a 99th percentile of about ``200 / sqrt(B T)``. At 125 Hz (``B`` = 88 Hz) and 1 s that
is ``xi`` 45 and ``|C|`` 21 %, far beyond the annex's limits, which hold from ``B T`` of about
400 up (an octave at 500 Hz and 1 s); a quarter of such honest low bands would break them, and
the rooms' modes below their Schroeder frequencies add to it. So each figure's limit here is the
annex's, or a diffuse decay's 99th percentile at the band's ``B T`` if that is higher
(:func:`limits`; broadband, the annex's), and a band is suspect when

- two of the three figures (the T20 and T30 fits' ``xi``, ``|C|``) exceed their limits, or
- one exceeds it far: ``xi`` three times its limit, or ``|C|`` one and a half times.

A noise burst during the sweep (a door, a voice), which the deconvolution spreads over the
response as a chirp, bends a band's decay and raises two of the figures, or one far (``xi`` of
20-500 per mille in simulated measurements). Diffuse decays themselves (956 band decays
above) are never suspect by this rule; honest simulated rooms (pyroomacoustics 6 x 5 x 3 m to
12 x 9 x 4 m and 4 x 3.5 x 2.7 m shoeboxes, Sabine reverberation times 0.5-1.5 s, uniform
absorption, 70 dB peak-to-noise ratio, 36 responses each way) have 1 of 252 octave bands
(125 Hz-8 kHz) suspect with image sources and ray tracing, and 16 of 234 with image sources
alone, whose parallel walls of equal absorption make flutter; at the annex's limits alone
25 and 32 % would be. A burst that merely adds a straight decay of its own cannot be seen in
the decay's shape at all. The curvature counts either way: a decay that steepens (T30 the
shorter, as after a burst early in the T20 range) is no straighter than one that flattens,
which the annex names. The EDT fit's ``xi`` is reported but not judged: the early decay after a
strong direct sound is rarely straight and need not be.

The reverberation time to read. ISO 3382-2 names a reverberation time evaluated over a shorter
range than 60 dB by that range: T20 from 5 to 25 dB below the start of the decay, T30 from 5 to
35 dB (3.5); its survey, engineering and precision methods all evaluate these. The value to read
is T30, else T20 (when the noise leaves too little range for T30), skipping suspect values. No
shorter range is offered in their place: the early decay time (EDT, ISO 3382-1 A.2.2, the fit
from 0 to -10 dB) is not a reverberation time in the standard's sense, and neither it nor a
10 dB range from -5 dB ("T10") stands in for one: in the simulated rooms above, EDT differs from
T30 by more than 5 % (ISO 3382-1's just noticeable difference) in 62 % of the bands and T10 in
54 %, T20 in 17 %. A band with neither T20 nor T30 has no value to read, and its ``reasons`` say
why; a phone's response with 50 dB of peak-to-noise ratio has T30 in few bands but T20 in most.

References
----------
.. [1] ISO 3382-2:2008, "Acoustics - Measurement of room acoustic parameters - Part 2:
   Reverberation time in ordinary rooms", 3.5 and Annex B.
.. [2] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", A.2.2 and Table A.1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sonalyze.acoustics.signals import Signal

NONLINEARITY_LIMIT = 10.0  # per mille, ISO 3382-2 B.2
CURVATURE_LIMIT = 10.0  # per cent, ISO 3382-2 B.3
# A diffuse decay's 99th percentiles: xi of the T20 fit times B T, |C| times sqrt(B T).
DIFFUSE_NONLINEARITY = 4000.0
DIFFUSE_CURVATURE = 200.0
# How far beyond its limit one figure alone makes a band suspect.
FAR_NONLINEARITY = 3.0
FAR_CURVATURE = 1.5
# The reverberation time to read, best first: ISO 3382-2's two.
REVERBERATION_SOURCES = ("T30", "T20")
_CAUSES = "a noise burst during the sweep, or a coupled space"


def nonlinearity(correlation: ArrayLike) -> Signal:
    """ISO 3382-2 B.2's non-linearity parameter ``xi = 1000 (1 - r**2)`` in per mille of a
    decay fit's correlation coefficient ``r`` (NaN stays NaN): 0 for a straight decay.

    Examples
    --------
    >>> nonlinearity([-1.0, -0.996, -0.95])
    array([ 0.   ,  7.984, 97.5  ])
    """
    r = np.asarray(correlation, dtype=np.float64)
    xi: Signal = 1000 * (1 - r**2)
    return xi


def curvature(t20: ArrayLike, t30: ArrayLike) -> Signal:
    """ISO 3382-2 B.3's curvature ``C = 100 (T30 / T20 - 1)`` in per cent; NaN where either
    is NaN.

    Examples
    --------
    >>> curvature([1.0, 0.8, np.nan], [1.05, 1.0, 1.0])
    array([ 5., 25., nan])
    """
    ratio = np.asarray(t30, dtype=np.float64) / np.asarray(t20, dtype=np.float64)
    c: Signal = 100 * (ratio - 1)
    return c


def limits(bandwidth_time: float) -> tuple[float, float]:
    """The limits of ``xi`` (per mille) and ``|C|`` (per cent) for a band whose bandwidth times
    reverberation time is ``bandwidth_time``: ISO 3382-2 Annex B's 10 and 10, or a diffuse
    decay's 99th percentiles if higher (``4000 / (B T)``, ``200 / sqrt(B T)``); the annex's for
    an infinite ``B T`` (broadband) or a NaN one.

    Examples
    --------
    >>> limits(88.0)  # 125 Hz octave, 1 s
    (45.45454545454545, 21.320071635561042)
    >>> limits(math.inf)
    (10.0, 10.0)
    """
    if not bandwidth_time > 0:
        return NONLINEARITY_LIMIT, CURVATURE_LIMIT
    return (
        max(NONLINEARITY_LIMIT, DIFFUSE_NONLINEARITY / bandwidth_time),
        max(CURVATURE_LIMIT, DIFFUSE_CURVATURE / math.sqrt(bandwidth_time)),
    )


def decay_doubt(
    name: str, xi: Mapping[str, float], curve: float, bandwidth_time: float = math.inf
) -> str | None:
    """Why a band's decay is not straight enough to trust, in words naming each figure beyond
    its limit, or None: when two of the T20 fit's ``xi``, the T30 fit's and ``|C|`` exceed
    their :func:`limits`, or one exceeds its limit far (see the module's notes).

    Parameters
    ----------
    name : str
        The band, as the reasons name it (``"500 Hz band"``).
    xi : mapping
        The non-linearity (per mille) of the ``T20`` and ``T30`` fits; NaN where there is none.
    curve : float
        The curvature in per cent; NaN where T20 or T30 is missing.
    bandwidth_time : float
        The band's width in Hz times its reverberation time in s; infinite for broadband.

    Examples
    --------
    >>> for part in decay_doubt("500 Hz band", {"T20": 4.0, "T30": 74.0}, 8.0, 700).split(": "):
    ...     print(part)
    500 Hz band
    the T30 decay is not straight (xi 74 per mille, ISO 3382-2 allows 10)
    a noise burst during the sweep, or a coupled space
    >>> decay_doubt("125 Hz band", {"T20": 20.0, "T30": 9.8}, 6.5, 88) is None  # modes beat
    True
    """
    xi_limit, c_limit = limits(bandwidth_time)
    bent = [key for key in ("T30", "T20") if xi[key] > xi_limit]
    curved = abs(curve) > c_limit
    far = (
        max(xi["T20"], xi["T30"]) > FAR_NONLINEARITY * xi_limit
        or abs(curve) > FAR_CURVATURE * c_limit
    )
    if not (far or len(bent) + curved >= 2):
        return None
    findings = [
        f"the {key} decay is not straight (xi {xi[key]:.0f} per mille, "
        f"{_allowed(NONLINEARITY_LIMIT, xi_limit)})"
        for key in bent
    ]
    if curved:
        longer = "longer" if curve > 0 else "shorter"
        findings.append(
            f"the decay is curved (C {curve:.0f} %: T30 {abs(curve):.0f} % {longer} than T20, "
            f"{_allowed(CURVATURE_LIMIT, c_limit)})"
        )
    return f"{name}: {'; '.join(findings)}: {_CAUSES}"


def _allowed(annex: float, limit: float) -> str:
    if limit <= annex:
        return f"ISO 3382-2 allows {annex:.0f}"
    return f"ISO 3382-2 allows {annex:.0f}, a diffuse decay in this band {limit:.0f}"


def best_reverberation_time(
    values: Mapping[str, ArrayLike], suspect: Mapping[str, Sequence[str | None]]
) -> tuple[Signal, tuple[str | None, ...]]:
    """Per band, the reverberation time to read and which parameter it is: the first of
    :data:`REVERBERATION_SOURCES` that has a value and is not suspect; NaN and None where none.

    Parameters
    ----------
    values : mapping
        ``T30`` and ``T20`` per band (s), NaN where missing.
    suspect : mapping
        For the same keys, per band, why the value is doubtful, or None.

    Examples
    --------
    >>> times, sources = best_reverberation_time(
    ...     {"T30": [1.0, np.nan, 2.0, np.nan], "T20": [0.9, 0.8, 1.9, np.nan]},
    ...     {"T30": [None, None, "bent", None], "T20": [None] * 4},
    ... )
    >>> times, sources
    (array([1. , 0.8, 1.9, nan]), ('T30', 'T20', 'T20', None))
    """
    table = {key: np.asarray(values[key], dtype=np.float64) for key in REVERBERATION_SOURCES}
    count = table["T30"].size
    best = np.full(count, math.nan)
    sources: list[str | None] = [None] * count
    for index in range(count):
        for key in REVERBERATION_SOURCES:
            value = float(table[key][index])
            if math.isfinite(value) and suspect[key][index] is None:
                best[index], sources[index] = value, key
                break
    return best, tuple(sources)
