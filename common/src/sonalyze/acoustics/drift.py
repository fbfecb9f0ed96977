"""The drift between the clock of the phone that plays the sweep and the clock of a phone that
records it: estimated from the recording itself, and corrected by resampling.

A microphone whose sample clock runs at ``fs (1 + ε)`` while the speaker plays at ``fs`` takes
``1 + ε`` samples per second of the speaker's time, so the recording, read at ``fs``, is
``r(t) = y(t / (1 + ε))``: what arrived, ``y``, stretched by ``1 + ε``. Deconvolved with the
nominal sweep, it is no longer an impulse response but a dispersed one. The sweep's
instantaneous frequency is ``f1 exp(t / L)`` (``L``: :attr:`Sweep.rate`), so frequency ``f``
is played at ``L ln(f / f1)`` and recorded at ``(1 + ε) L ln((1 + ε) f / f1)``; deconvolution
places it at the difference of the two [1]_ [2]_::

    lag(f) = t0 + ε L ln(f / f1) + (1 + ε) L ln(1 + ε)

for any ``ε``, within the stationary-phase approximation the sweep's own design rests on, with
``f`` on the recording's frequency axis and ``t0`` where the recording started. The direct sound
arrives later at high frequencies than at low ones if ``ε > 0``, earlier if ``ε < 0``: 20 ppm
over a 10 s sweep from 50 Hz to 16 kHz spreads it over 0.2 ms, enough to smear the broadband
response. One sweep cannot tell this from a system whose group delay grows as ``ln f``, so its
estimate depends on the transducers' phase and on close reflections; the spacing of repeated
sweeps does not (see :func:`estimate_drift`).

References
----------
.. [1] A. Farina, "Simultaneous measurement of impulse response and distortion with a
   swept-sine technique", 108th AES Convention, Paris, 2000, preprint 5093.
.. [2] A. Novák, L. Simon, F. Kadlec, P. Lotton, "Nonlinear system identification using
   exponential swept-sine signal", IEEE Trans. Instrum. Meas. 59(8), 2220-2229, 2010.
.. [3] R. A. Muller, A. Buffington, "Real-time correction of atmospherically degraded
   telescope images through image sharpening", J. Opt. Soc. Am. 64(9), 1200-1210, 1974.
.. [4] J. R. Fienup, J. J. Miller, "Aberration correction by maximizing generalized
   sharpness metrics", J. Opt. Soc. Am. A 20(4), 609-620, 2003.
.. [5] M. H. Bahari, A. Bertrand, M. Moonen, "Blind sampling rate offset estimation for
   wireless acoustic sensor networks through weighted least-squares coherence drift
   estimation", IEEE/ACM Trans. Audio Speech Lang. Process. 25(3), 674-686, 2017.
.. [6] B. Efron, C. Stein, "The jackknife estimate of variance", Ann. Statist. 9(3),
   586-596, 1981.
.. [7] L. R. Rabiner, R. W. Schafer, C. M. Rader, "The chirp z-transform algorithm",
   IEEE Trans. Audio Electroacoust. 17(2), 86-92, 1969.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import fft, optimize, signal

from sonalyze.acoustics.signals import Signal, as_signal, sample_rate
from sonalyze.acoustics.sweep import Sweep

# Beyond this the recording's sample rate is mislabelled rather than its clock drifting. Phone
# crystals are specified to +/-20..50 ppm and drift with temperature and age; two phones differ
# by tens of ppm, by 100-200 at worst. 1000 ppm leaves five times that, and stays far below
# the nearest common mislabelling, 44.1 kHz read as 48 kHz (-81,250 ppm) or the reverse
# (+88,435 ppm).
MAX_DRIFT_PPM = 1000.0

Complex = NDArray[np.complex128]

# Sample-rate ratios searched: 16 kHz read as 48 kHz is 1/3, the reverse 3.
_RATIO_LIMIT = 4.0
# The coarse search: band centres a third of an octave apart, each band's window twice as wide;
# the time resolutions (s) of the band energies aligned, coarse to fine.
_BAND_STEP = 1 / 3
# One sweep shows its drift only across at least four of those steps.
_MIN_SINGLE_SWEEP_OCTAVES = 4 * _BAND_STEP
_RESOLUTIONS = (0.2, 0.04, 0.008, 0.0016)
# The fine estimate's band: from 2 kHz (where a phone speaker's high-pass has left little group
# delay) to a sixth of an octave below the sweep's end; its window around the first arrival's
# peak (s): before it, and after it either short of a close reflection or long enough for a
# phone speaker's high-pass to ring out; the early response searched for the first arrival
# (s before and after the strongest); how far below the strongest (dB) it may be.
_FINE_LOW = 2000.0
_BEFORE, _AFTER = 0.001, (0.001, 0.002)
_EARLY_SPAN = (0.03, 0.01)
_FIRST_ARRIVAL_DB = -12.0
# Estimates of one sweep's drift at most, each after resampling by the previous ones.
_PASSES = 3
# Sub-bands left out in turn for the jackknife.
_JACKKNIFE_BANDS = 4
# How far (standard deviations of the other lags searched) the repeated sweeps' peak in the
# recording's autocorrelation must stand out: noise, or a single sweep's room, reaches about 7.
_REPEAT_CONTRAST = 10.0
# Regularisation of the spectral division, relative to the sweep's peak power.
_REGULARISATION = 1e-10


@dataclass(frozen=True)
class DriftEstimate:
    """A microphone's clock drift relative to the speaker's.

    Attributes
    ----------
    ppm : float
        ``ε`` in parts per million: positive when the microphone's clock runs fast, i.e. the
        recording holds ``1 + ε`` samples for each sample of the sweep (it is stretched), and
        negative when it runs slow. 44.1 kHz data read as 48 kHz is -81,250 ppm.
    uncertainty_ppm : float
        The jackknife standard error of ``ppm`` over four frequency sub-bands [6]_: how much
        the estimate depends on which frequencies it rests on. It grows with noise and, for one
        sweep, with any phase of the transducers or of close reflections that differs between
        the sub-bands; a system group delay growing exactly as ``ln f``, which one sweep cannot
        tell from drift, it cannot see (see :func:`estimate_drift`).
    """

    ppm: float
    uncertainty_ppm: float

    @property
    def ratio(self) -> float:
        """``1 + ε``: the recording's samples per sample of the sweep."""
        return 1 + self.ppm * 1e-6

    @property
    def plausible(self) -> bool:
        """Whether ``|ppm|`` is within ``MAX_DRIFT_PPM``: a clock's drift. Beyond it the
        recording's sample rate is mislabelled, and ``ratio`` says by how much."""
        return abs(self.ppm) <= MAX_DRIFT_PPM


