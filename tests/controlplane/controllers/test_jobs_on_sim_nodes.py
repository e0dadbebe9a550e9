"""Jobs end to end on a LocalCluster of 2 sim nodes (real scheduler, node agents, every controller):
parallelism is never exceeded while a Job runs to completion, a sim pod failing with `exit:N`
fails its Job with that exit code, a finished Job's TTL deletes it and the garbage collector its
pods, and deleting a CronJob takes its Jobs with it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from nbk_workload_helpers import wait_for

from nbkube.api.meta import Obj
from nbkube.client.informer import Informer
from nbkube.cluster import LocalCluster
from nbkube.errors import NotFound

pytestmark = pytest.mark.slow


def job(name: str, annotations: dict[str, str], **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            **spec,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def condition(api: Any, name: str) -> str:
    try:
        st = api.get("Job", name, "default").get("status") or {}
    except NotFound:
        return "gone"
    for c in st.get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return str(c["type"])
    return ""


def test_jobs_on_sim_nodes(tmp_path: Path) -> None:
    with LocalCluster(nodes=2, store="sqlite", data_dir=str(tmp_path), profile="fast") as c:
        peak = [0]
        lock = threading.Lock()
        pods = Informer(c.api, "Pod", label_selector="job-name=many")

        def sample(_p: Obj) -> None:
            running = [
                p for p in pods.list() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ]
            with lock:
                peak[0] = max(peak[0], len(running))

        pods.add_handler(on_add=sample, on_update=lambda o, n: sample(n), on_delete=sample)
        pods.start()
        try:
            c.api.create(job("many", {"sim.nbkube.io/run-seconds": "0.05"}, completions=40, parallelism=4))
            wait_for(lambda: condition(c.api, "many") == "Complete", timeout=60, what="40 completions")
        finally:
            pods.stop()
        assert c.api.get("Job", "many", "default")["status"]["succeeded"] == 40
        assert 1 <= peak[0] <= 4

        c.api.create(
            job("bad", {"sim.nbkube.io/fail": "exit:3", "sim.nbkube.io/run-seconds": "0.05"}, backoffLimit=0)
        )
        wait_for(lambda: condition(c.api, "bad") == "Failed", timeout=30, what="bad job failed")
        pod = c.api.list("Pod", "default", label_selector="job-name=bad")[0][0]
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3

        c.api.create(job("short", {"sim.nbkube.io/run-seconds": "0.05"}, ttlSecondsAfterFinished=0))
        wait_for(lambda: condition(c.api, "short") == "gone", timeout=30, what="job deleted by its TTL")
        wait_for(
            lambda: not c.api.list("Pod", "default", label_selector="job-name=short")[0],
            timeout=30,
            what="its pods collected",
        )

        cron = c.api.create(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": "nightly", "namespace": "default"},
                "spec": {
                    "schedule": "@daily",
                    "jobTemplate": {"spec": {"template": job("x", {})["spec"]["template"]}},
                },
            }
        )
        owned = job("by-hand", {"sim.nbkube.io/run-seconds": "30"})
        owned["metadata"]["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": cron["metadata"]["uid"],
             "controller": True, "blockOwnerDeletion": True}
        ]  # fmt: skip
        c.api.create(owned)
        wait_for(
            lambda: (
                [
                    a["name"]
                    for a in (c.api.get("CronJob", "nightly", "default").get("status") or {}).get("active")
                    or []
                ]
                == ["by-hand"]
            ),
            timeout=30,
            what="the CronJob lists its active job",
        )
        c.api.delete("CronJob", "nightly", "default")
        wait_for(
            lambda: condition(c.api, "by-hand") == "gone", timeout=30, what="the CronJob's job collected"
        )
