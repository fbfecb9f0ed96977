"""A sweep played several times back to back: one impulse response per repetition, the
disturbed ones found and dropped, the rest averaged.

Deconvolving a recording of ``R`` back-to-back sweeps with one sweep gives the room's response
``R`` times, one sweep length apart. A transient during a sweep (a door, a voice) deconvolves to
a time-reversed chirp: its frequency ``f`` at recording time ``t0`` lands at the lag
``t0 - tau(f)``, ``tau(f)`` being when the sweep plays ``f`` [1]_; so it corrupts the responses
whose lags it reaches, in the bands the sweep played shortly before it, and only those. The
repetitions are compared per octave band and per time window: the element-wise median of the
repetitions stands for the undisturbed response (with three or more, a disturbance in one of them
moves it little), and a repetition that differs from it by far more than the background noise
does, *and* carries more energy than the others where it differs, is dropped. The energy
condition is what tells a disturbance (it adds energy) from a room that changed slightly between
the repetitions (air temperature, moving air: the late response shifts in phase at high
frequencies, but keeps its energy) [3]_ [4]_.

Averaging ``N`` aligned repetitions keeps the response and averages the noise: noise that is
uncorrelated between the repetitions loses ``10 log10(N)`` dB of energy relative to the response
(4.8 dB for three) [2]_. It cannot remove what every repetition shares: noise that is
synchronous with the sweep (the player's harmonic distortion, a hum locked to it), and it loses
what the repetitions do not share: a room that changes between them (temperature, moving air,
people) or a clock that drifts between the player and the recorder averages the late, high-
frequency part of the response partly away instead of the noise, and a response misaligned by a
fraction of a period at high frequencies is low-passed by the averaging. A disturbance that is
stationary over the whole measurement (steady speech, traffic) is in every repetition alike: it
is noise to this comparison, lowered by the averaging like any other, and left to the decay
analysis's noise compensation.

References
----------
.. [1] A. Farina, "Simultaneous measurement of impulse response and distortion with a
   swept-sine technique", 108th AES Convention, Paris, 2000, preprint 5093.
.. [2] S. Müller, P. Massarani, "Transfer-function measurement with sweeps", J. Audio Eng.
   Soc. 49(6), 443-471, 2001.
.. [3] U. P. Svensson, J. L. Nielsen, "Errors in MLS measurements caused by time variance in
   acoustic systems", J. Audio Eng. Soc. 47(11), 907-927, 1999.
.. [4] ISO 18233:2006, "Acoustics - Application of new measurement methods in building and room
   acoustics" (time variance and averaging).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sonalyze.acoustics.decay import DecayError, late_decay, lundeby_window
from sonalyze.acoustics.filterbank import OCTAVES, band_edges, filter_bands, mid_band
from sonalyze.acoustics.onset import onset
from sonalyze.acoustics.signals import Signal, as_signal, sample_rate

# The comparison's time windows (s), and the fewest a response must span.
WINDOW = 0.1
MIN_WINDOWS = 5
# A window of a band is disturbed in a repetition when its difference from the median of the
# repetitions carries this much more energy than the background noise leaves there (dB), and
# the repetition this much more energy than the others (dB).
NOISE_MARGIN_DB = 10.0
ENERGY_MARGIN_DB = 3.0
# The background noise's share of a band's differences: this quantile over the windows of their
# median over the repetitions, so that disturbances may fill most windows of a band.
NOISE_QUANTILE = 0.1
# Repetitions changed between them where their differences, beyond the noise, carry at least
# this share of the response's energy (dB): the average loses about as much there.
CHANGE_DB = -10.0
# The default bands: octaves 125 Hz to 8 kHz (those below half the sample rate).
BANDS = OCTAVES[2:9]

Mask = NDArray[np.bool_]


@dataclass(frozen=True)
class Combined:
    """Repetitions of one measurement, the disturbed ones dropped and the rest averaged.

    Attributes
    ----------
    response : Signal
        The synchronous average of the kept repetitions.
    kept : tuple of int
        Indices (from 0, in the order given) of the repetitions averaged.
    dropped : dict
        Index of each dropped repetition to why, in words: where (bands, times) it differed
        from the others and by how much more energy. The words count repetitions from 1.
    snr_gain : float
        What the averaging bought, measured: per band, the mean noise energy of the kept
        repetitions over the average's, in dB, summed over the bands (:func:`snr_gain`). About
        ``expected_gain`` for noise the repetitions do not share, less for noise they share.
        0.0 for one repetition; NaN when no band has a noise floor to measure (the response
        still rings at its end, or is noise-free).
    warnings : tuple of str
        What the caller should report: more than half of the repetitions disturbed (the result
        rests on few, or on a disturbed one: measure again), or kept repetitions that differ
        without a disturbance (the room or the clocks changed between them).
    """

    response: Signal
    kept: tuple[int, ...]
    dropped: dict[int, str] = field(default_factory=dict)
    snr_gain: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def expected_gain(self) -> float:
        """``10 log10(len(kept))`` dB: what averaging buys against uncorrelated noise."""
        return 10 * math.log10(len(self.kept))


@dataclass(frozen=True)
class Comparison:
    """How repetitions differ, per repetition, band and time window.

    Attributes
    ----------
    bands : tuple of float
        Nominal octave mid-band frequencies.
    window : float
        The windows' length in s.
    energy : Signal
        Each repetition's mean energy per sample, shape (repetitions, bands, windows).
    others : Signal
        The median of the other repetitions' ``energy`` (same shape).
    spread : Signal
        The mean energy per sample of each repetition's difference from the element-wise
        median of the repetitions (same shape).
    noise : Signal
        Per band, the background noise's ``spread``: its ``NOISE_QUANTILE`` quantile over the
        windows of the median over the repetitions.
    """

    bands: tuple[float, ...]
    window: float
    energy: Signal
    others: Signal
    spread: Signal
    noise: Signal

    def _beyond_noise(self, spread: Signal) -> Mask:
        beyond: Mask = spread > 10 ** (NOISE_MARGIN_DB / 10) * self.noise[:, None]
        return beyond

    def disturbed(self) -> Mask:
        """Per repetition, band and window: the difference from the median ``NOISE_MARGIN_DB``
        beyond the noise's, and the repetition's energy ``ENERGY_MARGIN_DB`` beyond the others'.
        """
        louder: Mask = self.energy > 10 ** (ENERGY_MARGIN_DB / 10) * self.others
        return self._beyond_noise(self.spread) & louder

    def changed(self, kept: Sequence[int]) -> Mask:
        """Per band and window: the ``kept`` repetitions' differences (their median) beyond the
        noise and within ``CHANGE_DB`` of their energy, where averaging them loses energy."""
        spread = np.median(self.spread[list(kept)], axis=0)
        energy = np.median(self.energy[list(kept)], axis=0)
        sizeable: Mask = spread > 10 ** (CHANGE_DB / 10) * energy
        return self._beyond_noise(spread) & sizeable

    def where(self, cells: Mask) -> str:
        """The bands and the time span of the ``cells`` (bands, windows) that are set."""
        in_bands, in_windows = np.nonzero(cells)
        names = [f"{self.bands[b]:g}" for b in sorted(set(in_bands.tolist()))]
        bands = (
            f"the {names[0]} Hz band"
            if len(names) == 1
            else f"the {', '.join(names[:-1])} and {names[-1]} Hz bands"
        )
        start, end = in_windows.min() * self.window, (in_windows.max() + 1) * self.window
        return f"in {bands} between {start:.2f} and {end:.2f} s"


def _window_energy(x: Signal, windows: int) -> Signal:
    """Mean square of ``x`` in ``windows`` near-equal consecutive parts of its last axis."""
    parts = np.array_split(x**2, windows, axis=-1)
    return np.stack([part.mean(axis=-1) for part in parts], axis=-1)


def compare_repetitions(
    rows: Signal, fs: int, bands: Sequence[float], window: float = WINDOW
) -> Comparison:
    """Compare aligned repetitions of a response per octave band and time window.

    Parameters
    ----------
    rows : Signal
        The repetitions' responses, one per row, aligned and equally long; at least two.
    fs : int
        Sample rate in Hz.
    bands : sequence of float
        Nominal octave mid-band frequencies.
    window : float
        Approximate window length in s: the responses are split into as many near-equal
        windows as fit.

    Returns
    -------
    Comparison
        With two repetitions the median is their mean: both differ from it alike.
    """
    filtered = np.stack([filter_bands(row, fs, bands) for row in rows])
    windows = max(1, filtered.shape[-1] // max(1, round(window * fs)))
    spread = _window_energy(filtered - np.median(filtered, axis=0), windows)
    energy = _window_energy(filtered, windows)
    others = np.stack([np.median(np.delete(energy, i, axis=0), axis=0) for i in range(len(rows))])
    return Comparison(
        bands=tuple(bands),
        window=filtered.shape[-1] / windows / fs,
        energy=energy,
        others=others,
        spread=spread,
        noise=np.quantile(np.median(spread, axis=0), NOISE_QUANTILE, axis=-1),
    )


def _check(responses: Sequence[ArrayLike]) -> Signal:
    if len(responses) == 0:
        raise ValueError("no responses: give one impulse response per repetition")
    rows = [as_signal(r, f"repetition {i + 1}'s response") for i, r in enumerate(responses)]
    lengths = sorted({row.size for row in rows})
    if len(lengths) > 1:
        raise ValueError(
            f"the responses must be equally long, cut at the same lags; got lengths {lengths}"
        )
    return np.array(rows)


def _noise(band: Signal, fs: int, window: float) -> float:
    """The noise energy per sample after a band's decay (Lundeby), NaN without a noise floor."""
    try:
        noise = late_decay(band**2, fs, window).noise
    except DecayError:
        return math.nan
    return noise if noise > 0 else math.nan


