"""One microphone's recording of a sweep to its room parameters, with what phones get wrong
found and said: :func:`analyse_recording`, the whole analysis the measurement service runs.

The steps, in order:

1. **Clock drift.** The speaker's and the microphone's clocks differ; their rate ratio is
   estimated from the recording (:mod:`sonalyze.acoustics.drift`: exact from two or more
   sweeps; from one, mostly within a ppm, but 100 ppm off or more where a reflection nearly as
   strong as the direct sound follows it within a millisecond, which its standard error then
   shows) and the recording resampled to the speaker's time base where the estimate is a
   clock's drift (within :data:`~sonalyze.acoustics.drift.MAX_DRIFT_PPM`) and sure enough (a
   standard error of at most :data:`MAX_DRIFT_UNCERTAINTY_PPM`). A ratio beyond
   ``MAX_DRIFT_PPM`` that makes the response much sharper (:data:`MISLABELLED_GAIN_DB`) is a
   mislabelled sample rate: the recording is refused (``sample_rate_mismatch``). One sweep
   spanning too few octaves to show its drift is analysed as recorded, neither corrected nor
   checked for a mislabelled rate.
2. **Deconvolution at every lag** (:func:`~sonalyze.acoustics.deconvolve_all_lags`), so that a
   recording that began after the sweep did still holds its direct sound (at a negative lag).
   The direct sound is the strongest lag; with ``repeats`` sweeps played back to back the
   response recurs every sweep length, and the alignment holding the most energy over all of
   them is taken.
3. **Late start.** If the recording began after the sweep, the sweep's start (its lowest
   frequencies) was never recorded: a band the recorded part of the sweep did not wholly
   cover is refused (NaN, with the reason), the others are exact. With repeated sweeps the
   incomplete first one is left out instead. A start that missed only frequencies below every
   band costs nothing.
4. **Repetitions** (:mod:`sonalyze.acoustics.repetitions`): one response per sweep, each its
   own until the next sweep's harmonic products begin; compared from the direct sound on, one
   that a noise burst disturbed is dropped, the rest averaged synchronously. Where sweeps too
   short for the room's decay leave some band without T30, and the last sweep was kept, its
   response goes on to the recording's end (no sweep follows it), with one repetition's noise
   there.
5. **Parameters** per band (:func:`~sonalyze.acoustics.room_parameters`), with ISO 3382-2's
   checks of each decay's straightness.
6. **The measurement chain's band limits** (:mod:`sonalyze.acoustics.chain`), judged on the
   response's first 0.3 s, where the noise is least. A band whose filter passes more energy
   from outside the band than from inside it (a phone speaker that gives next to nothing below
   300 Hz) measures its neighbours, not itself: it is refused; one that takes more than a
   quarter from outside (a flat spectrum: 12-14 %) is marked doubtful.
7. **Harmonic distortion** against the noise in the lags just before each product, so that
   neither noise nor a disturbance is taken for distortion.

References
----------
.. [1] A. Farina, "Simultaneous measurement of impulse response and distortion with a
   swept-sine technique", 108th AES Convention, Paris, 2000, preprint 5093.
.. [2] ISO 18233:2006, "Acoustics - Application of new measurement methods in building and
   room acoustics", 6.3 (synchronous averaging, time variance) and Annex C (distortion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

from sonalyze.acoustics.analysis import RoomParameters, room_parameters
from sonalyze.acoustics.chain import band_leakage
from sonalyze.acoustics.deconvolution import deconvolve_all_lags, harmonic_delays
from sonalyze.acoustics.drift import correct_drift, estimate_drift, shows_its_drift
from sonalyze.acoustics.filterbank import OCTAVES, band_edges
from sonalyze.acoustics.repetitions import MIN_WINDOWS, WINDOW, combine_repetitions
from sonalyze.acoustics.response import frequency_response
from sonalyze.acoustics.signals import Signal, as_signal, resample, sample_rate
from sonalyze.acoustics.sweep import Sweep

BANDS = OCTAVES[2:9]  # 125 Hz to 8 kHz
HARMONICS = 5  # orders 2 .. HARMONICS are measured
# Distortion the analysis flags: harmonics within 26 dB of the linear response (5 % THD).
NON_LINEAR_DB = -26.0
# Harmonics count as measured only where their windows hold this much more than their noise.
HARMONICS_ABOVE_NOISE = 0.25
# The windows compared: from EARLY_BEFORE before each product's direct sound to EARLY after.
EARLY_BEFORE, EARLY = 0.002, 0.05
# The noise in a window is estimated from this many as long just before it.
NOISE_WINDOWS = 3
# The chain's band limits are judged on the response's first CHAIN_S.
CHAIN_S = 0.3
# A rate estimate no clock drifts by is a mislabelled sample rate if the recording read at it
# gives a response whose peak stands this much further above its mean energy.
MISLABELLED_GAIN_DB = 10.0
# The drift is corrected when its estimate's standard error is at most this.
MAX_DRIFT_UNCERTAINTY_PPM = 2.0
# More of a band's energy from outside it than MAX_LEAKAGE: the band is refused; more than
# DOUBTFUL_LEAKAGE (a flat spectrum gives 0.12-0.14): its values are doubtful.
MAX_LEAKAGE = 0.5
DOUBTFUL_LEAKAGE = 0.25
_FLAGS = (
    "psnr_low_for_t30",
    "decay_not_straight",
    "band_limited",
    "late_start",
    "disturbed",
    "non_linear",
)


class RecordingAnalysisError(ValueError):
    """A recording that gives no usable response; ``reason`` names why:
    ``sample_rate_mismatch``, ``late_start`` or ``too_short``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[RecordingAnalysisError], tuple[str, str]]:
        return RecordingAnalysisError, (self.reason, str(self))


