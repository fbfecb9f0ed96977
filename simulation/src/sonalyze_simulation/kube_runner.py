"""The Kubernetes runner: each simulation job's worker is a batch/v1 Job
(:mod:`~sonalyze_simulation.kube_job`); Kubernetes, not this service, runs and retries it.

- :meth:`KubeRunner.launch` creates the Job. A Job of that name existing (409) means the job
  was launched; a Job the API server refuses (400, 422) fails the job with the server's
  message. Any other error (API server unreachable, 403, 5xx) is logged and left to recovery,
  so a submission never fails for it.
- :meth:`KubeRunner.watch`, run as a task for the service's lifetime, follows the release's
  Jobs and settles each that finishes. ``Complete``: a job the worker ended is counted, one it
  left unfinished fails ("the worker exited without an outcome"). ``Failed``
  (BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy): a job the worker ended is
  counted, any other fails with the condition's reason and the last worker's exit, e.g. "the
  worker failed 3 times (BackoffLimitExceeded: ...); last exit code 137 (OOMKilled)". A settled
  Job is deleted with its pods (Kubernetes before 1.21 ignores ``ttlSecondsAfterFinished``).
  The watch recovers first, again every ``resync_s``, and after an error (with a backoff) or
  an expired watch (410).
- :meth:`KubeRunner.recover` reconciles the Jobs with storage, so that after a restart no job
  is orphaned: a finished Job is settled; a Job whose job has ended (cancelled while the
  service was down) or is unknown is deleted; a queued job without a Job gets one; a running
  job without a Job lost its worker, and is queued again (and launched) or failed, as
  :meth:`Lifecycle.worker_stopped <sonalyze_simulation.jobs.Lifecycle.worker_stopped>` says.
- :meth:`KubeRunner.stop` deletes the job's Job; the garbage collector deletes its pods.
- :meth:`KubeRunner.close` ends :meth:`~KubeRunner.watch`; the Jobs run on without the service.

The Kubernetes client is synchronous: its calls run in threads (:func:`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any
from uuid import UUID

import urllib3
from kubernetes import client, config, watch

from sonalyze.domain import FINAL_JOB_STATES, JobState
from sonalyze.storage_api import SimulationJobRead
from sonalyze.storage_client import StorageError, StorageNotFound
from sonalyze_simulation.jobs import Lifecycle
from sonalyze_simulation.kube_job import (
    CONTAINER,
    JOB_ID_LABEL,
    MANAGED_BY,
    JobTemplate,
    build_job,
    job_name,
)

logger = logging.getLogger(__name__)
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_BACKOFF_S = (1.0, 30.0)  # the first and the longest wait before watching again
_UNREACHABLE = (urllib3.exceptions.HTTPError, OSError)

ROLE_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
]
"""Everything the runner does in its namespace, as RBAC PolicyRules. The chart's Role for the
simulation service grants exactly these (Jobs: create, get, list, watch, delete; Pods: get and
list, to tell how a worker stopped); the tests show that they are enough."""


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """A client of the cluster the service runs in, as its ServiceAccount (when
    ``KUBERNETES_SERVICE_HOST`` is set), else of ``kubeconfig``'s current context (default:
    ``$KUBECONFIG`` or ``~/.kube/config``)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and kubeconfig is None:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    made: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return made


def default_namespace() -> str:
    """The service's own namespace (its ServiceAccount's), or ``default`` outside a cluster."""
    try:
        return NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def _finished(job: Any) -> Any | None:
    """The Job's ``Complete`` or ``Failed`` condition; None while it runs."""
    for condition in (job.status and job.status.conditions) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition
    return None


def _job_id(job: Any) -> UUID | None:
    try:
        return UUID((job.metadata.labels or {})[JOB_ID_LABEL])
    except (KeyError, ValueError):
        return None


