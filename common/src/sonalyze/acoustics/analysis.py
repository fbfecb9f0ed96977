"""One impulse response to its ISO 3382-1 room parameters, per band and broadband.

The response's onset is found on the broadband response (ISO 3382-1, 20 dB below the peak) and
is time zero for every band; each band is filtered from the whole response, so that its filter
has settled by then, and analysed from the onset on. Each band's decay is noise-compensated
(:mod:`sonalyze.acoustics.decay`). A parameter whose evaluation needs more decay than the band
has above its noise is NaN, and ``reasons`` says why; the rule is ISO 3382-1's: the bottom of
the evaluation range at least 10 dB above the noise, so T30 needs a 45 dB impulse-to-noise
ratio, T20 35 dB, and EDT and the energy ratios 20 dB.

References
----------
.. [1] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", 5.3.3 and Annex A.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sonalyze.acoustics import parameters
from sonalyze.acoustics.decay import DecayError, EnergyDecay, energy_decay, minimum_length
from sonalyze.acoustics.decay import lundeby_window as _lundeby_window
from sonalyze.acoustics.filterbank import filter_bands, mid_band
from sonalyze.acoustics.onset import onset
from sonalyze.acoustics.signals import Signal, as_signal, sample_rate

BAND_PARAMETERS = ("EDT", "T20", "T30", "C50", "C80", "D50", "Ts")
BROADBAND_PARAMETERS = ("DRR", "PSNR")
# Decay range each parameter needs above the noise, in dB [1].
REQUIRED_RANGE = {
    "EDT": 20.0,
    "T20": 35.0,
    "T30": 45.0,
    "C50": 20.0,
    "C80": 20.0,
    "D50": 20.0,
    "Ts": 20.0,
}
_FITS: dict[str, tuple[float, float]] = {"EDT": (0, -10), "T20": (-5, -25), "T30": (-5, -35)}
_ENERGY: dict[str, Callable[[EnergyDecay], float]] = {
    "C50": lambda decay: parameters.clarity(decay, 0.05),
    "C80": lambda decay: parameters.clarity(decay, 0.08),
    "D50": lambda decay: parameters.definition(decay, 0.05),
    "Ts": parameters.centre_time,
}

# Why a parameter is NaN although the decay range suffices (a decay that is not monotonic).
_UNDEFINED = {
    **{key: "the decay curve does not pass through its evaluation range" for key in _FITS},
    **{key: "no positive energy left after the noise subtraction" for key in _ENERGY},
}


@dataclass(frozen=True)
class RoomParameters(Mapping[str, "Signal | float"]):
    """The room parameters of one impulse response.

    As a mapping: ``EDT``, ``T20``, ``T30`` (s), ``C50``, ``C80`` (dB), ``D50`` (ratio) and
    ``Ts`` (s) to one value per band (an array in the order of ``bands``, of length one for
    broadband); ``INR`` (dB) per band; ``DRR`` and ``PSNR`` (dB) of the broadband response, as
    floats.

    Attributes
    ----------
    bands : tuple of float or None
        Nominal mid-band frequencies, or None for broadband.
    fraction : int
        1 for octave bands, 3 for third-octave bands.
    by_band : dict
        The per-band arrays, by parameter name (and ``INR``).
    correlation : dict
        The decay fit's correlation coefficient per band for ``EDT``, ``T20`` and ``T30``.
    reasons : dict
        For each parameter, one entry per band (one for ``DRR``): why the value is NaN, or None.
    drr, psnr : float
        Direct-to-reverberant and peak-to-noise ratio of the broadband response in dB.
    decays : tuple of EnergyDecay or None
        Each band's noise-compensated decay from the onset, the one its parameters come from
        (None where there is none: ``reasons`` says why); :func:`decay_curve` charts it.
    """

    bands: tuple[float, ...] | None
    fraction: int
    by_band: dict[str, Signal]
    correlation: dict[str, Signal]
    reasons: dict[str, tuple[str | None, ...]]
    drr: float
    psnr: float
    decays: tuple[EnergyDecay | None, ...] = field(default=(), repr=False, compare=False)

    def __getitem__(self, key: str) -> Signal | float:
        if key == "DRR":
            return self.drr
        if key == "PSNR":
            return self.psnr
        return self.by_band[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.by_band
        yield from BROADBAND_PARAMETERS

    def __len__(self) -> int:
        return len(self.by_band) + len(BROADBAND_PARAMETERS)

    def to_json(self) -> dict[str, Any]:
        """The values per band (and INR), the reasons, the fits' correlation, DRR and PSNR,
        ready for JSON: NaN and infinities become ``None`` (the reasons say why)."""
        return {
            "parameters": {key: json_numbers(values) for key, values in self.by_band.items()},
            "reasons": {key: list(self.reasons[key]) for key in BAND_PARAMETERS},
            "correlation": {key: json_numbers(v) for key, v in self.correlation.items()},
            "drr": json_number(self.drr),
            "psnr": json_number(self.psnr),
        }


def json_numbers(values: ArrayLike) -> list[float | None]:
    """Numbers as a JSON list: ``None`` for NaN and infinities."""
    return [json_number(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def spatial_average(positions: Sequence[Mapping[str, Any]], bands: int) -> dict[str, Any]:
    """Per parameter and band, over the positions that have a value: the mean, the standard
    deviation (ddof 1) and the count, as ISO 3382-2 reports positions averaged.

    Parameters
    ----------
    positions : sequence of mapping
        Each position's :meth:`RoomParameters.to_json` (only ``parameters`` is read).
    bands : int
        How many bands each parameter has (so that no positions average to ``None`` in each).
    """
    average: dict[str, Any] = {}
    for key in BAND_PARAMETERS:
        table = np.array(
            [[math.nan if v is None else v for v in p["parameters"][key]] for p in positions],
            dtype=float,
        ).reshape(len(positions), bands)
        present = np.isfinite(table)
        count = present.sum(axis=0)
        values = np.where(present, table, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = values.sum(axis=0) / count
            spread = np.where(present, table - mean, 0.0)
            std = np.sqrt((spread**2).sum(axis=0) / (count - 1))
        std[count < 2] = math.nan
        average[key] = {
            "mean": json_numbers(mean),
            "std": json_numbers(std),
            "count": count.tolist(),
        }
    return average


def _band_name(nominal: float | None) -> str:
    return "broadband" if nominal is None else f"{nominal:g} Hz band"


def _analyse_band(
    decay: EnergyDecay | DecayError, name: str
) -> tuple[dict[str, float], dict[str, float], dict[str, str | None]]:
    values: dict[str, float] = {}
    correlation: dict[str, float] = {}
    reasons: dict[str, str | None] = {}
    if isinstance(decay, DecayError):
        for key in BAND_PARAMETERS:
            values[key], reasons[key] = math.nan, f"{name}: {decay}"
        for key in _FITS:
            correlation[key] = math.nan
        values["INR"] = math.nan
        return values, correlation, reasons
    values["INR"] = decay.inr
    fits = {
        key: limits for key, limits in _FITS.items() if decay.decay_range >= REQUIRED_RANGE[key]
    }
    times = parameters.decay_times(decay, fits) if fits else {}
    for key in BAND_PARAMETERS:
        needed = REQUIRED_RANGE[key]
        if decay.decay_range < needed:
            values[key] = math.nan
            reasons[key] = (
                f"{name}: {decay.decay_range:.1f} dB of decay above the noise; {key} needs "
                f"{needed:.0f} dB (ISO 3382-1)"
            )
        else:
            if key in times:
                values[key], correlation[key] = times[key]
            else:
                values[key] = _ENERGY[key](decay)
            reasons[key] = None if math.isfinite(values[key]) else f"{name}: {_UNDEFINED[key]}"
    for key in _FITS:
        correlation.setdefault(key, math.nan)
    return values, correlation, reasons


def _decay(ir: Signal, fs: int, window: float) -> EnergyDecay | DecayError:
    try:
        return energy_decay(ir, fs, window)
    except DecayError as error:
        return error


def room_parameters(
    ir: ArrayLike, fs: int, bands: Sequence[float] | None = None, fraction: int = 1
) -> RoomParameters:
    """ISO 3382-1 parameters of an impulse response, per band or broadband.

    Parameters
    ----------
    ir : array_like
        One impulse response (one channel), as long as its decay into the noise; the part
        before its onset is ignored.
    fs : int
        Sample rate in Hz.
    bands : sequence of float, optional
        Nominal mid-band frequencies (``OCTAVES`` or ``THIRD_OCTAVES`` entries), or None for
        the broadband response.
    fraction : int
        1 for octave bands, 3 for third-octave bands.

    Returns
    -------
    RoomParameters
        A mapping from ``EDT``, ``T20``, ``T30``, ``C50``, ``C80``, ``D50``, ``Ts`` and ``INR``
        to one value per band, and ``DRR`` and ``PSNR`` to broadband values; with the decay
        fits' correlation, the reason for each NaN, and each band's decay.

    Raises
    ------
    ValueError
        For an empty, multichannel, non-finite or all-zero response, a sample rate that is not
        a positive integer, an unknown band or one reaching ``fs / 2``, or a response too short
        after its onset for a band's decay analysis.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> t = np.arange(48_000) / 48_000
    >>> ir = rng.standard_normal(t.size) * 10 ** (-3 * t / 0.5)  # T = 0.5 s
    >>> result = room_parameters(ir + 1e-4 * rng.standard_normal(t.size), 48_000)
    >>> round(float(result["T30"][0]), 2)
    0.5
    """
    response = as_signal(ir, "the impulse response")
    fs = sample_rate(fs)
    if fraction not in (1, 3):
        raise ValueError(f"fraction must be 1 (octaves) or 3 (third octaves), not {fraction!r}")
    if bands is not None and not len(bands):
        raise ValueError("bands is empty: give nominal mid-band frequencies, or None for broadband")
    start = onset(response)
    length = response.size - start
    nominals: list[float | None] = [None] if bands is None else list(bands)
    windows = [
        _lundeby_window(None if nominal is None else mid_band(nominal, fraction))
        for nominal in nominals
    ]
    for nominal, window in zip(nominals, windows, strict=True):
        needed = minimum_length(window, fs)
        if length < needed:
            raise ValueError(
                f"the impulse response lasts {1000 * length / fs:.0f} ms after its onset; the "
                f"{_band_name(nominal)} needs at least {1000 * needed / fs:.0f} ms"
            )
    broadband = _decay(response[start:], fs, _lundeby_window(None))
    rows = [response] if bands is None else list(filter_bands(response, fs, bands, fraction))
    decays = [
        broadband if nominal is None else _decay(row[start:], fs, window)
        for nominal, row, window in zip(nominals, rows, windows, strict=True)
    ]
    results = [
        _analyse_band(decay, _band_name(nominal))
        for nominal, decay in zip(nominals, decays, strict=True)
    ]
    keys = (*BAND_PARAMETERS, "INR")
    values = {key: np.array([result[0][key] for result in results]) for key in keys}
    correlation = {key: np.array([result[1][key] for result in results]) for key in _FITS}
    reasons = {key: tuple(result[2][key] for result in results) for key in BAND_PARAMETERS}
    peak = int(np.argmax(response**2))
    if isinstance(broadband, DecayError):
        drr, psnr = math.nan, math.nan
        reasons["DRR"] = reasons["PSNR"] = (f"broadband: {broadband}",)
    else:
        drr = parameters.direct_to_reverberant(broadband, peak - start)
        psnr = parameters.peak_to_noise(float(response[peak] ** 2), broadband)
        reasons["DRR"] = reasons["PSNR"] = (None,)
    return RoomParameters(
        bands=None if bands is None else tuple(bands),
        fraction=fraction,
        by_band=values,
        correlation=correlation,
        reasons=reasons,
        drr=drr,
        psnr=psnr,
        decays=tuple(None if isinstance(d, DecayError) else d for d in decays),
    )
