"""A real Kubernetes API server for tests: kube-apiserver 1.20 with etcd, RBAC, and the Job,
garbage collector and namespace controllers, started by ``../shared/k8s/start-apiserver.sh``
(see its README) on free loopback ports and stopped afterwards.

There is no scheduler and no kubelet: a test makes a worker finish by patching the status of
the Pod the Job controller created (:func:`finish_pod`). The binaries are built once into
``$K8S_HOME/bin`` (default ``~/.cache/sonalyze-k8s``); :func:`missing` says why the tests must
skip when they, or the scripts (a clone without ``../shared``), are absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.conftest import free_port

SCRIPTS = Path(__file__).resolve().parents[1].parent / "shared" / "k8s"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


def k8s_home() -> Path:
    """Where the binaries are (``$K8S_HOME``, as the scripts read it)."""
    return Path(os.environ.get("K8S_HOME") or Path.home() / ".cache" / "sonalyze-k8s")


def missing() -> str | None:
    """Why no API server can be started here (None: it can)."""
    if not (SCRIPTS / "start-apiserver.sh").is_file():
        return f"no {SCRIPTS / 'start-apiserver.sh'} (this clone has no ../shared/k8s)"
    absent = [name for name in BINARIES if not (k8s_home() / "bin" / name).is_file()]
    if absent:
        return (
            f"no {', '.join(absent)} in {k8s_home() / 'bin'}: build them with "
            f"{SCRIPTS / 'build-apiserver.sh'}"
        )
    return None


def _port_pair() -> int:
    """A free port whose successor is free too (etcd's client and peer ports)."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@dataclass(frozen=True)
class ApiServer:
    kubeconfig: str

    def admin(self) -> client.ApiClient:
        """A client as the cluster's administrator."""
        made: client.ApiClient = config.new_client_from_config(config_file=self.kubeconfig)
        return made

    def as_user(self, user: str) -> client.ApiClient:
        """A client that the API server takes for ``user`` (impersonated by the admin)."""
        api = self.admin()
        api.set_default_header("Impersonate-User", user)
        return api


@contextmanager
def apiserver() -> Iterator[ApiServer]:
    """Start an API server of its own (directory and ports); stop it and remove its files."""
    run = Path(tempfile.mkdtemp(prefix="sonalyze-k8s-"))
    env = {
        **os.environ,
        "K8S_HOME": str(k8s_home()),
        "RUN": str(run / "run"),
        "ETCD_PORT": str(_port_pair()),
        "API_PORT": str(free_port()),
    }
    try:
        started = subprocess.run(
            ["bash", str(SCRIPTS / "start-apiserver.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(f"the API server did not start: {started.stderr}")
        (line,) = [x for x in started.stdout.splitlines() if x.startswith("KUBECONFIG=")]
        yield ApiServer(kubeconfig=line.removeprefix("KUBECONFIG="))
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop-apiserver.sh")], env=env, check=False)
        shutil.rmtree(run, ignore_errors=True)


def finish_pod(api: client.ApiClient, pod: Any, exit_code: int, reason: str) -> None:
    """Do what a kubelet would: run the Pod's worker, then end it with ``exit_code``."""
    core = client.CoreV1Api(api)
    name, namespace = pod.metadata.name, pod.metadata.namespace
    core.patch_namespaced_pod_status(name, namespace, {"status": {"phase": "Running"}})
    terminated = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": "2024-01-01T00:00:00Z",
        "finishedAt": "2024-01-01T00:01:00Z",
    }
    worker = {
        "name": "worker",
        "image": pod.spec.containers[0].image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"terminated": terminated},
    }
    phase = "Succeeded" if exit_code == 0 else "Failed"
    body = {"status": {"phase": phase, "containerStatuses": [worker]}}
    core.patch_namespaced_pod_status(name, namespace, body)
