"""The Job controller: run a Job's pods to completion, as upstream's job controller does.

A Job (NonIndexed) wants `completions` pods to succeed, at most `parallelism` at a time; without
`completions` it is a work queue, done when one pod has succeeded and none is left running.
Reconcile, from the pod cache:

- counts the Job's pods (claimed by its selector, as a ReplicaSet claims): active (not finished,
  not being deleted), succeeded and failed by the phase the node agent wrote from the containers'
  real exit codes; with restartPolicy OnFailure the kubelet restarts a failing container instead,
  so its restarts count as failures, as upstream;
- fails the Job (`Failed`, reason `BackoffLimitExceeded`) when failures exceed `backoffLimit`,
  or (reason `DeadlineExceeded`) once `activeDeadlineSeconds` have passed since `startTime`;
  its active pods are then deleted;
- completes it (`Complete`, `completionTime`) when enough pods succeeded;
- otherwise creates or deletes pods towards min(parallelism, completions - succeeded). After a
  failure, new pods wait the exponential back-off: 10 s doubled for every failure since the last
  success, at most 6 minutes, from the last failure's finish time (time read from the injected
  clock, so tests move it instead of sleeping);
- `suspend: true` deletes the active pods and sets the Suspended condition; resuming resets
  `startTime` (so the deadline counts from the resume), as upstream;
- a finished Job with `ttlSecondsAfterFinished` is deleted that long after it finished; its pods
  follow through the garbage collector.

Counts come from the pods that exist, plus the finished pods deleted while this controller
watched (their delete events carry their phase). nbkube's registry has no finalizers, so there
is no upstream job-tracking finalizer: a finished pod deleted while no control plane ran is lost
to the count, though a count never goes down (it is the larger of the stored and the observed).

An Indexed Job (`completionMode: Indexed`) runs one pod per index 0..completions-1 (at most
`parallelism` at once, lowest missing index first); each pod carries its index (annotation, label,
hostname `<job>-<index>`, JOB_COMPLETION_INDEX), a failed index is run again, duplicates are
deleted, and the Job completes when every index has a succeeded pod (`status.completedIndexes`).
"""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING, Any

from nbkube.api.defaults_batch import CONTROLLER_UID_LABEL
from nbkube.api.meta import Obj, key_of, split_key
from nbkube.api.selectors import selector_from_label_selector
from nbkube.client.controller import Controller
from nbkube.client.events import record_event
from nbkube.clock import REAL_CLOCK, Clock, rfc3339, timestamp_or_none
from nbkube.controlplane.controllers.replication import (
    BURST,
    Expectations,
    adopt_claimed,
    claim_pods,
    delete_pod,
    is_ready,
    owner_ref,
    pod_from_template,
)
from nbkube.controlplane.controllers.writes import controller_key, write_status
from nbkube.errors import Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "JobController",
    "JobCounts",
    "backoff_delay",
    "count_pods",
    "INDEX_KEY",
    "finished_condition",
    "index_ranges",
    "parse_ranges",
    "job_pod",
    "plan_indexes",
    "pod_index",
    "rv_of",
]

COMPONENT = "job-controller"
BACKOFF_BASE = 10.0  # upstream's DefaultJobPodFailureBackOff
BACKOFF_MAX = 360.0  # upstream's MaxJobPodFailureBackOff
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


