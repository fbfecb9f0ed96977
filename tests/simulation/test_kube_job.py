"""The Kubernetes Job of a simulation: valid against the Kubernetes 1.30 schema (strict), named
after its job, labelled as the chart labels, hardened, carrying what the worker needs, and
retried as the service's settings say (but not after a failure for good)."""

from __future__ import annotations

import uuid

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from sonalyze_simulation.kube_job import JOB_ID_LABEL, JobTemplate, build_job, job_name
from sonalyze_simulation.settings import SimulationSettings
from sonalyze_simulation.worker import EXIT_FAILED

JOB = uuid.UUID("6a1c2f3e-0000-4000-8000-00000000beef")
TEMPLATE = JobTemplate(
    image="registry.test/sonalyze-simulation:1.0", storage_url="http://storage:8084"
)


def manifest(template: JobTemplate = TEMPLATE) -> dict:
    return ApiClient().sanitize_for_serialization(build_job(JOB, template))


def test_the_job_validates_against_the_kubernetes_1_30_schema() -> None:
    kubernetes_validate.validate(manifest(), "1.30", strict=True)


def test_a_job_with_a_field_kubernetes_does_not_know_fails_the_same_check() -> None:
    """The check is real: strict validation refuses what the API server would not know."""
    broken = manifest()
    broken["spec"]["retries"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_the_job_is_named_labelled_limited_and_hardened() -> None:
    job = manifest()
    assert job["metadata"]["name"] == job_name(JOB) == f"sonalyze-sim-{JOB}"
    labels = job["metadata"]["labels"]
    assert labels[JOB_ID_LABEL] == str(JOB) and labels["app.kubernetes.io/name"] == "sonalyze"
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (2, 3600)
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "sonalyze_simulation.worker"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SONALYZE_JOB_ID"]["value"] == str(JOB)
    assert env["SONALYZE_STORAGE_URL"]["value"] == "http://storage:8084"
    assert env["SONALYZE_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["capabilities"]["drop"] == ["ALL"] and not security["allowPrivilegeEscalation"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def test_a_worker_that_failed_for_good_is_not_retried_and_a_disruption_is_not_counted() -> None:
    """Exit status 2 means the worker recorded a failure for good: the Job fails at once
    instead of running the same request again; a pod evicted by a drain is not an attempt."""
    fail_job, ignore = manifest()["spec"]["podFailurePolicy"]["rules"]
    assert fail_job == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [EXIT_FAILED]},
    }
    assert ignore == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_the_template_from_the_settings_gives_a_job_max_attempts_workers() -> None:
    settings = SimulationSettings.model_validate(
        {
            "storage_url": "http://storage:8084",
            "worker_storage_url": "http://storage.sonalyze.svc:8084",
            "max_attempts": 4,
            "kube_image": "registry.test/sim:2",
            "kube_release": "prod",
            "kube_token_secret": "prod-internal",
            "kube_cpu": "2",
            "kube_memory": "3Gi",
            "job_deadline_s": 600,
            "kube_ttl_s": 60,
            "kube_image_pull_secrets": ["registry-login"],
            "kube_image_pull_policy": "Always",
        }
    )
    job = manifest(JobTemplate.from_settings(settings))
    pod = job["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-login"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    kubernetes_validate.validate(job, "1.30", strict=True)
    spec = job["spec"]
    assert spec["backoffLimit"] == 3  # 4 workers in all
    assert (spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (600, 60)
    assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.test/sim:2"
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "3Gi"},
        "limits": {"memory": "3Gi"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["SONALYZE_STORAGE_URL"]["value"] == "http://storage.sonalyze.svc:8084"
    assert env["SONALYZE_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "prod-internal"
    assert env["SONALYZE_MAX_ATTEMPTS"]["value"] == "4", "the worker refuses a fifth"
    assert env["SONALYZE_CHUNK_BYTES"]["value"] == str(256 * 1024)


def test_a_single_attempt_means_no_retry() -> None:
    settings = SimulationSettings.model_validate({"storage_url": "http://s", "max_attempts": 1})
    assert manifest(JobTemplate.from_settings(settings))["spec"]["backoffLimit"] == 0
