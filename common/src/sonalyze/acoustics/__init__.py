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
- :mod:`~sonalyze.acoustics.quality`: ISO 3382-2 Annex B's checks that a band's decay is
  straight, and the reverberation time to read.
- :mod:`~sonalyze.acoustics.repetitions`: a sweep played several times: the disturbed
  repetitions' responses dropped, the rest averaged.
- :mod:`~sonalyze.acoustics.response`: the frequency response, fractional-octave smoothed.
- :mod:`~sonalyze.acoustics.room_formulas`: Sabine's and Eyring's reverberation times.

Install with the ``acoustics`` extra (``sonalyze[acoustics]``): numpy and scipy.
"""

from sonalyze.acoustics.analysis import RoomParameters, room_parameters, spatial_average
from sonalyze.acoustics.chain import band_leakage
from sonalyze.acoustics.decay import DecayError, EnergyDecay, decay_curve, energy_decay
from sonalyze.acoustics.deconvolution import (
    deconvolve,
    deconvolve_all_lags,
    harmonic_delays,
    harmonic_responses,
)
from sonalyze.acoustics.drift import MAX_DRIFT_PPM, DriftEstimate, correct_drift, estimate_drift
from sonalyze.acoustics.filterbank import (
    OCTAVES,
    THIRD_OCTAVES,
    band_edges,
    band_filter,
    filter_bands,
    mid_band,
    zero_phase_spread,
)
from sonalyze.acoustics.onset import onset
from sonalyze.acoustics.quality import best_reverberation_time, decay_doubt
from sonalyze.acoustics.recording import (
    RecordingAnalysis,
    RecordingAnalysisError,
    analyse_recording,
)
from sonalyze.acoustics.repetitions import Combined, combine_repetitions
from sonalyze.acoustics.response import frequency_response
from sonalyze.acoustics.room_formulas import eyring, mean_absorption, sabine
from sonalyze.acoustics.signals import clipped, resample
from sonalyze.acoustics.sweep import Sweep, exponential_sweep, inverse_filter

__all__ = [
    "MAX_DRIFT_PPM",
    "OCTAVES",
    "THIRD_OCTAVES",
    "Combined",
    "DecayError",
    "DriftEstimate",
    "EnergyDecay",
    "RecordingAnalysis",
    "RecordingAnalysisError",
    "RoomParameters",
    "Sweep",
    "analyse_recording",
    "band_edges",
    "band_filter",
    "band_leakage",
    "best_reverberation_time",
    "clipped",
    "combine_repetitions",
    "correct_drift",
    "decay_curve",
    "decay_doubt",
    "deconvolve",
    "deconvolve_all_lags",
    "energy_decay",
    "estimate_drift",
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
    "zero_phase_spread",
]
