"""`nbkube logs` and `nbkube exec` against a running embedded cluster, through its node agent's endpoint."""

from __future__ import annotations

import time
from typing import Any

import pytest

from nbkube.cli import main
from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow

POD = """
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from talker; echo second line; exec sleep 600"]
  - name: side
    image: busybox
    command: ["sleep", "600"]
"""


def _running(cluster: LocalCluster, name: str) -> bool:
    pod = cluster.api.get("Pod", name, "default")
    return (pod.get("status") or {}).get("phase") == "Running"


def test_logs_and_exec_reach_the_pods_node_agent(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalCluster(
        nodes=2, runtime="process", store="sqlite", data_dir=str(tmp_path), name="pods"
    ) as cluster:
        cluster.apply(POD)
        deadline = time.monotonic() + 20
        while not _running(cluster, "talker"):
            assert time.monotonic() < deadline, "pod never ran"
            time.sleep(0.05)
        time.sleep(0.3)  # the shell's first lines reach its log
        url = cluster.store_url
        assert main(["--store", url, "logs", "talker"]) == 0
        assert capsys.readouterr().out.splitlines() == ["hello from talker", "second line"]
        assert main(["--store", url, "logs", "talker", "--tail", "1"]) == 0
        assert capsys.readouterr().out.strip() == "second line"
        assert (
            main(["--store", url, "exec", "talker", "-c", "side", "--", "sh", "-c", "echo $HOSTNAME; exit 3"])
            == 3
        )
        assert capsys.readouterr().out.strip() == "talker"
        # bad input: one line, exit 1
        assert main(["--store", url, "logs", "talker", "-c", "nope"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and 'container "nope"' in err[0]
        assert main(["--store", url, "exec", "talker"]) == 1
        assert "needs a command" in capsys.readouterr().err
