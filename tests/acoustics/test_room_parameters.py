"""room_parameters against closed-form answers: exponential decays with a known reverberation
time under noise at 50 and 70 dB peak-to-noise ratio, broadband and per octave band, a known
direct-to-reverberant ratio, NaN with a reason when the decay range is too small, and bad input.

Broadband, the decay's carrier is a random sign per sample, so that the squared response *is*
the exponential envelope and every parameter has an exact value: with ``q = 10 ** (-6 / (T fs))``
the energy per sample, the discrete sums give ``C = 10 log10((1 - q**N) / q**N)`` for a boundary
of ``N`` samples, ``D = 1 - q**N`` and ``Ts = q / (1 - q) / fs``. Per band, each octave carries
one decaying tone at its mid-band frequency with its own reverberation time, and band-limited
noise at the band's peak-to-noise ratio; a random carrier would not do, since a band-limited
random decay scatters its own reverberation time by more than the 3 % asked for. Under noise, a
band's energy ratios are compared with the same analysis of the noise-free response, so that
what is tested is the noise handling; noise-free, each band's energy parameters of a decaying
tone (with and without a direct sound) are compared with their closed forms, which the
zero-phase band filters keep to within a fraction of ISO 3382-1's just noticeable difference.

The result's Annex B figures, suspect values, reverberation time to read, JSON, and the copies
:meth:`RoomParameters.refuse_band` and :meth:`RoomParameters.mark_suspect` make are tested here
too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonalyze.acoustics import (
    OCTAVES,
    RoomParameters,
    filter_bands,
    mid_band,
    onset,
    room_parameters,
)
from sonalyze.acoustics.analysis import BAND_PARAMETERS
from sonalyze.acoustics.filterbank import zero_phase_spread

FS = 48_000
BANDS = OCTAVES[2:9]  # 125 Hz to 8 kHz
BAND_T = (1.4, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8)
SEEDS = (0, 1, 2)


def exponential(t60: float, seconds: float, seed: int) -> np.ndarray:
    """Unit-peak decay with random signs whose squared samples are exactly ``q ** n``."""
    n = np.arange(int(seconds * FS))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], n.size)
    return signs * 10 ** (-3 * n / (t60 * FS))


def white_noise(size: int, psnr_db: float, seed: int) -> np.ndarray:
    """Noise whose mean energy is ``psnr_db`` below a unit peak."""
    return np.random.default_rng(seed + 1000).standard_normal(size) * 10 ** (-psnr_db / 20)


def closed_form(t60: float) -> dict[str, float]:
    q = 10 ** (-6 / (t60 * FS))
    n50, n80 = round(0.05 * FS), round(0.08 * FS)
    return {
        "EDT": t60,
        "T20": t60,
        "T30": t60,
        "C50": 10 * math.log10((1 - q**n50) / q**n50),
        "C80": 10 * math.log10((1 - q**n80) / q**n80),
        "D50": 1 - q**n50,
        "Ts": q / (1 - q) / FS,
    }


def assert_within_tolerances(actual: dict[str, float], expected: dict[str, float]) -> None:
    """The acceptance tolerances: 3 % for the decay times, 0.1 dB for clarity, 0.005 for D50,
    2 ms for the centre time."""
    for key in ("EDT", "T20", "T30"):
        assert actual[key] == pytest.approx(expected[key], rel=0.03), key
    for key in ("C50", "C80"):
        assert actual[key] == pytest.approx(expected[key], abs=0.1), key
    assert actual["D50"] == pytest.approx(expected["D50"], abs=0.005)
    assert actual["Ts"] == pytest.approx(expected["Ts"], abs=0.002)


def broadband_values(ir: np.ndarray) -> dict[str, float]:
    result = room_parameters(ir, FS)
    return {key: float(np.asarray(result[key])[0]) for key in closed_form(1.0)}


@pytest.mark.parametrize("psnr", [50, 70])
@pytest.mark.parametrize("t60", [0.3, 1.0, 2.0])
def test_broadband_decay_under_noise_gives_the_closed_form(psnr: float, t60: float) -> None:
    seconds = 1.4 * t60 * psnr / 60 + 0.3  # the decay reaches the noise well before the end
    pre_delay = np.zeros(int(0.02 * FS))
    for seed in SEEDS:
        clean = np.concatenate([pre_delay, exponential(t60, seconds, seed)])
        ir = clean + white_noise(clean.size, psnr, seed)
        assert onset(ir) == pre_delay.size
        assert_within_tolerances(broadband_values(ir), closed_form(t60))


def test_a_noise_free_decay_gives_the_closed_form_exactly() -> None:
    """No noise floor: nothing subtracted, the record integrated whole, the decay after its end
    extrapolated; every value matches the discrete closed form to rounding."""
    ir = exponential(0.8, 1.0, seed=3)  # ends 7.5 dB before a 60 dB decay would
    result = room_parameters(ir, FS)
    expected = closed_form(0.8)
    for key, value in expected.items():
        assert float(np.asarray(result[key])[0]) == pytest.approx(value, rel=1e-6), key
    assert result["INR"][0] == math.inf
    assert result["PSNR"] == math.inf


def banded_room(psnr: float, seed: int, seconds: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """One decaying tone per octave at its mid-band frequency (reverberation time ``BAND_T``),
    and noise filtered into each band at ``psnr`` below the band's unit peak."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    band_noise = filter_bands(rng.standard_normal(t.size), FS, BANDS)
    clean = np.zeros(t.size)
    noise = np.zeros(t.size)
    for nominal, t60, row in zip(BANDS, BAND_T, band_noise, strict=True):
        phase = rng.uniform(0, 2 * np.pi)
        clean += 10 ** (-3 * t / t60) * np.sin(2 * np.pi * mid_band(nominal, 1) * t + phase)
        noise += row / np.sqrt(np.mean(row**2)) * 10 ** (-psnr / 20)
    return clean, noise


