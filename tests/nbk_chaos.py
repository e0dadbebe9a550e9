"""`nbkube up` killed with SIGKILL in the middle of a scale and started again, under a load probe:
the scenario the chaos tests (tests/test_cluster_up_killed_*.py) share, one per runtime.

`up_killed_mid_scale` runs it and returns what happened; each test asserts what its runtime
promises (Docker nodes lose no request; process nodes answer again within seconds). Every wait and
the probe are bounded in time and count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbk_clustertest import pod_ready, wait_until

from nbkube.cluster import connect
from nbkube.errors import Conflict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_MAX_REQUESTS = 6000  # about 20 ms apart: two minutes at most
PROBE_MAX_SECONDS = 120.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answer(url: str, timeout: float) -> str:
    """ "" when `url` answered with a body, else what went wrong."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as resp:
            return "" if resp.read().strip() else "empty body"
    except OSError as exc:
        return str(exc)


class Probe:
    """GET the url again and again in a thread; every answer (when, "" or the error) is kept."""

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
            self.results.append((time.monotonic(), answer(self.url, 2.0)))
            self._stop.wait(0.02)

    def stop(self) -> list[tuple[float, str]]:
        self._stop.set()
        self._thread.join(10)
        return self.results


@dataclass
class Outcome:
    """What the scenario saw. Times are time.monotonic() values."""

    results: list[tuple[float, str]]  # the probe's answers
    killed_at: float
    restarted_at: float  # when the new `up` was launched
    before: dict[str, dict[str, tuple[str, int]]]  # pod uid -> container -> (id, restarts), pre-scale
    seen: set[str]  # pod uids that existed when `up` was killed
    after: dict[str, dict[str, tuple[str, int]]]  # pod uid -> containers, once all are Ready again
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def failed(self) -> list[tuple[float, str]]:
        """(seconds from the kill, error) of each failed request."""
        return [(round(t - self.killed_at, 2), e) for t, e in self.results if e]

    def answered_again(self) -> float | None:
        """Seconds from the restart to the first answer after the last failure (None: no answer)."""
        last_failure = max((t for t, e in self.results if e), default=self.killed_at)
        later = [t for t, e in self.results if not e and t > max(last_failure, self.restarted_at)]
        return later[0] - self.restarted_at if later else None


def _containers(pod: dict) -> dict[str, tuple[str, int]]:
    """container name -> (its id, restartCount)."""
    return {
        s["name"]: (str(s.get("containerID") or ""), int(s.get("restartCount") or 0))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    }


def _launch(folder: str, log: Path, runtime: str, nodes: int) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # a file, not a pipe nobody reads
        return subprocess.Popen(
            [sys.executable, "-m", "nbkube.cli", "up", "--nodes", str(nodes), "--runtime", runtime]
            + ["--data-dir", folder, "--name", f"chaos-{runtime}"],
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


def _scale(api: Any, name: str, replicas: int) -> None:
    for _ in range(10):
        rc = api.get("ReplicationController", name, "default")
        rc["spec"]["replicas"] = replicas
        try:
            api.update(rc)
            return
        except Conflict:
            continue
    raise AssertionError("could not scale the ReplicationController")


def up_killed_mid_scale(
    tmp_path: Path,
    runtime: str,
    nodes: int,
    manifest: str,
    *,
    start: int,
    scaled: int,
    while_running: Callable[[set[str]], None] | None = None,
) -> Outcome:
    """`up` with `nodes` nodes runs `manifest` (an RC `chaos` of `start` pods labelled app=chaos and
    a NodePort Service `chaos`); with the probe running, the RC is scaled to `scaled` and `up` is
    SIGKILLed as soon as new pods exist, then started again, until all `scaled` pods are Ready.
    `while_running(pod uids)` checks the restarted cluster before `up` is stopped with SIGTERM; its
    exit code must be 0 and its log free of tracebacks."""
    folder, log = str(tmp_path / "c"), tmp_path / "up.log"
    up = _launch(folder, log, runtime, nodes)
    probe: Probe | None = None
    try:
        client = connect(_store_url(log, 1, up))
        client.apply(manifest)
        api = client.api

        def pods() -> list[dict]:
            return list(api.list("Pod", "default", label_selector="app=chaos")[0])

        wait_until(lambda: sum(map(pod_ready, pods())) == start, 90, f"{start} pods Ready")
        node = api.list("Node")[0][0]
        ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        node_port = api.get("Service", "chaos", "default")["spec"]["ports"][0]["nodePort"]
        url = f"http://{ip}:{node_port}/"
        wait_until(lambda: not answer(url, 1.0), 30, "the NodePort answering")
        before = {p["metadata"]["uid"]: _containers(p) for p in pods()}
        wait_until(lambda: all(before.values()), 10, "container ids known")
        probe = Probe(url).start()
        wait_until(lambda: len(probe.results) >= 10, 10, "the probe under way")  # type: ignore[union-attr]

        _scale(api, "chaos", scaled)
        wait_until(lambda: len(pods()) > start, 30, "the scale under way")
        seen = {p["metadata"]["uid"] for p in pods()}  # read before the kill: the private etcd goes with `up`
        os.kill(up.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        up.wait(10)
        client.close()

        restarted_at = time.monotonic()
        up = _launch(folder, log, runtime, nodes)
        client = connect(_store_url(log, 2, up))
        api = client.api
        wait_until(
            lambda: len(pods()) == scaled and all(map(pod_ready, pods())),
            60,
            f"{scaled} pods Ready after the restart",
        )
        time.sleep(1.0)  # a little more load on the settled cluster
        results = probe.stop()
        after = {p["metadata"]["uid"]: _containers(p) for p in pods()}
        if while_running is not None:
            while_running(set(after))
        client.close()
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text(), log.read_text()[-5000:]
        return Outcome(results, killed_at, restarted_at, before, seen, after, log)
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


def assert_adopted(out: Outcome) -> None:
    """Same pods, same containers, no restart counted; the interrupted scale's pods kept."""
    for uid, containers in out.before.items():
        assert uid in out.after, "a pod that ran before the kill was deleted (evicted?)"
        assert out.after[uid] == containers, "not adopted: a container was recreated or restarted"
    assert out.seen <= set(out.after), "pods of the interrupted scale were deleted and made again"
