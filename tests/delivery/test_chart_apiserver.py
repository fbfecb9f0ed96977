"""The chart against a real Kubernetes API server (``tests.kube_apiserver``: 1.20, with RBAC
and the Job controller, no kubelet): ``kubectl apply --dry-run=server`` of the rendered objects,
and ``helm install`` then ``helm upgrade`` of the release with Helm's own engine. Marked
``kubernetes``; skipped, with the reason, where the server's binaries or kubectl are absent."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from kubernetes import client

from tests.delivery.chart import CHART, render

pytestmark = pytest.mark.kubernetes
KUBECTL = shutil.which("kubectl")
# Kubernetes 1.20 serves PodDisruptionBudgets only as policy/v1beta1 (policy/v1 came in 1.21).
NOT_IN_1_20 = {("policy/v1", "PodDisruptionBudget")}
WITHOUT_1_21 = {"gateway": {"podDisruptionBudget": {"enabled": False}}}


@pytest.fixture
def namespace(cluster: Any) -> Iterator[str]:
    name = f"chart-{uuid.uuid4().hex[:8]}"
    with cluster.admin() as admin:
        core = client.CoreV1Api(admin)
        core.create_namespace({"metadata": {"name": name}})
        yield name
        core.delete_namespace(name)


def served(kubeconfig: str) -> set[str]:
    """The group/versions the API server serves."""
    out = subprocess.run(
        [str(KUBECTL), "--kubeconfig", kubeconfig, "api-versions"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl on PATH")
def test_the_server_accepts_every_rendered_object(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    objects = render(
        {"database": {"url": "postgresql://u:p@db:5432/s"}}, namespace=namespace
    ) + render(namespace=namespace)
    versions = served(cluster.kubeconfig)
    skipped = {(o["apiVersion"], o["kind"]) for o in objects if o["apiVersion"] not in versions}
    assert skipped == NOT_IN_1_20
    manifest = tmp_path / "rendered.yaml"
    unique = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    checked = [o for o in unique.values() if o["apiVersion"] in versions]
    manifest.write_text(yaml.safe_dump_all(checked))
    apply = ["apply", "--dry-run=server", "-f", str(manifest)]
    applied = subprocess.run(
        [str(KUBECTL), "--kubeconfig", cluster.kubeconfig, "-n", namespace, *apply],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(checked)


def playing_kubelet(
    admin: client.ApiClient, namespace: str, done: threading.Event, urls: list[str]
) -> Callable[[], None]:
    """What the missing kubelet would do for the migrations hook: resolve its pod's database URL
    from the Secret it names (appended to ``urls``; a Secret or key that does not exist fails
    the pod, as a real kubelet would never start it), and run the pod to success."""
    core = client.CoreV1Api(admin)

    def database_url(pod: Any) -> str | None:
        (container,) = pod.spec.containers
        (ref,) = [e.value_from.secret_key_ref for e in container.env if e.name.endswith("_URL")]
        try:
            data = core.read_namespaced_secret(ref.name, namespace).data or {}
        except client.ApiException:
            return None
        return base64.b64decode(data[ref.key]).decode() if ref.key in data else None

    def run() -> None:
        finished: set[str] = set()
        selector = "app.kubernetes.io/component=migrations"
        while not done.is_set():
            for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
                if pod.metadata.name not in finished:
                    url = database_url(pod)
                    phase = "Failed" if url is None else "Succeeded"
                    core.patch_namespaced_pod_status(
                        pod.metadata.name, namespace, {"status": {"phase": phase}}
                    )
                    finished.add(pod.metadata.name)
                    urls.append(url or "(no such Secret)")
            time.sleep(0.2)

    return run


def chart_for_1_20(tmp_path: Path) -> Path:
    """The chart as it is, but for its minimum Kubernetes version (1.25), which the test
    server (1.20) is older than."""
    copy = tmp_path / "sonalyze"
    shutil.copytree(CHART, copy)
    manifest = yaml.safe_load((copy / "Chart.yaml").read_text())
    del manifest["kubeVersion"]
    (copy / "Chart.yaml").write_text(yaml.safe_dump(manifest))
    return copy


def secrets(admin: client.ApiClient, namespace: str) -> dict[str, dict[str, str]]:
    core = client.CoreV1Api(admin)
    found = core.list_namespaced_secret(namespace, label_selector="app.kubernetes.io/name=sonalyze")
    return {s.metadata.name: s.data for s in found.items}


def test_helm_installs_upgrades_and_reinstalls_the_release_keeping_its_secrets(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    chart = chart_for_1_20(tmp_path)
    done = threading.Event()
    migrated: list[str] = []  # the database each migrations hook ran against
    moved = {**WITHOUT_1_21, "database": {"url": "postgresql://u:p@new-db:5432/sonalyze"}}
    with cluster.admin() as admin:
        kubelet = threading.Thread(target=playing_kubelet(admin, namespace, done, migrated))
        kubelet.start()
        try:
            with helm_python.Config(
                kubeconfig_path=cluster.kubeconfig, namespace=namespace
            ) as helm:

                def deploy(action: Callable[..., Any], values: dict[str, Any]) -> None:
                    release = action(chart, "sonalyze", values, namespace=namespace, timeout=120)
                    assert release["status"] == "deployed", release

                deploy(helm.install, WITHOUT_1_21)
                first = secrets(admin, namespace)
                assert migrated == [], "at install, storage's init container migrates"
                deploy(helm.upgrade, WITHOUT_1_21)
                assert secrets(admin, namespace) == first, "an upgrade keeps the credentials"
                assert migrated == [base64.b64decode(first["sonalyze-database"]["url"]).decode()]
                helm.uninstall("sonalyze", timeout=120)
                assert secrets(admin, namespace) == first, "an uninstall keeps them too"
                deploy(helm.install, WITHOUT_1_21)
                assert secrets(admin, namespace) == first, "a reinstall adopts them"
                deploy(helm.upgrade, moved)
                # The hook migrates the database the upgrade moves to, not the one it leaves.
                assert migrated[-1] == moved["database"]["url"]
        finally:
            done.set()
            kubelet.join()
        # Helm removed each hook Job (and the hook's Secret) once it succeeded.
        assert client.BatchV1Api(admin).list_namespaced_job(namespace).items == []
        assert "sonalyze-migrations" not in secrets(admin, namespace)
        deployments = client.AppsV1Api(admin).list_namespaced_deployment(namespace).items
        assert sorted(d.metadata.name for d in deployments) == [
            f"sonalyze-{s}" for s in ("gateway", "lobby", "measurement", "simulation", "storage")
        ]
        assert set(first) == {"sonalyze-internal", "sonalyze-device-tokens", "sonalyze-database"}
