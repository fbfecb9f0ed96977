"""Where an impulse response starts: ISO 3382-1's onset.

References
----------
.. [1] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", Annex A.3.4: the start of the impulse response is where the signal
   first rises to 20 dB below its maximum, the part before it being noise or pre-delay.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sonalyze.acoustics.signals import as_signal

ONSET_THRESHOLD_DB = -20.0


def onset(ir: ArrayLike, threshold_db: float = ONSET_THRESHOLD_DB) -> int:
    """The index of the first sample whose energy is within ``threshold_db`` of the peak's.

    Parameters
    ----------
    ir : array_like
        An impulse response (one channel).
    threshold_db : float
        Level relative to the peak's energy, negative; ISO 3382-1 uses -20 dB [1]_.

    Returns
    -------
    int
        The onset sample; the peak's at the latest.

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
    return int(np.argmax(energy >= peak * 10 ** (threshold_db / 10)))
