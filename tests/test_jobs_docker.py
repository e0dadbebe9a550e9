"""Jobs and CronJobs on 2 Docker nodes through the real kubectl: a Job of 4 completions x 2 runs its
containers to completion on both nodes, a failing container's exit code fails its Job, and a
CronJob on `*/1 * * * *` creates a Job within a minute (real time, bounded at 75 s).

Marked `docker`: needs root and a Docker daemon (run under `flock /tmp/nbkube-docker.lock`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_clustertest import wait_until

from nbkube.apiserver import serve
from nbkube.cluster import LocalCluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_APITEST = os.path.join(os.path.dirname(__file__), "apiserver")


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Any]:
    import sys

    sys.path.insert(0, _APITEST)
    from nbk_apitest import KUBECTL, Kubectl

    assert KUBECTL is not None, "kubectl is not installed"
    data = tmp_path_factory.mktemp("docker-jobs")
    c = LocalCluster(
        nodes=2, runtime="docker", store="sqlite", profile="fast", data_dir=str(data / "c"), name="dkjobs"
    )
    try:
        srv = serve(c)
        try:
            home = data / "home"
            home.mkdir()
            yield Kubectl(srv.write_kubeconfig(str(data / "kubeconfig")), str(home))
        finally:
            srv.stop()
    finally:
        c.stop()


def _get(kubectl: Any, *what: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl.ok("get", *what, "-o", "json"))
    return out


def _job(name: str, script: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                **spec,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}],
                    }
                },
            },
        }
    )


def test_job_completes_on_docker_nodes(kubectl: Any) -> None:
    kubectl.ok(
        "apply", "-f", "-", stdin=_job("work", "echo $(hostname); exit 0", completions=4, parallelism=2)
    )
    kubectl.ok("wait", "--for=condition=complete", "job/work", "--timeout=120s", timeout=130)
    job = _get(kubectl, "job", "work")
    assert job["status"]["succeeded"] == 4
    pods = _get(kubectl, "pods", "-l", "job-name=work")["items"]
    assert len(pods) == 4 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert all(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0 for p in pods)
    assert "4/4" in kubectl.ok("get", "jobs", "work")
    # finished pods give their sandbox back (as the kubelet stops it), and keep their logs
    for p in pods:
        labels = [f"label=io.nbkube.pod.uid={p['metadata']['uid']}", "label=io.nbkube.container=POD"]

        def pause(*extra: str, labels: list[str] = labels) -> str:
            args = ["docker", "ps", "-q", *extra, *(x for lab in labels for x in ("--filter", lab))]
            return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

        wait_until(
            lambda pause=pause: pause() == "", 30, f"pod {p['metadata']['name']}'s pause container stopped"
        )
        assert pause("-a")  # stopped, not removed
        assert kubectl.ok("logs", p["metadata"]["name"]).strip()


def test_indexed_job_pods_know_their_index_and_hostname(kubectl: Any) -> None:
    manifest = json.loads(_job("idx", "echo $JOB_COMPLETION_INDEX $(hostname)", completions=2, parallelism=2))
    manifest["spec"]["completionMode"] = "Indexed"
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl.ok("wait", "--for=condition=complete", "job/idx", "--timeout=120s", timeout=130)
    pods = _get(kubectl, "pods", "-l", "job-name=idx")["items"]
    assert {kubectl.ok("logs", p["metadata"]["name"]).strip() for p in pods} == {"0 idx-0", "1 idx-1"}


def test_failing_container_fails_the_job(kubectl: Any) -> None:
    kubectl.ok("apply", "-f", "-", stdin=_job("bad", "exit 7", backoffLimit=0))
    kubectl.ok("wait", "--for=condition=failed", "job/bad", "--timeout=120s", timeout=130)
    pod = _get(kubectl, "pods", "-l", "job-name=bad")["items"][0]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    reasons = [c.get("reason") for c in _get(kubectl, "job", "bad")["status"]["conditions"]]
    assert "BackoffLimitExceeded" in reasons


def test_cron_job_creates_a_job_within_a_minute(kubectl: Any) -> None:
    kubectl.ok(
        "create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "sh", "-c", "date"
    )

    def made() -> list[str]:
        return [
            j["metadata"]["name"]
            for j in _get(kubectl, "jobs")["items"]
            if any(r.get("name") == "tick" for r in j["metadata"].get("ownerReferences") or [])
        ]

    names = wait_until(made, 75, "a Job from the CronJob", interval=1.0)
    kubectl.ok("wait", "--for=condition=complete", f"job/{names[0]}", "--timeout=120s", timeout=130)
    kubectl.ok("delete", "cronjob", "tick")
