"""The Kubernetes runner against a real API server (1.20, with its Job controller and garbage
collector; :mod:`tests.kube_apiserver`) and a real storage service.

The runner acts as the chart's ServiceAccount, allowed only :data:`ROLE_RULES`, so every test
also shows that the Role is enough. No kubelet runs: a test plays the worker (it reports to
storage) and the kubelet (it patches the Pod's status). Marked ``kubernetes``; skipped where
the API server's binaries or scripts are absent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest
from kubernetes import client, watch
from prometheus_client import CollectorRegistry

from sonalyze.domain import JobState
from sonalyze.metrics import PREFIX
from sonalyze.storage_api import SimulationJobCreate, SimulationJobRead, SimulationJobUpdate
from sonalyze.storage_client import StorageClient
from sonalyze_simulation.jobs import Lifecycle, SimulationJobs
from sonalyze_simulation.kube_job import JOB_ID_LABEL, JobTemplate, build_job, job_name
from sonalyze_simulation.kube_runner import ROLE_RULES, KubeRunner
from sonalyze_simulation.simulation_metrics import SimulationMetrics
from tests import kube_apiserver
from tests.conftest import TOKEN
from tests.kube_apiserver import ApiServer, finish_pod, missing

pytestmark = pytest.mark.kubernetes
_WHY_NOT = missing()
needs_cluster = pytest.mark.skipif(_WHY_NOT is not None, reason=f"no API server: {_WHY_NOT}")

SERVICE_ACCOUNT = "sonalyze-simulation"
TEMPLATE = JobTemplate(image="registry.test/sonalyze-simulation:1.0", storage_url="http://st:8084")
ONE_ATTEMPT = replace(TEMPLATE, backoff_limit=0)
T = TypeVar("T")


@dataclass
class Namespace:
    """A namespace with the chart's ServiceAccount, Role (:data:`ROLE_RULES`) and binding."""

    name: str
    admin: client.ApiClient
    runner: client.ApiClient  # as the ServiceAccount

    def jobs(self) -> list[Any]:
        return list(client.BatchV1Api(self.admin).list_namespaced_job(self.name).items)

    def pods(self, job_id: uuid.UUID) -> list[Any]:
        selector = f"{JOB_ID_LABEL}={job_id}"
        core = client.CoreV1Api(self.admin)
        return list(core.list_namespaced_pod(self.name, label_selector=selector).items)

    def job_exists(self, job_id: uuid.UUID) -> bool:
        return any(job.metadata.name == job_name(job_id) for job in self.jobs())


@pytest.fixture
def namespace(cluster: ApiServer) -> Iterator[Namespace]:
    name = f"sim-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin()
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_service_account(name, {"metadata": {"name": SERVICE_ACCOUNT}})
    meta = {"name": SERVICE_ACCOUNT}
    rbac.create_namespaced_role(name, {"metadata": meta, "rules": ROLE_RULES})
    binding = {
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", **meta},
        "subjects": [{"kind": "ServiceAccount", "namespace": name, **meta}],
    }
    rbac.create_namespaced_role_binding(name, binding)
    runner = cluster.as_user(f"system:serviceaccount:{name}:{SERVICE_ACCOUNT}")
    deadline = time.monotonic() + 10
    while True:  # the authorizer learns of the binding a moment later
        try:
            client.BatchV1Api(runner).list_namespaced_job(name)
            break
        except client.ApiException as error:
            if error.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield Namespace(name, admin, runner)
    core.delete_namespace(name)
    runner.close()
    admin.close()


