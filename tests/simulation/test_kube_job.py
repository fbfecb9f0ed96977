"""The Kubernetes Job of a simulation: valid against the Kubernetes 1.30 schema (strict), named
after its job, labelled as the chart labels, hardened, and carrying what the worker needs."""

from __future__ import annotations

import uuid

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from sonalyze_simulation.kube_job import JOB_ID_LABEL, JobTemplate, build_job, job_name

JOB = uuid.UUID("6a1c2f3e-0000-4000-8000-00000000beef")
TEMPLATE = JobTemplate(
    image="registry.test/sonalyze-simulation:1.0", storage_url="http://storage:8084"
)


def manifest() -> dict:
    return ApiClient().sanitize_for_serialization(build_job(JOB, TEMPLATE))


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
