"""`nbkube demo`: the article's scenario end to end on an embedded cluster, with timings and a report.

Registered by `nbkube.cli` through COMMAND_MODULES; the README's first command (`bash scripts/demo.sh`)
ends here. Steps: a LocalCluster (store auto: a private etcd when the binary exists, else SQLite;
runtime process when it is there, else sim, said in one line), the demo RC (5 replicas) and NodePort
Service shipped in nbkube.examples (rootless/), round robin through the Service, a node killed and the
failover timed, a rolling update under load timed; tables printed, plots and report.html written to a
folder: `--out DIR`, else ~/.nbkube/reports/demo-<timestamp> (never the working directory, which may be
a checkout or a notebook folder).
Every wait is bounded; a failure is one `error:` line and exit 1 (from `nbkube.cli.main`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from typing import Any

from nbkube.cli.context import Context
from nbkube.errors import BadRequest, NbkubeError

__all__ = ["register", "TextProgress", "demo_manifests", "default_report_dir"]

RC_FILE = "web-rc.yaml"
SERVICE_FILE = "web-service.yaml"
RC_NAME = "web-test-controller"
SERVICE_NAME = "web-http-service"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the article's scenario end to end (round robin, failover, rolling update) and write a report",
        description="Start a local cluster, apply the demo ReplicationController and NodePort Service, "
        "show round robin, kill a node and time the failover, time a rolling update under load, then "
        "print the tables and write PNG plots and report.html to a folder.",
    )
    p.add_argument("--out", default=None, help="report folder (default ~/.nbkube/reports/demo-<timestamp>)")
    p.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "process", "sim"],
        help="node runtime: process (pods are host processes), sim (simulated), auto (process when available)",
    )
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (2..10, default 3)")
    p.add_argument("--requests", type=int, default=50, help="requests for the round-robin table (default 50)")
    p.add_argument("--image", default="busybox:1.36", help="image the rolling update moves to")
    # the global --store names an existing store; the demo always makes its own (tests pass memory)
    p.add_argument("--cluster-store", dest="demo_store", default="auto", help=argparse.SUPPRESS)
    p.set_defaults(handler=_demo)


class TextProgress:
    """A `progress(message, fraction)` for the terminal: one line per new message, or per quarter done."""

    def __init__(self, out: Any, indent: str = "  "):
        self.out = out
        self.indent = indent
        self._last: tuple[str, int] | None = None

    def __call__(self, message: str, fraction: float) -> None:
        step = int(max(0.0, min(1.0, fraction)) * 4)
        if self._last is not None and self._last[0] == message and self._last[1] == step:
            return
        self._last = (message, step)
        self.out(f"{self.indent}[{fraction:4.0%}] {message}")


def demo_manifests() -> tuple[str, str]:
    """Paths of the demo RC and Service, shipped in the package (nbkube.examples, rootless/)."""
    from nbkube import examples

    return examples.path(f"rootless/{RC_FILE}"), examples.path(f"rootless/{SERVICE_FILE}")


def default_report_dir() -> str:
    """~/.nbkube/reports/demo-<timestamp>: reports collect there unless `--out` names a folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(os.path.expanduser("~"), ".nbkube", "reports", f"demo-{stamp}")


