"""A `nbkube node join` agent (process runtime) killed with SIGKILL leaves its pods running (they
must survive for adoption); a pod deleted meanwhile is stopped by the restarted agent, the others
are adopted. Real processes; every wait bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nbk_clustertest import wait_until

from nbkube.cluster import LocalCluster
from nbkube.node.runtime.process import find_busybox

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _join(store: str, home: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nbkube.cli", "--store", store, "node", "join", "--name", "edge-1"]
            + ["--runtime", "process"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO, "HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _pid(api: Any, name: str) -> int:
    try:
        pod = api.get("Pod", name, "default")
    except Exception:
        return 0
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    cid = str((statuses[0] if statuses else {}).get("containerID") or "")
    return (
        int(cid.removeprefix("process://"))
        if cid.startswith("process://") and pod["status"].get("phase") == "Running"
        else 0
    )


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pod(name: str) -> str:
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n"
        "spec:\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n"
    )


@pytest.mark.slow
def test_a_restarted_join_agent_stops_pods_deleted_while_it_was_dead(tmp_path: Path) -> None:
    assert find_busybox() is not None, "the process runtime runs busybox-static"
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "join.log"
    cluster = LocalCluster(
        nodes=0,
        runtime="sim",
        store="sqlite",
        data_dir=str(tmp_path / "c"),
        name="joined",
        profile="kubernetes",  # no eviction while the agent is down: only the deleted pod goes
    )
    join = _join(cluster.store_url, home, log)
    pids: list[int] = []
    try:
        wait_until(lambda: cluster._node_ready("edge-1"), 60, "edge-1 Ready")
        cluster.apply(_pod("gone"))
        cluster.apply(_pod("kept"))
        gone = wait_until(lambda: _pid(cluster.api, "gone"), 60, "pod gone running")
        kept = wait_until(lambda: _pid(cluster.api, "kept"), 60, "pod kept running")
        pids = [gone, kept]
        os.kill(join.pid, signal.SIGKILL)
        join.wait(10)
        assert _alive(gone) and _alive(kept)  # pods outlive their agent, for adoption
        cluster.api.delete("Pod", "gone", "default")
        join = _join(cluster.store_url, home, log)
        wait_until(lambda: not _alive(gone), 30, "the deleted pod's process stopped by the restarted agent")
        assert _alive(kept), log.read_text()
        assert _pid(cluster.api, "kept") == kept  # adopted, not restarted
        join.send_signal(signal.SIGTERM)
        assert join.wait(30) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
    finally:
        if join.poll() is None:
            os.killpg(join.pid, signal.SIGKILL)
            join.wait(10)
        for pid in pids:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        cluster.stop()