def estimate_drift(
    recording: ArrayLike, sweep: Sweep, fs: int, *, repeats: int = 1
) -> DriftEstimate:
    """How fast the recording's clock ran relative to the clock that played the sweep.

    With ``repeats >= 2`` back-to-back sweeps the estimate rests on their spacing, which the
    speaker's clock fixes at exactly ``len(sweep.signal)`` samples and the recording stretches
    to ``1 + ε`` times that. The recording's autocorrelation within the sweep's band (each
    sweep the others' matched filter) peaks there, located between samples by Newton's method
    on the band-limited autocorrelation; an autocorrelation has no phase, so the room, the
    transducers and their band limits cannot shift it. It is the time-domain counterpart of
    the coherence drift between a repeated signal's frames [5]_, and gives the drift averaged
    over the sweeps.

    With one sweep it rests on the dispersion in the module's lag formula. First the energy
    envelopes of the deconvolved response in bands a third of an octave apart are shifted by
    ``-ε L ln(f / f1)`` for candidate ``ε`` (sample-rate ratios from 1/4 to 4), coarse to fine
    in time resolution, to find the ``ε`` that aligns them best: the energy of their sum, a
    sharpness metric [3]_ [4]_, is largest; the room's reflections, common to all bands, align
    with the direct sound. Then, compensated for that ``ε``, the first arrival is sharpened
    from 2 kHz to a sixth of an octave below ``sweep.f2``: a scan 1 ppm apart, then a fit of
    the sharpness ``sum |a|**4 / (sum |a|**2)**2`` of its analytic signal over the drift and a
    group delay falling as ``1 / f**2``, the high-frequency tail of every high-pass section (a
    phone speaker's roll-off below a few hundred Hz, a microphone's high-pass), which would
    otherwise bias the estimate by several ppm. The first arrival is cut from 1 ms before its
    peak to 1 ms after it (short of a close reflection) or 2 ms (long enough for a speaker's
    high-pass to ring out), and of the two the fit whose sub-bands agree best is kept.

    Parameters
    ----------
    recording : array_like
        One channel at ``fs``, holding the sweep (or ``repeats`` sweeps back to back) anywhere
        after its start, and the room's decay after the last.
    sweep : Sweep
        The sweep as played once.
    fs : int
        The recording's nominal sample rate; it must be the sweep's.
    repeats : int
        How many identical sweeps were played back to back.

    Returns
    -------
    DriftEstimate
        The drift and its uncertainty. A recording whose sample rate is mislabelled (44.1 kHz
        data read as 48 kHz, 16 kHz as 48 kHz) gets the ratio, refined after resampling by
        it, and ``plausible`` False.

    Raises
    ------
    ValueError
        For an empty, multichannel, non-finite or silent recording, one shorter than the
        sweeps, a sample rate other than the sweep's, ``repeats`` below 1, a recording in
        which ``repeats >= 2`` sweeps do not repeat, or one sweep spanning less than 4/3 of an
        octave.

    Notes
    -----
    The single-sweep estimate was measured in a simulated 6 x 5 x 3 m room (T30 0.64 s) with
    the 10 s sweep from 50 Hz to 16 kHz, white noise 60 dB below the recording's peak and a
    drift of 50 ppm, at 19 placements of speaker and microphone, each with and without a
    phone's band limits (speaker high-passed at 300 Hz, 4th order; microphone at 150 Hz). It
    was within 0.5 ppm at 30 of the 38, within 2 ppm at 34. At the other four, both phones
    0.2 m above the floor (its reflection 0.08 ms after the direct sound, nearly as strong)
    and both in corners (three reflections within a millisecond), it was 120-230 ppm off: a
    close reflection as strong as the direct sound makes a group delay that varies with
    frequency, which one sweep cannot tell from drift; so does a transducer whose group delay
    above 2 kHz varies other than as ``1 / f**2`` (a resonance, a crossover). Throughout, the
    error stayed within three times ``uncertainty_ppm`` (over 100 ppm at those four): correct
    by the estimate only when that is small, and otherwise play repeated sweeps. Noise adds
    about 0.2 ppm at 40 dB below the peak, 0.5 at 30 dB and 1.5 at 20 dB, and the uncertainty
    grows with it. Repeated sweeps were within 0.0001 ppm at 60 dB, 0.02 at 10 dB and 0.1 at
    -5 dB, with the band limits or without.
    """
    rec = _checked(recording, sweep, fs, repeats)
    if repeats > 1:
        return _from_spacing(rec, sweep, repeats)
    if not shows_its_drift(sweep):
        raise ValueError(
            f"one sweep from {sweep.f1:g} to {sweep.f2:g} Hz spans too few octaves to show its "
            f"drift (at least {_MIN_SINGLE_SWEEP_OCTAVES:.2f}); play it repeatedly instead"
        )
    # Far from 1 the drift scales the frequency axis too: resample by the estimate so far and
    # estimate what is left, until it is a clock's drift.
    scale = 1.0
    estimate = _from_dispersion(rec, sweep)
    for _ in range(_PASSES - 1):
        if estimate.plausible:
            break
        corrected = correct_drift(rec, (scale * estimate.ratio - 1) * 1e6)
        if corrected.size < sweep.signal.size:
            break
        scale *= estimate.ratio
        estimate = _from_dispersion(corrected, sweep)
    return DriftEstimate(
        ppm=(scale * estimate.ratio - 1) * 1e6, uncertainty_ppm=estimate.uncertainty_ppm * scale
    )


