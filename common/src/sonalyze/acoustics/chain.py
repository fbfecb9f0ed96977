"""What the measurement chain (a phone's speaker and microphone) lets each band measure.

A band filter passes its own band and, through its skirts, some of its neighbours'. When the
chain reproduces a band far below its neighbours (a phone speaker gives next to nothing below
300 Hz, a phone microphone rolls off below 100-200 Hz), what the band's filter passes is mostly
the neighbours' energy, with their decay and their delay: the band's parameters are then the
neighbours', shifted by the filter's skirt (ISO 3382-1 asks for a source whose level in each
band is enough; it does not say how to notice when it is not). :func:`band_leakage` measures,
from the impulse response's own spectrum, the share of each band filter's output energy that
comes from outside the band's edges.

For a flat spectrum the share is 12-14 % (the skirts of a sixth-order Butterworth band-pass);
it passes one half when the band's own level is about 20 dB below its upper neighbour's.

The share is that of the filter's single pass (``|H|**2``), not of the forward-backward
filtering the energy parameters use (``|H|**4``, :func:`~sonalyze.acoustics.band_filter` with
``zero_phase``): its wider skirts see a roll-off sooner, and keep rising as the band's own
level falls, where the steeper skirts' share turns back down (the band's own energy, however
little, then outweighs what they pass). The limits that
:func:`~sonalyze.acoustics.analyse_recording` applies to it were set on it: with the speaker
and the microphone high-passed anywhere from 150 and 80 Hz to 600 and 100 Hz or 500 and
250 Hz, every value reported without doubt was within 1 JND of the room's.

References
----------
.. [1] IEC 61260-1:2014, "Electroacoustics - Octave-band and fractional-octave-band filters -
   Part 1: Specifications".
.. [2] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", 4.2.1 (the sound source) and 5.3.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft, signal

from sonalyze.acoustics.filterbank import band_edges, band_filter
from sonalyze.acoustics.signals import Signal, as_signal, sample_rate


def band_leakage(ir: ArrayLike, fs: int, bands: Sequence[float], fraction: int = 1) -> Signal:
    """Per band, the share of its filter's output energy that lies outside the band's edges.

    Parameters
    ----------
    ir : array_like
        An impulse response (one channel).
    fs : int
        Sample rate in Hz.
    bands : sequence of float
        Nominal mid-band frequencies.
    fraction : int
        1 for octave bands, 3 for third-octave bands.

    Returns
    -------
    Signal
        One share in [0, 1] per band (NaN for a band the response has no energy in).

    Raises
    ------
    ValueError
        For an empty or non-finite response, a bad sample rate or an unknown band.

    Examples
    --------
    >>> impulse = np.zeros(4800)
    >>> impulse[0] = 1.0
    >>> round(float(band_leakage(impulse, 48_000, [1000])[0]), 2)  # a flat spectrum: the skirts
    0.14
    """
    response = as_signal(ir, "the impulse response")
    fs = sample_rate(fs)
    n = fft.next_fast_len(max(response.size, fs), real=True)  # bins of at most 1 Hz
    power = np.abs(fft.rfft(response, n)) ** 2
    freqs = fft.rfftfreq(n, 1 / fs)
    shares = []
    for nominal in bands:
        _, gain = signal.sosfreqz(band_filter(nominal, fraction, fs), worN=freqs, fs=fs)
        passed = np.abs(gain) ** 2 * power
        low, high = band_edges(nominal, fraction)
        outside = float(passed[(freqs < low) | (freqs > high)].sum())
        total = float(passed.sum())
        shares.append(outside / total if total > 0 else np.nan)
    return np.array(shares)
