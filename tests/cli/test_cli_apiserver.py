"""`nbkube up --api-port`: the Kubernetes API beside the cluster, and a kubeconfig kubectl can use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl")


@pytest.mark.slow
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_up_serves_the_api_for_kubectl(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbkube.cli", "--store", f"sqlite://{tmp_path}/s.db", "up", "--nodes", "2"]
        + ["--api-port", "0", "--kubeconfig", str(kubeconfig), "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(20):  # bounded: the hint is the sixth line; --duration ends the process anyway
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("use: kubectl"):
                break
        assert any(x.startswith("api: https://127.0.0.1:") for x in lines), lines
        assert lines[-1] == f"use: kubectl --kubeconfig {kubeconfig} get pods"
        out = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "nodes"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert "node-1" in out.stdout and "node-2" in out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
