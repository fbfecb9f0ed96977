"""The array type of the acoustics functions, the check every input signal passes, and the
signal chores more than one module needs (clipping, resampling)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import signal

Signal = NDArray[np.float64]
# Consecutive samples at the peak magnitude that mark a recording as clipped.
CLIPPED_RUN = 4


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


def sample_rate(fs: object) -> int:
    """``fs`` as an int, or a ``ValueError``: a sample rate is a positive integer in Hz."""
    if isinstance(fs, bool) or not isinstance(fs, int | np.integer) or fs <= 0:
        raise ValueError(f"the sample rate must be a positive integer in Hz, not {fs!r}")
    return int(fs)


def clipped(samples: Signal) -> bool:
    """Whether ``CLIPPED_RUN`` or more consecutive samples sit at the peak magnitude: the flat
    top that clipping (or a limiter) leaves, at full scale or below it."""
    magnitude = np.abs(samples)
    peak = magnitude.max(initial=0.0)
    if peak == 0:
        return False
    at_peak = magnitude >= peak * (1 - 1e-12)
    run = np.convolve(at_peak, np.ones(CLIPPED_RUN, dtype=int), mode="valid")
    return bool(run.size and run.max() >= CLIPPED_RUN)


def resample(samples: Signal, fs_from: int, fs_to: int) -> Signal:
    """``samples`` at ``fs_from`` resampled to ``fs_to`` (polyphase, scipy's Kaiser window)."""
    ratio = Fraction(fs_to, fs_from)
    resampled: Signal = signal.resample_poly(samples, ratio.numerator, ratio.denominator)
    return resampled
