"""The node agent (nbkube's kubelet): registers a Node, heartbeats, and runs the pods bound to it.

Who runs it: `nbkube.cluster.LocalCluster` and `nbkube up` (one agent per simulated node, threads in
one process), and later `nbkube node join` on another machine; it meets the control plane only
through the registry. What it does:
- registers its Node (capacity/allocatable, addresses, podCIDR 10.244.N.0/24, Ready condition);
- every `heartbeat_interval` renews its Lease in `kube-node-lease` (what the node-lifecycle
  controller watches) and refreshes the Ready condition's `lastHeartbeatTime`;
- watches pods (a shared informer, filtered through its `nodeName` index) and converges the
  runtime: start pods bound here, stop pods that are gone; then writes each pod's status
  (phase, conditions, podIP from its CIDR, containerStatuses) with `update_status`;
- records Events with precise times: NodeReady, and per pod Started / Ready / Failed / BackOff /
  Killing, which the notebook's timelines and the failover tests read back.
It deletes nothing: objects belong to their controllers; it only stops runtime pods it started.

Fault injection, for failover studies: `fail("stop-heartbeats")` cuts the agent off the API (no
lease, no node or pod status writes; its pods keep running), `fail("power-off")` also kills every
pod in the runtime; `recover()` undoes either. A process that cannot call `fail()` (the CLI's
`nbkube kill-node` against a cluster started by `nbkube up`) sets the Node annotation
`nbkube.io/fault` instead, which the agent obeys (and recovers when it is removed).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from nbkube.api.meta import Obj, key_of
from nbkube.client.events import record_event
from nbkube.client.informer import Informer, InformerFactory
from nbkube.client.workqueue import WorkQueue
from nbkube.clock import REAL_CLOCK, Clock, rfc3339
from nbkube.errors import AlreadyExists, BadRequest, Conflict, NbkubeError, NotFound
from nbkube.logutil import log_failure
from nbkube.node.agentpool import AgentPool, AgentQueue, PendingStatus
from nbkube.node.ipam import HostLocalIPAM
from nbkube.node.metrics import MetricsReporter
from nbkube.node.podstatus import TERMINAL_PHASES, build_pod_status, condition
from nbkube.node.runtime.base import PodRuntimeStatus, PodSandboxConfig, Runtime
from nbkube.node.runtime.dnsconf import ResolvConf, host_resolv_conf, pod_resolv_conf, wants_cluster_dns
from nbkube.node.runtime.serviceenv import service_env
from nbkube.node.sysinfo import go_arch, node_system_info

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["NodeAgent", "FAULT_ANNOTATION", "FAULT_MODES", "NODE_LEASE_NAMESPACE", "DEFAULT_CAPACITY"]

log = logging.getLogger(__name__)

FAULT_ANNOTATION = "nbkube.io/fault"
FAULT_MODES = ("stop-heartbeats", "power-off")
NODE_LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_CAPACITY: dict[str, str] = {"cpu": "4", "memory": "8Gi", "pods": "110"}
# Pod syncs run in parallel (the workqueue never hands one pod to two workers): a slow container
# start must not hold up every other pod of the node.
POD_WORKERS = 4
COMPONENT = "kubelet"


class TimingProfile(Protocol):
    """What the agent reads from a control-plane Profile (node/ may not import controlplane/)."""

    @property
    def heartbeat_interval(self) -> float: ...

    @property
    def grace_period(self) -> float: ...


class NodeAgent:
    def __init__(
        self,
        api: Registry,
        node_name: str,
        runtime: Runtime,
        *,
        profile: TimingProfile | None = None,
        heartbeat: float | None = None,
        clock: Clock = REAL_CLOCK,
        capacity: dict[str, str] | None = None,
        pod_cidr: str | None = None,
        address: str | None = None,
        labels: dict[str, str] | None = None,
        factory: InformerFactory | None = None,
        cluster_dns: list[str] | None = None,
        cluster_domain: str = "cluster.local",
        host_dns: ResolvConf | None = None,
        service_host: Callable[[str], str] | None = None,
        metrics_api: Any = None,
        pool: AgentPool | None = None,
        pod_workers: int = POD_WORKERS,
        status_report_interval: float | None = None,
        relist_interval: float | None = None,
    ):
        """`metrics_api`: where resource metrics go when not to `api` (a RestClient to the API server
        for an agent that reaches the cluster through its store: nbkube/client/metrics.py).
        `pool`: run on an AgentPool's threads instead of threads of our own (see agentpool.py).
        `status_report_interval`: how often the Node status is rewritten when nothing in it changed
        but its heartbeat time (default: every heartbeat); the Lease is renewed every heartbeat
        regardless, and it is what the node-lifecycle controller counts.
        `relist_interval`: how often every pod of the node is synced again whether or not an event
        came (default: every heartbeat; pod events and the runtime's own timers do the rest)."""
        if not node_name:
            raise BadRequest("node agent: node_name is required")
        self.api = api
        self.node_name = node_name
        self.runtime = runtime
        self.clock = clock
        if heartbeat is None:
            heartbeat = profile.heartbeat_interval if profile is not None else 10.0
        if heartbeat <= 0:
            raise BadRequest(f"node agent {node_name}: heartbeat must be > 0, got {heartbeat!r}")
        self.heartbeat_interval = float(heartbeat)
        grace = profile.grace_period if profile is not None else 4 * self.heartbeat_interval
        self.lease_duration = max(1, math.ceil(grace))
        report = self.heartbeat_interval if status_report_interval is None else status_report_interval
        if report <= 0:
            raise BadRequest(f"node agent {node_name}: status_report_interval must be > 0, got {report!r}")
        self.status_report_interval = float(report)
        relist = self.heartbeat_interval if relist_interval is None else relist_interval
        if relist <= 0:
            raise BadRequest(f"node agent {node_name}: relist_interval must be > 0, got {relist!r}")
        self.relist_interval = float(relist)
        self._relisted = 0.0  # clock.monotonic() of our last relist (pool mode)
        self._status_written = 0.0  # clock.monotonic() of our last Node status write
        if pod_workers < 1:
            raise BadRequest(f"node agent {node_name}: pod_workers must be >= 1, got {pod_workers!r}")
        self.pod_workers = pod_workers
        self.pool = pool
        self.capacity = {**DEFAULT_CAPACITY, **(capacity or {})}
        self.pod_cidr = pod_cidr
        self.address = address
        self.extra_labels = dict(labels or {})
        self._own_factory = factory is None
        self.factory = factory or InformerFactory(api)
        self.pods: Informer = self.factory.informer("Pod")
        # Service variables for the pods it starts (the kubelet's service lister)
        self.services: Informer = self.factory.informer("Service")
        # the DNS server pods with dnsPolicy ClusterFirst get (none: they get the node's resolvers)
        self.service_host = service_host  # ClusterIP -> the address this node's pods reach it at
        self.cluster_dns = list(cluster_dns or [])
        self.cluster_domain = cluster_domain
        self._no_dns_said = False
        self.host_dns = host_dns if host_dns is not None else host_resolv_conf()
        self.queue: WorkQueue | AgentQueue = (
            pool.queue_for(node_name) if pool is not None else WorkQueue(clock=clock)
        )
        self.ipam: HostLocalIPAM | None = None
        self._lock = threading.Lock()
        self._started: dict[str, str] = {}  # pod key -> uid we started in the runtime
        self._start_times: dict[str, float] = {}  # uid -> when we accepted it
        self._last_seen: dict[str, Obj] = {}  # pod key -> last object (for events after deletion)
        # pod key -> resourceVersion of the pool's last status write for it (its echo is not synced)
        self._own_writes: dict[str, Any] = {}
        self._fault: str | None = None
        self._fault_from_api = False
        self._lease_rv = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running = False
        # A pooled agent reads its Node (fault annotation, status) from the shared Node informer:
        # thousands of sim nodes each reading their Node from the store every beat were a fifth
        # of the beat's cost (see agentpool.py for why beats must stay cheap).
        self._nodes: Informer | None = self.factory.informer("Node") if pool is not None else None
        if pool is not None:
            pool.attach(self, self.pods)  # the pool routes our pods' events to us
        else:
            self.pods.add_handler(self._on_add, self._on_update, self._on_delete)
        self.metrics: MetricsReporter | None = None
        if callable(getattr(runtime, "usage", None)):
            self.metrics = MetricsReporter(
                metrics_api if metrics_api is not None else api,
                node_name,
                runtime,
                lambda: self.pods.by_index("nodeName", self.node_name),
                interval=float(getattr(profile, "metrics_interval", 15.0)),
                node_labels=self._node_labels,
                active=lambda: self._fault is None,
                clock=clock,
            )
        else:
            log.info("node %s: runtime %s reports no resource usage: no metrics for its pods", node_name, runtime.name)

    # -- public lifecycle --------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = self._fault or ("running" if self._running else "stopped")
        return f"NodeAgent({self.node_name!r}, runtime={self.runtime.name!r}, {state})"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def fault(self) -> str | None:
        return self._fault

    def start(self) -> None:
        """Register the Node and the Lease, then run the heartbeat and pod-sync threads."""
        if self._running:
            return
        self._stop.clear()
        if self.pool is None and self.queue.shutting_down:
            self.queue = WorkQueue(clock=self.clock)
        self._ensure_namespace()
        self.renew_lease()
        self.register()
        if self._own_factory:
            self.factory.start_all()
        else:
            self.pods.start()  # a no-op when the shared factory already runs it
            self.services.start()
        self._running = True
        if self.pool is not None:
            self.pool.start_agent(self)
            self._relisted = self.clock.monotonic()
            self._resync()
            return
        # The heartbeat has a thread of its own that never waits on the runtime: a runtime busy
        # creating fifty containers must not make the node look dead (and its pods evicted).
        loops = [(self._heartbeat_loop, "heartbeat"), (self._relist_loop, "relist")]
        loops += [(self._worker, f"podsync-{i}") for i in range(self.pod_workers)]
        for target, name in loops:
            t = threading.Thread(target=target, name=f"agent-{self.node_name}-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.metrics is not None:
            self.metrics.start()

    def stop(self) -> None:
        """Graceful stop: threads end, the Node stays (it turns NotReady when its lease lapses);
        runtime pods are left to the runtime's owner, as a kubelet restart leaves containers."""
        self._stop.set()
        self.queue.shutdown()
        if self.metrics is not None:
            self.metrics.stop()
        threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)
        if self._own_factory:
            self.factory.stop_all()
        self._running = False

    def fail(self, mode: str = "power-off", *, _from_api: bool = False) -> None:
        """Inject a fault: "stop-heartbeats" (cut off the API) or "power-off" (also kill the pods)."""
        if mode not in FAULT_MODES:
            raise BadRequest(
                f"node {self.node_name}: unknown fault mode {mode!r} (known: {', '.join(FAULT_MODES)})"
            )
        with self._lock:
            self._fault = mode
            self._fault_from_api = _from_api
        log.info("node %s: fault injected: %s", self.node_name, mode)
        if mode == "power-off":
            for st in self.runtime.list_pods():
                self.runtime.stop_pod(st.uid)
            with self._lock:
                for uid in self._started.values():
                    if self.ipam is not None:
                        self.ipam.release(uid)
                self._started.clear()
                self._start_times.clear()

    def recover(self) -> None:
        """End an injected fault: heartbeats resume and pods still bound here are (re)started."""
        with self._lock:
            self._fault = None
            self._fault_from_api = False
        log.info("node %s: recovered", self.node_name)
        if self._running:
            self._heartbeat()
            self._resync()

    def _node_labels(self) -> dict[str, str]:
        try:
            node = self._read_node()  # a pooled agent's from the Node informer, as its beats read it
        except NbkubeError:
            return {}
        return dict(((node or {}).get("metadata") or {}).get("labels") or {})

    # -- registration and heartbeat ----------------------------------------------------------------

    def _choose_cidr(self, existing: Obj | None) -> str:
        if self.pod_cidr:
            return self.pod_cidr
        if existing is not None and (existing.get("spec") or {}).get("podCIDR"):
            return str(existing["spec"]["podCIDR"])
        nodes, _ = self.api.list("Node")
        used = {str((n.get("spec") or {}).get("podCIDR") or "") for n in nodes}
        m = re.search(r"(\d+)$", self.node_name)
        if m and 0 < int(m.group(1)) < 256 and f"10.244.{int(m.group(1))}.0/24" not in used:
            return f"10.244.{int(m.group(1))}.0/24"
        for n in range(1, 256):
            if f"10.244.{n}.0/24" not in used:
                return f"10.244.{n}.0/24"
        raise BadRequest("no free pod CIDR left in 10.244.0.0/16")

    def _node_address(self, cidr: str) -> str:
        if self.address:
            return self.address
        # simulated nodes carry no traffic; a stable, per-node host address from the CIDR's index
        third = cidr.split(".")[2] if cidr.startswith("10.244.") else "0"
        return f"172.18.{third}.2"

    def _status_conditions(self, old_status: Obj, now: float) -> list[Obj]:
        stamp = rfc3339(now)
        out = []
        for ctype, value, reason, message in (
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ):
            prev = condition(old_status, ctype)
            transition = stamp
            if prev is not None and prev.get("status") == value and prev.get("lastTransitionTime"):
                transition = prev["lastTransitionTime"]
            out.append(
                {
                    "type": ctype,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": transition,
                }
            )
        return out

    def _desired_status(self, old_status: Obj, now: float) -> Obj:
        assert self.ipam is not None
        resources = dict(self.capacity)
        return {
            **old_status,
            "capacity": resources,
            "allocatable": dict(resources),
            "addresses": [
                {"type": "InternalIP", "address": self.address or ""},
                {"type": "Hostname", "address": self.node_name},
            ],
            "conditions": self._status_conditions(old_status, now),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_system_info(self.node_name, self.runtime.name),
        }

    def register(self) -> Obj:
        """Create (or adopt) the Node object and mark it Ready."""
        self._ensure_namespace()
        try:
            existing: Obj | None = self.api.get("Node", self.node_name)
        except NotFound:
            existing = None
        cidr = self._choose_cidr(existing)
        self.pod_cidr = cidr
        self.address = self._node_address(cidr)
        if self.ipam is None or str(self.ipam.network) != cidr:
            self.ipam = HostLocalIPAM(cidr)
            self._reserve_existing_ips()
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": go_arch(),
            "nbkube.io/runtime": self.runtime.name,
            **self.extra_labels,
        }
        now = self.clock.now()
        if existing is None:
            node: Obj = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": self.node_name, "labels": labels},
                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            }
            try:
                created = self.api.create(node)
            except AlreadyExists:
                created = self.api.get("Node", self.node_name)
            existing = created
        else:
            meta = existing.get("metadata") or {}
            spec = existing.get("spec") or {}
            if {**(meta.get("labels") or {}), **labels} != (meta.get("labels") or {}) or not spec.get(
                "podCIDR"
            ):
                upd = {
                    **existing,
                    "metadata": {**meta, "labels": {**(meta.get("labels") or {}), **labels}},
                    "spec": {
                        **spec,
                        "podCIDR": spec.get("podCIDR") or cidr,
                        "podCIDRs": spec.get("podCIDRs") or [cidr],
                    },
                }
                existing = self.api.update(upd)
        self._write_node_status(existing, now)
        return existing

    def _reserve_existing_ips(self) -> None:
        assert self.ipam is not None
        try:
            pods, _ = self.api.list("Pod", field_selector={"spec.nodeName": self.node_name})
        except NbkubeError:
            return
        for pod in pods:
            ip = str((pod.get("status") or {}).get("podIP") or "")
            if ip and self.ipam.contains(ip):
                self.ipam.allocate(str(pod["metadata"].get("uid", "")), ip)

    def _ensure_namespace(self) -> None:
        try:
            self.api.get("Namespace", NODE_LEASE_NAMESPACE)
        except NotFound:
            with contextlib.suppress(AlreadyExists):
                self.api.create(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NODE_LEASE_NAMESPACE}}
                )

    def _write_node_status(self, node: Obj, now: float) -> None:
        """Refresh the Node's status (CAS; one re-read on conflict) and say NodeReady on a flip."""
        for _attempt in range(3):
            old_status = node.get("status") or {}
            was_ready = (condition(old_status, "Ready") or {}).get("status") == "True"
            try:
                updated = self.api.update_status({**node, "status": self._desired_status(old_status, now)})
            except Conflict:
                node = self.api.get("Node", self.node_name)
                continue
            self._status_written = self.clock.monotonic()
            if not was_ready:
                record_event(
                    self.api,
                    updated,
                    "NodeReady",
                    f"Node {self.node_name} status is now: NodeReady",
                    component=COMPONENT,
                    clock=self.clock,
                )
            return
        raise Conflict(f"node {self.node_name}: status kept conflicting")

    def _lease_renewal(self) -> tuple[Obj, dict[str, Any]]:
        """Our Lease as renewed now, at the resourceVersion we last wrote, and its new spec."""
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": self.lease_duration,
            "renewTime": rfc3339(self.clock.now(), micro=True),
        }
        lease: Obj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": NODE_LEASE_NAMESPACE,
                "resourceVersion": self._lease_rv,
            },
            "spec": spec,
        }
        return lease, spec

    def renew_lease(self) -> None:
        lease, spec = self._lease_renewal()
        if self._lease_rv:
            try:
                self._lease_rv = self.api.update(lease)["metadata"]["resourceVersion"]
                return
            except (Conflict, NotFound):
                pass
        try:
            current = self.api.get("Lease", self.node_name, NODE_LEASE_NAMESPACE)
        except NotFound:
            lease["metadata"].pop("resourceVersion")
            try:
                self._lease_rv = self.api.create(lease)["metadata"]["resourceVersion"]
            except AlreadyExists:
                self._lease_rv = ""
            return
        updated = {**current, "spec": {**(current.get("spec") or {}), **spec}}
        self._lease_rv = self.api.update(updated)["metadata"]["resourceVersion"]

    def _read_node(self) -> Obj | None:
        """Our Node (None: there is none): a pooled agent's from the Node informer once it holds
        it (a status write from a stale copy is a Conflict, re-read), else from the API."""
        if self._nodes is not None:
            cached = self._nodes.get(self.node_name)
            if cached is not None:
                return cached
        try:
            return self.api.get("Node", self.node_name)
        except NotFound:
            return None

    def _check_fault_annotation(self) -> Obj | None:
        """Read our Node; obey (or lift) a fault set through its annotation. Returns the Node."""
        node = self._read_node()
        if node is None:
            return None
        wanted = str(((node.get("metadata") or {}).get("annotations") or {}).get(FAULT_ANNOTATION) or "")
        if wanted in FAULT_MODES and self._fault != wanted:
            self.fail(wanted, _from_api=True)
        elif not wanted and self._fault is not None and self._fault_from_api:
            self.recover()
        return node

    def _heartbeat(self) -> None:
        node = self._check_fault_annotation()
        if self._fault is not None:
            return
        # lease first: a controller that sees our Ready status also finds a fresh lease
        self.renew_lease()
        self._after_renewal(node)

    def beat_begin(self) -> Obj | None:
        """An AgentPool's heartbeat, first half: obey (or lift) a fault; returns the renewed Lease
        to write (None: faulted, or no Lease written yet: `lease_written` renews it)."""
        self._check_fault_annotation()
        if self._fault is not None or not self._lease_rv:
            return None
        return self._lease_renewal()[0]

    def lease_written(self, renewed: Obj | Exception | None) -> None:
        """Second half, once the pool wrote the Leases of many agents at once (`renewed`: ours as
        written, or why it was not): on any failure the Lease is renewed the one-at-a-time way,
        which reads it again. The rest of the beat is `beat_chores`, which the pool runs apart."""
        try:
            if self._fault is None:
                if isinstance(renewed, dict):
                    self._lease_rv = str(renewed["metadata"]["resourceVersion"])
                else:
                    self.renew_lease()
        except Exception as exc:
            log_failure(log, f"node {self.node_name}: heartbeat", exc)

    def beat_chores(self) -> None:
        """What a heartbeat does besides the Lease: the Node status when due (or registering the
        Node again if it went), metrics and the relist."""
        try:
            if self._fault is None:
                self._after_renewal(self._read_node())
        except Exception as exc:
            log_failure(log, f"node {self.node_name}: node status", exc)
        self._metrics_and_relist()

    def _after_renewal(self, node: Obj | None) -> None:
        if node is None:
            self.register()  # someone deleted our Node: register again, as the kubelet does
        elif self._status_due(node):
            self._write_node_status(node, self.clock.now())

    def _status_due(self, node: Obj) -> bool:
        """Rewrite the Node status when it would change (beyond heartbeat times) or is due anyway."""
        if self.clock.monotonic() - self._status_written >= self.status_report_interval:
            return True
        old = node.get("status") or {}
        return _without_heartbeats(self._desired_status(old, self.clock.now())) != _without_heartbeats(old)

    def beat_and_relist(self) -> None:
        """One heartbeat and one relist (what the two loops do), for an AgentPool's threads."""
        try:
            self._heartbeat()
        except Exception as exc:
            log_failure(log, f"node {self.node_name}: heartbeat", exc)
        self._metrics_and_relist()

    def _metrics_and_relist(self) -> None:
        if self.metrics is not None and self._fault is None:
            try:
                self.metrics.report_if_due()
            except Exception as exc:  # an API outage or a runtime hiccup: a later beat tries again
                log_failure(log, f"node {self.node_name}: metrics report", exc)
        now = self.clock.monotonic()
        if self._fault is None and now - self._relisted >= self.relist_interval:
            self._relisted = now
            try:
                self._resync()
            except Exception as exc:
                log_failure(log, f"node {self.node_name}: relist", exc)

    def _heartbeat_loop(self) -> None:
        # start() has just registered and renewed: the first beat is one interval later
        while not self.clock.wait(self._stop, self.heartbeat_interval):
            try:
                self._heartbeat()
            except Exception as exc:
                log_failure(log, f"node {self.node_name}: heartbeat", exc)

    def _relist_loop(self) -> None:
        while not self.clock.wait(self._stop, self.relist_interval):
            if self._fault is not None:
                continue
            try:
                self._resync()
            except Exception as exc:
                log_failure(log, f"node {self.node_name}: relist", exc)

    # -- pod sync ----------------------------------------------------------------------------------

    def _mine(self, pod: Obj | None) -> bool:
        return pod is not None and (pod.get("spec") or {}).get("nodeName") == self.node_name

    def _on_add(self, pod: Obj) -> None:
        if self._mine(pod):
            self.queue.add(key_of(pod))

    def _on_update(self, old: Obj, new: Obj) -> None:
        mine = self._mine(new)
        if mine or self._mine(old):
            key = key_of(new)
            if mine and self._own_writes.get(key) == new["metadata"].get("resourceVersion"):
                # the echo of a status write the pool made for this agent: it holds only what the
                # agent wrote, and a pooled pod's next change is already timed (`next_check`)
                return
            self.queue.add(key)

    def _on_delete(self, pod: Obj) -> None:
        if self._mine(pod):
            key = key_of(pod)
            self._own_writes.pop(key, None)
            with self._lock:
                self._last_seen[key] = pod
            self.queue.add(key)

    def _resync(self) -> None:
        """Re-examine every pod bound here and every pod the runtime holds (a PLEG relist)."""
        keys = {key_of(p) for p in self.pods.by_index("nodeName", self.node_name)}
        with self._lock:
            keys.update(self._started)
        for st in self.runtime.list_pods():
            keys.add(f"{st.namespace}/{st.name}" if st.namespace else st.name)
        if isinstance(self.queue, AgentQueue):
            self.queue.add_resync(keys)  # behind the pool's fresher work (AgentPool._feed_resyncs)
            return
        for key in keys:
            self.queue.add(key)

    def _worker(self) -> None:
        while not self._stop.is_set():
            assert isinstance(self.queue, WorkQueue)
            key = self.queue.get()
            if key is None:
                return
            try:
                self.sync_pod_guarded(key)
            finally:
                self.queue.done(key)

    def sync_pod_guarded(self, key: str) -> None:
        """sync_pod with its retry bookkeeping: a failure is logged and retried with backoff."""
        try:
            self.sync_pod(key)
        except Conflict:
            self.queue.add_rate_limited(key)  # our cache was stale; the newer version is on its way
        except Exception as exc:
            log_failure(log, f"node {self.node_name}: pod sync", exc, detail=key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)

    def _stop_runtime_pod(self, key: str, uid: str) -> None:
        self.runtime.stop_pod(uid)
        if self.ipam is not None:
            self.ipam.release(uid)
        with self._lock:
            if self._started.get(key) == uid:
                del self._started[key]
            self._start_times.pop(uid, None)
            last = self._last_seen.pop(key, None)
        if last is not None and self._fault is None:
            containers = ", ".join(
                str(c.get("name", "")) for c in (last.get("spec") or {}).get("containers") or []
            )
            record_event(
                self.api,
                last,
                "Killing",
                f"Stopping container(s) {containers}",
                component=COMPONENT,
                clock=self.clock,
            )

    def sync_pod(self, key: str) -> None:
        """Converge one pod: start or stop it in the runtime, then report its status."""
        if self._fault == "power-off" or self.ipam is None:
            return
        pod = self.pods.get(key)
        with self._lock:
            started_uid = self._started.get(key)
        if not self._mine(pod):
            if started_uid:
                self._stop_runtime_pod(key, started_uid)
            # a runtime pod we did not start in this life (agent restart): its object is gone
            ns, _, name = key.rpartition("/")
            for st in self.runtime.list_pods():
                if st.namespace == ns and st.name == name:
                    self._stop_runtime_pod(key, st.uid)
            return
        assert pod is not None
        uid = str(pod["metadata"].get("uid", ""))
        if started_uid and started_uid != uid:
            self._stop_runtime_pod(key, started_uid)  # same name, new pod
        old_status = pod.get("status") or {}
        rt = self.runtime.pod_status(uid)
        if rt is None:
            if old_status.get("phase") in TERMINAL_PHASES:
                return  # finished pods are not run again
            ip = self.ipam.allocate(uid, str(old_status.get("podIP") or ""))
            sandbox = self._sandbox(pod, ip)
            try:
                self.runtime.start_pod(pod, sandbox)
            except BadRequest as exc:
                self.ipam.release(uid)
                self._report_failure(pod, str(exc))
                return
            with self._lock:
                self._started[key] = uid
                self._start_times.setdefault(uid, self.clock.now())
            rt = self.runtime.pod_status(uid)
        with self._lock:
            self._started.setdefault(key, uid)
            start_time = self._start_times.get(uid)
        if rt is not None and rt.next_check is not None and self._settling(old_status, rt.next_check, start_time):
            self.queue.add_after(key, max(rt.next_check, 0.001))
            return
        phase = self._report(pod, rt, start_time)
        if phase in TERMINAL_PHASES and rt is not None and self.runtime.release_sandbox(uid):
            # as the kubelet tears down a finished pod's sandbox: its address serves the next pod
            self.ipam.release(uid)
        if rt is not None and rt.next_check is not None:
            self.queue.add_after(key, max(rt.next_check, 0.001))

    def _settling(self, old_status: Obj, next_check: float, start_time: float | None) -> bool:
        """A pooled agent's pod whose first status is due to change within the pool's settle
        time (see agentpool.py): its status is written after that change, once. Bounded to the
        first `status_settle` seconds after the pod was accepted, so no state is held back longer."""
        settle = self.pool.status_settle if self.pool is not None else 0.0
        return (
            settle > 0
            and next_check <= settle
            and not old_status.get("containerStatuses")
            and start_time is not None
            and self.clock.now() - start_time < settle
        )

    def _sandbox(self, pod: Obj, ip: str) -> PodSandboxConfig:
        """Where and with what the pod starts: its address, the Services it sees, its resolv.conf."""
        if self.runtime.name == "sim":
            # no processes, so no environment or resolv.conf to give; a scale study of thousands
            # of pods beside thousands of Services must not hold their variables per pod
            return PodSandboxConfig(self.node_name, ip, self.pod_cidr or "", self.address or "")
        # as the kubelet, wait (bounded) for the Service cache: a pod started before it filled
        # would miss the variables of Services that already exist
        if not self.services.wait_synced(10.0):
            log.warning("node %s: Service cache not synced; pod env may lack Service variables", self.node_name)
        if not self.cluster_dns and not self._no_dns_said and wants_cluster_dns(pod):
            # as the kubelet's MissingClusterDNS warning (an Event, where a notebook user looks, not
            # stderr), said once per node: every default pod asks for cluster DNS
            self._no_dns_said = True
            why = (
                "host processes use the host's resolver (use the *_SERVICE_HOST variables, or runtime docker)"
                if self.runtime.name == "process"
                else "this node has no cluster DNS server"
            )
            message = (
                f"node {self.node_name}: pods with dnsPolicy ClusterFirst get the node's resolvers "
                f"(dnsPolicy Default) and Service names do not resolve: {why}"
            )
            log.info("%s", message)
            record_event(self.api, pod, "MissingClusterDNS", message, type="Warning", component=COMPONENT, clock=self.clock)
        resolv = pod_resolv_conf(
            pod, cluster_dns=self.cluster_dns, cluster_domain=self.cluster_domain, host=self.host_dns
        )
        return PodSandboxConfig(
            self.node_name,
            ip,
            self.pod_cidr or "",
            self.address or "",
            service_env=service_env(pod, self._visible_services(pod), self.service_host),
            resolv_conf=resolv.render(),
        )

    def _visible_services(self, pod: Obj) -> list[Obj]:
        """The Services whose variables a pod may get: its namespace's and `default`'s (the
        master Service), from the cache's namespace index rather than a pass over every Service."""
        ns = str((pod.get("metadata") or {}).get("namespace") or "default")
        found = self.services.by_index("namespace", ns)
        return found if ns == "default" else found + self.services.by_index("namespace", "default")

    def _report_failure(self, pod: Obj, message: str) -> None:
        if self._fault is not None:
            return
        status = {
            **(pod.get("status") or {}),
            "phase": "Failed",
            "reason": "RuntimeError",
            "message": message,
        }
        self.api.update_status({**pod, "status": status})
        record_event(self.api, pod, "Failed", message, type="Warning", component=COMPONENT, clock=self.clock)

    def _report(self, pod: Obj, rt: PodRuntimeStatus | None, start_time: float | None) -> str:
        """Write the pod's status from the runtime's; returns its phase."""
        old = pod.get("status") or {}
        if self._fault is not None:
            return ""  # cut off from the API
        now = self.clock.now()
        new = build_pod_status(pod, rt, host_ip=self.address or "", now=now, start_time=start_time)
        if new == old:
            return str(new.get("phase") or "")
        held = self.pool.held_statuses() if self.pool is not None else None
        if held is not None:
            # a pool worker writes it with the other pods it synced (agentpool.py), then calls
            # status_written
            held.append(PendingStatus(self, key_of(pod), pod, old, new, rt))
            return str(new.get("phase") or "")
        updated = self.api.update_status({**pod, "status": new})
        self._events_for(updated, old, new, rt)
        return str(new.get("phase") or "")

    def status_written(self, held: PendingStatus, result: Obj | Exception) -> None:
        """The outcome of a status write the pool made for this agent: as a lone write's would be
        handled by sync_pod_guarded (a conflict or failure retries the pod with back-off)."""
        if isinstance(result, Conflict):
            self.queue.add_rate_limited(held.key)  # our cache was stale; the newer version is on its way
        elif isinstance(result, NotFound):
            return  # deleted meanwhile: its delete event brings the pod's teardown
        elif isinstance(result, Exception):
            log_failure(log, f"node {self.node_name}: pod status", result, detail=held.key)
            self.queue.add_rate_limited(held.key)
        else:
            self._own_writes[held.key] = result["metadata"].get("resourceVersion")
            self._events_for(result, held.old, held.new, held.rt)

    def _events_for(self, pod: Obj, old: Obj, new: Obj, rt: PodRuntimeStatus | None) -> None:
        def running(status: Obj) -> bool:
            return status.get("phase") == "Running" and all(
                "running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []
            )

        def ready(status: Obj) -> bool:
            return (condition(status, "Ready") or {}).get("status") == "True"

        names = ", ".join(str(c.get("name", "")) for c in (pod.get("spec") or {}).get("containers") or [])
        if running(new) and not running(old):
            restarts = sum(int(c.get("restartCount") or 0) for c in new.get("containerStatuses") or [])
            msg = f"Started container(s) {names}" + (f" (restart {restarts})" if restarts else "")
            msg += f" on {self.node_name} with IP {new.get('podIP', '')}"
            record_event(self.api, pod, "Started", msg, component=COMPONENT, clock=self.clock)
        if ready(new) and not ready(old):
            record_event(
                self.api,
                pod,
                "Ready",
                f"Pod is ready on {self.node_name}",
                component=COMPONENT,
                clock=self.clock,
            )
        old_reasons = _waiting_reasons(old)
        for cname, reason, message in _waiting_details(new):
            if (
                reason in ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff")
                and old_reasons.get(cname) != reason
            ):
                ev_reason = "BackOff" if reason.endswith("BackOff") else "Failed"
                text = message or f"container {cname}: {reason}"
                record_event(
                    self.api, pod, ev_reason, text, type="Warning", component=COMPONENT, clock=self.clock
                )


def _without_heartbeats(status: Obj) -> Obj:
    conds = [
        {k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status.get("conditions") or []
    ]
    return {**status, "conditions": conds}


def _waiting_details(status: Obj) -> list[tuple[str, str, str]]:
    out = []
    for c in status.get("containerStatuses") or []:
        waiting: Any = (c.get("state") or {}).get("waiting")
        if isinstance(waiting, dict):
            out.append(
                (str(c.get("name", "")), str(waiting.get("reason", "")), str(waiting.get("message", "")))
            )
    return out


def _waiting_reasons(status: Obj) -> dict[str, str]:
    return {name: reason for name, reason, _msg in _waiting_details(status)}
