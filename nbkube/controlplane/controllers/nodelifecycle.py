"""Node lifecycle: notice dead nodes, taint them, and evict their pods (node controller + taint manager).

Run by `nbkube.controlplane.manager.ControlPlane` on the leader. Node agents renew a Lease in
`kube-node-lease` every heartbeat; this controller watches those Leases and the Nodes and, for each
node, reconciles:

1. health: a node whose Lease was not renewed for the profile's `grace_period` gets every status
   condition set to Unknown (reason NodeStatusUnknown), an Event NodeNotReady, and its pods' Ready
   condition set to False (so Endpoints drop them at once);
2. taints: Ready=Unknown => `node.kubernetes.io/unreachable` NoExecute + NoSchedule; Ready=False
   (the agent itself says NotReady) => `node.kubernetes.io/not-ready`; Ready=True => neither. The
   NoSchedule taint keeps the scheduler away, the NoExecute one drives eviction;
3. eviction: a pod on a node with NoExecute taints is deleted (Event TaintManagerEviction) once
   the taint has been there for the pod's `tolerationSeconds` — its own matching toleration if it
   has one (without seconds: tolerated forever), else the profile's `toleration_seconds` for the
   two node-condition taints (what Kubernetes' DefaultTolerationSeconds admission adds) and 0 for
   any other NoExecute taint.

No sleeps and no timers of its own: "check this node again when its lease would lapse, or when the
next pod's toleration runs out" is `queue.add_after` on the injected clock, so a FakeClock test
sees a node go Unknown at exactly grace and pods evicted at exactly grace + toleration. A node's
grace is counted from the later of its last renewal and this controller's start, as upstream
does, so a restarted control plane does not evict a healthy cluster before it has seen a heartbeat.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from nbkube.api.meta import Obj, key_of
from nbkube.client.controller import Controller
from nbkube.client.events import record_event
from nbkube.clock import REAL_CLOCK, Clock, rfc3339, timestamp_or_none
from nbkube.controlplane.profiles import Profile, get_profile
from nbkube.errors import Conflict, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "NodeLifecycleController",
    "TAINT_UNREACHABLE",
    "TAINT_NOT_READY",
    "NODE_LEASE_NAMESPACE",
    "toleration_seconds",
]

NODE_LEASE_NAMESPACE = "kube-node-lease"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
_OURS = (TAINT_UNREACHABLE, TAINT_NOT_READY)
COMPONENT = "node-controller"


def _condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _tolerates(tol: Obj, taint: Obj) -> bool:
    effect = tol.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key") or ""
    if tol.get("operator") == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or "")


def toleration_seconds(pod: Obj, taint: Obj, default: float) -> float:
    """How long `pod` stays on a node with the NoExecute `taint` (math.inf: for ever)."""
    matching = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if _tolerates(t, taint)]
    if not matching:
        return default if taint.get("key") in _OURS else 0.0
    seconds = [t.get("tolerationSeconds") for t in matching]
    if any(s is None for s in seconds):
        return math.inf
    return max(0.0, float(min(int(s) for s in seconds if s is not None)))


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory,
        *,
        clock: Clock = REAL_CLOCK,
        profile: Profile | None = None,
        workers: int = 1,
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.profile = profile or get_profile("kubernetes")
        self.nodes = factory.informer("Node")
        self.leases = factory.informer("Lease", NODE_LEASE_NAMESPACE)
        self.pods = factory.informer("Pod")
        self._started_at = clock.now()
        self.nodes.add_handler(self.enqueue, lambda _old, new: self.enqueue(new))
        self.leases.add_handler(self._on_lease, lambda _old, new: self._on_lease(new))
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new))

    def start(self) -> None:
        self._started_at = self.clock.now()
        super().start()

    # -- handlers (enqueue only) -------------------------------------------------------------------

    def _on_lease(self, lease: Obj) -> None:
        name = str(lease["metadata"].get("name", ""))
        node = self.nodes.get(name)
        # a healthy node needs no reconcile per renewal: its lapse is already scheduled
        if node is None or not self._healthy(node):
            self.queue.add(name)

    def _on_pod(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        node = self.nodes.get(node_name)
        if node is not None and any(
            t.get("effect") == "NoExecute" for t in (node.get("spec") or {}).get("taints") or []
        ):
            self.queue.add(node_name)

    @staticmethod
    def _healthy(node: Obj) -> bool:
        ready = _condition(node.get("status") or {}, "Ready") or {}
        taints = (node.get("spec") or {}).get("taints") or []
        return ready.get("status") == "True" and not any(t.get("key") in _OURS for t in taints)

    # -- reconcile ---------------------------------------------------------------------------------

    def _last_renewal(self, node: Obj) -> float:
        """The node's latest sign of life: its Lease renewal or its Ready heartbeat, whichever is later
        (both count, as upstream's probe timestamp; a node writes them one after the other)."""
        lease = self.leases.get(f"{NODE_LEASE_NAMESPACE}/{node['metadata']['name']}")
        renew = timestamp_or_none(((lease or {}).get("spec") or {}).get("renewTime")) or 0.0
        ready = _condition(node.get("status") or {}, "Ready") or {}
        heartbeat = timestamp_or_none(ready.get("lastHeartbeatTime")) or 0.0
        created = timestamp_or_none(node["metadata"].get("creationTimestamp")) or 0.0
        return max(renew, heartbeat, created, self._started_at)

    def _live_renewal(self, name: str) -> float:
        try:
            lease = self.api.get("Lease", name, NODE_LEASE_NAMESPACE)
        except NotFound:
            return 0.0
        return timestamp_or_none((lease.get("spec") or {}).get("renewTime")) or 0.0

    def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        # Conflicts (the agent wrote the Node meanwhile) are retried here with a fresh read rather
        # than by a rate-limited requeue, whose back-off would wait on a FakeClock in tests.
        for _attempt in range(3):
            if node is None:
                return
            try:
                self._reconcile_node(key, node)
                return
            except Conflict:
                try:
                    node = self.api.get("Node", key)
                except NotFound:
                    return
        raise Conflict(f"node {key} kept changing")

    def _reconcile_node(self, key: str, node: Obj) -> None:
        now = self.clock.now()
        grace = self.profile.grace_period
        lapse = self._last_renewal(node) + grace
        next_check: float | None = None
        ready = str((_condition(node.get("status") or {}, "Ready") or {}).get("status") or "Unknown")
        if now >= lapse and ready != "Unknown":
            # Before declaring a node dead, read its Lease from the store: under load the lease
            # informer can be behind by more than a short grace period, and acting on that lag
            # would evict the pods of a node that renewed in time.
            lapse = max(lapse, self._live_renewal(key) + grace)
        if now >= lapse:
            if ready != "Unknown":
                node = self._mark_unknown(node, now)
                ready = "Unknown"
        else:
            next_check = lapse - now
        if ready == "Unknown":
            self._mark_pods_not_ready(
                key, now
            )  # again on every pass: a conflict may have cut the last one short
        node = self._sync_taints(node, ready, now)
        evict_next = self._evict(node, now)
        if evict_next is not None:
            next_check = evict_next if next_check is None else min(next_check, evict_next)
        if ready != "True":
            # a safety net for a node that is down: look again every monitor period even if no
            # event arrives (upstream's node-monitor-period); healthy nodes wait for their lapse
            period = self.profile.node_monitor_period
            next_check = period if next_check is None else min(next_check, period)
        if next_check is not None:
            self.queue.add_after(key, max(next_check, 0.0))

    def _mark_unknown(self, node: Obj, now: float) -> Obj:
        name = node["metadata"]["name"]
        status = copy.deepcopy(node.get("status") or {})
        stamp = rfc3339(now)
        for cond in status.get("conditions") or []:
            if cond.get("status") != "Unknown":
                cond["lastTransitionTime"] = stamp
            cond["status"] = "Unknown"
            cond["reason"] = "NodeStatusUnknown"
            cond["message"] = "Kubelet stopped posting node status."
        if _condition(status, "Ready") is None:
            status.setdefault("conditions", []).append(
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastTransitionTime": stamp,
                }
            )
        updated = self.api.update_status({**node, "status": status})
        since = now - (self._last_renewal(node))
        record_event(
            self.api,
            updated,
            "NodeNotReady",
            f"Node {name} status is now: NodeNotReady (no heartbeat for {since:.3f}s, grace {self.profile.grace_period:g}s)",
            type="Warning",
            component=COMPONENT,
            clock=self.clock,
        )
        return updated

    def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        """Set Ready/ContainersReady False on the node's pods (idempotent: only writes changes)."""
        stamp = rfc3339(now)
        for cached in self.pods.by_index("nodeName", node_name):
            pod: Obj | None = cached
            # fresh reads on conflict, bounded: a rate-limited requeue would wait on a FakeClock
            for _attempt in range(3):
                assert pod is not None
                status = copy.deepcopy(pod.get("status") or {})
                changed = False
                for cond in status.get("conditions") or []:
                    if cond.get("type") in ("Ready", "ContainersReady") and cond.get("status") != "False":
                        cond.update(status="False", reason="NodeNotReady", lastTransitionTime=stamp)
                        changed = True
                if not changed:
                    break
                try:
                    self.api.update_status({**pod, "status": status})
                except NotFound:
                    break
                except Conflict:
                    pod = self._fresh_pod(pod)
                    if pod is None:
                        break
                    continue
                record_event(
                    self.api,
                    pod,
                    "NodeNotReady",
                    "Node is not ready",
                    type="Warning",
                    component=COMPONENT,
                    clock=self.clock,
                )
                break

    def _fresh_pod(self, pod: Obj) -> Obj | None:
        try:
            fresh = self.api.get("Pod", pod["metadata"]["name"], pod["metadata"].get("namespace", ""))
        except NotFound:
            return None
        return fresh if fresh["metadata"].get("uid") == pod["metadata"].get("uid") else None

    def _sync_taints(self, node: Obj, ready: str, now: float) -> Obj:
        spec = node.get("spec") or {}
        taints: list[Obj] = list(spec.get("taints") or [])
        want_key = {"Unknown": TAINT_UNREACHABLE, "False": TAINT_NOT_READY}.get(ready)
        kept = [t for t in taints if t.get("key") not in _OURS or t.get("key") == want_key]
        if want_key is not None:
            for effect in ("NoSchedule", "NoExecute"):
                if not any(t.get("key") == want_key and t.get("effect") == effect for t in kept):
                    taint: Obj = {"key": want_key, "effect": effect}
                    if effect == "NoExecute":
                        taint["timeAdded"] = rfc3339(now, micro=True)
                    kept.append(taint)
        if kept == taints:
            return node
        new_spec = {**spec, "taints": kept}
        if not kept:
            new_spec.pop("taints")
        return self.api.update({**node, "spec": new_spec})

    def _evict(self, node: Obj, now: float) -> float | None:
        """Delete pods whose toleration ran out; seconds until the next one will (None: none will)."""
        noexec = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        if not noexec:
            return None
        name = node["metadata"]["name"]
        soonest: float | None = None
        for cached in self.pods.by_index("nodeName", name):
            wait = self._evict_pod(cached, noexec, name, now)
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        return soonest

    def _evict_pod(self, cached: Obj, noexec: list[Obj], node_name: str, now: float) -> float | None:
        """Delete the pod if its toleration ran out; else seconds until it will (None: never)."""
        pod: Obj | None = cached
        for _attempt in range(3):
            assert pod is not None
            evict_at = math.inf
            for taint in noexec:
                added = timestamp_or_none(taint.get("timeAdded")) or now
                evict_at = min(
                    evict_at, added + toleration_seconds(pod, taint, self.profile.toleration_seconds)
                )
            if evict_at == math.inf:
                return None
            if now < evict_at:
                return evict_at - now
            try:
                self.api.delete(
                    "Pod",
                    pod["metadata"]["name"],
                    pod["metadata"].get("namespace", ""),
                    resource_version=str(pod["metadata"].get("resourceVersion") or "") or None,
                )
            except NotFound:
                return None
            except Conflict:
                # changed under us (it may have gained a toleration): decide again on the fresh pod
                pod = self._fresh_pod(pod)
                if pod is None:
                    return None
                continue
            record_event(
                self.api,
                pod,
                "TaintManagerEviction",
                f"Marking for deletion Pod {key_of(pod)} (node {node_name} has taint(s) "
                + ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in noexec)
                + ")",
                component=COMPONENT,
                clock=self.clock,
            )
            return None
        raise Conflict(f"pod {key_of(cached)} kept changing during eviction")