def _message(error: client.ApiException) -> str:
    try:
        return str(json.loads(error.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{error.status} {error.reason}"


class KubeRunner:
    """Runs each job's worker as a Kubernetes Job.

    Parameters
    ----------
    lifecycle
        Fails and counts the jobs; its ``storage`` is read.
    template
        What every Job shares; its ``release`` tells this service's Jobs from others.
    namespace
        The Jobs' namespace (:func:`default_namespace`).
    api_client
        The Kubernetes client (:func:`api_client`), allowed :data:`ROLE_RULES` there.
    resync_s
        How long one watch lasts; then the runner recovers and watches again.
    """

    def __init__(
        self,
        lifecycle: Lifecycle,
        template: JobTemplate,
        namespace: str,
        api_client: client.ApiClient,
        resync_s: float = 60.0,
    ) -> None:
        self._lifecycle = lifecycle
        self._storage = lifecycle.storage
        self._template = template
        self._namespace = namespace
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._selector = (
            f"app.kubernetes.io/managed-by={MANAGED_BY},"
            f"app.kubernetes.io/instance={template.release}"
        )
        self._resync_s = resync_s
        self._watch: Any = None
        self._watching: asyncio.Task[None] | None = None
        self._closed = False

    async def launch(self, job_id: UUID) -> None:
        body = build_job(job_id, self._template)
        try:
            await asyncio.to_thread(self._batch.create_namespaced_job, self._namespace, body)
        except client.ApiException as error:
            if error.status == 409:
                return  # launched already
            if error.status not in (400, 422):
                logger.warning("simulation %s not launched (recovery retries): %s", job_id, error)
                return
            job = await self._storage.get_simulation_job(job_id)
            await self._lifecycle.fail(job, f"Kubernetes refused its Job: {_message(error)}")
        except _UNREACHABLE as error:
            logger.warning("simulation %s not launched (recovery retries): %s", job_id, error)

    async def stop(self, job_id: UUID) -> None:
        try:
            await self._delete(job_name(job_id))
        except (client.ApiException, *_UNREACHABLE) as error:
            logger.warning("simulation %s: Job not deleted (recovery retries): %s", job_id, error)

    async def recover(self) -> None:
        await self._reconcile()

    async def watch(self) -> None:
        """Recover, then settle each Job that finishes, until :meth:`close`. Run it as a task
        for as long as the service runs; it recovers again every ``resync_s``, and watches
        again after an error (waiting up to 30 s)."""
        self._watching = asyncio.current_task()
        try:
            await self._watch_until_closed()
        except asyncio.CancelledError:
            if not self._closed:
                raise  # else close() ended it

    async def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.stop()  # shuts the watch's socket: its thread stops reading
        task = self._watching
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch_until_closed(self) -> None:
        backoff = _BACKOFF_S[0]
        while not self._closed:
            try:
                since = await self._reconcile()
                backoff = _BACKOFF_S[0]
                await self._follow(since)
            except Exception as error:
                if self._closed:
                    return
                if isinstance(error, client.ApiException) and error.status == 410:
                    continue  # the watch expired: list again
                odd = not isinstance(error, (client.ApiException, StorageError, *_UNREACHABLE))
                logger.warning(
                    "simulation Jobs: watching again in %g s: %s", backoff, error, exc_info=odd
                )
                await asyncio.sleep(backoff)
                backoff = min(2 * backoff, _BACKOFF_S[1])

    async def _reconcile(self) -> str:
        """:meth:`recover`; the resourceVersion of the Jobs' list, to watch from.

        Storage is read first: a job running then had its Job before, so the Jobs' list
        that follows has it unless it is truly gone."""
        unfinished = await self._storage.list_simulation_jobs(
            [JobState.queued, JobState.running], limit=1000
        )
        listed: Any = await asyncio.to_thread(
            self._batch.list_namespaced_job, self._namespace, label_selector=self._selector
        )
        open_ids = {job.id for job in unfinished}
        have = {_job_id(job) for job in listed.items}
        for job in listed.items:
            if _finished(job) is not None or _job_id(job) not in open_ids:
                await self._settle(job)
        for record in unfinished:
            if record.id in have:
                continue
            if record.state == JobState.running:  # its Job is gone, and its worker
                why = "its Kubernetes Job disappeared"
                if not await self._lifecycle.worker_stopped(record.id, why):
                    continue
            await self.launch(record.id)
        return str(listed.metadata.resource_version)

    async def _follow(self, since: str) -> None:
        """Settle each Job that finishes, for ``resync_s`` from ``since``."""
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        events = self._watch.stream(
            self._batch.list_namespaced_job,
            self._namespace,
            label_selector=self._selector,
            resource_version=since,
            allow_watch_bookmarks=True,
            timeout_seconds=max(1, round(self._resync_s)),
        )
        while not self._closed:
            event = await asyncio.to_thread(next, events, None)
            if event is None:
                return
            if event["type"] in ("ADDED", "MODIFIED") and _finished(event["object"]):
                await self._settle(event["object"])

    async def _settle(self, job: Any) -> None:
        """Count or fail the job of a finished Job and delete the Job; delete a Job whose job
        has ended or is unknown, too. A Job running its job's worker stays."""
        if job.metadata.deletion_timestamp is not None:
            return  # being deleted: settled already
        job_id = _job_id(job)
        record = None if job_id is None else await self._record(job_id)
        condition = _finished(job)
        if record is None:
            pass  # a Job of no job we know
        elif record.state in FINAL_JOB_STATES:
            self._lifecycle.ended(record)
        elif condition is None:
            return
        elif condition.type == "Complete":
            await self._lifecycle.fail(record, "the worker exited without an outcome")
        else:
            await self._lifecycle.fail(record, await self._why_failed(job, condition))
        await self._delete(job.metadata.name)

    async def _why_failed(self, job: Any, condition: Any) -> str:
        """The Job's reason to fail, and how its last worker stopped if a pod tells."""
        failed = job.status.failed or 0
        why = f"the worker failed {failed} time{'s' * (failed != 1)}" if failed else ""
        why = (why or "its Kubernetes Job failed") + f" ({condition.reason}"
        why += f": {condition.message})" if condition.message else ")"
        selector = f"{JOB_ID_LABEL}={_job_id(job)}"
        try:
            pods: Any = await asyncio.to_thread(
                self._core.list_namespaced_pod, self._namespace, label_selector=selector
            )
        except (client.ApiException, *_UNREACHABLE) as error:
            logger.warning("the pods of %s not read: %s", job.metadata.name, error)
            return why
        ends = [
            status.state.terminated
            for pod in pods.items
            for status in (pod.status and pod.status.container_statuses) or []
            if status.name == CONTAINER and status.state and status.state.terminated
        ]
        if not ends:
            return why
        last = max(ends, key=lambda end: (end.finished_at is not None, end.finished_at))
        detail = ": ".join(str(part) for part in (last.reason, last.message) if part)
        return f"{why}; last exit code {last.exit_code}" + (f" ({detail})" if detail else "")

    async def _record(self, job_id: UUID) -> SimulationJobRead | None:
        try:
            return await self._storage.get_simulation_job(job_id)
        except StorageNotFound:
            return None

    async def _delete(self, name: str) -> None:
        """Delete a Job, and its pods through the garbage collector (gone already: fine)."""
        try:
            delete = self._batch.delete_namespaced_job
            await asyncio.to_thread(delete, name, self._namespace, propagation_policy="Background")
        except client.ApiException as error:
            if error.status != 404:
                raise