def shows_its_drift(sweep: Sweep) -> bool:
    """Whether one ``sweep`` spans the octaves (four third-octave steps) its dispersion needs to
    show the drift; repeated sweeps show it whatever they span."""
    return math.log2(sweep.f2 / sweep.f1) >= _MIN_SINGLE_SWEEP_OCTAVES


def correct_drift(recording: ArrayLike, ppm: float) -> Signal:
    """The recording resampled onto the speaker's clock: sample ``m`` of the result is the
    band-limited interpolation of the recording at ``m (1 + ppm * 1e-6)`` samples.

    The interpolation is the exact one for a periodic, band-limited signal: the recording's
    spectrum evaluated at the new times, an inverse DFT at non-integer times that is a chirp
    z-transform computed with three FFTs [7]_, in ``O(n log n)`` for any ratio. Components
    above the new Nyquist frequency (for ``ppm > 0``) are dropped first. A few milliseconds at
    either end are interpolated across the wrap from the end to the start.

    Parameters
    ----------
    recording : array_like
        One channel.
    ppm : float
        The drift as :attr:`DriftEstimate.ppm` gives it (positive: the recording is
        stretched); larger than -1e6.

    Returns
    -------
    numpy.ndarray
        ``round(len(recording) / (1 + ppm * 1e-6))`` samples; the recording itself (a copy)
        for ``ppm == 0``, to within rounding.

    Raises
    ------
    ValueError
        For an empty, multichannel or non-finite recording, or a ``ppm`` that is not finite or
        not above -1e6.
    """
    samples = as_signal(recording, "recording")
    if not math.isfinite(ppm) or ppm <= -1e6:
        raise ValueError(f"ppm must be finite and above -1e6 (a positive ratio), not {ppm!r}")
    epsilon = ppm * 1e-6
    n = samples.size
    m = max(1, round(n / (1 + epsilon)))
    spectrum = fft.rfft(samples)
    kept = min(spectrum.size, math.floor(n / (2 * (1 + epsilon))) + 1)
    weights = np.full(kept, 2.0)
    weights[0] = 1.0
    if n % 2 == 0 and kept == spectrum.size:
        weights[-1] = 1.0  # the Nyquist bin counts once
    return _chirp_z(spectrum[:kept] * weights, m, n, epsilon).real / n


