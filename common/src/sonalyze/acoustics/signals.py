"""The array type of the acoustics functions, and the check every input signal passes."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Signal = NDArray[np.float64]


def as_signal(values: ArrayLike, name: str) -> Signal:
    """``values`` as a float64 channel, or a ``ValueError`` naming ``name`` and the fault."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one channel (a 1-D array), not shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return array
