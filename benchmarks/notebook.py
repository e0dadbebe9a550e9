"""Notebook benchmark: the dashboard's refresh cost and comm traffic.

Dashboard (headless, a counting comm stands in for the kernel; cluster = a Registry on
sqlite://:memory: with N pods spread over M nodes):
  - ms per refresh and messages per refresh when K pods change between refreshes, for our
    incremental Dashboard.refresh() (chip cache, only changed widgets get values, hold_sync) against
    a baseline that rebuilds every column's widgets from scratch each refresh, as a naive view would;
  - messages per second under live churn with the real updater thread (throttled), beside the
    baseline's rate at the same number of refreshes.

The userspace proxy's throughput is measured by
`benchmarks/userspace_proxy.py` (backend and client in processes of their own, as in real use).

    python benchmarks/notebook.py --pods 1000 --nodes 10
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import comm as comm_pkg
from common import Row

from nbkube.registry.registry import Registry
from nbkube.store import open_store

# -- a counting comm -------------------------------------------------------------------------------


class CountingComm:
    """Stands in for a kernel comm; counts the open and every message."""

    kernel = "headless"
    sent = 0  # class-wide: every message of every widget, including the comm open

    def __init__(self, **_kwargs: Any):
        self.comm_id = uuid.uuid4().hex
        CountingComm.sent += 1  # the comm_open message that creates the model in the frontend

    def on_msg(self, callback: Any) -> None:
        pass

    def send(self, data: Any = None, buffers: Any = None, **_kw: Any) -> None:
        CountingComm.sent += 1

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


def _install_counting_comm() -> None:
    comm_pkg.create_comm = lambda *a, **kw: CountingComm(**kw)


# -- the cluster -----------------------------------------------------------------------------------


def _make_cluster(n_pods: int, n_nodes: int) -> Registry:
    api = Registry(open_store("sqlite://:memory:"))
    for i in range(n_nodes):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"node-{i:03d}"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
    for i in range(n_pods):
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"web-{i:04d}", "labels": {"app": "web"}},
                "spec": {
                    "nodeName": f"node-{i % n_nodes:03d}",
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            }
        )
    return api


def _flip(api: Registry, name: str, rng: random.Random) -> None:
    """One status change of one pod (what a node agent's report does)."""
    obj = copy.deepcopy(api.get("Pod", name, "default"))
    ready = rng.random() < 0.7
    obj["status"] = {
        "phase": rng.choice(["Running", "Running", "Pending", "Failed"]),
        "podIP": f"127.1.{rng.randrange(255)}.{rng.randrange(1, 255)}",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "c", "ready": ready, "restartCount": rng.randrange(3)}],
    }
    api.update_status(obj)


