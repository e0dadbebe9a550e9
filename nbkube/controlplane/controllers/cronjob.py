"""The CronJob controller: create a Job at each scheduled time, as upstream's cronjob controller (v2).

Reconcile of one CronJob, with time read from the injected clock (tests move a FakeClock instead
of waiting for minutes to pass):

- its Jobs are those it controls (ownerReference), including ones `kubectl create job
  --from=cronjob/x` made; `status.active` lists the unfinished ones, `lastSuccessfulTime` follows
  the latest completion, and finished Jobs beyond `successfulJobsHistoryLimit` /
  `failedJobsHistoryLimit` are deleted oldest first (their pods follow through the GC);
- unless suspended, the most recent scheduled time not yet run is found with croniter in the
  CronJob's `timeZone` (UTC when unset): the last time after `lastScheduleTime` (or creation), and
  no earlier than `startingDeadlineSeconds` ago. A start missed by more than the deadline is an
  event (`MissSchedule`), not a Job;
- `concurrencyPolicy`: Allow runs Jobs side by side, Forbid skips a time while a Job is active,
  Replace deletes the active Jobs first;
- the Job is named `<cronjob>-<scheduled minutes since the epoch>` (so a retried create finds the
  same name) and carries the `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation;
- the key is queued again for the next scheduled time.
"""

from __future__ import annotations

import copy
import zoneinfo
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from croniter import CroniterError, croniter

from nbkube.api.meta import Obj, controller_of
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock, rfc3339, timestamp_or_none
from nbkube.controlplane.controllers.job import finished_condition, rv_of
from nbkube.controlplane.controllers.replication import owner_ref
from nbkube.controlplane.controllers.writes import controller_key, event, write_status
from nbkube.errors import AlreadyExists, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["CronJobController", "SCHEDULED_TIMESTAMP", "job_name", "most_recent_time", "next_time"]

COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def _zone(cron_job: Obj) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(str((cron_job.get("spec") or {}).get("timeZone") or "UTC"))


def most_recent_time(schedule: str, tz: zoneinfo.ZoneInfo, after: float, now: float) -> float | None:
    """The latest scheduled time in (after, now], or None when there is none (pure)."""
    if now <= after:
        return None
    # croniter's get_prev is strictly before its start: start one second past `now`
    start = datetime.fromtimestamp(int(now) + 1, tz=UTC).astimezone(tz)
    prev = croniter(schedule, start).get_prev(datetime)
    t = prev.timestamp()
    return t if after < t <= now else None


def next_time(schedule: str, tz: zoneinfo.ZoneInfo, now: float) -> float:
    """The first scheduled time strictly after `now` (pure)."""
    start = datetime.fromtimestamp(now, tz=UTC).astimezone(tz)
    return float(croniter(schedule, start).get_next(datetime).timestamp())


def job_name(cron_job: Obj, scheduled: float) -> str:
    return f"{(cron_job.get('metadata') or {}).get('name')}-{int(scheduled) // 60}"


def _job_ref(job: Obj) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }


def _started(job: Obj) -> float:
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return (
        timestamp_or_none(annotations.get(SCHEDULED_TIMESTAMP))
        or timestamp_or_none((job.get("status") or {}).get("startTime"))
        or timestamp_or_none((job.get("metadata") or {}).get("creationTimestamp"))
        or 0.0
    )


