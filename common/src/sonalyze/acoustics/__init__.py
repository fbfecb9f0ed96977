"""Room-acoustics signal processing: pure numpy/scipy functions.

- :mod:`~sonalyze.acoustics.sweep`: the exponential sine sweep and its inverse filter.
- :mod:`~sonalyze.acoustics.deconvolution`: a recorded sweep to an impulse response, and the
  harmonic-distortion products separated from it.
- :mod:`~sonalyze.acoustics.onset`: where an impulse response starts (ISO 3382-1).
- :mod:`~sonalyze.acoustics.filterbank`: octave and third-octave bands (IEC 61260-1).
- :mod:`~sonalyze.acoustics.decay`: noise-compensated energy decay (Lundeby, Chu, Schroeder),
  and its curve in dB for a chart.
- :mod:`~sonalyze.acoustics.parameters`: ISO 3382-1 parameters of one decay.
- :mod:`~sonalyze.acoustics.analysis`: :func:`room_parameters`, an impulse response's parameters
  per band, and their :func:`spatial_average` over positions.
- :mod:`~sonalyze.acoustics.response`: the frequency response, fractional-octave smoothed.
- :mod:`~sonalyze.acoustics.room_formulas`: Sabine's and Eyring's reverberation times.

Install with the ``acoustics`` extra (``sonalyze[acoustics]``): numpy and scipy.
"""

from sonalyze.acoustics.analysis import RoomParameters, room_parameters, spatial_average
from sonalyze.acoustics.decay import DecayError, EnergyDecay, decay_curve, energy_decay
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
from sonalyze.acoustics.response import frequency_response
from sonalyze.acoustics.room_formulas import eyring, mean_absorption, sabine
from sonalyze.acoustics.signals import clipped, resample
from sonalyze.acoustics.sweep import Sweep, exponential_sweep, inverse_filter

__all__ = [
    "OCTAVES",
    "THIRD_OCTAVES",
    "DecayError",
    "EnergyDecay",
    "RoomParameters",
    "Sweep",
    "band_edges",
    "band_filter",
    "clipped",
    "decay_curve",
    "deconvolve",
    "energy_decay",
    "exponential_sweep",
    "eyring",
    "filter_bands",
    "frequency_response",
    "harmonic_delays",
    "harmonic_responses",
    "inverse_filter",
    "mean_absorption",
    "mid_band",
    "onset",
    "resample",
    "room_parameters",
    "sabine",
    "spatial_average",
]