def _chirp_z(coefficients: Complex, m: int, n: int, epsilon: float) -> Complex:
    """``sum_k c_k exp(2j pi k t (1 + epsilon) / n)`` at ``t = 0 .. m-1``, by Bluestein's
    identity ``k t = (k**2 + t**2 - (t - k)**2) / 2``: a convolution with a chirp [7]_."""
    k = coefficients.size
    chirp = _chirp(max(k, m), n, epsilon)
    size = fft.next_fast_len(k + m - 1)
    kernel = np.zeros(size, dtype=np.complex128)
    kernel[:m] = np.conj(chirp[:m])  # lags 0 .. m-1
    kernel[size - k + 1 :] = np.conj(chirp[k - 1 : 0 : -1])  # lags -(k-1) .. -1, wrapped
    spectrum = fft.fft(coefficients * chirp[:k], size, overwrite_x=True)
    spectrum *= fft.fft(kernel, overwrite_x=True)
    result: Complex = fft.ifft(spectrum, overwrite_x=True)[:m] * chirp[:m]
    return result


def _chirp(count: int, n: int, epsilon: float) -> Complex:
    """``exp(1j pi (1 + epsilon) i**2 / n)`` for ``i = 0 .. count-1``, the integer part of the
    phase reduced modulo ``2 pi`` exactly, so that it stays precise for long signals."""
    index = np.arange(count, dtype=np.int64)
    squares = index * index
    phase = np.pi * ((squares % (2 * n)) / n + epsilon * (squares / n))
    chirp = np.empty(count, dtype=np.complex128)
    np.cos(phase, out=chirp.real)
    np.sin(phase, out=chirp.imag)
    return chirp