@dataclass(frozen=True)
class Harmonics:
    """The sweep's harmonic products 2 .. :data:`HARMONICS` re the linear response [1]_.

    Attributes
    ----------
    level_db : float
        Their energy, the noise in their lags taken off, re the linear response's; NaN when
        they do not stand out of the noise.
    floor_db : float
        The lowest level that would have stood out: the noise in their lags (re the linear
        response), plus the margin :data:`HARMONICS_ABOVE_NOISE`. -inf without noise.
    """

    level_db: float
    floor_db: float

    @property
    def non_linear(self) -> bool:
        """Whether the speaker distorts beyond :data:`NON_LINEAR_DB`."""
        return self.level_db > NON_LINEAR_DB


@dataclass(frozen=True)
class RecordingAnalysis:
    """:func:`analyse_recording`'s result.

    Attributes
    ----------
    parameters : RoomParameters
        Per band, with refused bands NaN and their reasons, suspect values marked.
    response : Signal
        The impulse response analysed (the repetitions' average, and the last one's tail
        where it was taken), from half the gap to the 2nd harmonic before its peak, at ``fs``.
    fs : int
        The sweep's sample rate.
    start_s : float
        When the (first) sweep started in the recording, in s, as the direct sound's arrival
        tells (latency and sound's travel included); negative if the recording began late.
    clock_drift_ppm : float
        The microphone's clock re the speaker's (positive: it runs fast), corrected before the
        deconvolution; NaN where nothing was corrected: the estimate too uncertain (its
        standard error above :data:`MAX_DRIFT_UNCERTAINTY_PPM`: one sweep, and a strong
        reflection within a millisecond of the direct sound), beyond any clock's drift yet not
        a mislabelled rate, or one sweep too narrow to show it.
    harmonics : Harmonics
    leakage : Signal
        Per band, the share of its filter's output that came from outside the band.
    kept, dropped
        The repetitions averaged, and those left out with the reason (disturbed, or the first
        one incomplete after a late start); counted from 0.
    warnings : tuple of str
        What the repetitions' comparison found beyond them: most disturbed, or the room (or
        the clocks) changing between them.
    flags : tuple of str
        Warnings, each once, in this order, the first two judged on the bands not refused:
        ``psnr_low_for_t30`` (some band has no T30), ``decay_not_straight`` (some band's
        decay is doubtful), ``band_limited`` (some band refused or doubtful for its leakage),
        ``late_start`` (bands refused, or the first repetition left out, for a late start),
        ``disturbed`` (a repetition dropped), ``non_linear`` (:attr:`Harmonics.non_linear`).
    """

    parameters: RoomParameters
    response: Signal
    fs: int
    start_s: float
    clock_drift_ppm: float
    harmonics: Harmonics
    leakage: Signal
    kept: tuple[int, ...]
    dropped: dict[int, str]
    warnings: tuple[str, ...]
    flags: tuple[str, ...]

    def frequency_response(self, f_min: float = 50.0) -> tuple[Signal, Signal]:
        """The response's level, third-octave smoothed (see
        :func:`~sonalyze.acoustics.frequency_response`)."""
        return frequency_response(self.response, self.fs, fraction=3, f_min=f_min)


