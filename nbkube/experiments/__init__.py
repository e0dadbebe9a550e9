"""Timing experiments: a node failure or a rolling update, under a load probe, as a DataFrame and a plot.

Who calls it: `nbkube demo` (cli/cmd_demo.py), the notebooks (through nbkube.notebook, which adds
the progress bar) and `Experiments(cluster)`, the object behind `cluster.experiments`.
Layering: this package sits between the CLI and the API server; it uses the cluster object it is
given, the registry, the client and the rolling-update driver, and never IPython.

- probe.py      Probe (HTTP GETs at a bounded rate, every request recorded), round_robin()
- target.py     (host, port) or a Service name -> an address; ServiceStandIn for runtime "sim"
- timeline.py   PodRecorder (pod state changes) and the state rebuilt from rows
- failover.py   failover() -> FailoverResult
- rollout.py    rollout() -> RolloutResult
- autoscale.py  autoscale() -> AutoscaleResult (load, CPU, replicas, latency); burner_manifests()
- plots.py      Gantt + ready line + failed requests; round-robin bars
- report.py     tables (CSV, markdown), PNGs and report.html in a folder
"""

from __future__ import annotations

from typing import Any

from nbkube.experiments.autoscale import AutoscaleResult, autoscale, burner_manifests, ensure_hpa
from nbkube.experiments.failover import FailoverResult, failover
from nbkube.experiments.probe import Probe, ProbeRecord, probe_once, round_robin
from nbkube.experiments.results import ExperimentResult, ExperimentTimeout, Progress
from nbkube.experiments.rollout import RolloutResult, rollout
from nbkube.experiments.target import ProbeTarget, ServiceStandIn, default_runtime, resolve_target

__all__ = [
    "AutoscaleResult",
    "Experiments",
    "ExperimentResult",
    "ExperimentTimeout",
    "FailoverResult",
    "Probe",
    "ProbeRecord",
    "ProbeTarget",
    "Progress",
    "RolloutResult",
    "ServiceStandIn",
    "autoscale",
    "burner_manifests",
    "default_runtime",
    "ensure_hpa",
    "failover",
    "probe_once",
    "resolve_target",
    "rollout",
    "round_robin",
]


class Experiments:
    """`cluster.experiments`: the experiments bound to one cluster, with a default progress callback."""

    def __init__(self, cluster: Any, progress: Progress | None = None):
        self.cluster = cluster
        self.progress = progress

    def __repr__(self) -> str:
        return f"Experiments({self.cluster!r})"

    def failover(self, node: str, probe: Any = None, **kwargs: Any) -> FailoverResult:
        kwargs.setdefault("progress", self.progress)
        return failover(self.cluster, node, probe, **kwargs)

    def rollout(self, controller: str, image: str, probe: Any = None, **kwargs: Any) -> RolloutResult:
        kwargs.setdefault("progress", self.progress)
        return rollout(self.cluster, controller, image, probe, **kwargs)

    def autoscale(self, deployment: str, service: Any, **kwargs: Any) -> AutoscaleResult:
        kwargs.setdefault("progress", self.progress)
        return autoscale(self.cluster, deployment, service, **kwargs)

    def wait_ready(
        self, selector: str, count: int, *, namespace: str = "default", timeout: float = 60.0
    ) -> int:
        """Block (bounded) until `count` pods matching `selector` are Ready; returns how many are."""
        import time

        from nbkube.errors import NbkubeError

        deadline = time.monotonic() + timeout
        while True:
            pods, _ = self.cluster.api.list("Pod", namespace, label_selector=selector)
            ready = sum(
                1
                for p in pods
                if not (p.get("metadata") or {}).get("deletionTimestamp")
                and any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (p.get("status") or {}).get("conditions") or []
                )
            )
            if ready >= count:
                return ready
            if time.monotonic() >= deadline:
                raise NbkubeError(f"only {ready} of {count} pods ({selector}) Ready after {timeout:g}s")
            time.sleep(0.1)

    def round_robin(self, probe: Any, requests: int = 50, namespace: str = "default") -> Any:
        """Requests one after another through `probe` (a Service name or (host, port)): count per pod,
        with the node each pod runs on (columns pod, node, requests, share)."""
        with resolve_target(self.cluster, probe, namespace) as target:
            table = round_robin(*target.address, requests=requests)
        pods, _ = self.cluster.api.list("Pod", namespace)
        node_of = {
            str((p.get("metadata") or {}).get("name")): str((p.get("spec") or {}).get("nodeName") or "")
            for p in pods
        }
        table.insert(1, "node", [node_of.get(str(pod), "") for pod in table["pod"]])
        return table
