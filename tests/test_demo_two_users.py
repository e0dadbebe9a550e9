"""Two users, two clusters, one host, at the same time: root and `nobody` each run the article's
scenario (`nbkube demo`: 5 web pods behind NodePort 30001, round robin, failover, rolling update)
and each answers on its own node addresses with its own pods.

Before clusters took free loopback blocks, the second user's demo failed ("5 pods not Ready
within 30s") and flooded "cannot listen" lines, because node and pod addresses and the NodePort
were fixed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
from test_demo_unprivileged import NOBODY, _system_python, install_for_another_user


def _pods_that_answered(output: str) -> set[str]:
    """The pod names in the demo's round-robin table (between its heading and the failover)."""
    part = output.split("round robin:", 1)[1].split("failover:", 1)[0]
    return set(re.findall(r"\b(web-test-controller-[a-z0-9]{5})\b", part))


def test_two_users_run_the_article_scenario_side_by_side() -> None:
    if os.geteuid() != 0:
        pytest.fail("run as root (CI does): the test drops one demo to the `nobody` user")
    python = _system_python()
    busybox = shutil.which("busybox")
    setpriv = shutil.which("setpriv")
    assert python and busybox and setpriv, "needs a system python3 >= 3.11 with venv, busybox and setpriv"
    root = tempfile.mkdtemp(prefix="nbkube-two-users-")
    try:
        venv, bindir = install_for_another_user(root, python, busybox)
        homes = {who: os.path.join(root, f"home-{who}") for who in ("root", "nobody")}
        for home in homes.values():
            os.makedirs(home)
        os.chown(homes["nobody"], NOBODY, NOBODY)
        procs = {}
        for who, home in homes.items():
            env = {
                "HOME": home,
                "PATH": f"{os.path.join(venv, 'bin')}:{bindir}",
                "LANG": "C.UTF-8",
                "MPLBACKEND": "Agg",
            }
            demo = [os.path.join(venv, "bin", "nbkube"), "demo", "--runtime", "process", "--out", os.path.join(home, "r")]
            if who == "nobody":
                demo = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *demo]
            procs[who] = subprocess.Popen(
                demo, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        outputs = {}
        for who, proc in procs.items():
            try:
                outputs[who], _ = proc.communicate(timeout=400)
            except subprocess.TimeoutExpired:
                proc.kill()
                outputs[who], _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, f"{who}'s demo failed:\n{outputs[who][-3000:]}"
        answered = {who: _pods_that_answered(out) for who, out in outputs.items()}
        for who, pods in answered.items():
            assert 1 <= len(pods) <= 5, f"{who}: {outputs[who][-3000:]}"
            assert "cannot listen" not in outputs[who]
        # each cluster's NodePort 30001 reached its own pods only
        assert not answered["root"] & answered["nobody"], answered
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