# --- pure helpers -------------------------------------------------------------------------------


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _deleting(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_finished_at(pod: Obj) -> float | None:
    """When a finished pod's last container terminated (its Ready condition's change, else None)."""
    status = pod.get("status") or {}
    times = [
        ts
        for cs in status.get("containerStatuses") or []
        if (ts := timestamp_or_none(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")))
        is not None
    ]
    if times:
        return max(times)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return timestamp_or_none(cond.get("lastTransitionTime"))
    return None


def rv_of(obj: Obj) -> int:
    """An object's resourceVersion as the store's revision number (0 when it has none)."""
    try:
        return int(str((obj.get("metadata") or {}).get("resourceVersion") or 0))
    except ValueError:
        return 0


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _restarts(pod: Obj) -> int:
    return sum(
        int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or []
    )


class JobCounts:
    """What a Job's pods say: the active ones, succeeded/failed counts, failures since the last
    success (for the back-off) and the last failure's time."""

    def __init__(self) -> None:
        self.active: list[Obj] = []
        self.succeeded = 0
        self.failed = 0
        self.ready = 0
        self.restarts = 0
        self.failures_after_success = 0
        self.last_failure: float | None = None


def count_pods(pods: list[Obj], now: float) -> JobCounts:
    """Pure: classify a Job's (owned) pods."""
    out = JobCounts()
    last_success = None
    failed_at: list[float] = []
    for pod in pods:
        phase = _phase(pod)
        if phase == "Succeeded":
            out.succeeded += 1
            at = pod_finished_at(pod)
            if at is not None and (last_success is None or at > last_success):
                last_success = at
        elif phase == "Failed":
            out.failed += 1
            failed_at.append(pod_finished_at(pod) or now)
        elif not _deleting(pod):
            out.active.append(pod)
            out.ready += 1 if is_ready(pod) else 0
            out.restarts += _restarts(pod)
    for at in failed_at:
        if last_success is None or at > last_success:
            out.failures_after_success += 1
            out.last_failure = at if out.last_failure is None else max(out.last_failure, at)
    return out


def backoff_delay(failures: int) -> float:
    """Seconds a Job waits before its next pod after `failures` failures since the last success."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** min(failures - 1, 32), BACKOFF_MAX)


def finished_condition(job: Obj) -> dict[str, Any] | None:
    """The Job's Complete or Failed condition when it is True (the Job is finished), else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return dict(cond)
    return None


def job_owner_ref(job: Obj) -> dict[str, Any]:
    return {**owner_ref(job), "apiVersion": "batch/v1", "kind": "Job"}


def job_pod(job: Obj, index: int | None = None) -> Obj:
    """A new pod for `job`: its template, generateName `<job>-`, owned by it. An Indexed Job's pod
    carries its completion index as upstream's: annotation and label
    `batch.kubernetes.io/job-completion-index`, hostname `<job>-<index>` and the environment
    variable JOB_COMPLETION_INDEX in every container."""
    name = str((job.get("metadata") or {}).get("name"))
    generate_name = f"{name}-" if index is None else f"{name}-{index}-"
    pod = pod_from_template(job, ref=job_owner_ref(job), generate_name=generate_name)
    pod_meta, spec = pod["metadata"], pod["spec"]
    if index is not None:
        pod_meta.setdefault("annotations", {})[INDEX_KEY] = str(index)
        pod_meta["labels"][INDEX_KEY] = str(index)
        spec.setdefault("hostname", f"{name}-{index}")
        ref = {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": ref})
    return pod


def pod_index(pod: Obj) -> int | None:
    """An Indexed Job's pod's completion index (None when it has none or it is not a number)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(str(text)) if text is not None else None
    except ValueError:
        return None


def index_ranges(indexes: set[int]) -> str:
    """Upstream's completedIndexes text: sorted, consecutive runs as `a-b` ("0-2,5,7-8")."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def parse_ranges(text: str) -> set[int]:
    """The indexes of a completedIndexes text ("0-2,5" -> {0, 1, 2, 5}); malformed parts are skipped."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        if 0 <= first <= last and last - first <= 100_000:
            out.update(range(first, last + 1))
    return out


def plan_indexes(
    active: list[Obj], succeeded: set[int], completions: int, parallelism: int
) -> tuple[list[Obj], list[int]]:
    """Pure, for an Indexed Job: (active pods to delete: duplicates, out of range or already
    succeeded indexes, or beyond parallelism; indexes to start, lowest first)."""
    surplus: list[Obj] = []
    kept: dict[int, Obj] = {}
    for pod in sorted(active, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp"))):
        i = pod_index(pod)
        if i is None or not 0 <= i < completions or i in succeeded or i in kept:
            surplus.append(pod)
        else:
            kept[i] = pod
    want = max(0, min(parallelism, completions - len(succeeded)))
    if len(kept) > want:
        for i in sorted(kept, reverse=True)[: len(kept) - want]:
            surplus.append(kept.pop(i))
    missing = [i for i in range(completions) if i not in succeeded and i not in kept]
    return surplus, missing[: max(0, want - len(kept))]


def _condition(ctype: str, status: str, reason: str, message: str, now: float) -> dict[str, Any]:
    ts = rfc3339(now)
    return {
        "type": ctype,
        "status": status,
        "lastProbeTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def _set_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the condition of new's type (keeping its transition time when the status is the same)."""
    out = []
    placed = False
    for cond in conditions:
        if cond.get("type") == new["type"]:
            if cond.get("status") == new["status"] and cond.get("reason") == new.get("reason"):
                out.append(cond)
            else:
                out.append(new)
            placed = True
        else:
            out.append(cond)
    if not placed:
        out.append(new)
    return out


# --- the controller -----------------------------------------------------------------------------


class JobController(Controller):
    """Runs Jobs' pods to completion (see the module docstring)."""

    name = "job"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.expectations = Expectations(clock)
        # the resourceVersion of each Job's last status write: a cache older than it is stale
        self._written: dict[str, int] = {}
        # finished pods of each Job deleted while this controller watched: they still count
        self._gone: dict[str, dict[str, int]] = {}
        self._gone_lock = threading.Lock()
        self.jobs: Informer = factory.informer("Job")
        self.pods: Informer = factory.informer("Pod")
        self.jobs.add_handler(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new), on_delete=self._job_deleted
        )
        self.pods.add_handler(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    # -- handlers -----------------------------------------------------------------------------------

    def _job_deleted(self, job: Obj) -> None:
        self.expectations.forget(key_of(job))

    def _job_key(self, pod: Obj) -> str | None:
        return controller_key(pod, "Job")

    def _pod_added(self, pod: Obj) -> None:
        key = self._job_key(pod)
        if key is not None:
            self.expectations.created(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = self._job_key(new)
        # only a change a Job cares about: phase, readiness, restarts, deletion
        if key is not None and (
            _phase(old) != _phase(new)
            or is_ready(old) != is_ready(new)
            or _restarts(old) != _restarts(new)
            or _deleting(old) != _deleting(new)
        ):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._job_key(pod)
        if key is not None:
            self.expectations.deleted(key, str((pod.get("metadata") or {}).get("uid", "")))
            phase = _phase(pod)
            if phase in ("Succeeded", "Failed"):
                # a finished pod deleted by someone else still counts (see the module docstring)
                with self._gone_lock:
                    gone = self._gone.setdefault(key, {"Succeeded": 0, "Failed": 0})
                    gone[phase] += 1
            self.queue.add(key)

    # -- reconcile ----------------------------------------------------------------------------------

    def _pods_of(self, job: Obj) -> list[Obj]:
        meta = job.get("metadata") or {}
        spec = job.get("spec") or {}
        ns = str(meta.get("namespace") or "default")
        uid = str(meta.get("uid") or "")
        selector_raw = spec.get("selector") or {}
        if selector_raw == {"matchLabels": {CONTROLLER_UID_LABEL: uid}}:
            candidates = self.pods.by_index("label", f"{CONTROLLER_UID_LABEL}={uid}")
        else:
            candidates = self.pods.by_index("namespace", ns)
        claim = claim_pods(job, candidates, selector_from_label_selector(selector_raw))
        return claim.owned + adopt_claimed(self.api, claim, job_owner_ref(job))[0]

    def reconcile(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.forget(key)
            self._written.pop(key, None)
            with self._gone_lock:
                self._gone.pop(key, None)
            return
        if rv_of(job) < self._written.get(key, 0):
            return  # our own last write is not in the cache yet: its update event brings us back
        if (job.get("metadata") or {}).get("deletionTimestamp"):
            return
        now = self.clock.now()
        if finished_condition(job) is not None:
            self._finished(key, job, now)
            return
        pods = self._pods_of(job)
        counts = count_pods(pods, now)
        with self._gone_lock:
            gone = dict(self._gone.get(key) or {})
        spec = job.get("spec") or {}
        status: dict[str, Any] = copy.deepcopy(job.get("status") or {})
        conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
        indexed = spec.get("completionMode") == "Indexed"
        done_indexes: set[int] = set()
        if indexed:
            total = _int(spec.get("completions"), 1)
            done_indexes = {
                i
                for p in pods
                if _phase(p) == "Succeeded" and (i := pod_index(p)) is not None and 0 <= i < total
            }
            # an index once completed stays completed, even when its pod is deleted
            done_indexes |= {i for i in parse_ranges(str(status.get("completedIndexes") or "")) if i < total}
            counts.succeeded = len(done_indexes)
        else:
            counts.succeeded += gone.get("Succeeded", 0)
        succeeded = max(counts.succeeded, int(status.get("succeeded") or 0))
        failed = max(counts.failed + gone.get("Failed", 0), int(status.get("failed") or 0))
        active = counts.active
        suspended = spec.get("suspend") is True
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        failures = failed + (counts.restarts if policy == "OnFailure" else 0)
        backoff_limit = _int(spec.get("backoffLimit"), 6)
        completions = spec.get("completions")
        parallelism = _int(spec.get("parallelism"), 1)

        if suspended:
            if active:
                self._delete_pods(key, job, active)
                active = []
            conditions = _set_condition(
                conditions, _condition("Suspended", "True", "JobSuspended", "Job suspended", now)
            )
            status.pop("startTime", None)
        else:
            if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
                conditions = _set_condition(
                    conditions, _condition("Suspended", "False", "JobResumed", "Job resumed", now)
                )
                status.pop("startTime", None)
            if not status.get("startTime"):
                status["startTime"] = rfc3339(now)
        start = timestamp_or_none(status.get("startTime"))

        finished: dict[str, Any] | None = None
        active_count = 0
        deadline = spec.get("activeDeadlineSeconds")
        if not suspended and failures > backoff_limit:
            finished = _condition(
                "Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now
            )
        elif not suspended and deadline is not None and start is not None and now >= start + int(deadline):
            finished = _condition(
                "Failed", "True", "DeadlineExceeded", "Job was active longer than specified deadline", now
            )
        elif (succeeded >= int(completions)) if completions is not None else (succeeded > 0 and not active):
            finished = _condition(
                "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods", now
            )

        if finished is not None:
            if active:
                self._delete_pods(key, job, active)
                active = []
            conditions = _set_condition(conditions, finished)
            if finished["type"] == "Complete":
                status["completionTime"] = rfc3339(now)
                record_event(
                    self.api, job, "Completed", "Job completed", component=COMPONENT, clock=self.clock
                )
            else:
                record_event(
                    self.api,
                    job,
                    str(finished["reason"]),
                    str(finished["message"]),
                    type="Warning",
                    component=COMPONENT,
                    clock=self.clock,
                )
        elif not suspended:
            if indexed:
                surplus, to_start = plan_indexes(active, done_indexes, _int(completions, 1), parallelism)
                want = len(active) - len(surplus) + len(to_start)
                created = self._manage(key, job, active, want, counts, now, surplus=surplus, indexes=to_start)
            elif completions is None:
                want = len(active) if succeeded > 0 else parallelism
                created = self._manage(key, job, active, want, counts, now)
            else:
                want = min(parallelism, int(completions) - succeeded)
                created = self._manage(key, job, active, want, counts, now)
            if deadline is not None and start is not None:
                self.queue.add_after(key, max(0.0, start + int(deadline) - now) + 0.001)
            active_count = len(active) + created

        status["conditions"] = conditions
        for field, value in (("active", active_count), ("succeeded", succeeded), ("failed", failed)):
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        status["ready"] = 0 if finished is not None or suspended else counts.ready
        if indexed:
            status["completedIndexes"] = index_ranges(done_indexes)
        if not status["conditions"]:
            del status["conditions"]
        self._write_status(key, job, status)
        if finished is not None:
            self._schedule_ttl(key, job, now, now)

    def _manage(
        self,
        key: str,
        job: Obj,
        active: list[Obj],
        want: int,
        counts: JobCounts,
        now: float,
        *,
        surplus: list[Obj] | None = None,
        indexes: list[int] | None = None,
    ) -> int:
        """Create or delete pods towards `want` active ones; returns how many were created (negative:
        deleted). An Indexed Job names the pods to delete (`surplus`) and the `indexes` to start."""
        if not self.expectations.satisfied(key):
            return 0
        if surplus:
            self._delete_pods(key, job, surplus)
            return -len(surplus)
        diff = len(active) - max(0, want)
        if diff > 0:
            # newest (least invested) first
            victims = sorted(
                active, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp")), reverse=True
            )
            self._delete_pods(key, job, victims[:diff])
            return -diff
        if diff == 0:
            return 0
        if counts.last_failure is not None:
            wait = counts.last_failure + backoff_delay(counts.failures_after_success) - now
            if wait > 0:
                self.queue.add_after(key, wait + 0.001)
                return 0
        count = min(-diff, BURST)
        self.expectations.expect(key, adds=count)
        made = 0
        try:
            for n in range(count):
                pod = self.api.create(job_pod(job, indexes[n] if indexes is not None else None))
                made += 1
                record_event(
                    self.api,
                    job,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    component=COMPONENT,
                    clock=self.clock,
                )
        except NbkubeError as exc:
            for _ in range(count - made):
                self.expectations.created(key)
            record_event(
                self.api,
                job,
                "FailedCreate",
                f"Error creating: {exc}",
                type="Warning",
                component=COMPONENT,
                clock=self.clock,
            )
            raise
        return made

    def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        self.expectations.expect(key, deletes=[str(p["metadata"].get("uid", "")) for p in pods])
        for pod in pods:
            try:
                delete_pod(self.api, pod)
            except NotFound:
                self.expectations.deleted(key, str(pod["metadata"].get("uid", "")))
                continue
            record_event(
                self.api,
                job,
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                component=COMPONENT,
                clock=self.clock,
            )

    def _write_status(self, key: str, job: Obj, status: dict[str, Any]) -> None:
        written = write_status(self, key, job, status)
        if written is not None:
            self._written[key] = rv_of(written)

    # -- finished jobs ------------------------------------------------------------------------------

    def _finished(self, key: str, job: Obj, now: float) -> None:
        """A finished Job: delete pods still running (a Failed one's), then its TTL."""
        leftovers = [
            p for p in self._pods_of(job) if _phase(p) not in ("Succeeded", "Failed") and not _deleting(p)
        ]
        if leftovers and self.expectations.satisfied(key):
            self._delete_pods(key, job, leftovers)
        cond = finished_condition(job) or {}
        at = timestamp_or_none((job.get("status") or {}).get("completionTime")) or timestamp_or_none(
            cond.get("lastTransitionTime")
        )
        self._schedule_ttl(key, job, at if at is not None else now, now)

    def _schedule_ttl(self, key: str, job: Obj, finished_at: float, now: float) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        left = finished_at + int(ttl) - now
        if left > 0:
            self.queue.add_after(key, left + 0.001)
            return
        ns, name = split_key(key)
        uid = (job.get("metadata") or {}).get("uid")
        try:
            fresh = self.api.get("Job", name, ns or "default")
            if (fresh.get("metadata") or {}).get("uid") != uid:
                return
            self.api.delete(
                "Job", name, ns or "default", resource_version=str(fresh["metadata"].get("resourceVersion"))
            )
        except NotFound:
            return
        except Conflict:
            self.queue.add_rate_limited(key)
            return
        self.log.info("job %s: deleted %ss after it finished (ttlSecondsAfterFinished)", key, ttl)
