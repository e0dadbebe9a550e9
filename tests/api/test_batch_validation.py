"""Bad Jobs and CronJobs are field errors naming the field, through the registry as kubectl sees
them: invalid cron expressions, unknown time zones, parallelism < 0, restartPolicy Always, hand-written
selectors without manualSelector, and the Job features nbkube refuses."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbkube.api.validation import validate, validate_update
from nbkube.errors import Invalid
from nbkube.registry.registry import Registry

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))
from nbk_teststore import make_store  # noqa: E402


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(make_store())
    yield reg
    reg.close()


def _pod_template(policy: str = "Never") -> dict[str, Any]:
    return {"spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "busybox"}]}}


def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {"template": spec.pop("template", _pod_template()), **spec},
    }


def cron(schedule: str = "*/5 * * * *", name: str = "c", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": _pod_template()}}, **spec},
    }


def errors_of(api: Registry, obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Invalid) as info:
        api.create(obj)
    return {e.path: e.message for e in info.value.errors}


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        ("61 * * * *", "invalid schedule"),
        ("0 0 30 2 *", "never matches a date"),
        ("* * * *", "must have 5 fields"),
        ("0 0 * * * *", "must have 5 fields"),
        ("@fortnightly", "invalid schedule"),
        ("not cron", "must have 5 fields"),
        ("", "required"),
        ("TZ=UTC 0 * * * *", "use timeZone field instead"),
    ],
)
def test_invalid_cron_expressions_are_field_errors(api: Registry, schedule: str, why: str) -> None:
    errs = errors_of(api, cron(schedule))
    assert why in errs["spec.schedule"]


@pytest.mark.parametrize(
    "schedule", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 9 * * 1-5", "*/1 * * * *"]
)
def test_macros_and_standard_schedules_are_accepted(api: Registry, schedule: str) -> None:
    created = api.create(cron(schedule, name=f"c{abs(hash(schedule)) % 10000}"))
    assert created["spec"]["concurrencyPolicy"] == "Allow"
    assert (created["spec"]["successfulJobsHistoryLimit"], created["spec"]["failedJobsHistoryLimit"]) == (
        3,
        1,
    )


def test_unknown_time_zone_is_a_field_error(api: Registry) -> None:
    assert (
        "unknown time zone Mars/Olympus_Mons"
        in errors_of(api, cron(timeZone="Mars/Olympus_Mons"))["spec.timeZone"]
    )
    assert "explicit time zone" in errors_of(api, cron(timeZone="Local"))["spec.timeZone"]
    assert api.create(cron(timeZone="Europe/Paris"))["spec"]["timeZone"] == "Europe/Paris"


def test_cron_job_policy_deadline_history_and_name(api: Registry) -> None:
    errs = errors_of(
        api, cron(concurrencyPolicy="Sometimes", startingDeadlineSeconds=-1, failedJobsHistoryLimit=-2)
    )
    assert (
        "Unsupported value" in errs["spec.concurrencyPolicy"] or "supported" in errs["spec.concurrencyPolicy"]
    )
    assert "greater than or equal to 0" in errs["spec.startingDeadlineSeconds"]
    assert "greater than or equal to 0" in errs["spec.failedJobsHistoryLimit"]
    assert "52" in errors_of(api, cron(name="x" * 53))["metadata.name"]


def test_negative_counts_are_field_errors(api: Registry) -> None:
    errs = errors_of(api, job(parallelism=-1, completions=-2, backoffLimit=-3, ttlSecondsAfterFinished=-4))
    for field in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        assert "greater than or equal to 0" in errs[f"spec.{field}"], field


def test_restart_policy_always_is_refused(api: Registry) -> None:
    errs = errors_of(api, job(template=_pod_template("Always")))
    assert "OnFailure" in errs["spec.template.spec.restartPolicy"]
    errs = errors_of(api, cron(jobTemplate={"spec": {"template": _pod_template("Always")}}))
    assert "Never" in errs["spec.jobTemplate.spec.template.spec.restartPolicy"]


def test_hand_written_selector_needs_manual_selector(api: Registry) -> None:
    template = {"metadata": {"labels": {"app": "x"}}, **_pod_template()}
    errs = errors_of(api, job(template=template, selector={"matchLabels": {"app": "x"}}))
    assert "not auto-generated" in errs["spec.selector"]
    created = api.create(job(template=template, selector={"matchLabels": {"app": "x"}}, manualSelector=True))
    assert created["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert "controller-uid" not in created["spec"]["template"]["metadata"]["labels"]


def test_unsupported_job_features_are_refused_by_name(api: Registry) -> None:
    errs = errors_of(
        api, job(podFailurePolicy={"rules": []}, backoffLimitPerIndex=1, successPolicy={"rules": []})
    )
    assert "not supported by nbkube" in errs["spec.podFailurePolicy"]
    assert "not supported by nbkube" in errs["spec.backoffLimitPerIndex"]
    assert "not supported by nbkube" in errs["spec.successPolicy"]


def test_indexed_jobs_need_completions_within_bounds(api: Registry) -> None:
    errs = errors_of(api, job(completionMode="Indexed", parallelism=2))
    assert "Required value" in errs["spec.completions"]
    errs = errors_of(api, job(completionMode="Indexed", completions=100_001))
    assert "100000" in errs["spec.completions"]
    assert api.create(job(completionMode="Indexed", completions=3))["spec"]["completionMode"] == "Indexed"


def test_job_selector_completions_and_template_are_immutable(api: Registry) -> None:
    created = api.create(job(completions=2))
    changed = {**created, "spec": {**created["spec"], "completions": 3, "parallelism": 2}}
    paths = {e.path for e in validate_update(changed, created)}
    assert paths == {"spec.completions"}  # parallelism may change
    assert validate(changed) == []


def test_pod_replacement_policy_is_upstreams_default_and_only_value(api: Registry) -> None:
    assert api.create(job())["spec"]["podReplacementPolicy"] == "TerminatingOrFailed"
    errs = errors_of(api, job(podReplacementPolicy="Failed"))
    assert "only TerminatingOrFailed" in errs["spec.podReplacementPolicy"]
