"""Jobs and CronJobs through the real kubectl on a served LocalCluster(nodes=1, runtime="process"):
`kubectl create job` runs to completion, a failing command fails its Job with the pod's real exit
code, `kubectl create cronjob` on `*/1 * * * *` creates a Job within a minute (real time: the one
wait here that cannot use a fake clock, bounded at 75 s), `create job --from=cronjob/...`,
get/describe, and `delete job` cascading to its pods through the garbage collector.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl, served
from nbk_clustertest import wait_until

from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: Any) -> Iterator[Kubectl]:
    assert KUBECTL is not None, "kubectl is not installed: these tests need the real kubectl"
    folder = str(tmp_path_factory.mktemp("jobs"))
    with (
        LocalCluster(nodes=1, runtime="process", store="sqlite", data_dir=folder + "/c", name="jobs") as c,
        served(c, folder) as (kubeconfig, home),
    ):
        yield Kubectl(kubeconfig, home)


def _get(kubectl: Kubectl, *what: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl.ok("get", *what, "-o", "json"))
    return out


def _condition(job: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


def test_create_job_runs_to_completion(kubectl: Kubectl) -> None:
    out = kubectl.ok("create", "job", "hello", "--image=busybox", "--", "sh", "-c", "echo done; exit 0")
    assert "job.batch/hello created" in out
    kubectl.ok("wait", "--for=condition=complete", "job/hello", "--timeout=60s", timeout=70)
    job = _get(kubectl, "job", "hello")
    assert job["status"]["succeeded"] == 1 and job["status"]["completionTime"]
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    table = kubectl.ok("get", "jobs")
    assert table.split("\n")[0].split() == ["NAME", "COMPLETIONS", "DURATION", "AGE"]
    assert "1/1" in table
    pods = _get(kubectl, "pods", "-l", "job-name=hello")["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"
    assert kubectl.ok("logs", "job/hello").strip() == "done"
    described = kubectl.ok("describe", "job", "hello")
    assert "Pods Statuses:" in described and "1 Succeeded" in described


def test_failing_command_fails_the_job_with_its_exit_code(kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bad"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 3"]}],
                }
            },
        },
    }
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl.ok("wait", "--for=condition=failed", "job/bad", "--timeout=60s", timeout=70)
    job = _get(kubectl, "job", "bad")
    cond = _condition(job, "Failed")
    assert cond is not None and cond["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 1
    pod = _get(kubectl, "pods", "-l", "job-name=bad")["items"][0]
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_cron_job_every_minute_creates_a_job(kubectl: Kubectl) -> None:
    kubectl.ok(
        "create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "sh", "-c", "date"
    )
    header = kubectl.ok("get", "cronjobs").split("\n")[0]
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]

    def owned_jobs() -> list[dict[str, Any]]:
        items = _get(kubectl, "jobs")["items"]
        return [
            j
            for j in items
            if any(r.get("name") == "tick" for r in j["metadata"].get("ownerReferences") or [])
        ]

    made = wait_until(owned_jobs, 75, "a Job from the CronJob within a minute", interval=1.0)
    assert made[0]["metadata"]["name"].startswith("tick-")
    wait_until(
        lambda: _get(kubectl, "cronjob", "tick").get("status", {}).get("lastScheduleTime"),
        10,
        "lastScheduleTime",
    )
    kubectl.ok("create", "job", "by-hand", "--from=cronjob/tick")
    manual = _get(kubectl, "job", "by-hand")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    kubectl.ok("wait", "--for=condition=complete", "job/by-hand", "--timeout=60s", timeout=70)
    kubectl.ok("patch", "cronjob", "tick", "-p", '{"spec":{"suspend":true}}')
    assert "True" in kubectl.ok("get", "cronjob", "tick")


def test_delete_job_cascades_to_its_pods(kubectl: Kubectl) -> None:
    kubectl.ok("create", "job", "gone", "--image=busybox", "--", "sh", "-c", "exit 0")
    kubectl.ok("wait", "--for=condition=complete", "job/gone", "--timeout=60s", timeout=70)
    assert _get(kubectl, "pods", "-l", "job-name=gone")["items"]
    kubectl.ok("delete", "job", "gone")
    wait_until(lambda: not _get(kubectl, "pods", "-l", "job-name=gone")["items"], 30, "job's pods collected")


def test_indexed_job_gives_each_pod_its_index(kubectl: Kubectl) -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "idx"},
        "spec": {
            "completionMode": "Indexed",
            "completions": 3,
            "parallelism": 3,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "command": ["sh", "-c", "echo $JOB_COMPLETION_INDEX $HOSTNAME"],
                        }
                    ],
                }
            },
        },
    }
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl.ok("wait", "--for=condition=complete", "job/idx", "--timeout=60s", timeout=70)
    assert _get(kubectl, "job", "idx")["status"]["completedIndexes"] == "0-2"
    pods = _get(kubectl, "pods", "-l", "job-name=idx")["items"]
    printed = {kubectl.ok("logs", p["metadata"]["name"]).strip() for p in pods}
    assert printed == {"0 idx-0", "1 idx-1", "2 idx-2"}