def _checked(recording: ArrayLike, sweep: Sweep, fs: int, repeats: int) -> Signal:
    rec = as_signal(recording, "recording")
    fs = sample_rate(fs)
    if fs != sweep.fs:
        raise ValueError(
            f"the recording's sample rate ({fs} Hz) must be the sweep's ({sweep.fs} Hz); "
            "resample it first"
        )
    if isinstance(repeats, bool) or not isinstance(repeats, int | np.integer) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, not {repeats!r}")
    needed = repeats * sweep.signal.size
    if rec.size < needed:
        raise ValueError(
            f"the recording ({rec.size / fs:.3f} s) is shorter than {repeats} sweep(s) "
            f"({needed / fs:.3f} s)"
        )
    if not np.any(rec):
        raise ValueError("the recording is silent")
    return rec


def _response_spectrum(recording: Signal, sweep: Sweep) -> tuple[Complex, int]:
    """The recording divided by the sweep, within the sweep's band (zero outside it), on an
    ``n``-point transform long enough for every lag from ``-len(sweep)`` to ``len(recording)``
    to be told apart."""
    n = fft.next_fast_len(recording.size + sweep.signal.size - 1, real=True)
    x = fft.rfft(sweep.signal, n)
    y = fft.rfft(recording, n)
    power = np.abs(x) ** 2
    freqs = fft.rfftfreq(n, 1 / sweep.fs)
    band = (freqs >= sweep.f1) & (freqs <= sweep.f2)
    response: Complex = np.where(band, y * np.conj(x) / (power + _REGULARISATION * power.max()), 0)
    return response, n


def _from_spacing(recording: Signal, sweep: Sweep, repeats: int) -> DriftEstimate:
    """The drift from the spacing of the repeated sweeps: the peak of the recording's
    autocorrelation within the sweep's band (a matched filter: every sweep is the others'
    template) near ``len(sweep.signal)`` lags."""
    n = fft.next_fast_len(2 * recording.size, real=True)
    freqs = fft.rfftfreq(n, 1 / sweep.fs)
    power = np.where((freqs >= sweep.f1) & (freqs <= sweep.f2), np.abs(fft.rfft(recording, n)), 0)
    power **= 2
    autocorrelation = fft.irfft(power, n)
    period = sweep.signal.size
    low = math.ceil(period / _RATIO_LIMIT)
    high = min(math.floor(period * _RATIO_LIMIT), recording.size - 1)
    searched = autocorrelation[low:high]
    peak = low + int(np.argmax(searched))
    if autocorrelation[peak] < _REPEAT_CONTRAST * np.std(searched):
        raise ValueError(
            f"the recording does not hold {repeats} sweeps back to back: it does not repeat"
        )
    bins = np.flatnonzero(power)
    weights = power[bins] * np.where(2 * bins == n, 1.0, 2.0)
    lag = _peak_lag(weights, bins, n, peak + _parabolic(autocorrelation, peak))
    # One more Newton step per sub-band left out: the jackknife's replicates.
    edges = np.geomspace(sweep.f1, sweep.f2, _JACKKNIFE_BANDS + 1)
    band = np.clip(np.searchsorted(edges, freqs[bins], side="right") - 1, 0, _JACKKNIFE_BANDS - 1)
    slope, curvature = _derivatives(weights, bins, n, lag)
    slopes = np.bincount(band, slope, _JACKKNIFE_BANDS)
    curvatures = np.bincount(band, curvature, _JACKKNIFE_BANDS)
    replicates = lag - (slopes.sum() - slopes) / (curvatures.sum() - curvatures)
    return DriftEstimate(
        ppm=float(lag / period - 1) * 1e6,
        uncertainty_ppm=_jackknife(replicates / period) * 1e6,
    )


