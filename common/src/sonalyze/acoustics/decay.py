"""Energy decay curves with the measurement noise handled.

A measured impulse response ends in noise. Integrating it backwards as it is (Schroeder [1]_)
adds the noise's energy to every point of the decay, which bends the decay curve up and makes
reverberation times too long; cutting it off early loses the tail's energy and bends the curve
down. ISO 3382-1 and ISO 18233 [5]_ [6]_ name the remedies used here together, as Guski and
Vorländer compared them [4]_:

- Lundeby's iteration [3]_ finds where the late decay meets the noise floor (the crossing
  point), the noise's energy, and the late decay's slope, from block averages of the squared
  response;
- Chu's subtraction [2]_ removes the noise's mean energy from every sample before integrating;
- the integration stops at the crossing point, and the energy the decay would still have had
  after it (the late decay's exponential continued to infinity) is added back.

A response that reaches no noise floor (a simulation, or a record that ends while the room still
rings) is recognised by its tail still falling at the late decay's rate: it is integrated whole,
nothing is subtracted, and the extrapolated rest of the decay is added at its end. So is a
response whose record ends far above its noise: a simulated response that simply stops, measured
through a sweep, sits on the deconvolution's numerical noise 100 dB or more below it, and
Lundeby's late-decay range (30 to 10 dB above that noise) would fall on the cliff between the
two. The record is cut at such a cliff: where its levels (over Lundeby's first averaging
interval) fall 25 dB, for good, within two intervals, and less than 1e-5 of its energy (50 dB)
remains after the fall. A decay meeting a noise floor never does: it falls at most 18 dB in two
intervals (a band's 0.2 s decay at 125 Hz, a fluctuation's peak included), the noise after it
holds more energy than that, and after a direct sound the reverberation does. A band filter's
own ringing after the record's end is over well within two intervals (ISO 3382-2's ``B T > 16``
keeps it several times faster than a room's decay; the intervals are longer in low bands).

References
----------
.. [1] M. R. Schroeder, "New method of measuring reverberation time", J. Acoust. Soc. Am.
   37(3), 409-412, 1965.
.. [2] W. T. Chu, "Comparison of reverberation measurements using Schroeder's impulse method
   and decay-curve averaging method", J. Acoust. Soc. Am. 63(5), 1444-1450, 1978.
.. [3] A. Lundeby, T. E. Vigran, H. Bietz, M. Vorländer, "Uncertainties of measurements in
   room acoustics", Acustica 81(4), 344-355, 1995.
.. [4] M. Guski, M. Vorländer, "Comparison of noise compensation methods for room acoustic
   impulse response evaluations", Acta Acust. united Ac. 100(2), 320-327, 2014.
.. [5] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", 5.3.3 and Annex A.
.. [6] ISO 18233:2006, "Acoustics - Application of new measurement methods in building and room
   acoustics", 6.3.

:func:`decay_curve` samples such a decay in dB, for a chart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sonalyze.acoustics.signals import Signal, as_signal

# Lundeby's first averaging interval: 10-50 ms broadband [3]; in a band, longer at low
# frequencies, where fewer periods fit in a block (the rule of pyrato's implementation).
BROADBAND_WINDOW = 0.03
# Blocks the response must span at the first averaging interval.
MIN_BLOCKS = 10
# The iteration's settings within Lundeby's ranges [3]: 5 blocks per 10 dB of decay; noise
# taken from 10 dB (of the decay line) after the crossing point, or the last tenth of the
# response if that starts earlier; the late decay fitted from 30 dB to 10 dB above the noise.
_DB_PER_BLOCK = 2.0
_NOISE_AFTER_CROSSING_DB = 10.0
_NOISE_SHARE = 0.1
_FIT_TOP_DB = 30.0
_FIT_BOTTOM_DB = 10.0
_MAX_ITERATIONS = 10
# A tail is still decaying, not noise, when its blocks fall at more than half the late decay's
# rate with a t statistic beyond this.
_TAIL_BLOCKS = 8
_DECAYING_T = 5.0
# A record ends at a cliff where its levels fall _CLIFF_FALL_DB for good within two first
# averaging intervals, leaving less than _CLIFF_REMAINDER of its energy (50 dB) after the fall.
_CLIFF_FALL_DB = 25.0
_CLIFF_REMAINDER = 1e-5
_TINY = np.finfo(np.float64).tiny


class DecayError(ValueError):
    """No usable decay: the message says why (too little range above the noise, no fall)."""


def lundeby_window(frequency: float | None) -> float:
    """Lundeby's first averaging interval in seconds: 30 ms broadband, ``800 / f + 10`` ms in a
    band with mid-band frequency ``f`` (Hz)."""
    if frequency is None:
        return BROADBAND_WINDOW
    return (800 / frequency + 10) / 1000


def minimum_length(window: float, fs: int) -> int:
    """The fewest samples after the onset that the decay analysis accepts: ``MIN_BLOCKS``
    averaging intervals of ``window`` seconds."""
    return MIN_BLOCKS * max(1, round(window * fs))


def schroeder(energy: ArrayLike) -> Signal:
    """Backward integral ``E[n] = sum(energy[n:])`` of a squared response [1]_."""
    values = np.asarray(energy, dtype=np.float64)
    return np.cumsum(values[::-1])[::-1]


@dataclass(frozen=True)
class LateDecay:
    """Lundeby's estimate of where a response's late decay meets its noise floor.

    Attributes
    ----------
    end : int
        The crossing point (samples from the start), or where the record of the response ends
        (its last sample that is not digital silence, or a cliff) when it reaches no noise floor.
    noise : float
        The noise's mean energy per sample; 0.0 when there is no noise floor.
    slope : float
        The late decay in dB per second (negative).
    intercept : float
        The late-decay line's level at the start, in dB of energy per sample.
    """

    end: int
    noise: float
    slope: float
    intercept: float

    def level(self, seconds: float) -> float:
        """The late-decay line's level (dB of energy per sample) at a time from the start."""
        return self.intercept + self.slope * seconds