def analyse_recording(
    recording: ArrayLike,
    fs: int,
    sweep: Sweep,
    *,
    repeats: int = 1,
    bands: Sequence[float] = BANDS,
) -> RecordingAnalysis:
    """The room parameters of one microphone's recording of ``repeats`` sweeps played back to
    back, with clock drift, late starts, disturbed repetitions, band limits and distortion
    found and handled (see the module's notes).

    Parameters
    ----------
    recording : array_like
        One channel at ``fs``, from any time before the first sweep (or after it started) to
        the room's decay after the last.
    fs : int
        The recording's sample rate; resampled to the sweep's first if it differs.
    sweep : Sweep
        One sweep as played.
    repeats : int
        How many times the sweep was played, back to back.
    bands : sequence of float
        Nominal octave mid-band frequencies.

    Returns
    -------
    RecordingAnalysis

    Raises
    ------
    RecordingAnalysisError
        For a sample-rate mismatch, a recording that began so late that no band is left, one
        that ended before the sweep did (or, with repeated sweeps, less than half a second
        after it), or sweeps too short to be repeated (``too_short``).
    ValueError
        For an empty, non-finite, silent or clipped recording, one shorter than the sweeps, a
        bad sample rate or repeat count.
    """
    rec = as_signal(recording, "recording")
    if sample_rate(fs) != sweep.fs:
        rec = resample(rec, fs, sweep.fs)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, not {repeats!r}")
    rate = sweep.fs
    period = sweep.signal.size
    if rec.size < repeats * period:
        raise ValueError(
            f"the recording ({rec.size / rate:.2f} s) is shorter than {repeats} sweep(s) "
            f"({repeats * period / rate:.2f} s)"
        )
    # One sweep too narrow to show its drift is analysed as recorded.
    measurable = repeats > 1 or shows_its_drift(sweep)
    drift = estimate_drift(rec, sweep, rate, repeats=repeats) if measurable else None
    full = deconvolve_all_lags(rec, sweep, rate)
    if drift is not None and not drift.plausible:
        # A rate no clock drifts by. Mislabelled, if the recording read at that rate gives a
        # response far sharper than read as declared; else the estimate is what failed (one
        # short sweep through a room whose reverberation begins with its direct sound).
        try:
            read_so = _sharpness(deconvolve_all_lags(correct_drift(rec, drift.ppm), sweep, rate))
        except ValueError:  # read at that rate, it no longer holds the whole sweep
            read_so = 0.0
        if read_so / _sharpness(full) > 10 ** (MISLABELLED_GAIN_DB / 10):
            raise RecordingAnalysisError(
                "sample_rate_mismatch",
                f"the recording fits the sweep at a rate {drift.ppm / 1e4:+.1f} % off the "
                f"{fs} Hz declared, where clocks drift by tens of ppm: its sample rate is "
                "mislabelled",
            )
    # Corrected when the estimate is sure enough to help: an error of 1 ppm alone smears the
    # broadband response by about -8 dB (its high bands' phase); one sweep with a strong
    # reflection within a millisecond of the direct sound can be 100 ppm off, and says so.
    ppm = math.nan
    if drift is not None and drift.plausible and drift.uncertainty_ppm <= MAX_DRIFT_UNCERTAINTY_PPM:
        ppm = drift.ppm
        if ppm:
            rec = correct_drift(rec, ppm)
            full = deconvolve_all_lags(rec, sweep, rate)
    start = _alignment(full, period, repeats)
    pre = round(sweep.rate * math.log(2) / 2 * rate)
    last = start + (repeats - 1) * period  # the last sweep's direct sound
    tail = rec.size - period - last  # how long the recording holds the last response
    # Each response is its own until the next sweep's harmonic products begin; the last one's
    # until the recording ends.
    own = period - round(harmonic_delays(sweep, HARMONICS + 1)[-1] * rate) - pre
    after = min(tail, own) if repeats > 1 else tail
    needed = math.ceil(MIN_WINDOWS * WINDOW * rate) if repeats > 1 else 1
    if repeats > 1 and own < needed:
        raise RecordingAnalysisError(
            "too_short",
            f"sweeps of {period / rate:.2f} s played back to back leave no time between one "
            "sweep's response and the next one's harmonics: play longer sweeps",
        )
    if after < needed:
        raise RecordingAnalysisError(
            "too_short",
            "the recording ended before the sweep did, or right after it: record the room's "
            "decay too",
        )
    missed = _missed_below(sweep, start)
    late_bands = [i for i, nominal in enumerate(bands) if missed > band_edges(nominal, 1)[0]]
    dropped: dict[int, str] = {}
    late_first = bool(late_bands) and repeats > 1
    if late_first:
        # The first sweep is incomplete, the others are whole: it is left out.
        dropped[0] = (
            f"repetition 1 of {repeats}: the recording began {-start / rate:.2f} s into it (as "
            f"it reached the microphone), when it had passed {missed:.0f} Hz"
        )
        late_bands = []
    elif len(late_bands) == len(bands):
        raise RecordingAnalysisError(
            "late_start",
            f"the recording began {-start / rate:.2f} s into the sweep (as it reached the "
            f"microphone), when it had passed {missed:.0f} Hz: no band is left; start the "
            "recording earlier",
        )
    complete = [k for k in range(repeats) if k not in dropped]
    copies = [np.roll(full, pre - start - k * period)[: pre + after] for k in complete]
    # Compared from the direct sound on: before it, a repetition holds the previous one's decay.
    combined = combine_repetitions(
        [copy[pre:] for copy in copies], rate, bands, first=complete[0] + 1
    )
    kept = tuple(complete[i] for i in combined.kept)
    dropped |= {complete[i]: reason for i, reason in combined.dropped.items()}
    response = np.mean([copies[i] for i in combined.kept], axis=0)
    # The chain's spectrum from the direct sound and the early part, where the noise is least.
    leakage = band_leakage(
        response[pre - round(EARLY_BEFORE * rate) : pre + round(CHAIN_S * rate)], rate, bands
    )
    refused = set(late_bands) | {i for i, share in enumerate(leakage) if share > MAX_LEAKAGE}
    result = room_parameters(response, rate, bands)
    if kept[-1] == repeats - 1 and tail > after and _t30_missing(result, refused):
        # Sweeps short for the room's decay. No sweep follows the last: its response goes on,
        # with one repetition's noise; taken where it gives T30 in more bands and makes no
        # band's decay doubtful (a disturbance after the last sweep is compared with nothing).
        longer = np.concatenate([response, np.roll(full, pre - last)[pre + after : pre + tail]])
        extended = room_parameters(longer, rate, bands)
        if _t30_missing(extended, refused) < _t30_missing(result, refused) and _doubtful(
            extended, refused
        ) <= _doubtful(result, refused):
            response, result = longer, extended
    # Judged before the chain's marks, and only in the bands that are not refused.
    decay_doubts = {
        "psnr_low_for_t30": bool(_t30_missing(result, refused)),
        "decay_not_straight": bool(_doubtful(result, refused)),
    }
    limited = False
    for i, nominal in enumerate(bands):
        if i in late_bands:
            result = result.refuse_band(
                i,
                f"{nominal:g} Hz band: the recording began {-start / rate:.2f} s into the "
                f"sweep (as it reached the microphone), when it had passed {missed:.0f} Hz",
            )
        elif leakage[i] > DOUBTFUL_LEAKAGE:
            limited = True
            said = (
                f"{nominal:g} Hz band: {100 * leakage[i]:.0f} % of what its filter passes comes "
                "from outside the band: the speaker or microphone barely reproduces it"
            )
            if leakage[i] > MAX_LEAKAGE:
                result = result.refuse_band(i, said)
            else:
                result = result.mark_suspect(i, said)
    harmonics = _harmonics(full, sweep, start + kept[0] * period, bands)
    flags = {
        **decay_doubts,
        "band_limited": limited,
        "late_start": bool(late_bands) or late_first,
        "disturbed": bool(combined.dropped),
        "non_linear": harmonics.non_linear,
    }
    return RecordingAnalysis(
        parameters=result,
        response=response,
        fs=rate,
        start_s=start / rate,
        clock_drift_ppm=ppm,
        harmonics=harmonics,
        leakage=leakage,
        kept=kept,
        dropped=dropped,
        warnings=combined.warnings,
        flags=tuple(flag for flag in _FLAGS if flags[flag]),
    )