@pytest.mark.parametrize("psnr", [50, 70])
def test_octave_band_decays_under_noise_give_their_reverberation_times(psnr: float) -> None:
    for seed in SEEDS:
        clean, noise = banded_room(psnr, seed)
        noisy = room_parameters(clean + noise, FS, BANDS)
        reference = room_parameters(clean, FS, BANDS)
        for key in ("EDT", "T20", "T30"):
            np.testing.assert_allclose(noisy[key], BAND_T, rtol=0.03, err_msg=key)
        for key, tolerance in (("C50", 0.1), ("C80", 0.1), ("D50", 0.005), ("Ts", 0.002)):
            np.testing.assert_allclose(noisy[key], reference[key], atol=tolerance, err_msg=key)
        assert all(reason is None for reasons in noisy.reasons.values() for reason in reasons)


def test_third_octave_bands_give_each_tone_its_reverberation_time() -> None:
    t = np.arange(2 * FS) / FS
    tones = {400: 1.2, 500: 0.9, 630: 0.6}  # third-octave mid-band frequencies, reverberation
    clean = sum(
        10 ** (-3 * t / t60) * np.sin(2 * np.pi * mid_band(nominal, 3) * t)
        for nominal, t60 in tones.items()
    )
    noise = white_noise(t.size, 80, seed=0)
    result = room_parameters(clean + noise, FS, list(tones), fraction=3)
    assert result.fraction == 3
    for key in ("EDT", "T20"):  # T30 reaches where the neighbouring tones leak in (4 %)
        np.testing.assert_allclose(result[key], list(tones.values()), rtol=0.03, err_msg=key)


def test_band_energy_ratios_of_a_noise_free_response_follow_their_definitions() -> None:
    """The reference of the test above, against the definitions summed directly over each
    zero-phase band from the broadband onset, the band's energy within its filter's spread
    before the onset counted at the onset."""
    clean, _ = banded_room(70, seed=0)
    result = room_parameters(clean, FS, BANDS)
    lead = round(zero_phase_spread(BANDS[0], 1) * FS)  # the widest spread: the lowest band's
    clean = np.pad(clean, (lead, 0))  # the tones start at once: room for their spread before
    start = onset(clean)
    n50, n80 = round(0.05 * FS), round(0.08 * FS)
    for index, row in enumerate(filter_bands(clean, FS, BANDS, zero_phase=True)):
        energy = row[start:] ** 2
        energy[0] += np.sum(
            row[start - round(zero_phase_spread(BANDS[index], 1) * FS) : start] ** 2
        )
        total = energy.sum()
        expected = {
            "C50": 10 * np.log10(energy[:n50].sum() / energy[n50:].sum()),
            "C80": 10 * np.log10(energy[:n80].sum() / energy[n80:].sum()),
            "D50": energy[:n50].sum() / total,
            "Ts": float(np.arange(energy.size) @ energy) / total / FS,
        }
        for key, value in expected.items():
            assert result[key][index] == pytest.approx(value, rel=1e-3, abs=1e-4), key


