"""Simulation settings (environment prefix ``SONALYZE_``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from sonalyze.settings import StorageClientSettings


class SimulationSettings(StorageClientSettings):
    """Settings of the simulation service."""

    port: int = Field(8083, ge=1, le=65535)
    runner: Literal["local", "kubernetes"] = Field(
        "local",
        description="local: workers are subprocesses of the service; kubernetes: each job is "
        "a batch/v1 Job.",
    )
    workers: int = Field(1, ge=1, le=64, description="local runner: how many workers run at once.")
    max_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Workers a job gets in all: one that stops without an outcome (killed, "
        "out of memory) is retried until this many have run, then the job fails.",
    )
    heartbeat_s: float = Field(
        10.0, gt=0, le=300, description="How often a running worker says it is alive."
    )
    stale_s: float = Field(
        60.0,
        gt=0,
        description="local runner: a running job without a heartbeat for this long has lost "
        "its worker, and is retried.",
    )
    job_deadline_s: int = Field(
        3600,
        ge=1,
        description="How long a job's workers may run in all before it fails (a Job's "
        "activeDeadlineSeconds; the local runner kills a worker that runs longer).",
    )
    recover_every_s: float = Field(
        30.0,
        gt=0,
        description="How often the runner looks for jobs that no worker runs (after a "
        "restart, or a worker lost).",
    )
    worker_chunk_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Chunk size of a worker's upload of impulse responses; at most storage's "
        "SONALYZE_MAX_CHUNK_BYTES and SONALYZE_MAX_REQUEST_BYTES.",
    )
    worker_storage_url: str | None = Field(
        None, description="Storage's URL as the workers reach it; default: storage_url."
    )
    kube_namespace: str | None = Field(
        None, description="kubernetes runner: the Jobs' namespace; default: the service's own."
    )
    kube_image: str = Field(
        "sonalyze-simulation:latest", description="kubernetes runner: the workers' image."
    )
    kube_release: str = Field(
        "sonalyze", description="kubernetes runner: the chart's release (a Job label)."
    )
    kube_token_secret: str = Field(
        "sonalyze-internal",
        description="kubernetes runner: the Secret whose key 'token' is the internal token.",
    )
    kube_cpu: str = Field("1", description="kubernetes runner: a worker's CPU request.")
    kube_memory: str = Field(
        "1Gi", description="kubernetes runner: a worker's memory request and limit."
    )

    kube_ttl_s: int = Field(
        3600, ge=0, description="kubernetes runner: a finished Job's ttlSecondsAfterFinished."
    )
    kube_image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="kubernetes runner: Secrets to pull the workers' image with (JSON list).",
    )
    kube_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="kubernetes runner: the workers' imagePullPolicy."
    )

    @model_validator(mode="after")
    def _heartbeats_within_staleness(self) -> Self:
        if self.stale_s < 3 * self.heartbeat_s:
            raise ValueError(
                f"stale_s ({self.stale_s:g}) must be at least three heartbeats "
                f"(3 x heartbeat_s = {3 * self.heartbeat_s:g}), or live workers count as dead"
            )
        return self

    def storage_url_for_workers(self) -> str:
        return self.worker_storage_url or self.storage_url