def _t30_missing(result: RoomParameters, skip: set[int]) -> int:
    """How many bands, ``skip`` left out, have no T30."""
    return sum(r is not None for i, r in enumerate(result.reasons["T30"]) if i not in skip)


def _doubtful(result: RoomParameters, skip: set[int]) -> set[int]:
    """The bands, ``skip`` left out, with a doubtful value."""
    return {
        i
        for reasons in result.suspect.values()
        for i, reason in enumerate(reasons)
        if reason is not None and i not in skip
    }


def _sharpness(full: Signal) -> float:
    """The strongest lag's energy re the mean lag's: a response smeared by a wrong rate has
    its energy spread over many lags."""
    energy = full**2
    return float(np.max(energy) / np.mean(energy))


def _alignment(full: Signal, period: int, repeats: int) -> int:
    """The lag of the first sweep's direct sound: of the alignments that put the strongest lag
    on one of the ``repeats`` responses, the one whose responses hold the most energy."""
    energy = full**2
    peak = int(np.argmax(energy))
    n = full.size
    signed = peak if peak < n - period else peak - n  # negative lags sit at the end
    best, best_energy = signed, -1.0
    for k in range(repeats):
        first = signed - k * period
        total = sum(float(energy[(first + j * period) % n]) for j in range(repeats))
        if total > best_energy:
            best, best_energy = first, total
    return best