def snr_gain(kept: Signal, fs: int, bands: Sequence[float]) -> float:
    """What averaging the repetitions ``kept`` (rows) bought, measured: their mean noise energy
    over their average's, in dB, summed over the ``bands`` in which all have a noise floor.

    Each noise is Lundeby's estimate in a band from the average's broadband onset on: the mean
    energy from 10 dB of decay after the crossing point on (see
    :func:`~sonalyze.acoustics.decay.late_decay`). In bands, since broadband the noise of a
    deconvolved sweep is mostly a narrow band at the sweep's faded top, whose estimate scatters
    by tenths of a dB; summed over the bands, it is mostly the widest bands' noise. NaN when no
    band has a noise floor.
    """
    average = kept.mean(axis=0)
    start = onset(average)
    filtered = [filter_bands(row, fs, bands)[:, start:] for row in (average, *kept)]
    noises = np.array(
        [
            [_noise(rows[b], fs, lundeby_window(mid_band(nominal, 1))) for rows in filtered]
            for b, nominal in enumerate(bands)
        ]
    )
    floors = noises[np.all(np.isfinite(noises), axis=1)]
    if not floors.size:
        return math.nan
    return 10 * math.log10(float(floors[:, 1:].mean(axis=1).sum() / floors[:, 0].sum()))