def _db(value: float) -> float:
    return 10 * math.log10(max(value, _TINY))


def _block_levels(energy: Signal, block: int, fs: int) -> tuple[Signal, Signal]:
    """Mean energy of consecutive blocks in dB, and the blocks' centre times in seconds."""
    count = energy.size // block
    means = energy[: count * block].reshape(count, block).mean(axis=1)
    levels = 10 * np.log10(np.maximum(means, _TINY))
    return levels, (np.arange(count) + 0.5) * block / fs


def _first_below(levels: Signal, threshold: float, start: int) -> int | None:
    hits = np.flatnonzero(levels[start:] < threshold)
    return start + int(hits[0]) if hits.size else None


def _line(x: Signal, y: Signal) -> tuple[float, float, float]:
    """Least-squares line through (x, y): slope, intercept and the slope's standard error.

    Sums by ``einsum``, not dot products, which a multithreaded BLAS would spread over threads
    that wait on each other on a busy machine."""
    dx = x - x.mean()
    sxx = float(np.einsum("i,i->", dx, dx))
    slope = float(np.einsum("i,i->", dx, y - y.mean())) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    residual = y - (intercept + slope * x)
    error = math.sqrt(float(np.einsum("i,i->", residual, residual)) / max(x.size - 2, 1) / sxx)
    return slope, intercept, error


def late_decay(energy: ArrayLike, fs: int, window: float = BROADBAND_WINDOW) -> LateDecay:
    """Lundeby's iteration on a squared impulse response that starts at its onset [3]_.

    Parameters
    ----------
    energy : array_like
        The squared response, from its onset (ISO 3382-1) on.
    fs : int
        Sample rate in Hz.
    window : float
        The first averaging interval in seconds (see :func:`lundeby_window`).

    Returns
    -------
    LateDecay

    Raises
    ------
    DecayError
        When the response does not decay at least 10 dB above its noise, or the late decay
        cannot be fitted: the message says which.
    """
    values = np.asarray(energy, dtype=np.float64)
    nonzero = values != 0
    # Digital silence after the response is not noise: the record ends where the response does.
    if nonzero.any():
        values = values[: values.size - int(np.argmax(nonzero[::-1]))]
    block = max(1, round(window * fs))
    # Nor is the numerical noise after a record that ends at a cliff.
    values = values[: _record_end(values, block)]
    # (1)-(3) Average over the first interval; noise from the last tenth; a first decay line.
    levels, times, noise_db, slope, intercept = _first_estimate(values, block, fs)
    n = values.size
    tail_start = int((1 - _NOISE_SHARE) * n)
    # (4) Preliminary crossing point; (5)-(6) new averaging interval from the decay rate.
    crossing = (noise_db - intercept) / slope
    block = max(1, round(-_DB_PER_BLOCK / slope * fs))
    levels, times = _block_levels(values, block, fs)
    peak = int(np.argmax(levels))
    noise = 0.0
    for _ in range(_MAX_ITERATIONS):
        # (7) Noise from 10 dB of decay after the crossing point, at least the last tenth.
        start = int((crossing - _NOISE_AFTER_CROSSING_DB / slope) * fs)
        start = max(0, min(start, tail_start))
        noise = float(values[start:].mean())
        noise_db = _db(noise)
        # (8) Late decay: from 30 dB above the noise (or the peak) to 10 dB above it.
        top = _first_below(levels, noise_db + _FIT_TOP_DB, peak)
        bottom = None if top is None else _first_below(levels, noise_db + _FIT_BOTTOM_DB, top)
        if top is None or bottom is None or bottom - top < 2:
            raise DecayError(
                "too little decay above the noise to fit the late decay: the peak is "
                f"{levels[peak] - noise_db:.1f} dB above the noise"
            )
        slope, intercept, _ = _line(times[top:bottom], levels[top:bottom])
        if slope >= 0:
            raise DecayError("the late part of the response does not decay")
        # (9) New crossing point, until it moves by less than half an averaging interval.
        previous, crossing = crossing, (noise_db - intercept) / slope
        if abs(crossing - previous) < block / fs / 2:
            break
    if _still_decaying(values[start:], fs, slope):
        return LateDecay(end=n, noise=0.0, slope=slope, intercept=intercept)
    end = min(n, max(1, round(crossing * fs)))
    return LateDecay(end=end, noise=noise, slope=slope, intercept=intercept)