def _parabolic(values: Signal, peak: int) -> float:
    """The offset of a sampled peak's vertex from its largest sample, by a parabola."""
    a, b, c = values[peak - 1], values[peak], values[peak + 1]
    curvature = a - 2 * b + c
    return float(0.5 * (a - c) / curvature) if curvature < 0 else 0.0


def _derivatives(
    weights: Signal, bins: NDArray[np.intp], n: int, lag: float
) -> tuple[Signal, Signal]:
    """Each bin's share of the first and second derivatives of ``sum w cos(2 pi k lag / n)``,
    the autocorrelation between its samples."""
    omega = 2 * np.pi * bins / n
    phase = omega * lag
    return -weights * omega * np.sin(phase), -weights * omega**2 * np.cos(phase)


def _peak_lag(weights: Signal, bins: NDArray[np.intp], n: int, start: float) -> float:
    """The band-limited autocorrelation's peak near ``start``, by Newton's method."""
    lag = start
    for _ in range(3):
        slope, curvature = _derivatives(weights, bins, n, lag)
        lag -= float(np.clip(slope.sum() / curvature.sum(), -0.5, 0.5))
    return lag


def _jackknife(replicates: Signal) -> float:
    """The jackknife standard error from leave-one-out replicates [6]_."""
    count = replicates.size
    return float(np.sqrt((count - 1) / count * np.sum((replicates - replicates.mean()) ** 2)))


def _from_dispersion(recording: Signal, sweep: Sweep) -> DriftEstimate:
    """The drift from one sweep's dispersion: the coarse search, then the direct sound."""
    response, n = _response_spectrum(recording, sweep)
    coarse, resolution = _aligned_bands(response, n, sweep)
    if abs(coarse) * 1e6 > MAX_DRIFT_PPM:
        return DriftEstimate(ppm=coarse * 1e6, uncertainty_ppm=resolution * 1e6)
    fine, spread = _focused(response, n, sweep, coarse, resolution)
    return DriftEstimate(ppm=fine * 1e6, uncertainty_ppm=spread * 1e6)


def _aligned_bands(response: Complex, n: int, sweep: Sweep) -> tuple[float, float]:
    """The drift that best aligns the response's band energies, and the last search step.

    Each band's energy envelope, normalised to unit sum, is shifted by ``-ε L ln(f / f1)``
    and the envelopes summed; the energy of the sum, smoothed by a Gaussian of each
    resolution in turn, is largest where they align [3]_. The shifts are phase factors on the
    envelopes' spectra, so that every candidate costs one sum over bands and modulation
    frequencies."""
    fs = sweep.fs
    low, high = sweep.f1 * 2**_BAND_STEP, sweep.f2 * 2**-_BAND_STEP
    count = math.floor(math.log2(high / low) / _BAND_STEP) + 1
    centres: Signal = low * 2 ** (_BAND_STEP * np.arange(count, dtype=np.float64))
    spread = sweep.rate * np.log(centres / centres[0])  # lag per unit ε, s
    span = n / fs
    modulation_limit = 3 / (2 * np.pi * _RESOLUTIONS[-1])
    modulations = np.arange(math.ceil(modulation_limit * span) + 1) / span
    envelopes = _band_envelope_spectra(response, n, fs, centres, modulations.size)
    lowest, highest = 1 / _RATIO_LIMIT - 1, _RATIO_LIMIT - 1
    best = step = 0.0
    for resolution in _RESOLUTIONS:
        step = float(resolution / spread[-1])
        candidates = np.arange(lowest, highest + step, step)
        keep = modulations < 3 / (2 * np.pi * resolution)
        nu = modulations[keep]
        weight = np.exp(-((2 * np.pi * nu * resolution) ** 2))
        spectra = envelopes[:, keep]
        scores = np.array(
            [
                weight
                @ np.abs(np.sum(spectra * np.exp(2j * np.pi * np.outer(e * spread, nu)), 0)) ** 2
                for e in candidates
            ]
        )
        i = int(np.argmax(scores))
        best = float(candidates[i])
        if 0 < i < candidates.size - 1:
            best += step * _parabolic(scores, i)
        lowest, highest = best - 3 * step, best + 3 * step
    return best, step


