"""The lobby events: what the event log records and what phones receive, by type.

Each event type has one payload model here. The lobby service builds its events through
:func:`event`, so nothing enters the log that the protocol document does not describe, and the
gateway forwards the payloads unchanged. A measurement's analysis result is typed here too:
:class:`MeasurementResult` as stored, :class:`MeasurementSummary` as ``analysis.result`` says it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sonalyze.domain import JobState, ParticipantStatus, Presence, Role, WorkflowState
from sonalyze.measurement_api import MeasurementStarted
from sonalyze.storage_api import EventIn


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LobbyCreated(_Event):
    """A lobby was created (its first event, seq 1)."""

    host_device_id: UUID
    name: str | None = None


class ParticipantJoined(_Event):
    """A device joined the lobby."""

    device_id: UUID


class ParticipantLeft(_Event):
    """A device left; the host passes on when the host leaves."""

    device_id: UUID
    host_device_id: UUID | None = Field(
        None, description="The host afterwards; absent when the last member left."
    )


class ParticipantPresence(_Event):
    """A member's connection came or went (after the presence grace)."""

    device_id: UUID
    presence: Presence


class RoleUpdated(_Event):
    """A member's role or readiness changed."""

    device_id: UUID
    role: Role | None
    status: ParticipantStatus


class LobbyLocked(_Event):
    """The host locked or unlocked the lobby."""

    locked: bool


class WorkflowChanged(_Event):
    """The measurement workflow moved."""

    state: WorkflowState
    previous: WorkflowState


class RecordingReceived(_Event):
    """A microphone's recording arrived whole and is usable."""

    measurement_id: UUID
    device_id: UUID


class RecordingInvalid(_Event):
    """A microphone's recording arrived whole but cannot be used; the others go on."""

    measurement_id: UUID
    device_id: UUID
    reason: str = Field(
        description="undecodable, format_mismatch, sample_rate, non_finite, silent, clipped, "
        "too_short or too_long."
    )
    message: str


class AnalysisProgress(_Event):
    """A measurement's analysis has analysed ``done`` of ``total`` recordings."""

    measurement_id: UUID
    analysis_id: UUID
    done: int
    total: int


# A measurement's analysis result -----------------------------------------------------------------


class _Result(_Event):
    """Numbers are finite or null: a value the response cannot support is null, never NaN."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


PerBand = list[float | None]


class BandParameters(_Result):
    """One impulse response's ISO 3382-1 parameters, one value per band in the order of
    ``bands``; null where the response cannot support the value (``reasons`` says why)."""

    EDT: PerBand = Field(description="Early decay time, s: the decay from 0 to -10 dB, x 6.")
    T20: PerBand = Field(description="Reverberation time, s, from the decay from -5 to -25 dB.")
    T30: PerBand = Field(description="Reverberation time, s, from the decay from -5 to -35 dB.")
    C50: PerBand = Field(description="Clarity, dB: the first 50 ms's energy re the rest's.")
    C80: PerBand = Field(description="Clarity, dB: the first 80 ms's energy re the rest's.")
    D50: PerBand = Field(description="Definition, 0-1: the first 50 ms's share of the energy.")
    Ts: PerBand = Field(description="Centre time, s: the energy's centre of gravity.")
    INR: PerBand = Field(
        description="Impulse-to-noise ratio, dB: the late decay at the onset above the noise "
        "(Lundeby); null when the response reaches no noise floor."
    )


class ParameterReasons(_Result):
    """Per parameter and band: why the value is null, or null where there is a value."""

    EDT: list[str | None] = Field(description="Why EDT is null, per band.")
    T20: list[str | None] = Field(description="Why T20 is null, per band.")
    T30: list[str | None] = Field(description="Why T30 is null, per band.")
    C50: list[str | None] = Field(description="Why C50 is null, per band.")
    C80: list[str | None] = Field(description="Why C80 is null, per band.")
    D50: list[str | None] = Field(description="Why D50 is null, per band.")
    Ts: list[str | None] = Field(description="Why Ts is null, per band.")


class FitCorrelation(_Result):
    """The correlation coefficient of each decay time's straight-line fit, per band (ISO
    3382-2 Annex B): near -1 for a straight decay; null where there was no fit."""

    EDT: PerBand = Field(description="Of the fit from 0 to -10 dB.")
    T20: PerBand = Field(description="Of the fit from -5 to -25 dB.")
    T30: PerBand = Field(description="Of the fit from -5 to -35 dB.")


class AnalysisFlag(StrEnum):
    """A warning about one microphone's analysis.

    - ``psnr_low_for_t30``: some band's decay is too short above the noise for T30 (ISO 3382-1
      asks for 45 dB; T30 is null there, ``reverberation_time`` offers T20 where it can).
    - ``decay_not_straight``: some band's decay is not straight enough (ISO 3382-2 Annex B: its
      fit's non-linearity or the curvature beyond the limits), as a noise burst during the
      sweep or a coupled space makes it; ``suspect`` names the band and the figures, and the
      spatial average leaves those values out.
    - ``band_limited``: the speaker or microphone barely reproduces some band; its values are
      null (``reasons``) or suspect (``suspect``).
    - ``late_start``: the recording began after the sweep did, late enough to miss part of a
      band: the bands it missed are null or, with repeated sweeps, the incomplete first
      repetition is left out (``repetitions``). A start that missed only frequencies below
      every band is exact and not flagged (``start_s`` is negative).
    - ``disturbed``: a repetition of the sweep was disturbed and left out (``repetitions``).
    - ``non_linear``: the speaker's harmonic distortion reaches within 26 dB of the linear
      response (5 % THD): it is separated from the response, but the speaker plays too loud.
    """

    psnr_low_for_t30 = "psnr_low_for_t30"
    decay_not_straight = "decay_not_straight"
    band_limited = "band_limited"
    late_start = "late_start"
    disturbed = "disturbed"
    non_linear = "non_linear"


class DecayStraightness(_Result):
    """ISO 3382-2 Annex B's non-linearity parameter of each decay fit, per band, in per
    mille: ``1000 (1 - r**2)`` of the fit's correlation ``r``; null where there was no fit."""

    EDT: PerBand = Field(description="Of the fit from 0 to -10 dB.")
    T20: PerBand = Field(description="Of the fit from -5 to -25 dB.")
    T30: PerBand = Field(description="Of the fit from -5 to -35 dB.")


