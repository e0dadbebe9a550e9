"""Chaos: `nbkube up` with its default private etcd killed with SIGKILL, then started again on the
same folder. Its etcd must not outlive it holding the data folder's lock (PR_SET_PDEATHSIG, the
pidfile): the next `up` starts cleanly, bounded by 20 s. Needs an etcd binary (CI installs one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from nbk_clustertest import wait_until

from nbkube.procutil import same_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _up(folder: str, log: str) -> subprocess.Popen[bytes]:
    with open(log, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nbkube.cli", "up", "--nodes", "1", "--runtime", "sim"]
            + ["--data-dir", folder, "--name", "chaos"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO, "NBKUBE_STORE": ""},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _serving(log: str, count: int) -> bool:
    return Path(log).read_text().count("use: nbkube --store etcd+unix://") >= count


@pytest.mark.slow
def test_up_killed_then_restarted_with_its_private_etcd(tmp_path: Any, etcd_binary: None) -> None:
    folder = str(tmp_path / "c")
    log = str(tmp_path / "up.log")
    up = _up(folder, log)
    try:
        wait_until(lambda: _serving(log, 1) or up.poll() is not None, 60, "the first up serving")
        assert up.poll() is None, Path(log).read_text()[-3000:]
        with open(os.path.join(folder, "etcd.pid")) as fh:
            rec = json.load(fh)
        assert rec["owner"] == up.pid
        os.kill(up.pid, signal.SIGKILL)
        up.wait(10)
        # the etcd goes with its owner (PR_SET_PDEATHSIG)
        wait_until(lambda: not same_process(rec["etcd"], rec["etcdTicks"]), 10, "etcd ended with its owner")

        up = _up(folder, log)
        wait_until(lambda: _serving(log, 2) or up.poll() is not None, 20, "the restarted up serving")
        assert up.poll() is None, Path(log).read_text()[-3000:]
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, Path(log).read_text()[-3000:]
        assert "Traceback" not in Path(log).read_text()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
