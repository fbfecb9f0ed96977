"""The batch/v1 Job that runs one simulation in Kubernetes.

One Job per simulation job, named after it (so creating it twice is a 409, not a second run),
labelled with the chart's ``app.kubernetes.io/*`` labels and the job id. Its one container runs
the worker entry point (``python -m sonalyze_simulation.worker``) from the simulation image,
with the job id and storage's URL in its environment and the internal token from a Secret. The
pod is hardened like the services': not root, a read-only root filesystem (with an emptyDir at
/tmp), no capabilities, the runtime's seccomp profile, no service account token.

Retries: a job gets ``max_attempts`` workers in all, so ``backoffLimit`` is ``max_attempts - 1``.
A ``podFailurePolicy`` (Kubernetes 1.26 and later; older API servers drop it) fails the Job at
once when the worker exits with 2 (:data:`~sonalyze_simulation.worker.EXIT_FAILED`: it has
recorded a failure for good, a retry would fail the same way), and does not count a pod that a
disruption took (node drained, preempted) against the limit. ``activeDeadlineSeconds`` bounds a
stuck run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self
from uuid import UUID

from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1EnvVarSource,
    V1Job,
    V1JobSpec,
    V1LocalObjectReference,
    V1ObjectMeta,
    V1PodFailurePolicy,
    V1PodFailurePolicyOnExitCodesRequirement,
    V1PodFailurePolicyOnPodConditionsPattern,
    V1PodFailurePolicyRule,
    V1PodSecurityContext,
    V1PodSpec,
    V1PodTemplateSpec,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1SecretKeySelector,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
)

from sonalyze_simulation.settings import SimulationSettings

JOB_ID_LABEL = "sonalyze.io/simulation-job"
COMPONENT = "simulation-worker"
MANAGED_BY = "sonalyze-simulation"
CONTAINER = "worker"
EXIT_FAILED = 2  # worker.EXIT_FAILED (not imported: the worker pulls in the simulation)


@dataclass(frozen=True)
class JobTemplate:
    """What every simulation Job shares (from the chart, through the service's settings)."""

    image: str
    storage_url: str
    token_secret: str = "sonalyze-internal"  # a Secret with the key "token"
    release: str = "sonalyze"
    cpu: str = "1"
    memory: str = "1Gi"
    backoff_limit: int = 2
    deadline_s: int = 3600
    ttl_after_finished_s: int = 3600
    max_attempts: int = 3
    chunk_bytes: int = 256 * 1024
    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"

    @classmethod
    def from_settings(cls, settings: SimulationSettings) -> Self:
        """The template the service's ``kube_*`` settings and ``max_attempts`` describe."""
        return cls(
            image=settings.kube_image,
            storage_url=settings.storage_url_for_workers(),
            token_secret=settings.kube_token_secret,
            release=settings.kube_release,
            cpu=settings.kube_cpu,
            memory=settings.kube_memory,
            backoff_limit=settings.max_attempts - 1,
            deadline_s=settings.job_deadline_s,
            ttl_after_finished_s=settings.kube_ttl_s,
            max_attempts=settings.max_attempts,
            chunk_bytes=settings.worker_chunk_bytes,
            image_pull_secrets=tuple(settings.kube_image_pull_secrets),
            image_pull_policy=settings.kube_image_pull_policy,
        )


def job_name(job_id: UUID) -> str:
    return f"sonalyze-sim-{job_id}"


def build_job(job_id: UUID, template: JobTemplate) -> V1Job:
    """The Job that runs simulation job ``job_id``."""
    labels = {
        "app.kubernetes.io/name": "sonalyze",
        "app.kubernetes.io/instance": template.release,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        JOB_ID_LABEL: str(job_id),
    }
    token = V1EnvVarSource(
        secret_key_ref=V1SecretKeySelector(name=template.token_secret, key="token")
    )
    container = V1Container(
        name=CONTAINER,
        image=template.image,
        image_pull_policy=template.image_pull_policy,
        command=["python", "-m", "sonalyze_simulation.worker"],
        env=[
            V1EnvVar(name="SONALYZE_JOB_ID", value=str(job_id)),
            V1EnvVar(name="SONALYZE_STORAGE_URL", value=template.storage_url),
            V1EnvVar(name="SONALYZE_INTERNAL_TOKEN", value_from=token),
            V1EnvVar(name="SONALYZE_LOG_FORMAT", value="json"),
            V1EnvVar(name="SONALYZE_MAX_ATTEMPTS", value=str(template.max_attempts)),
            V1EnvVar(name="SONALYZE_CHUNK_BYTES", value=str(template.chunk_bytes)),
        ],
        resources=V1ResourceRequirements(
            requests={"cpu": template.cpu, "memory": template.memory},
            limits={"memory": template.memory},
        ),
        security_context=V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            capabilities=V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[V1VolumeMount(name="tmp", mount_path="/tmp")],
    )
    pod = V1PodSpec(
        restart_policy="Never",
        automount_service_account_token=False,
        image_pull_secrets=[V1LocalObjectReference(name=n) for n in template.image_pull_secrets]
        or None,  # none: the field stays out of the Job
        containers=[container],
        security_context=V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=10001,
            run_as_group=10001,
            fs_group=10001,
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        volumes=[V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit="256Mi"))],
    )
    failures = V1PodFailurePolicy(
        rules=[
            V1PodFailurePolicyRule(
                action="FailJob",
                on_exit_codes=V1PodFailurePolicyOnExitCodesRequirement(
                    container_name=CONTAINER, operator="In", values=[EXIT_FAILED]
                ),
            ),
            V1PodFailurePolicyRule(
                action="Ignore",
                on_pod_conditions=[
                    V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")
                ],
            ),
        ]
    )
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(name=job_name(job_id), labels=labels),
        spec=V1JobSpec(
            backoff_limit=template.backoff_limit,
            pod_failure_policy=failures,
            active_deadline_seconds=template.deadline_s,
            ttl_seconds_after_finished=template.ttl_after_finished_s,
            template=V1PodTemplateSpec(metadata=V1ObjectMeta(labels=labels), spec=pod),
        ),
    )
