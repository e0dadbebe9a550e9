"""The OpenAPI field table of the batch/v1 kinds (Job, CronJob), kept beside nbkube.api.schemas.

schemas.py calls `register` with its two table helpers, so these shapes join the one table (and
its tests) without this module importing schemas.py back. Field names agree with
nbkube.api.fieldnames; what nbkube refuses (podFailurePolicy, successPolicy, per-index back-off) is
described with the refusal validate_batch.py gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register"]

_BATCH = "io.k8s.api.batch.v1."
_NOT_SUPPORTED = " Not supported by nbkube: setting it is a field error."


def register(shape: Callable[..., None], kind: Callable[..., None]) -> None:
    """Add the batch/v1 shapes and kinds with schemas.py's `_shape` and `_kind` helpers."""
    shape(
        "JobSpec",
        _BATCH + "JobSpec",
        "The desired behaviour of a job.",
        {
            "parallelism": ("int32", "The maximum number of pods the job runs at once. Defaults to 1."),
            "completions": (
                "int32",
                "The number of successfully finished pods the job needs. Defaults to 1; "
                "unset means any one success completes the job once all pods have finished.",
            ),
            "activeDeadlineSeconds": (
                "int64",
                "Seconds from the job's start after which its pods are "
                "terminated and it fails with DeadlineExceeded.",
            ),
            "podFailurePolicy": ("object", "Rules on pod failures." + _NOT_SUPPORTED),
            "successPolicy": ("object", "When an Indexed job may be declared succeeded." + _NOT_SUPPORTED),
            "backoffLimit": (
                "int32",
                "The number of retries before the job fails with BackoffLimitExceeded. Defaults to 6.",
            ),
            "backoffLimitPerIndex": ("int32", "Retries per index of an Indexed job." + _NOT_SUPPORTED),
            "maxFailedIndexes": ("int32", "Failed indexes before an Indexed job fails." + _NOT_SUPPORTED),
            "selector": ("LabelSelector", "The pods of this job; generated unless manualSelector is true."),
            "manualSelector": ("boolean", "Whether the selector is the user's own rather than generated."),
            "template": ("PodTemplate", "The pod created for the job; restartPolicy Never or OnFailure."),
            "ttlSecondsAfterFinished": (
                "int32",
                "Seconds after the job finishes when it is deleted (with its pods).",
            ),
            "completionMode": ("string", "NonIndexed (default) or Indexed."),
            "suspend": ("boolean", "Whether the job's pods should be deleted and no new ones created."),
            "podReplacementPolicy": ("string", "When a replacement pod is created: TerminatingOrFailed (the "
                                 "default, and the only value nbkube supports)."),
            "managedBy": (
                "string",
                "The controller that manages the job; only kubernetes.io/job-controller.",
            ),
        },
        required=("template",),
        enums={"completionMode": ("Indexed", "NonIndexed")},
    )
    shape(
        "JobStatus",
        _BATCH + "JobStatus",
        "The current state of a job.",
        {
            "conditions": (
                "[]JobCondition",
                "The latest observations of the job: Complete, Failed, Suspended.",
            ),
            "startTime": ("time", "When the job controller started the job."),
            "completionTime": ("time", "When the job completed (only for a Complete job)."),
            "active": ("int32", "The number of pending and running pods."),
            "succeeded": ("int32", "The number of pods that reached phase Succeeded."),
            "failed": ("int32", "The number of pods that reached phase Failed."),
            "terminating": ("int32", "The number of pods being terminated."),
            "completedIndexes": ("string", "The completed indexes of an Indexed job, as ranges."),
            "failedIndexes": ("string", "The failed indexes of an Indexed job."),
            "uncountedTerminatedPods": ("object", "Finished pods not yet counted in the status."),
            "ready": ("int32", "The number of active pods that are Ready."),
        },
    )
    shape(
        "JobCondition",
        _BATCH + "JobCondition",
        "A condition of a job.",
        {
            "type": ("string", "Complete, Failed, Suspended, FailureTarget or SuccessCriteriaMet."),
            "status": ("string", "True, False or Unknown."),
            "lastProbeTime": ("time", "The last time the condition was checked."),
            "lastTransitionTime": ("time", "The last time the condition transitioned."),
            "reason": ("string", "Why the condition last transitioned, e.g. BackoffLimitExceeded."),
            "message": ("string", "A human readable message about the transition."),
        },
        required=("type", "status"),
    )
    shape(
        "JobTemplate",
        _BATCH + "JobTemplateSpec",
        "The job a CronJob creates.",
        {
            "metadata": ("ObjectMeta", "Labels and annotations copied to each job."),
            "spec": ("JobSpec", "The specification of each job."),
        },
    )
    shape(
        "CronJobSpec",
        _BATCH + "CronJobSpec",
        "The schedule and the job of a cron job.",
        {
            "schedule": ("string", "The schedule in cron format (5 fields or a macro such as @hourly)."),
            "timeZone": (
                "string",
                "The time zone of the schedule (an IANA name); the controller's local "
                "time (UTC here) when unset.",
            ),
            "startingDeadlineSeconds": (
                "int64",
                "Seconds after a missed scheduled time during which the job may still start.",
            ),
            "concurrencyPolicy": (
                "string",
                "Allow (default), Forbid or Replace: what to do when the previous job still runs.",
            ),
            "suspend": ("boolean", "Whether later executions are suspended."),
            "jobTemplate": ("JobTemplate", "The job created at each scheduled time."),
            "successfulJobsHistoryLimit": ("int32", "Finished successful jobs kept. Defaults to 3."),
            "failedJobsHistoryLimit": ("int32", "Finished failed jobs kept. Defaults to 1."),
        },
        required=("schedule", "jobTemplate"),
        enums={"concurrencyPolicy": ("Allow", "Forbid", "Replace")},
    )
    shape(
        "CronJobStatus",
        _BATCH + "CronJobStatus",
        "The current state of a cron job.",
        {
            "active": ("[]ObjectReference", "The jobs of this cron job that are running."),
            "lastScheduleTime": ("time", "The last time a job was scheduled."),
            "lastSuccessfulTime": ("time", "The last time a job completed successfully."),
        },
    )
    status = "Most recently observed status of the object; read-only."
    fields: dict[str, Any] = {
        "spec": ("JobSpec", "Desired state of the job."),
        "status": ("JobStatus", status),
    }
    kind("Job", _BATCH + "Job", "A single job: pods run to completion.", fields)
    kind(
        "CronJob",
        _BATCH + "CronJob",
        "A job run on a schedule.",
        {
            "spec": ("CronJobSpec", "Desired state of the cron job."),
            "status": ("CronJobStatus", status),
        },
    )
