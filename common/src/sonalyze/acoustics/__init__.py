"""Room-acoustics signal processing: pure numpy/scipy functions.

- :mod:`~sonalyze.acoustics.sweep`: the exponential sine sweep and its inverse filter.
- :mod:`~sonalyze.acoustics.deconvolution`: a recorded sweep to an impulse response, and the
  harmonic-distortion products separated from it.

Install with the ``acoustics`` extra (``sonalyze[acoustics]``): numpy and scipy.
"""

from sonalyze.acoustics.deconvolution import deconvolve, harmonic_delays, harmonic_responses
from sonalyze.acoustics.sweep import Sweep, exponential_sweep

__all__ = [
    "Sweep",
    "deconvolve",
    "exponential_sweep",
    "harmonic_delays",
    "harmonic_responses",
]