class ParameterDoubts(_Result):
    """Per parameter and band: why a value that is there is doubtful (it is left out of the
    spatial average), or null."""

    EDT: list[str | None] = Field(description="Why EDT is doubtful, per band.")
    T20: list[str | None] = Field(description="Why T20 is doubtful, per band.")
    T30: list[str | None] = Field(description="Why T30 is doubtful, per band.")
    C50: list[str | None] = Field(description="Why C50 is doubtful, per band.")
    C80: list[str | None] = Field(description="Why C80 is doubtful, per band.")
    D50: list[str | None] = Field(description="Why D50 is doubtful, per band.")
    Ts: list[str | None] = Field(description="Why Ts is doubtful, per band.")


class ReverberationTime(_Result):
    """The reverberation time to read, per band: T30, else T20 (ISO 3382-2's ranges; no
    shorter one stands in for them), skipping doubtful values; with which one it is."""

    value: PerBand = Field(description="Seconds; null where the band has none.")
    source: list[str | None] = Field(description="Which parameter it is, per band.")


class Repetitions(_Result):
    """The sweep's repetitions: those averaged, and those left out with the reason."""

    kept: list[int] = Field(description="Indexes (from 0) of the repetitions averaged.")
    dropped: dict[int, str] = Field(description="Repetitions left out, with the reason.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What comparing them found beyond that: most disturbed, or the room or "
        "the clocks changing between them.",
    )