def _missed_below(sweep: Sweep, start: int) -> float:
    """The frequency the sweep had reached when a recording that began ``-start`` samples after
    it did started (0 for a recording that began before it)."""
    if start >= 0:
        return 0.0
    return sweep.f1 * math.exp(-start / sweep.fs / sweep.rate)


def _harmonics(full: Signal, sweep: Sweep, start: int, bands: Sequence[float]) -> Harmonics:
    """Harmonics 2 .. HARMONICS of the sweep whose direct sound lies at lag ``start``, in
    Farina's places before it [1]_, within the bands' range: the energy of each product's first
    :data:`EARLY` s against the linear response's first :data:`EARLY` s, each with the noise
    taken off that the :data:`NOISE_WINDOWS` times as many lags just before it hold [2]_.

    Early windows hold most of each product's energy and little of the noise; the lags just
    before hold the same noise, and the same share of a disturbance (speech, a door) that the
    deconvolution spread over every lag, which is therefore not taken for distortion. The
    bands' range keeps out the noise the deconvolution lifts where the sweep fades out."""
    rate = sweep.fs
    low, high = band_edges(min(bands), 1)[0], band_edges(max(bands), 1)[1]
    sos = signal.butter(4, (low, min(high, 0.45 * rate)), "bandpass", fs=rate, output="sos")
    delays = np.round(harmonic_delays(sweep, HARMONICS) * rate).astype(int)
    before, after = round(EARLY_BEFORE * rate), round(EARLY * rate)
    count = before + after
    reference = NOISE_WINDOWS * count

    def energy(first: int) -> tuple[float, float]:
        """The window's energy from ``first`` on, and the noise expected in it from the lags
        just before it."""
        lags = np.arange(first - before - reference - count, first + after + count) % full.size
        squared = signal.sosfiltfilt(sos, full[lags])[count:-count] ** 2
        return float(np.sum(squared[reference:])), float(
            np.sum(squared[:reference])
        ) / NOISE_WINDOWS

    direct, noise_there = energy(start)
    linear = direct - noise_there
    windows = [energy(start - delay) for delay in delays]
    products = sum(window for window, _ in windows)
    expected = sum(noise for _, noise in windows)
    if linear <= 0:
        return Harmonics(level_db=math.nan, floor_db=math.nan)
    floor = expected * (1 + HARMONICS_ABOVE_NOISE)
    level = 10 * math.log10((products - expected) / linear) if products > floor else math.nan
    floor_db = 10 * math.log10(HARMONICS_ABOVE_NOISE * expected / linear) if expected else -math.inf
    return Harmonics(level_db=level, floor_db=floor_db)
