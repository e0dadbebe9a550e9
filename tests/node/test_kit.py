"""The node kit's helpers that need no cluster: leftover pods of nodes a cluster no longer runs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nbkube.node.kit import reap_other_nodes
from nbkube.node.runtime.base import PodSandboxConfig
from nbkube.node.runtime.process import ProcessRuntime, find_busybox

pytestmark = pytest.mark.skipif(find_busybox() is None, reason="needs the host's busybox (busybox-static)")


def _sleeping_pod(state_dir: str, uid: str) -> int:
    """Start a pod that sleeps under a runtime on `state_dir`, leave it running; its pid."""
    rt = ProcessRuntime(state_dir, backoff_base=0.1)
    pod = {
        "metadata": {"name": uid, "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]},
    }
    rt.start_pod(pod, PodSandboxConfig("n", "127.0.0.1", "127.0.0.0/24", "127.0.0.1"))
    deadline = time.monotonic() + 10
    pid = ""
    while not pid and time.monotonic() < deadline:
        status = rt.pod_status(uid)
        pid = status.containers[0].container_id.rpartition("/")[2] if status else ""
        time.sleep(0.02)
    rt.close(remove=False)  # as a cluster process killed with SIGKILL leaves it
    assert pid, "the pod did not start"
    return int(pid)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_pods_of_nodes_a_restart_left_out_are_stopped_and_the_kept_nodes_untouched(tmp_path) -> None:
    root = str(tmp_path)
    kept = _sleeping_pod(os.path.join(root, "process", "node-1"), "kept")
    gone = _sleeping_pod(os.path.join(root, "process", "node-3"), "gone")
    try:
        assert reap_other_nodes(root, ["node-1", "node-2"]) == 1
        deadline = time.monotonic() + 10
        while _alive(gone) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(gone) and _alive(kept)
        assert reap_other_nodes(str(tmp_path / "never-ran"), ["node-1"]) == 0
    finally:
        ProcessRuntime(os.path.join(root, "process", "node-1")).close()  # adopts, then stops it
    assert not _alive(kept)