class CronJobController(Controller):
    """Creates Jobs on CronJobs' schedules (see the module docstring)."""

    name = "cronjob"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        # the resourceVersion of each CronJob's last status write: a cache older than it is stale
        self._written: dict[str, int] = {}
        self.cron_jobs: Informer = factory.informer("CronJob")
        self.jobs: Informer = factory.informer("Job")
        self.cron_jobs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.jobs.add_handler(
            on_add=self._job_changed,
            on_update=lambda old, new: self._job_changed(new),
            on_delete=self._job_changed,
        )

    def _job_changed(self, job: Obj) -> None:
        key = controller_key(job, "CronJob")
        if key is not None:
            self.queue.add(key)

    def _event(self, cron_job: Obj, reason: str, message: str, warning: bool = False) -> None:
        event(self, cron_job, reason, message, COMPONENT, warning=warning)

    def reconcile(self, key: str) -> None:
        cron_job = self.cron_jobs.get(key)
        if cron_job is None or (cron_job.get("metadata") or {}).get("deletionTimestamp"):
            self._written.pop(key, None)
            return
        if rv_of(cron_job) < self._written.get(key, 0):
            return  # our own last write is not in the cache yet: its update event brings us back
        meta = cron_job.get("metadata") or {}
        spec = cron_job.get("spec") or {}
        uid = meta.get("uid")
        now = self.clock.now()
        jobs = [
            j
            for j in self.jobs.by_index("namespace", str(meta.get("namespace") or "default"))
            if (controller_of(j) or {}).get("uid") == uid
            and not (j.get("metadata") or {}).get("deletionTimestamp")
        ]
        status: dict[str, Any] = copy.deepcopy(cron_job.get("status") or {})
        active = [j for j in jobs if finished_condition(j) is None]
        jobs = self._prune_history(cron_job, jobs)
        last_success = timestamp_or_none(status.get("lastSuccessfulTime"))
        for job in jobs:
            cond = finished_condition(job)
            done = timestamp_or_none((job.get("status") or {}).get("completionTime"))
            complete = cond is not None and cond.get("type") == "Complete" and done is not None
            if complete and done is not None and (last_success is None or done > last_success):
                last_success = done
        if last_success is not None:
            status["lastSuccessfulTime"] = rfc3339(last_success)

        schedule = str(spec.get("schedule") or "")
        if spec.get("suspend") is not True:
            try:
                tz = _zone(cron_job)
                active = self._run_due(cron_job, status, active, schedule, tz, now)
                self.queue.add_after(key, max(0.0, next_time(schedule, tz, now) - now))
            except (CroniterError, zoneinfo.ZoneInfoNotFoundError) as exc:
                # validation refuses both; an object stored before it did (or a time zone missing
                # from this machine's tzdata) is said once per change, not retried
                self._event(
                    cron_job, "UnparseableSchedule", f"cannot follow the schedule: {exc}", warning=True
                )
        if active:
            status["active"] = [_job_ref(j) for j in sorted(active, key=_started)]
        else:
            status.pop("active", None)
        written = write_status(self, key, cron_job, status)
        if written is not None:
            self._written[key] = rv_of(written)

    def _run_due(
        self,
        cron_job: Obj,
        status: dict[str, Any],
        active: list[Obj],
        schedule: str,
        tz: zoneinfo.ZoneInfo,
        now: float,
    ) -> list[Obj]:
        """Create the Job of the latest due time (if any, and the policy allows); returns the active Jobs."""
        meta = cron_job.get("metadata") or {}
        spec = cron_job.get("spec") or {}
        base = timestamp_or_none(status.get("lastScheduleTime")) or timestamp_or_none(
            meta.get("creationTimestamp")
        )
        if base is None:
            base = now
        due = most_recent_time(schedule, tz, base, now)
        if due is None:
            return active
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and due + int(deadline) < now:
            self._event(
                cron_job,
                "MissSchedule",
                f"Missed scheduled time to start a job: {rfc3339(due)} (startingDeadlineSeconds {deadline})",
                warning=True,
            )
            status["lastScheduleTime"] = rfc3339(due)  # missed for good: do not report it again
            return active
        policy = spec.get("concurrencyPolicy") or "Allow"
        if active and policy == "Forbid":
            self._event(
                cron_job,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return active
        if active and policy == "Replace":
            for old in active:
                self._delete_job(cron_job, old)
            active = []
        created = self._create_job(cron_job, due, tz)
        status["lastScheduleTime"] = rfc3339(due)
        if created is not None:
            active = [*active, created]
        return active

    def _create_job(self, cron_job: Obj, due: float, tz: zoneinfo.ZoneInfo) -> Obj | None:
        meta = cron_job.get("metadata") or {}
        template = (cron_job.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = datetime.fromtimestamp(due, tz=UTC).astimezone(tz).isoformat()
        job: dict[str, Any] = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name(cron_job, due),
                "namespace": meta.get("namespace") or "default",
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [{**owner_ref(cron_job), "apiVersion": "batch/v1", "kind": "CronJob"}],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if not job["metadata"]["labels"]:
            del job["metadata"]["labels"]
        try:
            created = self.api.create(job)
        except AlreadyExists:
            return None  # made by an earlier pass whose status write was lost: the informer has it
        self._event(cron_job, "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        return created

    def _delete_job(self, cron_job: Obj, job: Obj) -> None:
        jmeta = job.get("metadata") or {}
        try:
            self.api.delete("Job", str(jmeta.get("name")), str(jmeta.get("namespace") or "default"))
        except NotFound:
            return
        self._event(cron_job, "SuccessfulDelete", f"Deleted job {jmeta.get('name')}")

    def _prune_history(self, cron_job: Obj, jobs: list[Obj]) -> list[Obj]:
        """Delete the oldest finished Jobs beyond the history limits; returns the Jobs kept."""
        spec = cron_job.get("spec") or {}
        kept = list(jobs)
        for ctype, field, default in (
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ):
            limit = spec.get(field)
            limit = default if limit is None else int(limit)
            done = sorted(
                (j for j in jobs if (finished_condition(j) or {}).get("type") == ctype), key=_started
            )
            for job in done[: max(0, len(done) - limit)]:
                self._delete_job(cron_job, job)
                kept.remove(job)
        return kept