def tone_closed_form(t60: float, direct: float = 0.0) -> dict[str, float]:
    """C50, C80, D50 and Ts of a decaying tone's energy envelope ``exp(-r t)`` (``r = 6 ln 10 /
    T``, integrals over continuous time) with ``direct`` times its energy arriving at 0."""
    r = 6 * math.log(10) / t60
    early50, early80 = 1 - math.exp(-r * 0.05), 1 - math.exp(-r * 0.08)
    return {
        "C50": 10 * math.log10((direct + early50) / (1 - early50)),
        "C80": 10 * math.log10((direct + early80) / (1 - early80)),
        "D50": (direct + early50) / (direct + 1),
        "Ts": 1 / r / (direct + 1),
    }


JND = {"C50": 1.0, "C80": 1.0, "D50": 0.05, "Ts": 0.010}  # ISO 3382-1 Table A.1


@pytest.mark.parametrize("t60", [0.3, 1.0, 2.0])
def test_each_bands_energy_parameters_of_a_decaying_tone_are_its_closed_form(t60: float) -> None:
    """A tone at each band's mid-band frequency, decaying from its start 40 ms into the record:
    every band's C50, C80, D50 and Ts within half ISO 3382-1's just noticeable difference
    (1 dB, 0.05, 10 ms) of the closed form. A causal filter's delay would put the 125 Hz band's
    C50 1.7 dB low at 0.3 s, and pyfar's order-14 bank 5 dB low at 1 s."""
    t = np.arange(int(max(1.5, 1.5 * t60) * FS)) / FS
    expected = tone_closed_form(t60)
    for index, nominal in enumerate(BANDS):
        ir = np.zeros(round(0.04 * FS) + t.size)
        ir[-t.size :] = 10 ** (-3 * t / t60) * np.sin(2 * np.pi * mid_band(nominal, 1) * t + index)
        result = room_parameters(ir, FS, [nominal])
        for key, value in expected.items():
            assert result[key][0] == pytest.approx(value, abs=JND[key] / 2), (nominal, key)


@pytest.mark.parametrize("t60", [0.5, 1.5])
def test_a_direct_sound_counts_whole_in_each_bands_early_energy(t60: float) -> None:
    """An impulse with the band's tone energy (0 dB direct-to-reverberant ratio in the band):
    the zero-phase filter spreads half its band energy before the onset, and that half counts
    as arriving at the onset; were it lost, C50 would read 1.3-2 dB low."""
    t = np.arange(2 * FS) / FS
    lead = 2000
    expected = tone_closed_form(t60, direct=1.0)
    rate = 6 * math.log(10) / t60
    impulse = np.zeros(lead + t.size)
    impulse[lead] = 1.0
    for nominal in BANDS:
        tone = 10 ** (-3 * t / t60) * np.sin(2 * np.pi * mid_band(nominal, 1) * t + 0.3)
        unit = float(np.sum(filter_bands(impulse, FS, [nominal], zero_phase=True) ** 2))
        ir = np.concatenate([np.zeros(lead), tone])
        ir[lead] += math.sqrt(0.5 / rate * FS / unit)  # the tone's energy, 0.5 / r * fs
        result = room_parameters(ir, FS, [nominal])
        for key, value in expected.items():
            assert result[key][0] == pytest.approx(value, abs=JND[key] / 2), (nominal, key)


@pytest.mark.parametrize("psnr", [45, 60])
@pytest.mark.parametrize("drr", [-6.0, 0.0, 6.0])
def test_a_known_direct_to_reverberant_ratio_is_recovered(psnr: float, drr: float) -> None:
    """A direct sound as a loudspeaker radiates it (a 1 ms pulse), then from 5 ms after its
    start a decay whose energy is ``drr`` below the pulse's."""
    t60 = 0.6
    pulse = np.hanning(48)
    direct = float(pulse @ pulse)
    q = 10 ** (-6 / (t60 * FS))
    for seed in SEEDS:
        tail = exponential(t60, 1.4 * t60 * psnr / 60 + 0.3, seed)
        tail *= math.sqrt(direct * 10 ** (-drr / 10) * (1 - q))
        gap = np.zeros(round(0.005 * FS) - pulse.size)
        clean = np.concatenate([np.zeros(500), pulse, gap, tail])
        peak = float(np.max(clean**2))
        noise = white_noise(clean.size, psnr, seed) * math.sqrt(peak)
        result = room_parameters(clean + noise, FS)
        assert result["DRR"] == pytest.approx(drr, abs=0.2)
        assert result["PSNR"] == pytest.approx(psnr, abs=0.5)


