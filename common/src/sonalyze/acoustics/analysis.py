"""One impulse response to its ISO 3382-1 room parameters, per band and broadband.

The response's onset is found on the broadband response (ISO 3382-1, 20 dB below the peak) and
is time zero for every band; each band is filtered from the whole response, so that its filter
has settled by then, and analysed from the onset on. Each band's decay is noise-compensated
(:mod:`sonalyze.acoustics.decay`). A parameter whose evaluation needs more decay than the band
has above its noise is NaN, and ``reasons`` says why; the rule is ISO 3382-1's: the bottom of
the evaluation range at least 10 dB above the noise, so T30 needs a 45 dB impulse-to-noise
ratio, T20 35 dB, and EDT and the energy ratios 20 dB.

The bands are filtered with zero phase (:mod:`sonalyze.acoustics.filterbank`): C50, C80, D50
and Ts split or weigh a band's energy by its time after the direct sound, and a causal filter's
delay would move the energy later: a decaying tone's C50 in the 125 Hz octave reads 1.7 dB low
(at 0.3 s) and its Ts 8 ms long through this bank's causal order-6 filters, 5 dB low (at 1.4 s)
and 32 ms long through pyfar's order-14 ones; zero-phase, within 0.2 dB and 1.5 ms. The
zero-phase filter spreads the direct sound's band-limited pulse before its arrival as much as
after it; the energy of a band within :func:`~sonalyze.acoustics.filterbank.zero_phase_spread`
before the onset counts as arriving at the onset, and the last spread of the record, into which
the filter mixed the silence after it, is left out. The decay times change little with the
filters (within 3 % on a measured room's response), a band filter's own decay being much faster
than a room's.

Each band's values are checked as ISO 3382-2 Annex B asks (:mod:`sonalyze.acoustics.quality`):
a band whose decay is not straight keeps its values, marked ``suspect`` with the reason, and
the spatial average leaves them out. ``reverberation_time`` is the value to read per band:
T30, else T20, with which one it is.

References
----------
.. [1] ISO 3382-1:2009, "Acoustics - Measurement of room acoustic parameters - Part 1:
   Performance spaces", 5.3.3 and Annex A.
.. [2] ISO 3382-2:2008, "Acoustics - Measurement of room acoustic parameters - Part 2:
   Reverberation time in ordinary rooms", Annex B.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sonalyze.acoustics import parameters, quality
from sonalyze.acoustics.decay import DecayError, EnergyDecay, energy_decay, minimum_length
from sonalyze.acoustics.decay import lundeby_window as _lundeby_window
from sonalyze.acoustics.filterbank import band_edges, filter_bands, mid_band, zero_phase_spread
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
    suspect : dict
        For each of ``BAND_PARAMETERS``, one entry per band: why a value that is there is
        doubtful (left out of :func:`spatial_average`), or None; None wherever the value is
        NaN (``reasons`` says why). By default, ISO 3382-2 Annex B's findings
        (:func:`sonalyze.acoustics.quality.decay_doubt`) for every parameter of a band whose
        decay is not straight.
    """

    bands: tuple[float, ...] | None
    fraction: int
    by_band: dict[str, Signal]
    correlation: dict[str, Signal]
    reasons: dict[str, tuple[str | None, ...]]
    drr: float
    psnr: float
    decays: tuple[EnergyDecay | None, ...] = field(default=(), repr=False, compare=False)
    suspect: dict[str, tuple[str | None, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.suspect:
            object.__setattr__(self, "suspect", self._annex_b())

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

    @property
    def xi(self) -> dict[str, Signal]:
        """ISO 3382-2 B.2's non-linearity of the ``EDT``, ``T20`` and ``T30`` fits per band, in
        per mille (:func:`sonalyze.acoustics.quality.nonlinearity`); NaN where there is no fit."""
        return {key: quality.nonlinearity(r) for key, r in self.correlation.items()}

    @property
    def curvature(self) -> Signal:
        """ISO 3382-2 B.3's curvature ``100 (T30 / T20 - 1)`` per band, in per cent; NaN where
        T20 or T30 is NaN."""
        return quality.curvature(self.by_band["T20"], self.by_band["T30"])

    @property
    def reverberation_time(self) -> Signal:
        """The reverberation time to read per band (s): T30, else T20, skipping suspect values
        (:func:`sonalyze.acoustics.quality.best_reverberation_time`); NaN where there is
        neither (``reasons`` says why)."""
        return self._best[0]

    @property
    def reverberation_source(self) -> tuple[str | None, ...]:
        """Per band, which parameter :attr:`reverberation_time` is, ``"T30"`` or ``"T20"``, or
        None where there is none."""
        return self._best[1]

    @cached_property
    def _best(self) -> tuple[Signal, tuple[str | None, ...]]:
        return quality.best_reverberation_time(self.by_band, self.suspect)

    def refuse_band(self, index: int, reason: str) -> RoomParameters:
        """A copy in which band ``index`` has no values: each of ``BAND_PARAMETERS`` (and its
        fit's correlation) NaN with ``reason`` as its reason, nothing suspect, no reverberation
        time. Its ``INR`` and decay stay, as measured.

        Parameters
        ----------
        index : int
            The band, counted from 0 in the order of ``bands``.
        reason : str
            Why, in words; stored as given (the analysis's own reasons begin with the band,
            e.g. ``"125 Hz band: ..."``).

        Raises
        ------
        ValueError
            For an index that is not a band's, or an empty reason.
        """
        self._check_band(index, reason)
        by_band = {key: values.copy() for key, values in self.by_band.items()}
        correlation = {key: values.copy() for key, values in self.correlation.items()}
        for key in BAND_PARAMETERS:
            by_band[key][index] = math.nan
        for values in correlation.values():
            values[index] = math.nan
        return replace(
            self,
            by_band=by_band,
            correlation=correlation,
            reasons={**self.reasons, **_set(self.reasons, BAND_PARAMETERS, index, reason)},
            suspect=_set(self.suspect, BAND_PARAMETERS, index, None),
        )

    def mark_suspect(
        self, index: int, reason: str, keys: Iterable[str] = BAND_PARAMETERS
    ) -> RoomParameters:
        """A copy in which the values ``keys`` of band ``index`` are suspect with ``reason``
        (a reason already there is kept; a NaN value stays unsuspected, ``reasons`` saying why
        it is missing); the reverberation time to read is chosen again.

        Parameters
        ----------
        index : int
            The band, counted from 0 in the order of ``bands``.
        reason : str
            Why, in words; stored as given.
        keys : iterable of str
            Some of ``BAND_PARAMETERS``; all of them by default.

        Raises
        ------
        ValueError
            For an index that is not a band's, an empty reason, or a key that is not one of
            ``BAND_PARAMETERS``.
        """
        self._check_band(index, reason)
        chosen = tuple(keys)
        unknown = sorted(set(chosen) - set(BAND_PARAMETERS))
        if unknown:
            raise ValueError(f"{unknown} are not band parameters: {BAND_PARAMETERS}")
        marked = [
            key
            for key in chosen
            if self.suspect[key][index] is None and math.isfinite(self.by_band[key][index])
        ]
        return replace(self, suspect={**self.suspect, **_set(self.suspect, marked, index, reason)})

    def _check_band(self, index: int, reason: str) -> None:
        count = self.by_band["T30"].size
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ValueError(f"a band index is an integer, not {index!r}")
        if not 0 <= index < count:
            raise ValueError(
                f"band index {index} is not one of the {count} bands (0 to {count - 1})"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("a reason in words is needed")

    def _annex_b(self) -> dict[str, tuple[str | None, ...]]:
        """ISO 3382-2 Annex B's findings per band (:func:`quality.decay_doubt`), for every
        band parameter that has a value."""
        if self.bands is None:
            names, widths = [_band_name(None)], [math.inf]
        else:
            names = [_band_name(nominal) for nominal in self.bands]
            edges = [band_edges(nominal, self.fraction) for nominal in self.bands]
            widths = [high - low for low, high in edges]
        xi, curve = self.xi, self.curvature
        times = np.where(np.isnan(self.by_band["T30"]), self.by_band["T20"], self.by_band["T30"])
        doubts = [
            quality.decay_doubt(
                name, {key: float(xi[key][i]) for key in ("T20", "T30")}, float(curve[i]), w * t
            )
            for i, (name, w, t) in enumerate(zip(names, widths, times, strict=True))
        ]
        return {
            key: tuple(
                doubt if math.isfinite(value) else None
                for doubt, value in zip(doubts, self.by_band[key], strict=True)
            )
            for key in BAND_PARAMETERS
        }

    def to_json(self) -> dict[str, Any]:
        """The values per band (and INR), the reasons, the fits' correlation and non-linearity,
        the curvature, the suspect values, the reverberation time to read, DRR and PSNR, ready
        for JSON: NaN and infinities become ``None`` (the reasons say why)."""
        return {
            "parameters": {key: json_numbers(values) for key, values in self.by_band.items()},
            "reasons": {key: list(self.reasons[key]) for key in BAND_PARAMETERS},
            "correlation": {key: json_numbers(v) for key, v in self.correlation.items()},
            "xi": {key: json_numbers(v) for key, v in self.xi.items()},
            "curvature": json_numbers(self.curvature),
            "suspect": {key: list(self.suspect[key]) for key in BAND_PARAMETERS},
            "reverberation_time": {
                "value": json_numbers(self.reverberation_time),
                "source": list(self.reverberation_source),
            },
            "drr": json_number(self.drr),
            "psnr": json_number(self.psnr),
        }


def _set(
    table: Mapping[str, tuple[str | None, ...]], keys: Iterable[str], index: int, entry: str | None
) -> dict[str, tuple[str | None, ...]]:
    """``table``'s entries for ``keys`` with band ``index`` set to ``entry``."""
    return {
        key: tuple(entry if i == index else old for i, old in enumerate(table[key])) for key in keys
    }


def json_numbers(values: ArrayLike) -> list[float | None]:
    """Numbers as a JSON list: ``None`` for NaN and infinities."""
    return [json_number(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def spatial_average(positions: Sequence[Mapping[str, Any]], bands: int) -> dict[str, Any]:
    """Per parameter and band, over the positions that have a value that is not suspect: the
    mean, the standard deviation (ddof 1), the count, and how many suspect values were left
    out, as ISO 3382-2 reports positions averaged; and the same of the reverberation time to
    read (``reverberation_time``), if the positions carry it.

    Parameters
    ----------
    positions : sequence of mapping
        Each position's :meth:`RoomParameters.to_json`: ``parameters`` is read, and ``suspect``
        and ``reverberation_time`` where present (results stored before them have neither).
    bands : int
        How many bands each parameter has (so that no positions average to ``None`` in each).

    Returns
    -------
    dict
        For each of ``BAND_PARAMETERS`` (and ``reverberation_time`` if any position has it):
        ``mean``, ``std`` and ``count`` of the values averaged, and ``left_out``, the suspect
        values left out, one entry per band.
    """
    average: dict[str, Any] = {}
    for key in BAND_PARAMETERS:
        table = _table([p["parameters"][key] for p in positions], bands)
        doubtful = np.array(
            [
                [v is not None for v in p.get("suspect", {}).get(key, [None] * bands)]
                for p in positions
            ],
            dtype=bool,
        ).reshape(len(positions), bands)
        average[key] = _statistics(
            np.where(doubtful, math.nan, table), doubtful & np.isfinite(table)
        )
    carrying = [p["reverberation_time"]["value"] for p in positions if "reverberation_time" in p]
    if carrying:
        table = _table(carrying, bands)
        average["reverberation_time"] = _statistics(table, np.zeros(table.shape, dtype=bool))
    return average


def _table(rows: Sequence[Sequence[float | None]], bands: int) -> Signal:
    """JSON rows of per-band numbers as a (rows, bands) array, NaN for ``None``."""
    table: Signal = np.array(
        [[math.nan if v is None else v for v in row] for row in rows], dtype=float
    ).reshape(len(rows), bands)
    return table


def _statistics(table: Signal, left_out: NDArray[np.bool_]) -> dict[str, Any]:
    """Mean, standard deviation (ddof 1) and count per column over the finite values, and how
    many values per column ``left_out`` marks."""
    present = np.isfinite(table)
    count = present.sum(axis=0)
    values = np.where(present, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=0) / count
        spread = np.where(present, table - mean, 0.0)
        std = np.sqrt((spread**2).sum(axis=0) / (count - 1))
    std[count < 2] = math.nan
    return {
        "mean": json_numbers(mean),
        "std": json_numbers(std),
        "count": count.tolist(),
        "left_out": left_out.sum(axis=0).tolist(),
    }


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


def _decay(
    ir: Signal, fs: int, window: float, before_onset: float = 0.0
) -> EnergyDecay | DecayError:
    try:
        return energy_decay(ir, fs, window, before_onset=before_onset)
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
        fits' correlation and non-linearity, the curvature, the reason for each NaN, the values
        ISO 3382-2 Annex B makes suspect, the reverberation time to read, and each band's decay.

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
    decays = [broadband]
    if bands is not None:
        # Zero-phase bands, from a record that starts early enough to hold every band's spread
        # of the direct sound before the onset: that energy counts as arriving at the onset. A
        # band's last spread is left out: the filter mixed the silence after the record into it.
        spreads = [round(zero_phase_spread(nominal, fraction) * fs) for nominal in bands]
        lead = max(spreads)
        rows = filter_bands(np.pad(response, (lead, 0)), fs, bands, fraction, zero_phase=True)
        origin = start + lead
        decays = [
            _decay(
                row[origin : row.size - spread],
                fs,
                window,
                float(np.sum(row[origin - spread : origin] ** 2)),
            )
            for row, window, spread in zip(rows, windows, spreads, strict=True)
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
