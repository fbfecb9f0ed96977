"""The conditions real phones produce, each simulated with the truth known
(``benchmarks/phone_conditions.py``): every value the analysis reports without doubt is within
1 JND of the room's own, every missing one has its reason, the flag that names the cause is
raised, and the README's table is what the code produces."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import phone_conditions as pc
from sonalyze.acoustics import RecordingAnalysis
from sonalyze.acoustics.analysis import BAND_PARAMETERS

README = Path(__file__).resolve().parents[2] / "README.md"
NAMES = [condition.name for condition in pc.CONDITIONS]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, pc.Outcome]:
    return {condition.name: pc.evaluate(condition) for condition in pc.CONDITIONS}


def analysed(outcomes: dict[str, pc.Outcome], name: str) -> RecordingAnalysis:
    return outcomes[name].analysed


@pytest.mark.parametrize("index", range(len(NAMES)), ids=NAMES)
def test_what_is_reported_without_doubt_is_within_one_jnd_and_every_gap_has_a_reason(
    outcomes: dict[str, pc.Outcome], index: int
) -> None:
    outcome = outcomes[NAMES[index]]
    if outcome.refused:
        return
    assert outcome.worst <= 1.0, pc.details(outcome)
    result = outcome.analysed.parameters
    for key in BAND_PARAMETERS:
        for value, reason in zip(result[key], result.reasons[key], strict=True):
            assert math.isfinite(value) == (reason is None), (key, value, reason)


def test_a_clean_measurement_raises_no_flag(outcomes: dict[str, pc.Outcome]) -> None:
    assert analysed(outcomes, NAMES[0]).flags == ()


@pytest.mark.parametrize("name", ["Speech", "A door slam"])
def test_a_disturbance_during_one_sweep_marks_its_bands_doubtful(
    outcomes: dict[str, pc.Outcome], name: str
) -> None:
    index = next(i for i, n in enumerate(NAMES) if n.startswith(name))
    analysis = analysed(outcomes, NAMES[index])
    assert "decay_not_straight" in analysis.flags
    doubts = [r for key in ("T20", "T30") for r in analysis.parameters.suspect[key] if r]
    assert doubts and all("not straight" in r or "curv" in r for r in doubts)
    # Played three times, the disturbed repetition (the first) is dropped instead.
    repeated = analysed(outcomes, NAMES[index + 1])
    assert repeated.flags == ("disturbed",)
    assert list(repeated.dropped) == [0] and repeated.kept == (1, 2)


def test_noise_is_never_taken_for_distortion_and_distortion_is(
    outcomes: dict[str, pc.Outcome],
) -> None:
    linear = analysed(outcomes, "A linear speaker at 30 dB peak-to-noise ratio")
    assert "non_linear" not in linear.flags
    distorting = analysed(outcomes, "A speaker with harmonics 23 dB below the response")
    assert "non_linear" in distorting.flags
    assert distorting.harmonics.level_db == pytest.approx(-23.0, abs=1.0)


def test_a_band_the_phones_cannot_reproduce_is_refused(outcomes: dict[str, pc.Outcome]) -> None:
    analysis = analysed(outcomes, next(n for n in NAMES if n.startswith("Phone microphone")))
    assert "band_limited" in analysis.flags
    assert all("barely reproduces" in analysis.parameters.reasons[k][0] for k in BAND_PARAMETERS)


def test_a_late_start_is_found_and_costs_only_the_bands_it_missed(
    outcomes: dict[str, pc.Outcome],
) -> None:
    slightly, later = (analysed(outcomes, n) for n in NAMES if n.startswith("Recording began"))
    assert slightly.flags == ()  # the sweep had reached 53 Hz, below every band
    assert slightly.start_s == pytest.approx(-0.1 + 3.3 / 343, abs=0.002)
    assert later.flags == ("late_start",)
    assert later.start_s == pytest.approx(-1.9 + 3.3 / 343, abs=0.002)
    assert all("when it had passed 14" in later.parameters.reasons[k][0] for k in BAND_PARAMETERS)


def test_a_mislabelled_sample_rate_is_refused(outcomes: dict[str, pc.Outcome]) -> None:
    assert outcomes["44.1 kHz data declared as 48 kHz"].refused == "sample_rate_mismatch"


@pytest.mark.parametrize("ppm", [200, -200])
def test_clock_drift_is_measured_and_corrected(outcomes: dict[str, pc.Outcome], ppm: int) -> None:
    name = f"Microphone clock 200 ppm {'fast' if ppm > 0 else 'slow'}"
    outcome = outcomes[name]
    assert analysed(outcomes, name).clock_drift_ppm == pytest.approx(ppm, abs=5)
    assert abs(outcome.drr_jnd * pc.DRR_JND) <= 0.5


def test_a_clipping_speaker_is_flagged(outcomes: dict[str, pc.Outcome]) -> None:
    analysis = analysed(outcomes, "Speaker phone clipping 6 dB over (aliased harmonics)")
    assert "non_linear" in analysis.flags


def test_a_noiseless_response_is_analysed_whole(outcomes: dict[str, pc.Outcome]) -> None:
    analysis = analysed(outcomes, "No noise at all (a simulation through the sweep path)")
    assert not any(r for key in BAND_PARAMETERS for r in analysis.parameters.reasons[key])


def test_at_50_db_the_reverberation_time_to_read_falls_back_and_says_so(
    outcomes: dict[str, pc.Outcome],
) -> None:
    analysis = analysed(outcomes, "50 dB peak-to-noise ratio, typical of phones")
    result = analysis.parameters
    assert "psnr_low_for_t30" in analysis.flags
    missing = [i for i, value in enumerate(result["T30"]) if math.isnan(value)]
    assert missing
    assert all(result.reverberation_source[i] == "T20" for i in missing)
    assert np.all(np.isfinite(result.reverberation_time))


def test_the_readmes_table_is_what_the_code_produces(outcomes: dict[str, pc.Outcome]) -> None:
    text = README.read_text()
    found = re.search(r"^\| Condition \|.*?(?=\n\n)", text, flags=re.S | re.M)
    assert found, "the README has no phone-conditions table"
    expected = pc.table([outcomes[name] for name in NAMES])
    assert found.group(0) == expected, (
        "regenerate: python3.11 -m uv run python benchmarks/phone_conditions.py"
    )
