"""CronJob controller on a fake clock: the schedule (5 fields, macros, time zones), the Job it makes,
concurrency policies, the missed-start deadline, history limits, suspend and status."""

from __future__ import annotations

import copy
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from nbk_workload_helpers import registry_on, started, wait_for

from nbkube.api.meta import Obj, controller_of
from nbkube.client.informer import InformerFactory
from nbkube.clock import FakeClock, rfc3339
from nbkube.controlplane.controllers.cronjob import (
    SCHEDULED_TIMESTAMP,
    CronJobController,
    most_recent_time,
    next_time,
)
from nbkube.registry.registry import Registry

# 2026-03-02 10:00:30 UTC, a Monday
T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=T0)


@pytest.fixture
def api(clock: FakeClock) -> Iterator[Registry]:
    yield from registry_on(clock)


@pytest.fixture
def ctl(api: Registry, factory: InformerFactory, clock: FakeClock) -> Iterator[CronJobController]:
    c = CronJobController(api, factory, clock=clock)
    with started(factory, c):
        yield c


def cron(schedule: str = "*/1 * * * *", name: str = "tick", **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"labels": {"app": "tick"}},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox", "command": ["date"]}],
                        }
                    }
                },
            },
            **spec,
        },
    }


def jobs(api: Registry, owner: str = "tick") -> list[Obj]:
    items = [j for j in api.list("Job", "default")[0] if (controller_of(j) or {}).get("name") == owner]
    return sorted(items, key=lambda j: j["metadata"]["name"])


def finish(api: Registry, job: Obj, ctype: str, at: float) -> None:
    new = copy.deepcopy(api.get("Job", job["metadata"]["name"], "default"))
    st = new.setdefault("status", {})
    st["conditions"] = [{"type": ctype, "status": "True", "lastTransitionTime": rfc3339(at)}]
    if ctype == "Complete":
        st["completionTime"] = rfc3339(at)
    api.update_status(new)


def cj_status(api: Registry, name: str = "tick") -> dict[str, Any]:
    return api.get("CronJob", name, "default").get("status") or {}


# --- pure schedule -----------------------------------------------------------------------------


def test_most_recent_and_next_times_in_utc_and_in_a_time_zone() -> None:
    utc = zoneinfo.ZoneInfo("UTC")
    assert most_recent_time("*/1 * * * *", utc, T0 - 60, T0) == T0 - 30
    assert most_recent_time("*/1 * * * *", utc, T0 - 30, T0) is None  # already run
    assert next_time("@hourly", utc, T0) == T0 - 30 + 3600
    # 09:00 in Tokyo is 00:00 UTC; 09:00 in New York (EST, March 2) is 14:00 UTC
    assert (
        next_time("0 9 * * *", zoneinfo.ZoneInfo("Asia/Tokyo"), T0)
        == datetime(2026, 3, 3, 0, 0, tzinfo=UTC).timestamp()
    )
    assert (
        next_time("0 9 * * *", zoneinfo.ZoneInfo("America/New_York"), T0)
        == datetime(2026, 3, 2, 14, 0, tzinfo=UTC).timestamp()
    )
    # across the DST change (March 8 2026 in New York), 09:00 local is 13:00 UTC
    assert (
        next_time("0 9 * * 1", zoneinfo.ZoneInfo("America/New_York"), T0 + 86400)
        == datetime(2026, 3, 9, 13, 0, tzinfo=UTC).timestamp()
    )


# --- the controller ----------------------------------------------------------------------------


