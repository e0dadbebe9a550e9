"""Job controller: completions and parallelism, the work-queue mode, back-off from real failures
(exponential, from the fake clock), backoffLimit, activeDeadlineSeconds, suspend, TTL after
finishing, and the generated selector. Pods are finished by hand (update_status with a phase and
a terminated container), as a node agent would write them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_workload_helpers import gone, registry_on, started, wait_for

from nbkube.api.defaults_batch import CONTROLLER_UID_LABEL, JOB_NAME_LABEL
from nbkube.api.meta import Obj, controller_of
from nbkube.client.informer import InformerFactory
from nbkube.clock import FakeClock, rfc3339
from nbkube.controlplane.controllers.job import (
    BACKOFF_MAX,
    INDEX_KEY,
    JobController,
    backoff_delay,
    count_pods,
    index_ranges,
    parse_ranges,
    plan_indexes,
    pod_index,
)
from nbkube.registry.registry import Registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api(clock: FakeClock) -> Iterator[Registry]:
    yield from registry_on(clock)


@pytest.fixture
def ctl(api: Registry, factory: InformerFactory, clock: FakeClock) -> Iterator[JobController]:
    c = JobController(api, factory, clock=clock)
    with started(factory, c):
        yield c


def job(name: str = "pi", **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": spec.pop("restartPolicy", "Never"),
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
            **spec,
        },
    }


def pods_of(api: Registry, name: str) -> list[Obj]:
    return [p for p in api.list("Pod", "default")[0] if (controller_of(p) or {}).get("name") == name]


def running(api: Registry, name: str) -> list[Obj]:
    return [
        p for p in pods_of(api, name) if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def finish(api: Registry, pod: Obj, code: int, at: float) -> None:
    new = copy.deepcopy(api.get("Pod", pod["metadata"]["name"], "default"))
    new["status"] = {
        "phase": "Succeeded" if code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": "c",
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "finishedAt": rfc3339(at),
                    }
                },
            }
        ],
    }
    api.update_status(new)


def status(api: Registry, name: str = "pi") -> dict[str, Any]:
    return api.get("Job", name, "default").get("status") or {}


def condition(api: Registry, ctype: str, name: str = "pi") -> dict[str, Any] | None:
    for c in status(api, name).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            return dict(c)
    return None


# --- pure --------------------------------------------------------------------------------------


def test_backoff_doubles_from_ten_seconds_and_caps_at_six_minutes() -> None:
    assert [backoff_delay(n) for n in range(0, 7)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0]
    assert backoff_delay(7) == BACKOFF_MAX == 360.0
    assert backoff_delay(60) == 360.0


def test_count_pods_counts_failures_since_the_last_success_only() -> None:
    def pod(phase: str, at: float) -> Obj:
        term = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 2, "finishedAt": rfc3339(at)}}
        return {
            "metadata": {"name": f"{phase}{at}"},
            "status": {"phase": phase, "containerStatuses": [{"state": term}]},
        }

    counts = count_pods(
        [
            pod("Failed", 100),
            pod("Succeeded", 200),
            pod("Failed", 300),
            pod("Failed", 400),
            {"metadata": {"name": "r"}, "status": {"phase": "Running"}},
        ],
        now=500,
    )
    assert (counts.succeeded, counts.failed, len(counts.active)) == (1, 3, 1)
    assert counts.failures_after_success == 2 and counts.last_failure == 400


# --- the controller ----------------------------------------------------------------------------


def test_generated_selector_and_labels_as_upstream(api: Registry) -> None:
    created = api.create(job())
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {"matchLabels": {CONTROLLER_UID_LABEL: uid}}
    labels = created["spec"]["template"]["metadata"]["labels"]
    assert labels[CONTROLLER_UID_LABEL] == uid and labels["controller-uid"] == uid
    assert labels[JOB_NAME_LABEL] == "pi" and labels["job-name"] == "pi"
    assert created["spec"]["backoffLimit"] == 6 and created["spec"]["completionMode"] == "NonIndexed"
    assert created["spec"]["parallelism"] == 1 and created["spec"]["completions"] == 1


def test_completions_run_at_most_parallelism_pods_then_complete(
    api: Registry, ctl: JobController, clock: FakeClock
) -> None:
    api.create(job(completions=5, parallelism=2))
    done = 0
    while done < 5:
        pods = wait_for(lambda: running(api, "pi"), what="running pods")
        assert isinstance(pods, list)
        assert len(running(api, "pi")) <= 2
        finish(api, pods[0], 0, clock.now())
        done += 1
        wait_for(
            lambda d=done: status(api).get("succeeded") == d,
            what=f"{done} succeeded",
            detail=lambda: status(api),
        )
        if done < 5:
            want = min(2, 5 - done)
            wait_for(lambda w=want: len(running(api, "pi")) == w, what="replacement pods")
    cond = wait_for(lambda: condition(api, "Complete"), what="Complete")
    assert isinstance(cond, dict) and cond["reason"] == "CompletionsReached"
    st = status(api)
    assert st["succeeded"] == 5 and "active" not in st and st["startTime"] and st["completionTime"]
    assert len(pods_of(api, "pi")) == 5  # finished pods are kept, as upstream


def test_work_queue_completes_when_one_succeeds_and_the_rest_finish(
    api: Registry, ctl: JobController, clock: FakeClock
) -> None:
    api.create(job(parallelism=3))
    wait_for(lambda: len(running(api, "pi")) == 3, what="3 workers")
    pods = running(api, "pi")
    finish(api, pods[0], 0, clock.now())
    wait_for(lambda: status(api).get("succeeded") == 1, what="one success")
    assert condition(api, "Complete") is None  # two workers still run
    assert len(running(api, "pi")) == 2  # and none is added after a success
    for p in pods[1:]:
        finish(api, p, 0, clock.now())
    wait_for(lambda: condition(api, "Complete"), what="Complete")


def test_failures_back_off_exponentially_then_fail_with_backoff_limit_exceeded(
    api: Registry, ctl: JobController, clock: FakeClock
) -> None:
    api.create(job(backoffLimit=2))
    first = wait_for(lambda: running(api, "pi"), what="first pod")
    assert isinstance(first, list)
    finish(api, first[0], 3, clock.now())
    wait_for(lambda: status(api).get("failed") == 1, what="one failure")
    ctl.queue.add("default/pi")
    clock.advance(9)
    assert running(api, "pi") == []  # back-off: 10 s after the first failure
    clock.advance(1.5)
    second = wait_for(lambda: running(api, "pi"), what="second pod after 10 s")
    assert isinstance(second, list)
    finish(api, second[0], 1, clock.now())
    wait_for(lambda: status(api).get("failed") == 2, what="two failures")
    clock.advance(19)
    assert running(api, "pi") == []  # 20 s after the second
    clock.advance(1.5)
    third = wait_for(lambda: running(api, "pi"), what="third pod after 20 s")
    assert isinstance(third, list)
    finish(api, third[0], 1, clock.now())
    cond = wait_for(lambda: condition(api, "Failed"), what="Failed")
    assert isinstance(cond, dict)
    assert cond["reason"] == "BackoffLimitExceeded" and status(api)["failed"] == 3
    assert "completionTime" not in status(api)


def test_on_failure_restarts_count_towards_the_backoff_limit(
    api: Registry, ctl: JobController, clock: FakeClock
) -> None:
    api.create(job(backoffLimit=1, restartPolicy="OnFailure"))
    pods = wait_for(lambda: running(api, "pi"), what="pod")
    assert isinstance(pods, list)
    new = copy.deepcopy(api.get("Pod", pods[0]["metadata"]["name"], "default"))
    new["status"] = {
        "phase": "Running",
        "containerStatuses": [{"name": "c", "restartCount": 2, "state": {"running": {}}}],
    }
    api.update_status(new)
    cond = wait_for(lambda: condition(api, "Failed"), what="Failed")
    assert isinstance(cond, dict) and cond["reason"] == "BackoffLimitExceeded"
    wait_for(lambda: not running(api, "pi"), what="the restarting pod deleted")


def test_active_deadline_fails_the_job_and_deletes_its_pods(
    api: Registry, ctl: JobController, clock: FakeClock
) -> None:
    api.create(job(parallelism=2, completions=4, activeDeadlineSeconds=30))
    wait_for(lambda: len(running(api, "pi")) == 2, what="2 pods")
    clock.advance(29)
    assert condition(api, "Failed") is None
    clock.advance(2)
    cond = wait_for(lambda: condition(api, "Failed"), what="DeadlineExceeded")
    assert isinstance(cond, dict) and cond["reason"] == "DeadlineExceeded"
    wait_for(lambda: not running(api, "pi"), what="pods deleted")


def test_suspend_deletes_pods_and_resume_restarts(
    api: Registry, ctl: JobController, clock: FakeClock
) -> None:
    api.create(job(parallelism=2, completions=2))
    wait_for(lambda: len(running(api, "pi")) == 2, what="2 pods")
    api.patch("Job", "pi", "default", {"spec": {"suspend": True}})
    wait_for(lambda: not running(api, "pi"), what="pods deleted on suspend")
    wait_for(lambda: condition(api, "Suspended"), what="Suspended")
    assert "startTime" not in status(api)
    clock.advance(60)
    api.patch("Job", "pi", "default", {"spec": {"suspend": False}})
    wait_for(lambda: len(running(api, "pi")) == 2, what="pods again on resume")
    wait_for(lambda: status(api).get("startTime") == rfc3339(clock.now()), what="startTime reset")
    resumed = [c for c in status(api)["conditions"] if c["type"] == "Suspended"]
    assert resumed[0]["status"] == "False" and resumed[0]["reason"] == "JobResumed"


def test_ttl_after_finished_deletes_the_job(api: Registry, ctl: JobController, clock: FakeClock) -> None:
    api.create(job(ttlSecondsAfterFinished=100))
    pods = wait_for(lambda: running(api, "pi"), what="pod")
    assert isinstance(pods, list)
    finish(api, pods[0], 0, clock.now())
    wait_for(lambda: condition(api, "Complete"), what="Complete")
    clock.advance(99)
    assert api.get("Job", "pi", "default")
    clock.advance(2)
    wait_for(lambda: gone(api, "Job", "pi"), what="job deleted by its TTL")


def test_parallelism_can_be_lowered(api: Registry, ctl: JobController) -> None:
    api.create(job(parallelism=4, completions=10))
    wait_for(lambda: len(running(api, "pi")) == 4, what="4 pods")
    api.patch("Job", "pi", "default", {"spec": {"parallelism": 1}})
    wait_for(
        lambda: len([p for p in running(api, "pi") if not p["metadata"].get("deletionTimestamp")]) == 1,
        what="scaled to 1",
    )


def test_index_ranges_and_plan_are_pure() -> None:
    assert index_ranges({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8" and index_ranges(set()) == ""

    def pod(i: int, t: int) -> Obj:
        return {
            "metadata": {
                "name": f"p{i}-{t}",
                "annotations": {INDEX_KEY: str(i)},
                "creationTimestamp": rfc3339(t),
            }
        }

    surplus, start = plan_indexes(
        [pod(0, 1), pod(0, 2), pod(3, 1), pod(9, 1)], {1}, completions=5, parallelism=3
    )
    assert sorted(p["metadata"]["name"] for p in surplus) == ["p0-2", "p9-1"]  # duplicate, out of range
    assert start == [2]  # 0 and 3 run, 1 succeeded: the lowest missing index fills the third slot


def test_indexed_job_runs_every_index_once(api: Registry, ctl: JobController, clock: FakeClock) -> None:
    api.create(job(completionMode="Indexed", completions=4, parallelism=2))
    wait_for(lambda: len(running(api, "pi")) == 2, what="2 indexed pods")
    first = {pod_index(p): p for p in running(api, "pi")}
    assert set(first) == {0, 1}
    p0 = first[0]
    assert p0["metadata"]["labels"][INDEX_KEY] == "0" and p0["spec"]["hostname"] == "pi-0"
    assert p0["metadata"]["name"].startswith("pi-0-")
    env = p0["spec"]["containers"][0]["env"]
    assert env == [
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}
            },
        }
    ]
    finish(api, first[1], 0, clock.now())
    wait_for(lambda: {pod_index(p) for p in running(api, "pi")} == {0, 2}, what="index 2 after 1 succeeded")
    finish(api, first[0], 5, clock.now())  # index 0 fails: it runs again after the back-off
    wait_for(lambda: status(api).get("failed") == 1, what="a failure")
    clock.advance(11)
    wait_for(lambda: {pod_index(p) for p in running(api, "pi")} == {0, 2}, what="index 0 again")
    for p in running(api, "pi"):
        finish(api, p, 0, clock.now())
    wait_for(lambda: {pod_index(p) for p in running(api, "pi")} == {3}, what="index 3")
    wait_for(lambda: status(api).get("completedIndexes") == "0-2", what="completedIndexes 0-2")
    finish(api, running(api, "pi")[0], 0, clock.now())
    wait_for(lambda: condition(api, "Complete"), what="Complete")
    assert status(api)["succeeded"] == 4 and status(api)["completedIndexes"] == "0-3"


def test_a_deleted_finished_pod_still_counts(api: Registry, ctl: JobController, clock: FakeClock) -> None:
    api.create(job(completions=3, parallelism=1))
    made: list[str] = []
    for n in range(3):
        pods = wait_for(
            lambda n=n: [p for p in running(api, "pi") if p["metadata"]["name"] not in made], what=f"pod {n}"
        )
        assert isinstance(pods, list)
        made.append(pods[0]["metadata"]["name"])
        finish(api, pods[0], 0, clock.now())
        if n == 0:
            wait_for(lambda: status(api).get("succeeded") == 1, what="first success")
            api.delete("Pod", made[0], "default")  # by hand: the success still counts
    wait_for(lambda: condition(api, "Complete"), what="Complete after 3 successes, one pod deleted")
    assert status(api)["succeeded"] == 3 and len(pods_of(api, "pi")) == 2
    assert parse_ranges("0-2,5,x,7-6") == {0, 1, 2, 5}
