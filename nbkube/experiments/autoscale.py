"""Watch a HorizontalPodAutoscaler react to load: load, CPU, replicas and latency over time.

Who calls it: the 06-autoscaling notebook and `cluster.experiments.autoscale(...)`; the benchmark
`benchmarks/hpa.py` reads its `reaction` numbers. The experiment sends a bounded load (`concurrency`
workers, each one request after another, for `load_seconds`, capped at `max_requests`) to a
Service through the cluster's own loopback address for it (`resolve_target`), after `warmup`
seconds of quiet and before `cooldown` seconds of quiet again, and samples every `sample_period`:
the requests completed and their latency, the pods' CPU from `metrics.k8s.io` (the same figures
`kubectl top` prints), the HPA's utilization and desired count, and the Deployment's replicas and
Ready pods. Everything lands in one DataFrame (`.df`: one row per sample, `.requests`: one row per
request), from which `.summary`, `.story()` and `.plot()` are computed.

`burner_manifests()` gives a Deployment and Service whose pods burn CPU per request (busybox
httpd with a CGI loop), so the load turns into CPU an HPA can see; `ensure_hpa` makes the HPA
(`kubectl autoscale`'s object) when the target has none.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import parse_cpu
from nbkube.client import metrics as metrics_client
from nbkube.errors import BadRequest, NotFound
from nbkube.experiments.common import find_controller
from nbkube.experiments.probe import ProbeRecord, probe_once, records_dataframe
from nbkube.experiments.results import (
    ExperimentResult,
    Progress,
    metric,
    seconds,
    summary_frame,
    summary_value,
)
from nbkube.experiments.target import resolve_target

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

__all__ = ["AutoscaleResult", "autoscale", "burner_manifests", "ensure_hpa"]

SAMPLE_COLUMNS = [
    "t", "phase", "load_rps", "workers", "cpu_m", "utilization", "replicas", "ready", "desired", "p50_ms",
    "p95_ms", "errors",
]


_PY_SERVER = """
import http.server, os, socketserver
WORK = int(os.environ["WORK"])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/cgi-bin/work"):
            sum(i * i for i in range(WORK))
        body = (os.environ["POD_NAME"] + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S((os.environ["POD_IP"], int(os.environ["PORT"])), H).serve_forever()
"""


def burner_manifests(
    name: str = "web",
    *,
    port: int = 8080,
    work: int = 40000,
    cpu_request: str = "50m",
    replicas: int = 1,
    server: str = "python",
) -> list[Obj]:
    """A Deployment whose pods burn CPU per request (`GET /cgi-bin/work` does `work` steps, then
    answers with the pod's name; `/` answers at once) and a Service `name` on `port`.

    `server="python"` (the process runtime): a threaded Python server on the host, one long-lived
    process, so /proc sees all the CPU it burns. `server="cgi"` (Docker, where the container's cgroup
    counts every process): busybox httpd running a shell-loop CGI script. The CGI form does not suit
    the process runtime: httpd ignores SIGCHLD, so its exited children's CPU reaches no parent's
    counters in /proc and the usage would read low."""
    if not 0 < work <= 10_000_000:
        raise BadRequest(f"work must be in (0, 10000000] steps, got {work!r}")
    if server == "python":
        command = ["python3", "-c", _PY_SERVER]
    elif server == "cgi":
        # a here-document keeps the CGI script free of nested quoting ($POD_NAME is written in,
        # \\$i is the script's); httpd binds the pod's own address
        command = [
            "sh",
            "-c",
            "mkdir -p w/cgi-bin && cat > w/cgi-bin/work <<EOF\n"
            "#!/bin/sh\n"
            f"i=0\nwhile [ \\$i -lt {int(work)} ]; do i=\\$((i+1)); done\n"
            "echo 'Content-Type: text/plain'\necho\necho $POD_NAME\n"
            "EOF\n"
            f"chmod +x w/cgi-bin/work && echo ok > w/index.html && exec httpd -f -p $POD_IP:{port} -h w",
        ]
    else:
        raise BadRequest(f"server must be 'python' or 'cgi', got {server!r}")
    labels = {"app": name}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "busybox",
                                "command": command,
                                "ports": [{"containerPort": port}],
                                "env": [
                                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                    {"name": "PORT", "value": str(port)},
                                    {"name": "WORK", "value": str(int(work))},
                                ],
                                "resources": {"requests": {"cpu": cpu_request}},
                                "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": labels, "ports": [{"port": port, "targetPort": port}]},
        },
    ]


def ensure_hpa(
    api: Any,
    deployment: str,
    *,
    namespace: str = "default",
    cpu_percent: int = 50,
    min_replicas: int = 1,
    max_replicas: int = 4,
    scale_down_window: int | None = None,
) -> Obj:
    """The HPA of `deployment` (named after it), created as `kubectl autoscale` would if missing."""
    try:
        return dict(api.get("HorizontalPodAutoscaler", deployment, namespace))
    except NotFound:
        pass
    spec: Obj = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}}}
        ],
    }
    if scale_down_window is not None:
        spec["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": scale_down_window}}
    return dict(
        api.create(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": deployment, "namespace": namespace},
                "spec": spec,
            }
        )
    )


def _ready(pod: Obj) -> bool:
    return not (pod.get("metadata") or {}).get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or []
    )


class _Load:
    """`workers` threads, each sending one GET after another, while `on` is set; bounded by `limit` requests."""

    def __init__(self, host: str, port: int, path: str, workers: int, limit: int, timeout: float):
        self.host, self.port, self.path = host, port, path
        self.limit, self.timeout = limit, timeout
        self.records: list[ProbeRecord] = []
        self.lock = threading.Lock()
        self.on = threading.Event()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, name=f"load-{i}", daemon=True) for i in range(workers)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self.on.wait(0.1):
                continue
            with self.lock:
                if len(self.records) >= self.limit:
                    return
            rec = probe_once(self.host, self.port, path=self.path, timeout=self.timeout)
            with self.lock:
                self.records.append(rec)

    def close(self) -> None:
        self.stop.set()
        self.on.clear()
        for t in self.threads:
            t.join(self.timeout + 2.0)

    def since(self, t: float) -> list[ProbeRecord]:
        with self.lock:
            return [r for r in self.records if r.time + r.latency >= t]


class AutoscaleResult(ExperimentResult):
    kind = "autoscale"

    def __init__(self, df: pandas.DataFrame, requests: pandas.DataFrame, *, title: str = "", load: tuple[float, float]):
        super().__init__(df, title=title)
        self.requests = requests
        self.load_start, self.load_stop = load  # seconds since the experiment began

    @property
    def probe_df(self) -> pandas.DataFrame:
        return self.requests

    @property
    def reaction(self) -> dict[str, float | None]:
        """Seconds from the load's start to the first scale-up and to the first extra Ready replica."""
        df = self.df
        before = df[df["t"] < self.load_start]
        base_desired = int(before["replicas"].iloc[-1]) if len(before) else int(df["replicas"].iloc[0])
        base_ready = int(before["ready"].iloc[-1]) if len(before) else int(df["ready"].iloc[0])
        during = df[df["t"] >= self.load_start]
        up = during[during["replicas"] > base_desired]
        ready = during[during["ready"] > base_ready]
        return {
            "scale_up": float(up["t"].iloc[0] - self.load_start) if len(up) else None,
            "new_replica_ready": float(ready["t"].iloc[0] - self.load_start) if len(ready) else None,
        }

    @property
    def summary(self) -> pandas.DataFrame:
        df = self.df
        r = self.reaction
        reqs = self.requests
        rows: list[dict[str, Any]] = []
        metric(rows, "load start to scale-up", r["scale_up"], "s")
        metric(rows, "load start to new replica Ready", r["new_replica_ready"], "s")
        metric(rows, "replicas before load", int(df[df["t"] < self.load_start]["replicas"].max()) if len(df[df["t"] < self.load_start]) else None, "pods")
        metric(rows, "max replicas", int(df["replicas"].max()) if len(df) else None, "pods")
        metric(rows, "peak CPU", int(df["cpu_m"].max()) if len(df) and df["cpu_m"].notna().any() else None, "millicores")
        metric(rows, "requests sent", len(reqs), "requests")
        metric(rows, "requests failed", int((~reqs["ok"].astype(bool)).sum()) if len(reqs) else 0, "requests")
        loaded = df[(df["t"] >= self.load_start) & (df["t"] <= self.load_stop)]
        first = loaded["p50_ms"].dropna()
        metric(rows, "median latency, first loaded sample", float(first.iloc[0]) / 1000 if len(first) else None, "s")
        metric(rows, "median latency, last loaded sample", float(first.iloc[-1]) / 1000 if len(first) else None, "s")
        return summary_frame(rows)

    def story(self) -> str:
        value = functools.partial(summary_value, self.summary)
        return (
            f"Load started at {self.load_start:.0f} s: the autoscaler first scaled up after "
            f"{seconds(value('load start to scale-up'))} and a new replica was Ready after "
            f"{seconds(value('load start to new replica Ready'))}; replicas went from "
            f"{value('replicas before load')} to at most {value('max replicas')} (peak CPU "
            f"{value('peak CPU')}m). {value('requests failed')} of {value('requests sent')} requests failed."
        )

    def plot(self) -> Figure:
        from nbkube.experiments.plots import ResultFigure

        df = self.df
        fig = ResultFigure(figsize=(10, 8))
        axes = fig.subplots(4, 1, sharex=True)
        ax = axes[0]
        ax.step(df["t"], df["load_rps"], where="post", color="#1f77b4", gid="load")
        ax.set_ylabel("load (req/s)")
        ax = axes[1]
        ax.plot(df["t"], df["cpu_m"], color="#d62728", gid="cpu")
        ax.set_ylabel("CPU (millicores)")
        ax2 = ax.twinx()
        ax2.plot(df["t"], df["utilization"], color="#ff7f0e", linestyle=":", gid="utilization")
        ax2.set_ylabel("HPA util. (%)")
        ax = axes[2]
        ax.step(df["t"], df["replicas"], where="post", label="replicas (spec)", color="#2ca02c", gid="replicas")
        ax.step(df["t"], df["ready"], where="post", label="Ready", color="#9467bd", linestyle="--", gid="ready")
        ax.set_ylabel("pods")
        ax.legend(loc="upper left", fontsize=8)
        ax = axes[3]
        ax.plot(df["t"], df["p50_ms"], label="p50", color="#8c564b", gid="p50")
        ax.plot(df["t"], df["p95_ms"], label="p95", color="#e377c2", gid="p95")
        ax.set_ylabel("latency (ms)")
        ax.set_xlabel("seconds since the experiment began")
        ax.legend(loc="upper left", fontsize=8)
        for a in axes:
            a.axvspan(self.load_start, self.load_stop, color="#fdd9a0", alpha=0.35, gid="load-window")
        fig.suptitle(self.title)
        fig.tight_layout()
        return fig


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def autoscale(
    cluster: Any,
    deployment: str,
    service: Any,
    *,
    namespace: str = "default",
    path: str = "/cgi-bin/work",
    concurrency: int = 4,
    warmup: float = 5.0,
    load_seconds: float = 60.0,
    cooldown: float = 10.0,
    sample_period: float = 1.0,
    max_requests: int = 20_000,
    request_timeout: float = 5.0,
    stop_when_ready: int | None = None,
    progress: Progress | None = None,
) -> AutoscaleResult:
    """Load `service` for `load_seconds` and record how `deployment` and its HPA respond.

    `stop_when_ready`: end the load early once this many replicas are Ready (the benchmark's use).
    Raises BadRequest for bad input before any load is sent."""
    if not 1 <= concurrency <= 64:
        raise BadRequest(f"concurrency must be in [1, 64] workers, got {concurrency!r}")
    for name, value, top in (("warmup", warmup, 600), ("load_seconds", load_seconds, 1800), ("cooldown", cooldown, 1800)):
        if not 0 <= value <= top:
            raise BadRequest(f"{name} must be in [0, {top}] seconds, got {value!r}")
    if not 0.1 <= sample_period <= 60:
        raise BadRequest(f"sample_period must be in [0.1, 60] seconds, got {sample_period!r}")
    if not 1 <= max_requests <= 1_000_000:
        raise BadRequest(f"max_requests must be in [1, 1000000], got {max_requests!r}")
    api = cluster.api
    info = find_controller(api, deployment, namespace, ("Deployment", "ReplicaSet", "ReplicationController"))
    try:
        api.get("HorizontalPodAutoscaler", info.name, info.namespace)
        hpa_name: str | None = info.name
    except NotFound:
        hpa_name = None
    rows: list[dict[str, Any]] = []
    target = resolve_target(cluster, service, namespace)
    host, port = target.address
    load = _Load(host, port, path, concurrency, max_requests, request_timeout)
    began = time.time()
    load_start = warmup
    load_stop = warmup + load_seconds
    phase = "warmup"

    def sample(t: float) -> None:
        pods, _ = api.list("Pod", info.namespace, label_selector=info.selector)
        names = {str((p.get("metadata") or {}).get("name")) for p in pods}
        cpu = 0
        for m in metrics_client.pod_metrics(api, info.namespace):
            if (m.get("metadata") or {}).get("name") in names:
                cpu += sum(parse_cpu((c.get("usage") or {}).get("cpu", "0")) for c in m.get("containers") or [])
        obj = api.get(info.kind, info.name, info.namespace)
        util = desired = None
        if hpa_name is not None:
            status = api.get("HorizontalPodAutoscaler", hpa_name, info.namespace).get("status") or {}
            desired = status.get("desiredReplicas")
            for cm in status.get("currentMetrics") or []:
                util = ((cm.get("resource") or {}).get("current") or {}).get("averageUtilization", util)
        recent = [r for r in load.since(time.time() - sample_period)]
        latencies = [r.latency * 1000 for r in recent if r.ok]
        rows.append(
            {
                "t": round(t, 3),
                "phase": phase,
                "load_rps": len(recent) / sample_period,
                "workers": concurrency if load.on.is_set() else 0,
                "cpu_m": cpu,
                "utilization": util,
                "replicas": int((obj.get("spec") or {}).get("replicas", 1)),
                "ready": sum(1 for p in pods if _ready(p)),
                "desired": desired,
                "p50_ms": _percentile(latencies, 0.5),
                "p95_ms": _percentile(latencies, 0.95),
                "errors": sum(1 for r in recent if not r.ok),
            }
        )

    stop_hook = getattr(cluster, "on_stop", None)
    cancel = stop_hook(load.close) if callable(stop_hook) else None
    load.start()
    total = warmup + load_seconds + cooldown
    try:
        next_sample = time.monotonic()
        while True:
            t = time.time() - began
            if phase == "warmup" and t >= load_start:
                phase = "load"
                load.on.set()
            if phase == "load" and (t >= load_stop or (stop_when_ready is not None and rows and rows[-1]["ready"] >= stop_when_ready)):
                phase = "cooldown"
                load_stop = t
                load.on.clear()
                total = t + cooldown
            if t >= total:
                break
            sample(t)
            if progress is not None:
                progress(f"{phase}: {rows[-1]['replicas']} replicas, {rows[-1]['ready']} Ready", min(1.0, t / total))
            next_sample += sample_period
            time.sleep(max(0.0, next_sample - time.monotonic()))
    finally:
        load.close()
        target.close()
        if cancel is not None:
            cancel()
    import pandas as pd

    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    return AutoscaleResult(
        df,
        records_dataframe(load.records),
        title=f"autoscaling {info.key} under load",
        load=(load_start, load_stop),
    )