def test_every_minute_creates_a_job_named_by_its_time(
    api: Registry, ctl: CronJobController, clock: FakeClock
) -> None:
    api.create(cron())
    assert jobs(api) == []  # created at 10:00:30; the first time is 10:01:00
    clock.advance(30)
    wait_for(lambda: len(jobs(api)) == 1, what="first job")
    first = jobs(api)[0]
    due = T0 + 30
    assert first["metadata"]["name"] == f"tick-{int(due) // 60}"
    assert first["metadata"]["labels"]["app"] == "tick"
    assert first["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-03-02T10:01:00+00:00"
    ref = controller_of(first)
    assert ref is not None and ref["kind"] == "CronJob" and ref["apiVersion"] == "batch/v1"
    wait_for(lambda: cj_status(api).get("lastScheduleTime") == rfc3339(due), what="lastScheduleTime")
    wait_for(
        lambda: [a["name"] for a in cj_status(api).get("active") or []] == [first["metadata"]["name"]],
        what="status.active",
    )
    clock.advance(60)
    wait_for(lambda: len(jobs(api)) == 2, what="second job (Allow)")


def test_time_zone_is_honoured(api: Registry, ctl: CronJobController, clock: FakeClock) -> None:
    # 11:02 in Paris (UTC+1 in March) is 10:02 UTC
    api.create(cron("2 11 * * *", timeZone="Europe/Paris"))
    clock.advance(60)
    assert jobs(api) == []
    clock.advance(61)
    wait_for(lambda: len(jobs(api)) == 1, what="job at 11:02 Paris")
    assert jobs(api)[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-03-02T11:02:00+01:00"


def test_forbid_skips_while_a_job_runs(api: Registry, ctl: CronJobController, clock: FakeClock) -> None:
    api.create(cron(concurrencyPolicy="Forbid"))
    clock.advance(30)
    wait_for(lambda: len(jobs(api)) == 1, what="first job")
    clock.advance(60)
    wait_for(
        lambda: any(e.get("reason") == "JobAlreadyActive" for e in api.list("Event", "default")[0]),
        what="JobAlreadyActive event",
    )
    assert len(jobs(api)) == 1
    finish(api, jobs(api)[0], "Complete", clock.now())
    clock.advance(60)
    wait_for(lambda: len(jobs(api)) == 2, what="next job once the first completed")
    wait_for(lambda: cj_status(api).get("lastSuccessfulTime"), what="lastSuccessfulTime")


def test_replace_deletes_the_running_job(api: Registry, ctl: CronJobController, clock: FakeClock) -> None:
    api.create(cron(concurrencyPolicy="Replace"))
    clock.advance(30)
    wait_for(lambda: len(jobs(api)) == 1, what="first job")
    first = jobs(api)[0]["metadata"]["name"]
    clock.advance(60)
    wait_for(
        lambda: [j["metadata"]["name"] for j in jobs(api)] != [first] and len(jobs(api)) == 1,
        what="replaced job",
    )


def test_missed_start_beyond_the_deadline_is_an_event_not_a_job(
    api: Registry, ctl: CronJobController, clock: FakeClock
) -> None:
    api.create(cron("0 * * * *", startingDeadlineSeconds=10))
    ctl.stop()  # the controller is down when 11:00 passes
    clock.advance(3600)  # 11:00:30: 30 s late, deadline 10 s
    ctl.start()
    ctl.queue.add("default/tick")
    wait_for(
        lambda: any(e.get("reason") == "MissSchedule" for e in api.list("Event", "default")[0]),
        what="MissSchedule event",
    )
    assert jobs(api) == []
    clock.advance(3600 - 25)  # 12:00:05: within the deadline
    wait_for(lambda: len(jobs(api)) == 1, what="job within the deadline")


def test_history_limits_delete_the_oldest_finished_jobs(
    api: Registry, ctl: CronJobController, clock: FakeClock
) -> None:
    api.create(cron(successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1))
    clock.advance(30)
    names = [f"tick-{int(T0 + 30 + 60 * n) // 60}" for n in range(5)]
    outcome = ["Complete", "Failed", "Complete", "Complete"]
    for name, ctype in zip(names, outcome, strict=False):
        wait_for(lambda name=name: name in {j["metadata"]["name"] for j in jobs(api)}, what=name)
        finish(api, api.get("Job", name, "default"), ctype, clock.now())
        clock.advance(60)
    wait_for(lambda: names[4] in {j["metadata"]["name"] for j in jobs(api)}, what="the fifth job")
    # kept: the failed one (limit 1), the two latest complete ones (limit 2) and the running one
    wait_for(
        lambda: [j["metadata"]["name"] for j in jobs(api)] == names[1:],
        what="history pruned",
        detail=lambda: [j["metadata"]["name"] for j in jobs(api)],
    )


def test_suspended_cron_job_creates_nothing(api: Registry, ctl: CronJobController, clock: FakeClock) -> None:
    api.create(cron(suspend=True))
    clock.advance(150)
    ctl.queue.add("default/tick")
    clock.advance(1)
    assert jobs(api) == []
    api.patch("CronJob", "tick", "default", {"spec": {"suspend": False}})
    wait_for(lambda: len(jobs(api)) == 1, what="one job for the latest missed time after resume")