class MicrophoneSummary(_Result):
    """One microphone's analysis, as the lobby hears it in ``analysis.result``."""

    parameters: BandParameters = Field(description="The parameters per band.")
    reasons: ParameterReasons = Field(description="Why a parameter is null, per band.")
    correlation: FitCorrelation = Field(description="The decay fits' correlation per band.")
    drr: float | None = Field(
        description="Direct-to-reverberant ratio of the broadband response, dB."
    )
    psnr: float | None = Field(
        description="Peak-to-noise ratio of the broadband response, dB; null without a noise floor."
    )
    harmonic_level_db: float | None = Field(
        description="The sweep's harmonics 2-5 re the linear response, dB, the noise in their "
        "lags taken off; null for an uploaded impulse response, or when they do not stand out "
        "of the noise (harmonic_floor_db)."
    )
    harmonic_floor_db: float | None = Field(
        None, description="The lowest harmonic level the noise let the analysis see, dB."
    )
    xi: DecayStraightness | None = Field(
        None, description="Each decay fit's non-linearity (ISO 3382-2 Annex B), per mille."
    )
    curvature: PerBand | None = Field(
        None, description="ISO 3382-2 Annex B's curvature, 100 (T30 / T20 - 1) %, per band."
    )
    suspect: ParameterDoubts | None = Field(
        None, description="Values that are there but doubtful, per band, with the reason."
    )
    reverberation_time: ReverberationTime | None = Field(
        None, description="The reverberation time to read per band, and which one it is."
    )
    leakage: PerBand | None = Field(
        None,
        description="Per band, the share of its filter's output from outside the band (the "
        "speaker's and microphone's band limits).",
    )
    clock_drift_ppm: float | None = Field(
        None,
        description="The microphone's clock re the speaker's, ppm (positive: it runs fast), "
        "corrected before the analysis; null where nothing was corrected (the estimate too "
        "uncertain, or one sweep too narrow to show it).",
    )
    start_s: float | None = Field(
        None,
        description="When the sweep's direct sound arrived in the recording, s; negative if "
        "the recording began after the sweep did.",
    )
    repetitions: Repetitions | None = Field(
        None, description="The sweep's repetitions averaged and dropped."
    )
    flags: list[AnalysisFlag] = Field(description="Warnings (AnalysisFlag); empty if none.")
    response_blob_id: UUID | None = Field(
        description="The stored impulse response the analysis used, a 32-bit float WAV at the "
        "sweep's sample rate (a recorded sweep's from just before its peak, an uploaded one as "
        "it came): GET /v1/measurements/{measurement_id}/responses/{device_id}.wav with the "
        "device token. Null if it was not stored."
    )


class FrequencyResponse(_Result):
    """The impulse response's level over frequency, smoothed over third octaves."""

    frequencies: PerBand = Field(description="Hz, third-octave spaced from 50 Hz.")
    level_db: PerBand = Field(description="Level at each frequency, dB re unity gain.")


class DecayCurves(_Result):
    """Each band's noise-compensated Schroeder decay in dB, for a chart."""

    step_s: float = Field(gt=0, description="Time between the points, s.")
    levels_db: list[PerBand] = Field(
        description="Per band, in the order of bands: the energy still to come re the energy "
        "at the onset, dB (0 first), at 0, step_s, 2 step_s, ... s after the broadband onset, "
        "until the decay meets the noise; null where the noise subtraction leaves no energy; "
        "empty for a band without a usable decay (reasons says why)."
    )


class MicrophoneResult(MicrophoneSummary):
    """One microphone's analysis as stored: the summary, the frequency response and the decay
    curves."""

    frequency_response: FrequencyResponse = Field(description="Third-octave smoothed.")
    decay_curves: DecayCurves = Field(description="Per band, sampled for a chart.")


class BandStatistics(_Result):
    """One parameter over the microphones that have a value, per band (ISO 3382-2)."""

    mean: PerBand = Field(description="Mean per band; null where no microphone has a value.")
    std: PerBand = Field(
        description="Standard deviation per band (n - 1); null with fewer than two values."
    )
    count: list[int] = Field(description="How many microphones have a value, per band.")
    left_out: list[int] | None = Field(
        None,
        description="How many microphones' values were left out as doubtful, per band "
        "(their suspect entries say why).",
    )


class SpatialAverage(_Result):
    """The parameters averaged over the microphones, per band."""

    EDT: BandStatistics = Field(description="Early decay time, s.")
    T20: BandStatistics = Field(description="Reverberation time from T20's range, s.")
    T30: BandStatistics = Field(description="Reverberation time from T30's range, s.")
    C50: BandStatistics = Field(description="Clarity C50, dB.")
    C80: BandStatistics = Field(description="Clarity C80, dB.")
    D50: BandStatistics = Field(description="Definition D50, 0-1.")
    Ts: BandStatistics = Field(description="Centre time, s.")
    reverberation_time: BandStatistics | None = Field(
        None, description="The reverberation time to read (each microphone's best), s."
    )


