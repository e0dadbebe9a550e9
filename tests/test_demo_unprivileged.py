"""`nbkube demo` as a non-root user on a machine with no Docker and no etcd (issue 5's "Done when").

Run as root, the test builds a virtual environment from the system's Python in a world-readable
folder, drops to the `nobody` user with a PATH that holds busybox but no `etcd` and no `docker`,
and runs the demo there: it must pick the embedded default (process runtime, SQLite store) and
succeed. Not root: the other demo tests already run unprivileged, so this one is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = 65534


def _system_python() -> str | None:
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(cand):
            ok = subprocess.run(
                [cand, "-c", "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"]
            )
            if ok.returncode == 0:
                return cand
    return None


def install_for_another_user(root: str, python: str, busybox: str) -> tuple[str, str]:
    """nbkube in a venv of the system python under `root` (made 0755), and a bin folder with busybox
    but no etcd or docker: what another user of the machine can run. Returns (venv, bin folder)."""
    os.chmod(root, 0o755)
    venv = os.path.join(root, "venv")
    subprocess.run([python, "-m", "venv", venv], check=True, timeout=120)
    subprocess.run(
        [os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", "-e", REPO],
        check=True,
        capture_output=True,
        timeout=900,
    )
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    os.symlink(busybox, os.path.join(bindir, "busybox"))
    return venv, bindir


def test_demo_runs_as_nobody_without_docker_or_etcd():
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (unprivileged runs are covered by tests/experiments)")
    python = _system_python()
    busybox = shutil.which("busybox")
    if python is None or busybox is None or not shutil.which("setpriv"):
        pytest.skip("needs a system python3 >= 3.11 with venv, busybox and setpriv")
    root = tempfile.mkdtemp(prefix="nbkube-nobody-")
    try:
        venv, bindir = install_for_another_user(root, python, busybox)
        home = os.path.join(root, "home")
        os.makedirs(home)
        os.chown(home, NOBODY, NOBODY)
        out_dir = os.path.join(home, "report")
        env = {
            "HOME": home,
            "PATH": f"{os.path.join(venv, 'bin')}:{bindir}",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
        }
        proc = subprocess.run(
            [
                str(shutil.which("setpriv")),
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                os.path.join(venv, "bin", "nbkube"),
                "demo",
                "--out",
                out_dir,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=home,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        text = proc.stdout + proc.stderr
        assert "process" in text and "sqlite" in text.lower(), text[:2000]
        assert os.path.exists(os.path.join(out_dir, "report.html"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