def _band_envelope_spectra(
    response: Complex, n: int, fs: int, centres: Signal, modulations: int
) -> Complex:
    """The spectra (first ``modulations`` bins) of the bands' energy envelopes, each band a
    Hann window in log frequency twice ``_BAND_STEP`` wide, its envelope normalised to unit
    sum and sampled on one grid over the ``n``-sample span."""
    df = fs / n
    edges = [
        (math.ceil(c * 2**-_BAND_STEP / df), math.floor(c * 2**_BAND_STEP / df)) for c in centres
    ]
    widest = max(stop - start + 1 for start, stop in edges)
    grid = fft.next_fast_len(widest + 2 * modulations)
    spectra = np.empty((centres.size, modulations), dtype=np.complex128)
    for row, (centre, (start, stop)) in enumerate(zip(centres, edges, strict=True)):
        bins = np.arange(start, stop + 1)
        window = 0.5 + 0.5 * np.cos(np.pi * np.log2(bins * df / centre) / _BAND_STEP)
        energy = np.abs(fft.ifft(response[start : stop + 1] * window, grid)) ** 2
        spectra[row] = fft.rfft(energy / energy.sum())[:modulations]
    return spectra


def _focused(
    response: Complex, n: int, sweep: Sweep, coarse: float, resolution: float
) -> tuple[float, float]:
    """The drift that makes the first arrival sharpest, from ``coarse`` (good to about
    ``resolution``); and its jackknife standard error over sub-bands of the fine band."""
    fs = sweep.fs
    # The response compensated for the coarse drift; its early part around the strongest arrival.
    phase = _phase_per_drift(fft.rfftfreq(n, 1 / fs), sweep)
    compensated = fft.irfft(response * np.exp(1j * phase * coarse), n)
    peak = int(np.argmax(np.abs(compensated)))
    before, after = (round(seconds * fs) for seconds in _EARLY_SPAN)
    early = np.take(compensated, np.arange(peak - before, peak + after), mode="wrap")
    # A scan of its fine band's sharpness over the coarse search's last steps, 1 ppm apart.
    band = (max(sweep.f1, min(_FINE_LOW, sweep.f2 / 4)), sweep.f2 * 2 ** (-1 / 6))
    spectrum, basis = _analytic_band(early, 2 * early.size, sweep, band)
    half_range = 1.5 * resolution * 1e6
    residuals = np.arange(-half_range, half_range + 1, 1.0)
    scores = np.array([_sharpness(spectrum, basis, np.array([r, 0.0])) for r in residuals])
    best = int(np.argmax(scores))
    scanned = float(residuals[best])
    if 0 < best < residuals.size - 1:
        scanned += _parabolic(scores, best)
    # Compensated for the scan's residual too: the fine band's envelope to find the first
    # arrival by, the whole band to cut it from; of its two windows, the fit whose sub-bands
    # agree best.
    envelope = np.abs(fft.ifft(spectrum * np.exp(1j * basis[:, 0] * scanned))[: early.size])
    size = 2 * early.size
    phase = _phase_per_drift(fft.rfftfreq(size, 1 / fs), sweep) * scanned * 1e-6
    early = fft.irfft(fft.rfft(early, size) * np.exp(1j * phase), size)[: early.size]
    fits = [
        _fit_arrival(_first_arrival(early, envelope, fs, after), sweep, band) for after in _AFTER
    ]
    drift, spread = min(fits, key=lambda fit: fit[1])
    return coarse + (scanned + drift) * 1e-6, spread * 1e-6


