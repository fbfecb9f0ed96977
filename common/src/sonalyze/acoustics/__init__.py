"""Room-acoustics signal processing: pure numpy/scipy functions.

- :mod:`~sonalyze.acoustics.sweep`: the exponential sine sweep and its inverse filter.
- :mod:`~sonalyze.acoustics.deconvolution`: a recorded sweep to an impulse response, and the
  harmonic-distortion products separated from it.
- :mod:`~sonalyze.acoustics.onset`: where an impulse response starts (ISO 3382-1).
- :mod:`~sonalyze.acoustics.filterbank`: octave and third-octave bands (IEC 61260-1).
- :mod:`~sonalyze.acoustics.decay`: noise-compensated energy decay (Lundeby, Chu, Schroeder).
- :mod:`~sonalyze.acoustics.parameters`: ISO 3382-1 parameters of one decay.
- :mod:`~sonalyze.acoustics.analysis`: :func:`room_parameters`, an impulse response's parameters
  per band.

Install with the ``acoustics`` extra (``sonalyze[acoustics]``): numpy and scipy.
"""

from sonalyze.acoustics.analysis import RoomParameters, room_parameters
from sonalyze.acoustics.deconvolution import deconvolve, harmonic_delays, harmonic_responses
from sonalyze.acoustics.filterbank import (
    OCTAVES,
    THIRD_OCTAVES,
    band_edges,
    band_filter,
    filter_bands,
    mid_band,
)
from sonalyze.acoustics.onset import onset
from sonalyze.acoustics.sweep import Sweep, exponential_sweep

__all__ = [
    "OCTAVES",
    "THIRD_OCTAVES",
    "RoomParameters",
    "Sweep",
    "band_edges",
    "band_filter",
    "deconvolve",
    "exponential_sweep",
    "filter_bands",
    "harmonic_delays",
    "harmonic_responses",
    "mid_band",
    "onset",
    "room_parameters",
]