def _wait_running(cluster: Any, replicas: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods, _ = cluster.api.list("Pod", "default", label_selector="app=web")
        ready = [
            p
            for p in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        if len(ready) >= replicas:
            return
        time.sleep(0.1)
    raise NbkubeError(f"demo: {replicas} pods of {RC_NAME} not Ready within {timeout:g}s")


def _busiest_node(cluster: Any) -> str:
    pods, _ = cluster.api.list("Pod", "default", label_selector="app=web")
    counts = Counter(str((p.get("spec") or {}).get("nodeName") or "") for p in pods)
    counts.pop("", None)
    if not counts:
        raise NbkubeError("demo: no pod is bound to a node")
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def _demo(args: argparse.Namespace, ctx: Context) -> int:
    from nbkube.cluster import LocalCluster
    from nbkube.experiments import Experiments, default_runtime, failover, rollout
    from nbkube.experiments.plots import round_robin_figure
    from nbkube.experiments.report import write_report

    if not 2 <= args.nodes <= 10:
        raise BadRequest(f"--nodes must be from 2 to 10, got {args.nodes}")
    if not 1 <= args.requests <= 1000:
        raise BadRequest(f"--requests must be from 1 to 1000, got {args.requests}")
    out_dir = os.path.abspath(args.out) if args.out else default_report_dir()
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BadRequest(f"--out {out_dir}: exists and is not a folder")
    rc_path, svc_path = demo_manifests()
    runtime, note = default_runtime(args.runtime)
    say = ctx.out
    progress = TextProgress(say)
    t0 = time.monotonic()
    timings: list[tuple[str, float]] = []

    def lap(what: str, since: float) -> None:
        timings.append((what, round(time.monotonic() - since, 2)))

    say(note)
    with tempfile.TemporaryDirectory(prefix="nbkube-demo-") as data_dir:
        step = time.monotonic()
        with LocalCluster(
            nodes=args.nodes,
            runtime=runtime,
            store=args.demo_store,
            profile="fast",
            data_dir=data_dir,
            name="demo",
        ) as cluster:
            lap("cluster up", step)
            say(
                f"cluster up: {args.nodes} nodes, runtime {runtime}, store {cluster.store_kind} "
                f"({time.monotonic() - step:.1f}s)"
            )
            step = time.monotonic()
            for path in (rc_path, svc_path):
                for obj, action in cluster.apply(path):
                    say(f"  {obj['kind'].lower()}/{obj['metadata']['name']} {action}")
            _wait_running(cluster, 5, 30.0)
            lap("5 pods ready", step)
            say(f"5 pods ready ({time.monotonic() - step:.1f}s)")
            pods = cluster.api.list("Pod", "default", label_selector="app=web")[0]
            placement = Counter(str(p["spec"].get("nodeName")) for p in pods)
            say("pods per node: " + ", ".join(f"{n}={k}" for n, k in sorted(placement.items())))

            ex = Experiments(cluster, progress=progress)
            rr = ex.round_robin(SERVICE_NAME, args.requests)
            say(f"\nround robin: {args.requests} requests through service {SERVICE_NAME}")
            say(rr.to_string(index=False))

            victim = _busiest_node(cluster)
            say(f"\nfailover: killing {victim} (power-off) under load")
            step = time.monotonic()
            fo = failover(
                cluster, victim, SERVICE_NAME, controller=f"rc/{RC_NAME}", timeout=45.0, progress=progress
            )
            lap("failover experiment", step)
            say(fo.summary.to_string(index=False))

            say(f"\nrolling update of {RC_NAME} to {args.image} under load")
            step = time.monotonic()
            ro = rollout(
                cluster,
                f"rc/{RC_NAME}",
                args.image,
                SERVICE_NAME,
                timeout=45.0,
                update_period=0.2,
                progress=progress,
            )
            lap("rollout experiment", step)
            say(ro.summary.to_string(index=False))
        lap("whole demo", t0)
    total = timings[-1][1]  # one number for the terminal and the report

    import pandas as pd

    timing_df = pd.DataFrame(timings, columns=["step", "seconds"])
    served = rr[rr["pod"] != "(failed)"]
    narrative = [
        f"We started a {args.nodes}-node cluster (runtime {runtime}, profile fast), applied the article's "
        f"ReplicationController ({RC_NAME}, 5 replicas) and its NodePort Service, and sent "
        f"{args.requests} requests through the Service: {len(served)} pods on "
        f"{served['node'].nunique()} nodes answered them in turn.",
        "Failover: " + fo.story(),
        "Rolling update: " + ro.story(),
        f"The whole demo took {total:g} s.",
    ]
    report = write_report(
        out_dir,
        title="nbkube demo: the article's scenario",
        tables={"round-robin": rr, "failover": fo.summary, "rollout": ro.summary, "timings": timing_df},
        figures={
            "round-robin": round_robin_figure(rr, title=f"{args.requests} requests through {SERVICE_NAME}"),
            "failover": fo.plot(),
            "rollout": ro.plot(),
        },
        data={"failover-data": fo.df, "rollout-data": ro.df},
        narrative=narrative,
        texts={
            "round-robin": "Each request opens a new connection through the Service; the proxy hands "
            "them to the ready pods in turn. Bars are coloured by the pod's node.",
            "failover": f"{victim} is killed at 0 s. The shaded stretch is the time the API has not "
            "noticed yet: the node and its pods still look Ready there. Grey bars: running, not ready.",
            "rollout": "A second ReplicationController takes over one pod at a time; colours are "
            "revisions, grey is running but not yet ready.",
            "timings": "Wall-clock time of each step (the whole demo is measured before the report "
            "is written).",
        },
        notes=[note, f"{args.nodes} nodes, profile fast; failed node: {victim}; new image: {args.image}"],
    )
    say(f"\nreport: {report}")
    say(f"demo done in {total:g}s")
    return 0
