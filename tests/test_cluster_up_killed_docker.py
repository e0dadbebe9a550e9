"""Chaos: `nbkube up` with 2 Docker nodes killed with SIGKILL in the middle of a scale, then started
again on the same folder, while a bounded load probe keeps asking a NodePort Service.

What must hold (docs/architecture.md, crash recovery): the containers outlive the process (they are
Docker's), the restart adopts them (same pods, same container ids, restartCount unchanged; nothing
evicted by a control plane that saw the downtime's stale Leases), the Service never stops answering
(zero failed requests: the node's iptables rules stay while nobody runs them), and the scale the
killed process began is finished by the new one. Needs root and Docker; every wait is bounded, the
probe by count and time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from nbk_clustertest import pod_ready, wait_until

from nbkube.cluster import connect
from nbkube.errors import Conflict
from nbkube.node.runtime.docker import LABEL_CONTAINER, LABEL_POD_UID

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = """
apiVersion: v1
kind: ReplicationController
metadata: {name: chaos}
spec:
  replicas: 2
  selector: {app: chaos}
  template:
    metadata: {labels: {app: chaos}}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 80 -h /www"]
        ports: [{containerPort: 80}]
        readinessProbe: {httpGet: {path: /index.html, port: 80}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: chaos}
spec:
  type: NodePort
  selector: {app: chaos}
  ports: [{port: 80, targetPort: 80}]
"""
SCALED = 6
PROBE_MAX_REQUESTS = 6000  # the probe's bound in count (about 20 ms apart: two minutes at most)
PROBE_MAX_SECONDS = 120.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Probe:
    """GET the url again and again in a thread; every answer (when, ok or the error) is kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, str]] = []  # (monotonic time, "" or the error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nodeport-probe", daemon=True)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + PROBE_MAX_SECONDS
        while not self._stop.is_set() and len(self.results) < PROBE_MAX_REQUESTS:
            if time.monotonic() > deadline:
                break
            try:
                with _NO_PROXY.open(self.url, timeout=2.0) as resp:
                    body = resp.read().decode().strip()
                error = "" if body == "ok" else f"unexpected body {body!r}"
            except OSError as exc:
                error = str(exc)
            self.results.append((time.monotonic(), error))
            self._stop.wait(0.02)

    def stop(self) -> list[tuple[float, str]]:
        self._stop.set()
        self._thread.join(10)
        return self.results


def _answers(url: str) -> bool:
    try:
        with _NO_PROXY.open(url, timeout=1.0) as resp:
            return resp.read().decode().strip() == "ok"
    except OSError:
        return False


def _up(folder: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nbkube.cli", "up", "--nodes", "2", "--runtime", "docker"]
            + ["--data-dir", folder, "--name", "chaos-docker"],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO, "NBKUBE_STORE": ""},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _store_url(log: Path, count: int, up: subprocess.Popen[bytes]) -> str:
    def serving() -> list[str]:
        assert up.poll() is None, log.read_text()[-3000:]
        return [x for x in log.read_text().splitlines() if x.startswith("use: nbkube --store ")]

    lines = wait_until(lambda: len(serving()) >= count and serving(), 60, f"nbkube up serving ({count})")
    return str(lines[-1].split()[3])


def _pods(api: Any) -> list[dict]:
    return list(api.list("Pod", "default", label_selector="app=chaos")[0])


def _containers(pod: dict) -> dict[str, tuple[str, int]]:
    """container name -> (its id, restartCount)."""
    return {
        s["name"]: (str(s.get("containerID") or ""), int(s.get("restartCount") or 0))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    }


def _scale(api: Any, replicas: int) -> None:
    for _ in range(10):
        rc = api.get("ReplicationController", "chaos", "default")
        rc["spec"]["replicas"] = replicas
        try:
            api.update(rc)
            return
        except Conflict:
            continue
    raise AssertionError("could not scale the ReplicationController")


def test_up_killed_mid_scale_adopts_docker_pods_without_losing_a_request(
    tmp_path: Path, docker_client: Any
) -> None:
    folder, log = str(tmp_path / "c"), tmp_path / "up.log"
    up = _up(folder, log)
    probe: Probe | None = None
    try:
        client = connect(_store_url(log, 1, up))
        client.apply(MANIFEST)
        api = client.api
        wait_until(lambda: sum(map(pod_ready, _pods(api))) == 2, 90, "2 pods Ready")
        node = api.list("Node")[0][0]
        ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        node_port = api.get("Service", "chaos", "default")["spec"]["ports"][0]["nodePort"]
        url = f"http://{ip}:{node_port}/index.html"
        wait_until(lambda: _answers(url), 30, "the NodePort answering")
        before = {p["metadata"]["uid"]: _containers(p) for p in _pods(api)}
        wait_until(lambda: all(len(c) == 1 for c in before.values()), 10, "container ids known")
        probe = Probe(url).start()
        wait_until(lambda: len(probe.results) >= 10, 10, "the probe under way")  # type: ignore[union-attr]

        _scale(api, SCALED)
        # mid-scale: the new pods exist but are not all running yet
        wait_until(lambda: len(_pods(api)) > 2, 30, "the scale under way")
        # read before the kill: the private etcd goes with `up`
        seen = {p["metadata"]["uid"] for p in _pods(api)}
        os.kill(up.pid, signal.SIGKILL)
        up.wait(10)
        client.close()
        killed_at = time.monotonic()

        up = _up(folder, log)
        client = connect(_store_url(log, 2, up))
        api = client.api
        restarted = time.monotonic() - killed_at
        wait_until(
            lambda: len(_pods(api)) == SCALED and all(map(pod_ready, _pods(api))),
            60,
            f"{SCALED} pods Ready after the restart",
        )
        time.sleep(1.0)  # a little more load on the settled cluster
        results = probe.stop()

        failed = [(round(t - killed_at, 2), e) for t, e in results if e]
        assert not failed, (
            f"{len(failed)} of {len(results)} requests failed (seconds from the kill, restart at "
            f"{restarted:.2f}): first {failed[:3]}, last {failed[-1:]}"
        )
        times = [t for t, _ in results]
        after_restart = [t for t in times if t >= killed_at + restarted]
        assert after_restart, "the probe ran past the restart"
        longest = max(b - a for a, b in zip(times, times[1:], strict=False))
        assert longest < 3.0, f"the NodePort did not answer for {longest:.2f}s"

        pods = {p["metadata"]["uid"]: p for p in _pods(api)}
        assert seen <= set(pods), "pods of the interrupted scale were deleted and made again"
        for uid, containers in before.items():
            assert uid in pods, "a pod that ran before the kill was deleted (evicted?)"
            assert _containers(pods[uid]) == containers, "not adopted: a container was recreated"
        # one container per pod at Docker too: the restart started no second copy of any
        for uid in pods:
            found = docker_client.containers.list(all=True, filters={"label": f"{LABEL_POD_UID}={uid}"})
            workers = [c for c in found if c.labels.get(LABEL_CONTAINER) == "web"]
            assert len(workers) == 1, f"pod {uid}: {len(workers)} web containers"

        client.close()
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-5000:]
    finally:
        if probe is not None:
            probe.stop()
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait(10)