def test_too_little_decay_range_gives_nan_with_the_reason() -> None:
    """At 40 dB the decay reaches the noise before T30's evaluation range ends."""
    ir = exponential(1.0, 1.2, seed=0)
    result = room_parameters(ir + white_noise(ir.size, 40, seed=0), FS)
    assert math.isnan(result["T30"][0])
    (reason,) = result.reasons["T30"]
    assert reason is not None
    assert "broadband" in reason and "T30 needs 45 dB" in reason
    assert result["T20"][0] == pytest.approx(1.0, rel=0.03)
    assert result.reasons["T20"] == (None,)


def test_noise_without_a_decay_gives_nan_everywhere_with_the_reason() -> None:
    noise = np.random.default_rng(5).standard_normal(FS)
    result = room_parameters(noise, FS, [500, 1000])
    for key in ("EDT", "T20", "T30", "C50", "C80", "D50", "Ts"):
        assert np.all(np.isnan(result[key])), key
        assert all(reason and "decay" in reason for reason in result.reasons[key]), key
    assert "500 Hz band" in str(result.reasons["T30"][0])
    assert math.isnan(float(result["DRR"]))


def test_the_result_is_a_mapping_of_every_parameter() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 70, seed=0)
    result = room_parameters(ir, FS, [250, 500, 1000])
    assert set(result) == {"EDT", "T20", "T30", "C50", "C80", "D50", "Ts", "INR", "DRR", "PSNR"}
    assert len(result) == 10
    assert result["T30"].shape == (3,)
    assert isinstance(result["DRR"], float)
    assert result.bands == (250, 500, 1000)
    assert set(result.correlation) == {"EDT", "T20", "T30"}
    assert np.all(result.correlation["T30"] < -0.99)


@pytest.mark.parametrize(
    ("ir", "fs", "bands", "fraction", "message"),
    [
        ([], FS, None, 1, "is empty"),
        ([1.0, np.nan, 0.5], FS, None, 1, "NaN or infinite"),
        ([1.0, np.inf, 0.5], FS, None, 1, "NaN or infinite"),
        (np.ones((2, 100)), FS, None, 1, "one channel"),
        (np.zeros(FS), FS, None, 1, "all zeros"),
        (np.ones(FS), 0, None, 1, "positive integer"),
        (np.ones(FS), 44_100.5, None, 1, "positive integer"),
        (np.ones(FS), FS, [1100], 1, "not a nominal 1/1-octave"),
        (np.ones(FS), FS, [500], 2, "fraction must be 1"),
        (np.ones(FS), FS, [], 1, "bands is empty"),
        (np.ones(FS), 16_000, [8000], 1, "above half the sample rate"),
        (exponential(0.1, 0.1, 0), FS, [125], 1, "125 Hz band needs at least 164 ms"),
        (exponential(0.1, 0.2, 0), FS, None, 1, "broadband needs at least 300 ms"),
    ],
)
def test_bad_input_raises_a_clear_value_error(
    ir: object, fs: object, bands: list[float] | None, fraction: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        room_parameters(ir, fs, bands, fraction)  # type: ignore[arg-type]


def test_the_input_is_left_unchanged() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 60, seed=0)
    copy = ir.copy()
    room_parameters(ir, FS, [1000])
    np.testing.assert_array_equal(ir, copy)


def test_the_fits_non_linearity_and_the_curvature_are_iso_3382_2_annex_bs() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 70, seed=0)
    result = room_parameters(ir, FS, [250, 1000])
    assert set(result.xi) == {"EDT", "T20", "T30"}
    for key, r in result.correlation.items():
        np.testing.assert_allclose(result.xi[key], 1000 * (1 - r**2), err_msg=key)
    expected = 100 * (np.asarray(result["T30"]) / np.asarray(result["T20"]) - 1)
    np.testing.assert_allclose(result.curvature, expected)
    short = room_parameters(exponential(1.0, 1.2, 0) + white_noise(int(1.2 * FS), 40, 0), FS)
    assert math.isnan(short.curvature[0])  # no T30, no curvature
    assert math.isnan(short.xi["T30"][0]) and short.xi["T20"][0] < 10.0