def _fit_arrival(direct: Signal, sweep: Sweep, band: tuple[float, float]) -> tuple[float, float]:
    """The residual drift (ppm) that makes ``direct`` sharpest in ``band``, with a high-pass
    group delay fitted alongside; and its jackknife standard error, the fit repeated with each
    of ``_JACKKNIFE_BANDS`` sub-bands left out [6]_."""
    spectrum, basis = _analytic_band(direct, 4 * direct.size, sweep, band)
    fit = _sharpest(spectrum, basis, np.zeros(2))
    edges = np.geomspace(*band, _JACKKNIFE_BANDS + 1)
    freqs = fft.fftfreq(spectrum.size, 1 / sweep.fs)
    replicates = np.array(
        [
            _sharpest(np.where((freqs >= a) & (freqs < b), 0, spectrum), basis, fit)[0]
            for a, b in itertools.pairwise(edges)
        ]
    )
    return float(fit[0]), _jackknife(replicates)


def _phase_per_drift(freqs: Signal, sweep: Sweep) -> Signal:
    """``2 pi f L ln(f / f1)``: times ``ε``, the phase that undoes the drift's lag
    ``ε L (ln(f / f1) + 1)`` (its first-order form; the constant is a delay)."""
    positive = np.maximum(freqs, sweep.f1)
    phase: Signal = np.where(freqs > 0, 2 * np.pi * freqs * sweep.rate, 0) * np.log(
        positive / sweep.f1
    )
    return phase


def _analytic_band(
    samples: Signal | Complex, size: int, sweep: Sweep, band: tuple[float, float]
) -> tuple[Complex, NDArray[np.float64]]:
    """The positive-frequency spectrum of ``samples`` within ``band`` (an analytic signal's),
    on a ``size``-point transform; and the phases per unit of the two parameters fitted: the
    drift (per ppm) and a group delay ``(band[0] / f)**2`` microseconds (per microsecond)."""
    freqs = fft.fftfreq(size, 1 / sweep.fs)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    spectrum: Complex = np.where(inside, fft.fft(samples, size), 0)
    tail = np.where(inside, -2e-6 * np.pi * band[0] ** 2 / np.where(inside, freqs, 1.0), 0)
    basis = np.stack([np.where(inside, _phase_per_drift(freqs, sweep) * 1e-6, 0), tail], 1)
    return spectrum, basis


def _sharpness(spectrum: Complex, basis: NDArray[np.float64], params: Signal) -> float:
    """``sum |a|**4 / (sum |a|**2)**2`` of the analytic signal ``a`` whose spectrum is
    ``spectrum`` with the phases ``basis @ params`` undone: largest for the most compact
    signal [3]_ [4]_."""
    analytic = fft.ifft(spectrum * np.exp(1j * (basis @ params)))
    power = np.abs(analytic) ** 2
    return float(np.sum(power**2) / np.sum(power) ** 2)


def _sharpest(spectrum: Complex, basis: NDArray[np.float64], start: Signal) -> Signal:
    """The drift (ppm) and high-pass group delay (us) that maximise the sharpness, by
    Nelder-Mead from ``start``."""
    simplex = start + np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 10.0]])

    def blur(params: Signal) -> float:
        return -_sharpness(spectrum, basis, params)

    result = optimize.minimize(
        blur,
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-12},
    )
    best: Signal = result.x
    return best


def _first_arrival(early: Signal, envelope: Signal, fs: int, after: float) -> Signal:
    """The first arrival in ``early``, tapered: from ``_BEFORE`` before to ``after`` after the
    first peak of its fine band's ``envelope`` within ``_FIRST_ARRIVAL_DB`` of the largest."""
    first = int(np.argmax(envelope >= envelope.max() * 10 ** (_FIRST_ARRIVAL_DB / 20)))
    while first + 1 < envelope.size and envelope[first + 1] >= envelope[first]:
        first += 1
    start = max(first - round(_BEFORE * fs), 0)
    stop = min(first + round(after * fs), envelope.size)
    tapered: Signal = early[start:stop] * signal.windows.tukey(stop - start, 0.5)
    return tapered
