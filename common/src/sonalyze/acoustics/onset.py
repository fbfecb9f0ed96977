"""Where an impulse response starts: ISO 3382-1's onset.

References
----------
.. [1] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", Annex A.3.4: the start of the impulse response is where the signal
   first rises to 20 dB below its maximum, the part before it being noise or pre-delay.

The standard's rule assumes the noise lies well below -20 dB. A phone's response may have only
30 dB of peak-to-noise ratio, and then one noise sample in a few hundred rises above -20 dB:
the onset would land in the noise before the direct sound, and every parameter would count
that silence as part of the decay (C50, D50 and Ts most). So the threshold is raised, where
needed, to :data:`ABOVE_NOISE_DB` above the noise before the peak (its mean energy, from the
median of the squared samples before the peak, as robust to the direct sound's own rise as a
median is), where a Gaussian noise sample exceeds it about once in 50 million; but never
above 10 dB below the peak.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sonalyze.acoustics.signals import as_signal

ONSET_THRESHOLD_DB = -20.0
ABOVE_NOISE_DB = 15.0
# The raised threshold stays this far below the peak, so that a direct sound slightly weaker
# than a reflection right after it (within 5 ms) stays the onset.
MAX_THRESHOLD_DB = -10.0
# The noise is estimated from the samples before the peak but the last _GUARD (5 ms at 48 kHz:
# the direct sound's own rise), when there are at least _NOISE_SAMPLES of them.
_NOISE_SAMPLES = 100
_GUARD = 240
# The median of a squared Gaussian sample is this share of its mean.
_MEDIAN_SHARE = 0.4549


def onset(ir: ArrayLike, threshold_db: float = ONSET_THRESHOLD_DB) -> int:
    """The index of the first sample whose energy is within ``threshold_db`` of the peak's,
    and :data:`ABOVE_NOISE_DB` above the noise before the peak (see the module's notes).

    Parameters
    ----------
    ir : array_like
        An impulse response (one channel).
    threshold_db : float
        Level relative to the peak's energy, negative; ISO 3382-1 uses -20 dB [1]_.

    Returns
    -------
    int
        The onset sample; the peak's at the latest. Without noise before the peak (digital
        silence, or fewer than 340 samples there) it is exactly ISO 3382-1's.

    Raises
    ------
    ValueError
        For an empty, non-finite or all-zero response, or a threshold not below 0 dB.
    """
    energy = as_signal(ir, "the impulse response") ** 2
    if not threshold_db < 0:
        raise ValueError(f"threshold_db must be below 0 dB, not {threshold_db}")
    peak = energy.max()
    if peak == 0:
        raise ValueError("the impulse response is all zeros")
    top = int(np.argmax(energy))
    threshold = peak * 10 ** (threshold_db / 10)
    if top - _GUARD >= _NOISE_SAMPLES:
        noise = float(np.median(energy[: top - _GUARD])) / _MEDIAN_SHARE
        raised = min(noise * 10 ** (ABOVE_NOISE_DB / 10), peak * 10 ** (MAX_THRESHOLD_DB / 10))
        threshold = max(threshold, raised)
    return int(np.argmax(energy >= threshold))