def _least_disturbed(comparison: Comparison, disturbed: Mask) -> int:
    """The repetition with the least extra energy relative to the others', summed over its
    ``disturbed`` windows."""
    with np.errstate(divide="ignore", invalid="ignore"):  # silent windows: never disturbed
        ratio = comparison.energy / comparison.others
    return int(np.argmin(np.where(disturbed, ratio - 1, 0).sum(axis=(1, 2))))


def _reason(comparison: Comparison, disturbed: Mask, index: int, first: int) -> str:
    """Where repetition ``index`` was disturbed, and by how much more energy than the others;
    the repetitions numbered from ``first`` on."""
    cells = disturbed[index]
    excess = comparison.energy[index][cells].sum() / comparison.others[index][cells].sum()
    after = comparison.window * cells.shape[1]
    number, played = first + index, first - 1 + len(disturbed)
    return (
        f"repetition {number} of {played}: {10 * math.log10(excess):.0f} dB more "
        f"energy than the others {comparison.where(cells)}: a disturbance (a door, a voice, a "
        f"knock) during its sweep or in the {after:.1f} s after it"
    )


def combine_repetitions(
    responses: Sequence[ArrayLike],
    fs: int,
    bands: Sequence[float] | None = None,
    *,
    first: int = 1,
) -> Combined:
    """Average the impulse responses of repeated sweeps, without the disturbed repetitions.

    Parameters
    ----------
    responses : sequence of array_like
        One impulse response per repetition, in the order played: all cut from the same
        deconvolution at the same lags relative to their repetition (the room's response at the
        same sample in each) and equally long; at least ``MIN_WINDOWS`` windows of ``WINDOW``
        seconds when there are two or more.
    fs : int
        Sample rate in Hz.
    bands : sequence of float, optional
        Nominal octave mid-band frequencies to compare in; by default 125 Hz to 8 kHz, those
        whose upper edge lies below ``fs / 2``.
    first : int, optional
        The number the words (``dropped``, ``warnings``) give the first response, counting
        the repetitions played from 1: 2 when the first one played is not among them (the
        words then say "of" one more than were given).

    Returns
    -------
    Combined
        The average of the kept repetitions, which were kept and which dropped and why, the
        signal-to-noise ratio the averaging bought (measured), and warnings.

    Notes
    -----
    The repetitions are compared per band and window of ``WINDOW`` s
    (:func:`compare_repetitions`). A window of a band is disturbed in a repetition when (a) its
    difference from the element-wise median of the repetitions carries ``NOISE_MARGIN_DB``
    (10 dB) more energy than the background noise leaves in that band, and (b) the repetition
    carries ``ENERGY_MARGIN_DB`` (3 dB) more energy there than the median of the others. (a)
    keeps the noise's own fluctuation from counting: without a disturbance, the differences of
    simulated responses 75 dB above their noise stay within 7 dB of its estimate. (b) keeps a
    room that changed slightly between the repetitions from counting: its responses differ in
    phase, not in energy, and 0.05 K of air temperature between 10 s sweeps makes (a) true in a
    third of the windows of every band, which would drop every repetition. (b) also bounds what
    an undetected disturbance can add: less than the response's own energy in one repetition, a
    ninth of it (0.5 dB) in the average of three. A repetition with a disturbed window is
    dropped.

    - Three or more: the median is the undisturbed response where fewer than half of the
      repetitions are disturbed in the same band and window.
    - Two: the median is their mean, from which both differ alike; where they differ beyond
      the noise, the one with 3 dB more energy is dropped (a disturbance adds energy). A
      disturbance that fills every window of each band it reaches raises the noise estimate
      with it and goes unseen, as it would with one repetition.
    - One: nothing to compare; it is returned as it is.

    Never all are dropped: if every repetition is disturbed, the one with the least extra
    energy relative to the others', summed over its disturbed windows, is kept. Whenever more
    than half are disturbed, a warning says so, since the median is in doubt and the result
    rests on few repetitions or a disturbed one. Where the kept repetitions differ beyond the
    noise by more than a tenth of their energy (``CHANGE_DB``) without a disturbance, a warning
    says the room or the clocks changed between them: the average loses part of the response
    there, shortening the decay of the bands concerned [3]_.

    Raises
    ------
    ValueError
        For no responses, responses of unequal lengths, an empty, multichannel or non-finite
        response, a bad sample rate or ``first``, no band below ``fs / 2``, or responses too
        short to compare.
    """
    rows = _check(responses)
    fs = sample_rate(fs)
    if isinstance(first, bool) or not isinstance(first, int) or first < 1:
        raise ValueError(f"first must be a positive integer, not {first!r}")
    count = len(rows)
    if count == 1:
        return Combined(response=rows[0], kept=(0,))
    if bands is None:
        bands = tuple(b for b in BANDS if band_edges(b, 1)[1] < fs / 2)
        if not bands:
            raise ValueError(f"no octave band from 125 Hz fits below half the sample rate {fs}")
    if rows.shape[1] < MIN_WINDOWS * WINDOW * fs:
        raise ValueError(
            f"the responses last {1000 * rows.shape[1] / fs:.0f} ms; comparing them needs at "
            f"least {1000 * MIN_WINDOWS * WINDOW:.0f} ms"
        )
    comparison = compare_repetitions(rows, fs, bands)
    disturbed = comparison.disturbed()
    flagged = [i for i in range(count) if disturbed[i].any()]
    kept = [i for i in range(count) if i not in flagged] or [
        _least_disturbed(comparison, disturbed)
    ]
    dropped: dict[int, str] = {}
    warnings: list[str] = []
    if 2 * len(flagged) > count:
        warnings.append(
            f"{len(flagged)} of the {count} repetitions were disturbed: the comparison that "
            "finds the odd one out is itself in doubt; measure again"
        )
    for i in flagged:
        if i in kept:
            warnings.append(
                f"{_reason(comparison, disturbed, i, first)}; kept, the least disturbed"
            )
        else:
            dropped[i] = _reason(comparison, disturbed, i, first)
    if len(kept) > 1 and (changed := comparison.changed(kept)).any():
        warnings.append(
            f"the repetitions differ beyond the noise {comparison.where(changed)}, none with "
            "more energy than the others: the room changed between them (air temperature, "
            "moving air) or the player's and the recorder's clocks drift apart; the average "
            "loses part of the response there, so those bands' decay times and clarity are "
            "uncertain"
        )
    average = rows[kept].mean(axis=0)
    gain = snr_gain(rows[kept], fs, bands) if len(kept) > 1 else 0.0
    return Combined(
        response=average,
        kept=tuple(kept),
        dropped=dropped,
        snr_gain=gain,
        warnings=tuple(warnings),
    )