class _Analysis(_Result):
    bands: list[float] = Field(
        description="Nominal octave mid-band frequencies, Hz: every per-band list follows them."
    )
    average: SpatialAverage = Field(description="Over the microphones, per band.")
    unusable: dict[UUID, str] = Field(
        description="Microphones whose recording could not be analysed, with the reason."
    )
    microphones: Mapping[UUID, MicrophoneSummary] = Field(
        description="Per microphone (device id) whose recording was analysed."
    )

    @model_validator(mode="after")
    def _per_band(self) -> Self:
        self._check_bands(self.microphones)
        return self

    def _check_bands(self, microphones: Mapping[UUID, MicrophoneSummary]) -> None:
        """Refuse a per-band list without one entry per band."""
        n = len(self.bands)
        tables: dict[str, list[list[Any]]] = {
            "average": [
                list(v)
                for _, stats in self.average
                if stats is not None
                for _, v in stats
                if v is not None
            ]
        }
        for device, mic in microphones.items():
            tables[f"microphone {device}"] = [
                *(v for _, v in mic.parameters),
                *(v for _, v in mic.reasons),
                *(v for _, v in mic.correlation),
                *(v for doubts in (mic.xi, mic.suspect) if doubts for _, v in doubts),
                *(v for v in (mic.curvature, mic.leakage) if v is not None),
            ]
            if mic.reverberation_time is not None:
                tables[f"microphone {device}"] += [
                    mic.reverberation_time.value,
                    mic.reverberation_time.source,
                ]
            if isinstance(mic, MicrophoneResult):
                tables[f"microphone {device}"].append(mic.decay_curves.levels_db)
        for where, lists in tables.items():
            if any(len(values) != n for values in lists):
                raise ValueError(f"{where}: a per-band list has not {n} entries, one per band")


class MeasurementSummary(_Analysis):
    """A measurement's analysis as the lobby hears it: each usable microphone's parameters,
    their spatial average, and why the others are missing."""

    microphones: dict[UUID, MicrophoneSummary] = Field(
        description="Per microphone (device id) whose recording was analysed."
    )


class MeasurementResult(_Analysis):
    """A measurement's analysis as stored: the summary (MeasurementSummary) with each
    microphone's frequency response and decay curves."""

    microphones: dict[UUID, MicrophoneResult] = Field(
        description="Per microphone (device id) whose recording was analysed."
    )

    def summary(self) -> MeasurementSummary:
        """The result without the frequency responses and decay curves, for the lobby."""
        keep = set(MicrophoneSummary.model_fields)
        return MeasurementSummary(
            bands=self.bands,
            average=self.average,
            unusable=self.unusable,
            microphones={
                device: MicrophoneSummary.model_validate(mic.model_dump(include=keep))
                for device, mic in self.microphones.items()
            },
        )


class AnalysisResult(_Event):
    """A measurement's analysis ended: the parameters per microphone and their spatial
    average (the frequency responses and decay curves are in the stored result), or the
    error."""

    measurement_id: UUID
    analysis_id: UUID
    result: MeasurementSummary | None = Field(description="The summary; null if it failed.")
    error: str | None = Field(None, description="Why the analysis failed.")


class SimulationQueued(_Event):
    """A member asked for a simulation (``simulation.request``); it waits for a worker."""

    job_id: UUID
    device_id: UUID | None = Field(None, description="Who asked, if a phone did.")


class SimulationProgress(_Event):
    """A worker got this far with a simulation."""

    job_id: UUID
    progress: float = Field(ge=0, le=1)
    stage: str = Field(description="What it has just done, in words.")
    attempt: int = Field(ge=1, description="1, or more once a worker has failed and it is retried.")


class SimulationResult(_Event):
    """A simulation ended: succeeded (with its summary), failed (with the error) or
    cancelled. The whole result (every receiver's parameters, the impulse responses) is
    fetched with ``simulation.status``."""

    job_id: UUID
    state: JobState
    summary: dict[str, Any] | None = Field(
        description="bands, method, volume, sabine and eyring (s per band), and average: "
        "the receivers' mean, std and count per parameter and band"
    )
    error: str | None = None


class LobbyClosed(_Event):
    """The lobby closed; no more events follow."""

    reason: str = Field(description="Why: 'empty' when the last member left.")


EVENTS: dict[str, type[BaseModel]] = {
    "lobby.created": LobbyCreated,
    "participant.joined": ParticipantJoined,
    "participant.left": ParticipantLeft,
    "participant.presence": ParticipantPresence,
    "role.updated": RoleUpdated,
    "lobby.locked": LobbyLocked,
    "workflow.changed": WorkflowChanged,
    "lobby.closed": LobbyClosed,
    "measurement.started": MeasurementStarted,
    "recording.received": RecordingReceived,
    "recording.invalid": RecordingInvalid,
    "analysis.progress": AnalysisProgress,
    "analysis.result": AnalysisResult,
    "simulation.queued": SimulationQueued,
    "simulation.progress": SimulationProgress,
    "simulation.result": SimulationResult,
}


def event(kind: str, /, **payload: Any) -> EventIn:
    """An event for the log, its payload checked against the model of ``kind``."""
    model = EVENTS[kind].model_validate(payload)
    return EventIn(type=kind, payload=model.model_dump(mode="json", exclude_none=False))