async def eventually(check: Callable[[], Awaitable[T] | T], timeout_s: float = 20.0) -> T:
    """The first truthy result of ``check``, polled until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@dataclass
class Service:
    """A runner as the simulation service has it, and its view of storage and metrics."""

    runner: KubeRunner
    storage: StorageClient
    jobs: SimulationJobs
    registry: CollectorRegistry

    def counted(self, outcome: str) -> float:
        value = self.registry.get_sample_value(
            f"{PREFIX}_simulation_jobs_total", {"outcome": outcome}
        )
        return value or 0.0

    async def submit(self) -> SimulationJobRead:
        body = SimulationJobCreate(client_request_id=uuid.uuid4().hex, spec={"room": "any"})
        return await self.storage.create_simulation_job(body)

    async def report(self, job_id: uuid.UUID, state: JobState) -> SimulationJobRead:
        """What the worker reports (``running`` claims the job as a new attempt)."""
        job = await self.storage.get_simulation_job(job_id)
        body = SimulationJobUpdate(
            expected_version=job.version, state=state, new_attempt=state == JobState.running
        )
        return await self.storage.update_simulation_job(job_id, body)


@asynccontextmanager
async def service(
    storage_url: str, ns: Namespace, template: JobTemplate = TEMPLATE, watching: bool = True
) -> AsyncIterator[Service]:
    async with StorageClient(storage_url, TOKEN) as storage:
        registry = CollectorRegistry()
        lifecycle = Lifecycle(storage, SimulationMetrics(registry), template.backoff_limit + 1)
        runner = KubeRunner(lifecycle, template, ns.name, ns.runner, resync_s=30)
        task = asyncio.create_task(runner.watch()) if watching else None
        try:
            yield Service(runner, storage, SimulationJobs(lifecycle, runner), registry)
        finally:
            await runner.close()
            if task is not None:
                await task


@needs_cluster
def test_the_role_lets_the_runner_manage_its_jobs_and_nothing_else(namespace: Namespace) -> None:
    batch, core = client.BatchV1Api(namespace.runner), client.CoreV1Api(namespace.runner)
    job_id = uuid.uuid4()
    batch.create_namespaced_job(namespace.name, build_job(job_id, TEMPLATE))
    events = watch.Watch().stream(batch.list_namespaced_job, namespace.name, timeout_seconds=5)
    assert next(events)["object"].metadata.name == job_name(job_id)
    assert batch.read_namespaced_job(job_name(job_id), namespace.name).spec.backoff_limit == 2
    core.list_namespaced_pod(namespace.name)
    batch.delete_namespaced_job(job_name(job_id), namespace.name, propagation_policy="Background")

    forbidden = [
        lambda: core.list_namespaced_secret(namespace.name),
        lambda: core.read_namespaced_secret("sonalyze-internal", namespace.name),
        lambda: core.delete_collection_namespaced_pod(namespace.name),
        lambda: batch.patch_namespaced_job(job_name(job_id), namespace.name, {"spec": {}}),
        lambda: batch.create_namespaced_job("default", build_job(job_id, TEMPLATE)),
        lambda: batch.list_namespaced_job("default"),
    ]
    for attempt in forbidden:
        with pytest.raises(client.ApiException) as refused:
            attempt()
        assert refused.value.status == 403


@needs_cluster
def test_launching_twice_creates_one_job(storage_url: str, namespace: Namespace) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace, watching=False) as s:
            job = await s.submit()
            await s.runner.launch(job.id)
            await s.runner.launch(job.id)  # 409, quietly
            assert [j.metadata.name for j in namespace.jobs()] == [job_name(job.id)]
            assert (await s.storage.get_simulation_job(job.id)).state == JobState.queued

    asyncio.run(scenario())


@needs_cluster
@pytest.mark.parametrize(
    ("memory", "said"),
    [
        ("-1Gi", 'Invalid value: "-1Gi": must be greater than or equal to 0'),  # 422
        ("1Gx", "quantities must match the regular expression"),  # 400: not even decoded
    ],
)
def test_a_job_the_api_server_refuses_fails_with_the_servers_reason(
    storage_url: str, namespace: Namespace, memory: str, said: str
) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace, replace(TEMPLATE, memory=memory)) as s:
            job = await s.submit()
            await s.runner.launch(job.id)
            job = await s.storage.get_simulation_job(job.id)
            assert job.state == JobState.failed
            assert job.error is not None and job.error.startswith("Kubernetes refused its Job: ")
            assert said in job.error
            assert namespace.jobs() == [] and s.counted("failed") == 1

    asyncio.run(scenario())


@needs_cluster
def test_a_job_whose_worker_succeeded_is_counted_and_deleted(
    storage_url: str, namespace: Namespace
) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace) as s:
            job = await s.submit()
            await s.runner.launch(job.id)
            (pod,) = await eventually(lambda: namespace.pods(job.id))
            await s.report(job.id, JobState.running)
            await s.report(job.id, JobState.succeeded)
            finish_pod(namespace.admin, pod, 0, "Completed")
            await eventually(lambda: s.counted("succeeded") == 1)
            await eventually(lambda: not namespace.job_exists(job.id))
            assert (await s.storage.get_simulation_job(job.id)).state == JobState.succeeded

    asyncio.run(scenario())


@needs_cluster
def test_a_worker_that_exits_without_an_outcome_fails_its_job(
    storage_url: str, namespace: Namespace
) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace) as s:
            job = await s.submit()
            await s.runner.launch(job.id)
            (pod,) = await eventually(lambda: namespace.pods(job.id))
            await s.report(job.id, JobState.running)
            finish_pod(namespace.admin, pod, 0, "Completed")

            async def failed() -> SimulationJobRead | None:
                found = await s.storage.get_simulation_job(job.id)
                return found if found.state == JobState.failed else None

            assert (await eventually(failed)).error == "the worker exited without an outcome"
            assert s.counted("failed") == 1
            await eventually(lambda: not namespace.job_exists(job.id))

    asyncio.run(scenario())


@needs_cluster
def test_a_worker_killed_for_its_memory_fails_its_job_with_the_reason(
    storage_url: str, namespace: Namespace
) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace, ONE_ATTEMPT) as s:
            job = await s.submit()
            await s.runner.launch(job.id)
            (pod,) = await eventually(lambda: namespace.pods(job.id))
            await s.report(job.id, JobState.running)
            finish_pod(namespace.admin, pod, 137, "OOMKilled")

            async def failed() -> SimulationJobRead | None:
                found = await s.storage.get_simulation_job(job.id)
                return found if found.state == JobState.failed else None

            error = (await eventually(failed)).error
            assert error is not None
            assert error.startswith("the worker failed 1 time (BackoffLimitExceeded")
            assert error.endswith("; last exit code 137 (OOMKilled)")
            assert s.counted("failed") == 1
            await eventually(lambda: not namespace.job_exists(job.id))

    asyncio.run(scenario())


@needs_cluster
def test_cancelling_deletes_the_job_and_its_pods(storage_url: str, namespace: Namespace) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace) as s:
            job = await s.submit()
            await s.runner.launch(job.id)
            await eventually(lambda: namespace.pods(job.id))
            assert (await s.jobs.cancel(job.id)).state == JobState.cancelled
            assert not namespace.job_exists(job.id)
            await eventually(lambda: namespace.pods(job.id) == [])  # the garbage collector
            assert s.counted("cancelled") == 1

    asyncio.run(scenario())


@needs_cluster
def test_after_a_restart_recovery_leaves_no_job_orphaned(
    storage_url: str, namespace: Namespace
) -> None:
    async def scenario() -> None:
        async with service(storage_url, namespace, ONE_ATTEMPT, watching=False) as s:
            waiting = await s.submit()  # the service stopped before it launched it
            cancelled, crashed, running, vanished = [await s.submit() for _ in range(4)]
            for job in (cancelled, crashed, running, vanished):
                await s.runner.launch(job.id)
                await s.report(job.id, JobState.running)
            await s.runner.stop(vanished.id)  # as if someone deleted its Job
            (pod,) = await eventually(lambda: namespace.pods(crashed.id))
            finish_pod(namespace.admin, pod, 137, "OOMKilled")
            failed = client.BatchV1Api(namespace.admin).read_namespaced_job_status
            await eventually(lambda: failed(job_name(crashed.id), namespace.name).status.failed)
            await s.report(cancelled.id, JobState.cancelled)  # while the service was down

        async with service(storage_url, namespace, ONE_ATTEMPT, watching=False) as s:
            await s.runner.recover()
            names = sorted(job.metadata.name for job in namespace.jobs())
            assert names == sorted(job_name(job.id) for job in (waiting, running))
            crashed = await s.storage.get_simulation_job(crashed.id)
            assert crashed.state == JobState.failed and crashed.error is not None
            assert "last exit code 137 (OOMKilled)" in crashed.error
            assert (await s.storage.get_simulation_job(running.id)).state == JobState.running
            assert (await s.storage.get_simulation_job(waiting.id)).state == JobState.queued
            vanished = await s.storage.get_simulation_job(vanished.id)
            assert (vanished.state, vanished.error) == (
                JobState.failed,
                "its Kubernetes Job disappeared; gave up after 1 attempt",
            )

    asyncio.run(scenario())


def test_without_the_binaries_or_the_scripts_these_tests_skip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    scripts = tmp_path / "k8s"
    scripts.mkdir()
    (scripts / "start-apiserver.sh").touch()
    monkeypatch.setattr(kube_apiserver, "SCRIPTS", scripts)
    monkeypatch.setenv("K8S_HOME", str(tmp_path))
    assert "kube-apiserver" in (missing() or "")
    monkeypatch.setattr(kube_apiserver, "SCRIPTS", tmp_path / "no-shared")
    assert "no ../shared/k8s" in (missing() or "")