def _wait(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark setup did not converge")
        time.sleep(0.01)


class RebuildBaseline:
    """What a naive view does: every refresh builds all column widgets anew from the informer caches."""

    def __init__(self, dash: Any):
        import ipywidgets as widgets

        from nbkube.notebook.html import chip
        from nbkube.notebook.summary import status_of

        self._w = widgets
        self._chip = chip
        self._status = status_of
        self.dash = dash
        self.box = widgets.HBox()

    def refresh(self) -> None:
        w = self._w
        infs = self.dash._informers
        by_node: dict[str, list[Any]] = {}
        for p in infs["Pod"].list():
            by_node.setdefault(p["spec"].get("nodeName", ""), []).append(p)
        cols = []
        for n in sorted(infs["Node"].list(), key=lambda o: o["metadata"]["name"]):
            name = n["metadata"]["name"]
            pods = sorted(by_node.get(name, []), key=lambda o: o["metadata"]["name"])
            chips = "".join(self._chip(p["metadata"]["name"], self._status(p)[1]) for p in pods)
            header = w.HTML(f"<b>{name}</b> {self._status(n)[0]} ({len(pods)})")
            cols.append(w.VBox([header, w.HTML(chips)]))
        old = self.box.children
        self.box.children = tuple(cols)
        for c in old:  # closing old widgets is part of the cost (and of the traffic in a real kernel)
            for child in c.children:
                child.close()
            c.close()


def bench_dashboard(
    n_pods: int, n_nodes: int, changes: int, refreshes: int, churn_seconds: float
) -> tuple[list[list[str]], dict[str, float]]:
    from nbkube.notebook.dashboard import Dashboard

    _install_counting_comm()
    rng = random.Random(5)
    print(f"setting up {n_pods} pods on {n_nodes} nodes ...", flush=True)
    api = _make_cluster(n_pods, n_nodes)
    names = [f"web-{i:04d}" for i in range(n_pods)]
    # a huge throttle parks the updater after its first pass, so refresh() is timed alone here
    dash = Dashboard(api, throttle=3600.0, max_nodes=n_nodes)
    pods_inf = dash._informers["Pod"]
    try:
        _wait(lambda: len(pods_inf.list()) == n_pods)
        dash.refresh()
        base = RebuildBaseline(dash)
        base.refresh()

        def churn_batch() -> None:
            for name in rng.sample(names, changes):
                _flip(api, name, rng)
            target = api.list("Pod", "default")[1]
            _wait(lambda: int(pods_inf.resource_version or 0) >= int(target))

        timings: dict[str, list[float]] = {"incremental": [], "rebuild": []}
        msgs: dict[str, list[int]] = {"incremental": [], "rebuild": []}
        for _ in range(refreshes):
            churn_batch()
            for label, fn in (("incremental", dash.refresh), ("rebuild", base.refresh)):
                before = CountingComm.sent
                t0 = time.perf_counter()
                fn()
                timings[label].append((time.perf_counter() - t0) * 1000)
                msgs[label].append(CountingComm.sent - before)
        # steady state: a refresh with nothing changed
        t0 = time.perf_counter()
        before = CountingComm.sent
        dash.refresh()
        idle_ms = (time.perf_counter() - t0) * 1000
        idle_msgs = CountingComm.sent - before
    finally:
        dash.stop()

    # live churn with the real updater thread (throttle 0.25 s), counting messages per second
    live = Dashboard(api, throttle=0.25, max_nodes=n_nodes)
    try:
        _wait(lambda: len(live._informers["Pod"].list()) == n_pods)
        time.sleep(0.5)
        start_msgs, start_refreshes = CountingComm.sent, live.refreshes
        writes = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < churn_seconds:
            _flip(api, rng.choice(names), rng)
            writes += 1
        elapsed = time.monotonic() - t0
        live_msgs = CountingComm.sent - start_msgs
        live_refreshes = live.refreshes - start_refreshes
    finally:
        live.stop()
        api.close()

    inc_ms, reb_ms = statistics.median(timings["incremental"]), statistics.median(timings["rebuild"])
    inc_m, reb_m = statistics.mean(msgs["incremental"]), statistics.mean(msgs["rebuild"])
    refresh_rate = live_refreshes / elapsed
    rows = [
        [
            f"refresh, {changes} pods changed (ms, median)",
            f"{inc_ms:.2f}",
            f"{reb_ms:.2f}",
            f"{reb_ms / inc_ms:.1f}x",
        ],
        ["messages per refresh", f"{inc_m:.1f}", f"{reb_m:.1f}", f"{reb_m / max(inc_m, 0.1):.1f}x"],
        ["refresh, nothing changed (ms / msgs)", f"{idle_ms:.2f} / {idle_msgs}", "-", ""],
        [
            f"live churn: {writes / elapsed:.0f} pod writes/s, {refresh_rate:.1f} refreshes/s",
            f"{live_msgs / elapsed:.1f} msg/s",
            f"{reb_m * refresh_rate:.1f} msg/s",
            f"{reb_m * refresh_rate / max(live_msgs / elapsed, 0.1):.1f}x",
        ],
    ]
    nums = {"inc_ms": inc_ms, "reb_ms": reb_ms, "inc_msgs": inc_m, "reb_msgs": reb_m}
    return rows, nums


def rows(quick: bool = False) -> list[Row]:
    pods, nodes, changes, refreshes = (200, 10, 20, 5) if quick else (1000, 10, 20, 20)
    _, m = bench_dashboard(pods, nodes, changes, refreshes, 1.0 if quick else 3.0)
    return [
        Row(f"dashboard refresh at {pods:,} pods, {changes} changed, median", m["inc_ms"], "ms",
            "rebuild every widget", m["reb_ms"], "same-run", samples=refreshes),
        Row(f"dashboard comm messages per refresh at {pods:,} pods", m["inc_msgs"], "messages",
            "rebuild every widget", m["reb_msgs"], "same-run", samples=refreshes),
    ]  # fmt: skip


def _print(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    print(f"\n{title}")
    for r in [headers, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--changes", type=int, default=20, help="pods changed between two timed refreshes")
    ap.add_argument("--refreshes", type=int, default=20)
    ap.add_argument("--churn-seconds", type=float, default=3.0)
    args = ap.parse_args()

    table, _ = bench_dashboard(args.pods, args.nodes, args.changes, args.refreshes, args.churn_seconds)
    _print(
        f"dashboard at {args.pods} pods / {args.nodes} nodes",
        ["measure", "incremental (ours)", "rebuild (baseline)", "baseline/ours"],
        table,
    )


if __name__ == "__main__":
    main()
