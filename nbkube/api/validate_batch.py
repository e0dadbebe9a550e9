"""Validation of the batch/v1 kinds: Job and CronJob, as upstream's batch validation.

A Job's pods run to completion, so its template's restartPolicy must be Never or OnFailure. Its
selector is generated from its uid (see defaults_batch.py) unless `manualSelector` is true; a
selector written by hand without it is refused, as upstream. A CronJob's schedule is parsed by
croniter (5 fields or a macro such as `@hourly`) and its time zone by zoneinfo, so a schedule the
controller could not follow is a field error at create time, never a controller failure later.

The Job fields nbkube does not implement (podFailurePolicy, successPolicy, per-index back-off,
podReplacementPolicy other than TerminatingOrFailed) are refused with a field error saying so.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

from croniter import CroniterError, croniter

from nbkube.api.defaults_batch import CONTROLLER_UID_LABEL
from nbkube.api.fieldcheck import Errors, is_int, join
from nbkube.api.selectors import label_selector_errors, selector_from_label_selector
from nbkube.api.validate_common import check_template_meta
from nbkube.api.validate_pod import check_pod_spec

__all__ = [
    "JOB_CONTROLLER",
    "schedule_errors",
    "time_zone_errors",
    "validate_cron_job",
    "validate_job",
    "validate_job_update",
]

JOB_CONTROLLER = "kubernetes.io/job-controller"
MAX_INDEXED = 100_000  # upstream's maxParallelismForIndexedJob and completions bound
MAX_CRONJOB_NAME = 52  # its jobs are `<name>-<minutes since the epoch>`, and must fit 63 characters
_UNSUPPORTED = (
    "podFailurePolicy",
    "successPolicy",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
)
_JOB_STATUS_COUNTS = ("active", "succeeded", "failed", "terminating", "ready")


def schedule_errors(schedule: str) -> list[str]:
    """Why `schedule` is not a standard cron schedule ([] when it is)."""
    text = schedule.strip()
    if not text:
        return ["must not be empty"]
    upper = text.upper()
    if upper.startswith(("TZ=", "CRON_TZ=")):
        return ["cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
    if not text.startswith("@") and len(text.split()) != 5:
        return [f"must have 5 fields (minute hour day-of-month month day-of-week), got {len(text.split())}"]
    if not croniter.is_valid(text):
        return [f"invalid schedule {text!r}: not a cron expression or a macro (@hourly, @daily, ...)"]
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterError:
        return [f"invalid schedule {text!r}: it never matches a date (e.g. February 30)"]
    return []


def time_zone_errors(tz: str) -> list[str]:
    if tz == "" or tz == "Local":
        return ["timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [f"unknown time zone {tz}"]
    return []


def _check_job_spec(e: Errors, spec: dict[str, Any], path: str, meta: dict[str, Any] | None) -> None:
    """A JobSpec; `meta` is the Job's metadata (None inside a CronJob's job template, whose
    selector is generated only when each Job is created)."""
    e.int32(spec, "parallelism", path, minimum=0)
    e.int32(spec, "completions", path, minimum=0)
    e.int32(spec, "backoffLimit", path, minimum=0)
    e.integer(spec, "activeDeadlineSeconds", path, minimum=0)
    e.int32(spec, "ttlSecondsAfterFinished", path, minimum=0)
    e.boolean(spec, "suspend", path)
    manual = e.boolean(spec, "manualSelector", path)
    mode = e.one_of(spec, "completionMode", path, ("NonIndexed", "Indexed"))
    if mode == "Indexed":
        # as upstream: an index per completion, and a bound on how many the controller tracks
        completions = spec.get("completions")
        if completions is None:
            e.add(join(path, "completions"), "Required value: when completion mode is Indexed")
        for key in ("completions", "parallelism"):
            if is_int(spec.get(key)) and spec[key] > MAX_INDEXED:
                e.invalid(
                    join(path, key),
                    spec[key],
                    f"must be less than or equal to {MAX_INDEXED} when completion mode is Indexed",
                )
    for key in _UNSUPPORTED:
        if spec.get(key) is not None:
            e.invalid(join(path, key), spec[key], "not supported by nbkube")
    # the controller replaces a pod as soon as it is terminating or failed (upstream's default);
    # waiting for terminating pods to be gone ("Failed") is not implemented
    replacement = e.string(spec, "podReplacementPolicy", path)
    if replacement not in (None, "TerminatingOrFailed"):
        e.invalid(
            join(path, "podReplacementPolicy"),
            replacement,
            "not supported by nbkube: only TerminatingOrFailed",
        )
    managed_by = e.string(spec, "managedBy", path)
    if managed_by not in (None, JOB_CONTROLLER):
        e.unsupported(join(path, "managedBy"), managed_by, [JOB_CONTROLLER])
    template = e.mapping(spec, "template", path, required=True)
    labels: dict[str, str] = {}
    if template is not None:
        tp = join(path, "template")
        labels = check_template_meta(e, template, tp)
        pod_spec = e.mapping(template, "spec", tp, required=True)
        if pod_spec is not None:
            sp = join(tp, "spec")
            policy = pod_spec.get("restartPolicy")
            # check_pod_spec(template=True) only allows Always: check a copy without it, then the policy
            check_pod_spec(e, {k: v for k, v in pod_spec.items() if k != "restartPolicy"}, sp)
            if policy not in ("Never", "OnFailure"):
                e.unsupported(join(sp, "restartPolicy"), policy, ["OnFailure", "Never"])
    raw = spec.get("selector")
    if raw is None:
        if meta is not None:
            e.required(join(path, "selector"))
        return
    sel_path = join(path, "selector")
    before = len(e)
    e.extend(label_selector_errors(raw, sel_path))
    if len(e) != before:
        return
    selector = selector_from_label_selector(raw)
    if template is not None and not selector.matches(labels):
        e.invalid(
            join(path, "template.metadata.labels"), labels, "`selector` does not match template `labels`"
        )
    if manual is not True and meta is not None:
        uid = str(meta.get("uid") or "")
        if raw != {"matchLabels": {CONTROLLER_UID_LABEL: uid}}:
            e.invalid(
                sel_path, raw, "`selector` not auto-generated (set `manualSelector: true` to write one)"
            )
        elif labels.get(CONTROLLER_UID_LABEL) != uid:
            e.invalid(
                join(path, "template.metadata.labels"),
                labels,
                f"`{CONTROLLER_UID_LABEL}` must be the job's uid {uid}",
            )


def validate_job(e: Errors, obj: dict[str, Any]) -> None:
    status = obj.get("status")
    if isinstance(status, dict):
        for key in _JOB_STATUS_COUNTS:
            e.int32(status, key, "status", minimum=0)
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is not None:
        meta = obj.get("metadata")
        _check_job_spec(e, spec, "spec", meta if isinstance(meta, dict) else {})


def validate_cron_job(e: Errors, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str) and len(name) > MAX_CRONJOB_NAME:
        e.invalid("metadata.name", name, f"must be no more than {MAX_CRONJOB_NAME} characters")
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    schedule = e.string(spec, "schedule", "spec", required=True)
    if schedule is not None:
        e.extend_messages("spec.schedule", schedule, schedule_errors(schedule))
    tz = e.string(spec, "timeZone", "spec")
    if tz is not None:
        e.extend_messages("spec.timeZone", tz, time_zone_errors(tz))
    e.one_of(spec, "concurrencyPolicy", "spec", ("Allow", "Forbid", "Replace"))
    e.integer(spec, "startingDeadlineSeconds", "spec", minimum=0)
    e.boolean(spec, "suspend", "spec")
    e.int32(spec, "successfulJobsHistoryLimit", "spec", minimum=0)
    e.int32(spec, "failedJobsHistoryLimit", "spec", minimum=0)
    job_template = e.mapping(spec, "jobTemplate", "spec", required=True)
    if job_template is not None:
        check_template_meta(e, job_template, "spec.jobTemplate")
        job_spec = e.mapping(job_template, "spec", "spec.jobTemplate", required=True)
        if job_spec is not None:
            _check_job_spec(e, job_spec, "spec.jobTemplate.spec", None)


_IMMUTABLE = "field is immutable"


def validate_job_update(e: Errors, new_spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    """What a Job update may not change: its selector, completions, completion mode, and its pod
    template (upstream allows changing a suspended job's scheduling directives; nbkube does not)."""
    for key in ("selector", "completions", "completionMode", "template", "manualSelector"):
        if new_spec.get(key) != old_spec.get(key):
            e.invalid(join("spec", key), new_spec.get(key), _IMMUTABLE)
