"""A Docker node name is held by one process at a time on a machine (its network namespace and
container labels are named by it alone); the lock goes with its holder, even killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nbkube.errors import BadRequest
from nbkube.node.kit import claim_docker_node

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_second_claim_is_refused_naming_the_holder(tmp_path: Path) -> None:
    fd = claim_docker_node("node-1", str(tmp_path))
    try:
        with pytest.raises(BadRequest, match=rf"node-1 already runs on this machine, in pid {os.getpid()} "):
            claim_docker_node("node-1", str(tmp_path))
        other = claim_docker_node("node-2", str(tmp_path))  # another name is another node
        os.close(other)
    finally:
        os.close(fd)
    os.close(claim_docker_node("node-1", str(tmp_path)))  # released: free again


def test_the_claim_of_a_killed_holder_is_free_at_once(tmp_path: Path) -> None:
    code = (
        "import sys, time; from nbkube.node.kit import claim_docker_node; "
        f"claim_docker_node('node-1', {str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(BadRequest, match=f"pid {holder.pid} "):
            claim_docker_node("node-1", str(tmp_path))
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        os.close(claim_docker_node("node-1", str(tmp_path)))  # the kernel dropped its lock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