def _first_estimate(
    values: Signal, block: int, fs: int
) -> tuple[Signal, Signal, float, float, float]:
    """Lundeby's steps (1)-(3): block levels over the first interval and their times, the noise
    in dB from the last tenth, and a line (slope, intercept) from the peak down to 10 dB above
    the noise."""
    n = values.size
    if n < MIN_BLOCKS * block:
        raise DecayError(
            f"the response lasts {1000 * n / fs:.0f} ms after its onset; the decay analysis "
            f"needs {1000 * MIN_BLOCKS * block / fs:.0f} ms"
        )
    levels, times = _block_levels(values, block, fs)
    noise_db = _db(float(values[int((1 - _NOISE_SHARE) * n) :].mean()))
    peak = int(np.argmax(levels))
    stop = _first_below(levels, noise_db + _FIT_BOTTOM_DB, peak)
    if stop is None or stop - peak < 2:
        raise DecayError(
            f"no decay 10 dB above the noise: the peak is {levels[peak] - noise_db:.1f} dB above it"
        )
    slope, intercept, _ = _line(times[peak:stop], levels[peak:stop])
    if slope >= 0:
        raise DecayError("the response does not decay")
    return levels, times, noise_db, slope, intercept


def _record_end(values: Signal, block: int) -> int:
    """How many samples of the record hold the response: all of them, or those before a cliff.

    A cliff is a fall of the levels (``block``-sample means) by ``_CLIFF_FALL_DB``, for good,
    within two blocks, after which less than ``_CLIFF_REMAINDER`` of the record's energy is left.
    """
    count = values.size // block
    if count < 3:
        return values.size
    energies = values[: count * block].reshape(count, block).sum(axis=1)
    levels = 10 * np.log10(np.maximum(energies, _TINY))
    envelope = np.maximum.accumulate(levels[::-1])[::-1]  # the highest level still to come
    remaining = np.cumsum(energies[::-1])[::-1] + float(values[count * block :].sum())
    falls = (envelope[:-2] - envelope[2:] >= _CLIFF_FALL_DB) & (
        remaining[2:] <= _CLIFF_REMAINDER * remaining[0]
    )
    hits = np.flatnonzero(falls)
    return int(hits[0] + 2) * block if hits.size else values.size


