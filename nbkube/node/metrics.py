"""The node agent's resource-metrics reporter: CPU and memory per container, pod and node, every period.

Why: `kubectl top` and the HorizontalPodAutoscaler read `metrics.k8s.io`, which upstream's
metrics-server fills by scraping each kubelet's cAdvisor figures. Here each agent reads its runtime's
cumulative counters (`runtime.usage()`: /proc for host processes, the engine's stats for Docker,
annotations for sim pods), turns two readings into a CPU rate over the period between them (the
`window`), and reports the sample through the client layer (`nbkube/client/metrics.py`), in process
or through the API server alike.

A node's usage is the sum of its pods' usage: nodes of one local cluster share a host, so the host's
own figures would count every node as the whole machine.

Pods appear from their second reading (a rate needs two); a counter that went backwards (a
container restarted) restarts the rate from the new reading.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj
from nbkube.client import metrics as metrics_client
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.logutil import log_failure
from nbkube.node.runtime.usage import RawUsage
from nbkube.registry.metrics import ContainerUsage, NodeUsage, PodUsage

__all__ = ["MetricsReporter"]

log = logging.getLogger(__name__)


class MetricsReporter:
    """Samples `runtime.usage()` every `interval` seconds and reports rates for node `node_name`.

    `pods()` gives the API objects of the pods this node runs (for namespace, name and labels),
    `node_labels()` the Node's labels; while `active()` is false (a failed node) nothing is reported."""

    def __init__(
        self,
        api: Any,
        node_name: str,
        runtime: Any,
        pods: Callable[[], list[Obj]],
        *,
        interval: float,
        node_labels: Callable[[], dict[str, str]] | None = None,
        active: Callable[[], bool] | None = None,
        clock: Clock = REAL_CLOCK,
    ):
        self.api = api
        self.node_name = node_name
        self.runtime = runtime
        self.pods = pods
        self.interval = float(interval)
        self.node_labels = node_labels or (lambda: {})
        self.active = active or (lambda: True)  # a failed node (injected fault) reports nothing
        self.clock = clock
        self._last: dict[tuple[str, str], tuple[float, RawUsage]] = {}  # (uid, container) -> (time, reading)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported = float("-inf")  # monotonic time of the last report

    def sample(self) -> tuple[NodeUsage, list[PodUsage]]:
        """Read the runtime once, and the rates since the previous reading (one call per period)."""
        now = self.clock.now()
        raw: dict[str, dict[str, RawUsage]] = self.runtime.usage()
        objs = {str((p.get("metadata") or {}).get("uid") or ""): p for p in self.pods()}
        seen: dict[tuple[str, str], tuple[float, RawUsage]] = {}
        pods: list[PodUsage] = []
        window_max = 0.0
        node_cpu = node_memory = 0  # the node's sums, kept as the pods are read
        last = self._last
        for uid, containers in raw.items():
            obj = objs.get(uid)
            usages: list[ContainerUsage] = []
            window = 0.0
            for name, reading in sorted(containers.items()):
                key = (uid, name)
                seen[key] = (now, reading)
                prev = last.get(key)
                if prev is None or now <= prev[0] or reading.cpu_seconds < prev[1].cpu_seconds:
                    continue
                window = now - prev[0]
                usages.append(
                    ContainerUsage(
                        name, int((reading.cpu_seconds - prev[1].cpu_seconds) / window * 1e9), reading.memory_bytes
                    )
                )
            if obj is None or not usages:
                continue
            for usage in usages:
                node_cpu += usage.cpu_nanocores
                node_memory += usage.memory_bytes
            window_max = max(window_max, window)
            meta = obj.get("metadata") or {}
            pods.append(
                PodUsage(
                    namespace=str(meta.get("namespace") or ""),
                    name=str(meta.get("name") or ""),
                    timestamp=now,
                    window=window,
                    containers=tuple(usages),
                    labels=dict(meta.get("labels") or {}),
                    node=self.node_name,
                )
            )
        self._last = seen
        node = NodeUsage(
            name=self.node_name,
            timestamp=now,
            window=window_max if pods else self.interval,
            cpu_nanocores=node_cpu,
            memory_bytes=node_memory,
            labels=self.node_labels(),
        )
        return node, pods

    def report_once(self) -> None:
        node, pods = self.sample()
        metrics_client.report(self.api, node, pods)
        self._reported = self.clock.monotonic()

    def report_if_due(self) -> None:
        """Report when a period has passed since the last report: for an agent on an AgentPool's
        threads, which calls this from its heartbeat instead of running `start()`'s thread."""
        if self.clock.monotonic() - self._reported >= self.interval:
            self.report_once()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.active():
                    self.report_once()
            except Exception as exc:  # an API outage or a runtime hiccup: the next period tries again
                log_failure(log, f"node {self.node_name}: metrics report", exc)
            self.clock.wait(self._stop, self.interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"agent-{self.node_name}-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
