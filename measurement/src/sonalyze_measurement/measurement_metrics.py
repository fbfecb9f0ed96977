"""The measurement service's metrics (names prefixed ``sonalyze_measurement_``; labels come from
fixed vocabularies: chunk outcomes, recording outcomes and reasons, analysis outcomes)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from sonalyze.metrics import PREFIX

SLOW = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250)


class MeasurementMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = f"{PREFIX}_measurement"
        self.measurements = Counter(
            f"{p}_measurements_started_total", "Measurements designed and recorded.",
            registry=registry,
        )  # fmt: skip
        self.chunks = Counter(
            f"{p}_upload_chunks_total",
            "Upload chunks, by outcome: stored, repeated (stored already) or refused.",
            ["outcome"],
            registry=registry,
        )
        self.bytes = Counter(
            f"{p}_upload_bytes_total", "Audio bytes of newly stored chunks.", registry=registry
        )
        self.recordings = Counter(
            f"{p}_recordings_total",
            "Whole recordings checked, by outcome: complete, or the reason it is invalid.",
            ["outcome"],
            registry=registry,
        )
        self.analyses = Counter(
            f"{p}_analyses_total", "Analyses ended, by outcome (succeeded, failed).", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self.analysis_seconds = Histogram(
            f"{p}_analysis_duration_seconds",
            "Time from an analysis's start to its result.",
            registry=registry,
            buckets=SLOW,
        )
        self.recording_seconds = Histogram(
            f"{p}_recording_analysis_duration_seconds",
            "Time one recording's analysis took in a worker process.",
            registry=registry,
            buckets=SLOW,
        )
