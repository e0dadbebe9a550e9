"""Defaulting of the batch/v1 kinds (Job, CronJob), as upstream's SetDefaults_Job / _CronJob and the
Job strategy's generated selector.

A Job without `manualSelector: true` gets the selector upstream generates from its uid
(`batch.kubernetes.io/controller-uid: <uid>`) and its pod template the labels
`batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name` and their legacy forms
`controller-uid`, `job-name`; the registry assigns the uid before defaulting so this can happen
here. Tolerant as nbkube.api.defaults: a mistyped field is left for validation to name.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.meta import Obj

__all__ = [
    "CONTROLLER_UID_LABEL",
    "JOB_NAME_LABEL",
    "LEGACY_CONTROLLER_UID_LABEL",
    "LEGACY_JOB_NAME_LABEL",
    "default_cron_job",
    "default_job",
    "default_job_spec",
]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


def _unset(d: dict[str, Any], key: str) -> bool:
    return d.get(key) is None or d.get(key) == ""


def default_job_spec(spec: dict[str, Any]) -> None:
    """The JobSpec defaults: parallelism 1, completions 1 when both are unset, backoffLimit 6,
    completionMode NonIndexed, suspend false, podReplacementPolicy TerminatingOrFailed (without a
    podFailurePolicy, as upstream since 1.29)."""
    if _unset(spec, "completions") and _unset(spec, "parallelism"):
        spec["completions"] = 1
    if _unset(spec, "parallelism"):
        spec["parallelism"] = 1
    if _unset(spec, "backoffLimit"):
        spec["backoffLimit"] = 6
    if _unset(spec, "completionMode"):
        spec["completionMode"] = "NonIndexed"
    if _unset(spec, "suspend"):
        spec["suspend"] = False
    if _unset(spec, "podReplacementPolicy") and spec.get("podFailurePolicy") is None:
        spec["podReplacementPolicy"] = "TerminatingOrFailed"


def _generate_selector(obj: Obj, spec: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    template = spec.get("template")
    if not isinstance(meta, dict) or not isinstance(template, dict):
        return
    uid, name = meta.get("uid"), meta.get("name")
    if not isinstance(uid, str) or not uid or not isinstance(name, str):
        return
    tmeta = template.setdefault("metadata", {})
    if not isinstance(tmeta, dict):
        return
    labels = tmeta.get("labels")
    if labels is None:
        labels = tmeta["labels"] = {}
    if not isinstance(labels, dict):
        return
    # labels the user set are kept: a conflicting one is validation's to report, as upstream
    for key, value in (
        (LEGACY_JOB_NAME_LABEL, name),
        (JOB_NAME_LABEL, name),
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (CONTROLLER_UID_LABEL, uid),
    ):
        labels.setdefault(key, value)
    selector = spec.get("selector")
    if selector is None:
        selector = spec["selector"] = {}
    if isinstance(selector, dict):
        match = selector.get("matchLabels")
        if match is None:
            match = selector["matchLabels"] = {}
        if isinstance(match, dict):
            match.setdefault(CONTROLLER_UID_LABEL, uid)


def default_job(obj: Obj, default_template: Any) -> None:
    """Default a Job in place; `default_template(spec)` defaults its pod template (defaults.py's)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    default_job_spec(spec)
    if spec.get("manualSelector") is not True and spec.get("selector") is None:
        _generate_selector(obj, spec)
    default_template(spec)
    meta = obj.get("metadata")
    tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    if isinstance(meta, dict) and isinstance(tlabels, dict) and tlabels and not meta.get("labels"):
        meta["labels"] = dict(tlabels)  # as SetDefaults_Job: a Job without labels takes its pods'


def default_cron_job(obj: Obj, default_template: Any) -> None:
    """Default a CronJob in place: concurrencyPolicy Allow, suspend false, history limits 3 and 1,
    and its job template's pod template."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    for key, value in (
        ("concurrencyPolicy", "Allow"),
        ("suspend", False),
        ("successfulJobsHistoryLimit", 3),
        ("failedJobsHistoryLimit", 1),
    ):
        if _unset(spec, key):
            spec[key] = value
    job_template = spec.get("jobTemplate")
    job_spec = job_template.get("spec") if isinstance(job_template, dict) else None
    if isinstance(job_spec, dict):
        default_template(job_spec)