def _still_decaying(tail: Signal, fs: int, slope: float) -> bool:
    """Whether the part taken for noise falls at more than half the late decay's rate, by
    more than its own scatter: then it is the decay's end, not a noise floor."""
    if tail.size < _TAIL_BLOCKS:
        return False
    levels, times = _block_levels(tail, tail.size // _TAIL_BLOCKS, fs)
    tail_slope, _, error = _line(times, levels)
    return tail_slope < slope / 2 and tail_slope < -_DECAYING_T * error


@dataclass(frozen=True)
class EnergyDecay:
    """The noise-compensated energy decay of one response from its onset.

    Attributes
    ----------
    edc : Signal
        Energy remaining from each sample to the end of the decay (sum of squared samples),
        up to the crossing point; the energy after it is included.
    fs : int
        Sample rate in Hz.
    tail : float
        The energy after the last sample of ``edc``: the late decay continued to infinity.
    time_constant : float
        The late decay's energy time constant in seconds (energy falls as ``exp(-t / tau)``).
    noise : float
        The noise's mean energy per sample (0.0 without a noise floor).
    inr : float
        Impulse-to-noise ratio in dB: the late-decay line at the onset above the noise
        (infinite without a noise floor) [3]_.
    """

    edc: Signal
    fs: int
    tail: float
    time_constant: float
    noise: float
    inr: float

    @property
    def decay_range(self) -> float:
        """How far the decay curve falls, in dB, before its data ends: at the crossing point,
        where the extrapolated rest takes over (or the record's end without a noise floor)."""
        total = float(self.edc[0])
        return 10 * math.log10(total / self.tail) if total > self.tail else 0.0

    def remaining(self, index: int) -> float:
        """Energy from sample ``index`` on; past the crossing point, the extrapolated decay."""
        if index < self.edc.size:
            return float(self.edc[index])
        return self.tail * math.exp(-(index - self.edc.size) / (self.time_constant * self.fs))

    def integral(self) -> float:
        """``sum(remaining(n) for n >= 0)``: the numerator of the centre time."""
        step = math.exp(-1 / (self.time_constant * self.fs))
        return float(self.edc.sum()) + self.tail / (1 - step)


def energy_decay(
    ir: ArrayLike, fs: int, window: float = BROADBAND_WINDOW, *, before_onset: float = 0.0
) -> EnergyDecay:
    """The noise-compensated Schroeder decay of a response that starts at its onset.

    Chu's subtraction, truncation at Lundeby's crossing point and the late decay's energy added
    back [2]_ [3]_ [4]_; see the module's notes.

    Parameters
    ----------
    ir : array_like
        One channel (a band, or broadband), from its onset (ISO 3382-1) on.
    fs : int
        Sample rate in Hz.
    window : float
        Lundeby's first averaging interval in seconds (see :func:`lundeby_window`).
    before_onset : float
        Energy (sum of squared samples) of the response just before its onset that belongs to
        it, counted as arriving at the onset: a zero-phase band's spread of the direct sound
        (see :mod:`sonalyze.acoustics.filterbank`).

    Raises
    ------
    DecayError
        When there is no usable decay (see :func:`late_decay`).
    ValueError
        For an empty, multichannel or non-finite response, or ``before_onset`` not a
        non-negative finite energy.
    """
    energy = as_signal(ir, "the impulse response") ** 2
    if not (math.isfinite(before_onset) and before_onset >= 0):
        raise ValueError(f"before_onset must be a non-negative energy, not {before_onset!r}")
    late = late_decay(energy, fs, window)
    time_constant = 10 / (math.log(10) * -late.slope)
    end_level = 10 ** (late.level(late.end / fs) / 10)
    tail = end_level * time_constant * fs
    edc = schroeder(energy[: late.end] - late.noise) + tail
    edc[0] += before_onset
    inr = late.intercept - _db(late.noise) if late.noise > 0 else math.inf
    return EnergyDecay(
        edc=edc,
        fs=fs,
        tail=tail,
        time_constant=time_constant,
        noise=late.noise,
        inr=inr,
    )


def decay_curve(decay: EnergyDecay, step: float) -> Signal:
    """The decay curve in dB, one point every ``step`` seconds from the onset: a chart of the
    noise-compensated Schroeder integral [1]_ [5]_.

    The level at time ``t`` is ``10 log10(E(t) / E(0))``, ``E`` being the energy remaining
    (:attr:`EnergyDecay.edc`, the late decay's energy included), at ``t = 0, step, 2 step, ...``
    while ``t`` lies before the crossing point, where the measured decay meets the noise (or,
    without a noise floor, before the record's end): beyond it the curve would be the late
    decay's extrapolation, not the measurement. ``E`` is an integral, smooth and falling, so the
    points are its values at the nearest samples; nothing is averaged. An exponential decay of
    reverberation time ``T`` gives the straight line ``-60 t / T`` dB.

    Parameters
    ----------
    decay : EnergyDecay
        A band's (or the broadband) decay, as :func:`energy_decay` gives it, or as
        :func:`~sonalyze.acoustics.room_parameters` keeps it (``RoomParameters.decays``).
    step : float
        Time between the points in s (positive, finite); it need not be a whole number of
        samples.

    Returns
    -------
    Signal
        Levels in dB re the energy at the onset (0.0 first), one per point; NaN where Chu's
        noise subtraction leaves no positive energy (near the crossing point of a noisy decay).

    Raises
    ------
    ValueError
        For a step that is not a positive finite number.

    Examples
    --------
    >>> t = np.arange(48_000) / 48_000
    >>> signs = np.random.default_rng(0).choice([-1.0, 1.0], t.size)
    >>> curve = decay_curve(energy_decay(signs * 10 ** (-3 * t / 0.5), 48_000), 0.1)
    >>> np.round(curve[:4], 1)  # T = 0.5 s: -12 dB every 0.1 s
    array([  0., -12., -24., -36.])
    """
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise ValueError(f"step must be a positive number of seconds, not {step!r}")
    edc = decay.edc
    indices = np.rint(np.arange(0.0, edc.size / decay.fs, step) * decay.fs).astype(np.intp)
    indices = indices[indices < edc.size]
    with np.errstate(divide="ignore", invalid="ignore"):
        levels: Signal = 10 * np.log10(edc[indices] / edc[0])
    levels[~np.isfinite(levels)] = np.nan
    return levels