def test_the_json_keeps_its_keys_and_adds_the_quality() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 70, seed=0)
    result = room_parameters(ir, FS, [250, 1000]).refuse_band(0, "250 Hz band: refused")
    data = result.to_json()
    assert set(data) == {
        "parameters", "reasons", "correlation", "drr", "psnr",
        "xi", "curvature", "suspect", "reverberation_time",
    }  # fmt: skip
    assert set(data["xi"]) == {"EDT", "T20", "T30"}
    assert data["xi"]["T30"][0] is None and data["xi"]["T30"][1] < 10.0
    assert data["curvature"][0] is None and abs(data["curvature"][1]) < 10.0
    assert data["suspect"] == {key: [None, None] for key in BAND_PARAMETERS}
    assert data["reverberation_time"]["source"] == [None, "T30"]
    assert data["parameters"]["T30"][0] is None
    assert data["reasons"]["T30"] == ["250 Hz band: refused", None]


def test_refusing_a_band_empties_it_and_leaves_the_others() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 70, seed=0)
    result = room_parameters(ir, FS, [250, 500, 1000])
    refused = result.refuse_band(1, "500 Hz band: the speaker cannot play it")
    for key in BAND_PARAMETERS:
        assert math.isnan(refused[key][1]), key
        assert refused.reasons[key][1] == "500 Hz band: the speaker cannot play it"
        assert refused.suspect[key][1] is None
        np.testing.assert_array_equal(refused[key][[0, 2]], result[key][[0, 2]])
        assert refused.reasons[key][0] is None
    assert all(math.isnan(r[1]) for r in refused.correlation.values())
    assert refused["INR"][1] == result["INR"][1]  # as measured
    assert refused.decays[1] is result.decays[1]
    assert math.isfinite(result["T30"][1])  # the original is unchanged


def test_marking_a_band_suspect_keeps_its_values_and_a_reason_already_there() -> None:
    ir = exponential(0.5, 1.0, seed=0) + white_noise(FS, 70, seed=0)
    result = room_parameters(ir, FS, [250, 500])
    marked = result.mark_suspect(0, "250 Hz band: first", keys=("T30", "C50"))
    again = marked.mark_suspect(0, "250 Hz band: second")
    assert again.suspect["T30"][0] == "250 Hz band: first"
    assert again.suspect["C50"][0] == "250 Hz band: first"
    assert again.suspect["EDT"][0] == "250 Hz band: second"
    assert again.suspect["T30"][1] is None
    for key in BAND_PARAMETERS:
        np.testing.assert_array_equal(again[key], result[key])  # kept, not NaN
    assert again.reasons == result.reasons


def test_a_missing_value_is_never_suspect() -> None:
    ir = exponential(1.0, 1.2, seed=0) + white_noise(int(1.2 * FS), 40, seed=0)
    marked = room_parameters(ir, FS).mark_suspect(0, "broadband: doubtful")
    assert math.isnan(marked["T30"][0]) and marked.suspect["T30"] == (None,)
    assert marked.suspect["T20"] == ("broadband: doubtful",)


def test_a_result_built_without_suspect_gets_annex_bs_findings() -> None:
    """Values as a double-slope decay gives them: T30 30 % longer than T20."""
    nan = np.array([math.nan])
    values = {key: np.array([1.0]) for key in BAND_PARAMETERS} | {"T30": np.array([1.3])}
    correlation = {key: np.array([-0.9999]) for key in ("EDT", "T20", "T30")}
    reasons: dict[str, tuple[str | None, ...]] = {key: (None,) for key in BAND_PARAMETERS}
    built = RoomParameters(None, 1, {**values, "INR": nan}, correlation, reasons, 0.0, 60.0)
    assert all(
        r is not None and r.startswith("broadband: the decay is curved (C 30 %")
        for key in BAND_PARAMETERS
        for r in built.suspect[key]
    )
    assert built.reverberation_source == (None,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.refuse_band(3, "why"), "not one of the 2 bands"),
        (lambda r: r.refuse_band(-1, "why"), "not one of the 2 bands"),
        (lambda r: r.refuse_band(True, "why"), "an integer"),
        (lambda r: r.mark_suspect(0, " "), "a reason in words"),
        (lambda r: r.mark_suspect(0, "why", keys=("T30", "DRR")), "not band parameters"),
    ],
    ids=["past-the-end", "negative", "bool", "blank-reason", "unknown-key"],
)
def test_bad_band_findings_are_refused(call: object, message: str) -> None:
    result = room_parameters(exponential(0.5, 1.0, seed=0), FS, [250, 500])
    with pytest.raises(ValueError, match=message):
        call(result)  # type: ignore[operator]
