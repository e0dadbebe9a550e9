"""The DaemonSet controller: one pod of each DaemonSet on every node that should run it.

As upstream's (since 1.12) the controller does not bind pods itself: it creates each pod with a
required node affinity on the node's `metadata.name` (replacing the template's own required terms,
which it has already checked) and the scheduler binds it, so resources and ports are accounted for
like any pod's. Which nodes "should run" a daemon pod is upstream's predicate: the template's
`nodeName` if set, its `nodeSelector` and required node affinity, and the node's NoSchedule and
NoExecute taints against the template's tolerations plus the ones every daemon pod gets
(`DAEMON_TOLERATIONS`: not-ready and unreachable NoExecute, disk/memory/pid-pressure and
unschedulable NoSchedule, network-unavailable for host-network pods). A node whose NoSchedule taint
is not tolerated keeps a pod that already runs there ("should continue running"); one whose
NoExecute taint is not tolerated loses it.

reconcile(key), from the informer caches:
- claim pods (adopt matching orphans, release owned pods that no longer match: replication.py);
- per node: create the missing pod, delete pods on nodes that should not run one, a Failed pod (to be
  replaced) and duplicates (the oldest stays), and pods bound to nodes that no longer exist;
- update: `OnDelete` replaces a pod only after the user deleted it; `RollingUpdate` deletes old pods
  while at most `maxUnavailable` nodes lack an available pod, or with `maxSurge` starts the new pod
  beside the old one and deletes the old one once the new one is available. Pods carry
  `controller-revision-hash` (the template's hash) and `pod-template-generation` labels as upstream's;
- status: desired/current/misscheduled/ready/updated/available/unavailable counts, observedGeneration;
- history: one ControllerRevision per template, named `<ds>-<hash>`, whose data is the patch that
  restores the template (`{"spec": {"template": {..., "$patch": "replace"}}}`) and whose revision
  number is the highest when it is the current one (a rollback renumbers the old revision), as
  upstream's, so `kubectl rollout history|undo ds/NAME` work; old revisions no live pod runs are
  pruned beyond `revisionHistoryLimit`.

The planning is a pure function (`plan`), so the tests check the rules without threads.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbkube.api.intstr import resolve_int_or_percent
from nbkube.api.meta import Obj, controller_of, key_of, split_key
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.controllers.deployment import template_hash
from nbkube.controlplane.controllers.history import (
    owned_revisions,
    prune_revisions,
    restore_patch,
    revision_object,
)
from nbkube.controlplane.controllers.replication import (
    Expectations,
    PodOwnerController,
    adopt_claimed,
    claim_pods,
    created_at,
    delete_pod,
    is_active,
    is_available,
    is_ready,
    owner_ref,
    pod_from_template,
    release_claimed,
    seconds_until_available,
)
from nbkube.controlplane.controllers.writes import event, write_status
from nbkube.controlplane.scheduler.plugins.node_affinity import matches_node
from nbkube.controlplane.scheduler.plugins.taint_toleration import tolerates
from nbkube.errors import AlreadyExists, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "DaemonSetController",
    "DAEMON_TOLERATIONS",
    "REVISION_HASH_LABEL",
    "TEMPLATE_GENERATION_LABEL",
    "Plan",
    "plan",
    "node_should_run",
    "daemon_pod",
    "pod_node",
]

REVISION_HASH_LABEL = "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
COMPONENT = "daemonset-controller"

DAEMON_TOLERATIONS: tuple[dict[str, str], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


_OMITTED_WHEN_ZERO = ("updatedNumberScheduled", "numberAvailable", "numberUnavailable")

# --- pure helpers ---------------------------------------------------------------------------------


def _template_spec(ds: Obj) -> dict[str, Any]:
    return ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}


def daemon_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The template's tolerations plus the daemon ones it does not already have (upstream's
    AddOrUpdateDaemonPodTolerations)."""
    out = [dict(t) for t in pod_spec.get("tolerations") or [] if isinstance(t, dict)]
    extra = [*DAEMON_TOLERATIONS, *([NETWORK_UNAVAILABLE] if pod_spec.get("hostNetwork") else [])]
    for tol in extra:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in out):
            out.append(dict(tol))
    return out


def node_should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run, should continue running) a daemon pod of `ds` on `node`, as upstream's
    NodeShouldRunDaemonPod: nodeName, node selector and required affinity, then taints."""
    spec = _template_spec(ds)
    meta = node.get("metadata") or {}
    name = str(meta.get("name") or "")
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    terms = None if affinity is None else list(affinity.get("nodeSelectorTerms") or [])
    if not matches_node(spec.get("nodeSelector") or {}, terms, meta.get("labels") or {}, name):
        return False, False
    tolerations = daemon_tolerations(spec)
    run = cont = True
    for t in (node.get("spec") or {}).get("taints") or []:
        taint = (str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        if taint[2] not in ("NoSchedule", "NoExecute") or tolerates(tolerations, taint):
            continue
        run = False
        if taint[2] == "NoExecute":
            cont = False
    return run, cont


def pod_node(pod: Obj) -> str:
    """The node a daemon pod is for: where it is bound, else its required `metadata.name` affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {})
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            values = req.get("values") or []
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def revision_hash(ds: Obj) -> str:
    return template_hash((ds.get("spec") or {}).get("template") or {})


def daemon_pod(ds: Obj, node_name: str, hash_: str) -> Obj:
    """A new pod of `ds` for `node_name`: the template, the daemon tolerations, the revision labels,
    and a required node affinity on the node's name (the scheduler binds it there)."""
    generation = str((ds.get("metadata") or {}).get("generation") or 1)
    pod = pod_from_template(ds, labels={REVISION_HASH_LABEL: hash_, TEMPLATE_GENERATION_LABEL: generation})
    spec = pod["spec"]
    spec["tolerations"] = daemon_tolerations(spec)
    by_name = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
        ]
    }
    affinity = spec.setdefault("affinity", {})
    affinity.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = by_name
    return pod


def _created(pod: Obj) -> tuple[float, str]:
    return created_at(pod), str((pod.get("metadata") or {}).get("name") or "")


def _is_updated(pod: Obj, hash_: str, generation: str) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if REVISION_HASH_LABEL in labels:
        return labels[REVISION_HASH_LABEL] == hash_
    return labels.get(TEMPLATE_GENERATION_LABEL) == generation


@dataclass
class Plan:
    """What one reconcile should do, and the status it should write."""

    create: list[str] = field(default_factory=list)  # node names
    delete: list[tuple[Obj, str]] = field(default_factory=list)  # (pod, why)
    status: dict[str, Any] = field(default_factory=dict)
    recheck_after: float | None = None  # a pod becomes available then (minReadySeconds)


def plan(ds: Obj, nodes: list[Obj], pods: list[Obj], now: float) -> Plan:
    """Pure: the creates, deletes and status for `ds` given every node and its (claimed) pods.

    `pods` are the pods the DaemonSet owns, finished ones included (a Failed pod is replaced)."""
    spec = ds.get("spec") or {}
    meta = ds.get("metadata") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    hash_ = revision_hash(ds)
    generation = str(meta.get("generation") or 1)
    out = Plan()
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        by_node.setdefault(pod_node(pod), []).append(pod)
    node_names = {str((n.get("metadata") or {}).get("name") or "") for n in nodes}
    for name, on_node in sorted(by_node.items()):
        if name not in node_names:
            for pod in on_node:
                out.delete.append((pod, f"its node {name or '(none)'} does not exist"))
    desired = current = misscheduled = ready = updated = available = 0
    should: dict[str, list[Obj]] = {}  # nodes that should run a pod -> their live pods, oldest first
    kept: dict[str, list[Obj]] = {}  # nodes that keep a pod they would not get now (NoSchedule taint)
    gone = {id(p) for p, _ in out.delete}
    for node in sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name") or "")):
        name = str((node.get("metadata") or {}).get("name") or "")
        run, cont = node_should_run(ds, node)
        live = sorted((p for p in by_node.get(name, []) if id(p) not in gone), key=_created)
        # a daemon pod that ended (Failed, or Succeeded although it should run for ever) is replaced
        failed = [p for p in live if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded")]
        for pod in failed:
            out.delete.append((pod, f"it {'failed' if pod['status']['phase'] == 'Failed' else 'exited'} (it is replaced)"))
        live = [p for p in live if is_active(p)]
        if not run:
            if live:
                misscheduled += 1
                if cont:
                    kept[name] = live  # a NoSchedule taint came after the pod: it stays
                else:
                    out.delete.extend((pod, "its node should not run it") for pod in live)
            continue
        desired += 1
        if not live:
            if not failed:
                out.create.append(name)
            continue
        should[name] = live
        current += 1
        ready += any(is_ready(p) for p in live)
        updated += any(_is_updated(p, hash_, generation) for p in live)
        available += any(is_available(p, min_ready, now) for p in live)
        waits = [w for p in live if (w := seconds_until_available(p, min_ready, now)) is not None]
        if waits:
            soonest = min(waits)
            out.recheck_after = soonest if out.recheck_after is None else min(out.recheck_after, soonest)
    for live in kept.values():  # never updated there (no new pod may start), only deduplicated
        out.delete.extend((pod, "another daemon pod runs on its node") for pod in live[1:])
    _update_and_dedupe(spec, should, out, hash_, generation, desired, min_ready, now)
    out.status = {
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": int(meta.get("generation") or 1),
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": max(0, desired - available),
    }
    if (ds.get("status") or {}).get("collisionCount"):
        out.status["collisionCount"] = ds["status"]["collisionCount"]
    for key in _OMITTED_WHEN_ZERO:  # as upstream's JSON (`omitempty`); the other four are required
        if not out.status.get(key):
            out.status.pop(key, None)
    return out


def _update_and_dedupe(
    spec: dict[str, Any],
    should: dict[str, list[Obj]],
    out: Plan,
    hash_: str,
    generation: str,
    desired: int,
    min_ready: int,
    now: float,
) -> None:
    """Duplicates on a node (the oldest stays) and, for RollingUpdate, the replacement of old pods."""
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    params = strategy.get("rollingUpdate") or {}
    max_surge = resolve_int_or_percent(params.get("maxSurge", 0), desired, True) if rolling else 0
    max_unavailable = resolve_int_or_percent(params.get("maxUnavailable", 1), desired, True) if rolling else 0
    if rolling and max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1  # as upstream: a budget of zero would never finish
    old_nodes: list[str] = []
    unavailable = sum(1 for live in should.values() if not any(is_available(p, min_ready, now) for p in live))
    unavailable += sum(1 for _ in out.create)
    surging = 0
    for name, live in should.items():
        new = [p for p in live if _is_updated(p, hash_, generation)]
        old = [p for p in live if not _is_updated(p, hash_, generation)]
        if not rolling or not old:
            for pod in live[1:]:  # upstream keeps the oldest daemon pod on a node
                out.delete.append((pod, "another daemon pod runs on its node"))
            continue
        for pod in new[1:]:
            out.delete.append((pod, "another daemon pod runs on its node"))
        if new:
            surging += 1
            if is_available(new[0], min_ready, now):
                for pod in old:
                    out.delete.append((pod, "its replacement is available (rolling update)"))
            continue
        if not any(is_available(p, min_ready, now) for p in old):
            # replacing an unavailable old pod costs no availability: with surge its replacement
            # starts beside it at once, without surge it goes at once
            if max_surge > 0:
                out.create.append(name)
            else:
                for pod in old:
                    out.delete.append((pod, "it is out of date and unavailable (rolling update)"))
            continue
        for pod in old[1:]:
            out.delete.append((pod, "another daemon pod runs on its node"))
        old_nodes.append(name)
    for name in old_nodes:
        if max_surge > 0:
            if surging < max_surge:
                surging += 1
                out.create.append(name)
        elif unavailable < max_unavailable:
            unavailable += 1
            out.delete.append((should[name][0], "it is out of date (rolling update)"))


# --- the controller -------------------------------------------------------------------------------


class DaemonSetController(PodOwnerController):
    """Keeps one pod of every DaemonSet on each node that should run it (see module doc)."""

    name = "daemonset"
    kind = "DaemonSet"

    def __init__(self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.expectations = Expectations(clock)
        self.daemonsets: Informer = factory.informer("DaemonSet")
        self.owners = self.daemonsets
        self.pods: Informer = factory.informer("Pod")
        self.nodes: Informer = factory.informer("Node")
        self.revisions: Informer = factory.informer("ControllerRevision")
        self.daemonsets.add_handler(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self._owner_deleted,
        )
        self.pods.add_handler(
            on_add=self._pod_added,
            on_update=lambda old, new: self._pod_changed(new),
            on_delete=self._pod_deleted,
        )
        self.nodes.add_handler(
            on_add=lambda node: self._enqueue_all(),
            on_update=self._node_updated,
            on_delete=lambda node: self._enqueue_all(),
        )

    # -- handlers: bookkeeping and enqueueing only (pod adds and deletes: PodOwnerController) -----

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.queue.add(key)
        elif controller_of(pod) is None:
            self._enqueue_matching(pod)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def relevant(node: Obj) -> Any:
            return ((node.get("metadata") or {}).get("labels"), (node.get("spec") or {}).get("taints"))

        if relevant(old) != relevant(new):
            self._enqueue_all()

    def _enqueue_all(self) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    # -- reconcile -------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        ns, _name = split_key(key)
        claim = claim_pods(ds, self.pods.by_index("namespace", ns or "default"))
        release_claimed(self.api, claim, owner_ref(ds))
        owned = claim.owned + adopt_claimed(self.api, claim, owner_ref(ds))[0]
        deleting = bool((ds.get("metadata") or {}).get("deletionTimestamp"))
        if not deleting:
            self._sync_history(ds, owned)
        now = self.clock.now()
        todo = plan(ds, self.nodes.list(), owned, now)
        if todo.recheck_after is not None:
            self.queue.add_after(key, todo.recheck_after + 0.001)
        if not deleting and self.expectations.satisfied(key):
            self._act(key, ds, todo)
        self._sync_status(ds, todo.status)

    def _act(self, key: str, ds: Obj, todo: Plan) -> None:
        victims = {str(p["metadata"].get("uid", "")): (p, why) for p, why in todo.delete}
        self.expectations.expect(key, adds=len(todo.create), deletes=list(victims))
        hash_ = revision_hash(ds)
        error: NbkubeError | None = None
        for i, node in enumerate(todo.create):
            try:
                pod = self.api.create(daemon_pod(ds, node, hash_))
            except NbkubeError as exc:
                for _ in todo.create[i:]:
                    self.expectations.created(key)
                self._event(ds, "FailedCreate", f"Error creating: {exc}", warning=True)
                error = exc
                break
            self._event(ds, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        for uid, (pod, why) in victims.items():
            name = pod["metadata"]["name"]
            try:
                delete_pod(self.api, pod)
            except NotFound:
                self.expectations.deleted(key, uid)
                continue
            except NbkubeError as exc:
                self.expectations.deleted(key, uid)
                error = error or exc
                continue
            reason = "FailedDaemonPod" if why.startswith("it failed") else "SuccessfulDelete"
            self._event(ds, reason, f"Deleted pod: {name} ({why})", warning=reason == "FailedDaemonPod")
        if error is not None:
            raise error

    def _sync_history(self, ds: Obj, pods: list[Obj]) -> None:
        """The current template's ControllerRevision exists with the highest revision number; old
        ones beyond revisionHistoryLimit that no live pod runs are deleted (see module doc)."""
        meta = ds.get("metadata") or {}
        hash_ = revision_hash(ds)
        template = (ds.get("spec") or {}).get("template") or {}
        data = restore_patch(template)
        mine = owned_revisions(self.revisions, ds)
        top = max((int(r.get("revision") or 0) for r in mine), default=0)
        current = next((r for r in mine if r.get("data") == data), None)
        if current is None:
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels[REVISION_HASH_LABEL] = hash_
            revision = revision_object(ds, f"{meta.get('name')}-{hash_}", labels, template, top + 1)
            if meta.get("annotations"):
                revision["metadata"]["annotations"] = dict(meta["annotations"])
            try:
                current = self.api.create(revision)
            except AlreadyExists:
                return  # made by an earlier pass the cache has not shown yet: next pass
        elif int(current.get("revision") or 0) < top:
            renumbered = copy.deepcopy(current)
            renumbered["revision"] = top + 1  # rolled back to it: it is the newest again
            try:
                current = self.api.update(renumbered)
            except (Conflict, NotFound):
                self.queue.add_rate_limited(key_of(ds))
                return
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit", 10)
        limit = limit if isinstance(limit, int) and limit >= 0 else 10
        running = {((p.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL) for p in pods}
        current_name = (current.get("metadata") or {}).get("name")
        old = [
            r
            for r in mine
            if r["metadata"]["name"] != current_name
            and ((r.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL) not in running
        ]
        prune_revisions(self.api, old, limit)

    def _event(self, ds: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        event(self, ds, reason, message, COMPONENT, warning=warning)

    def _sync_status(self, ds: Obj, status: dict[str, Any]) -> None:
        merged = {k: v for k, v in (ds.get("status") or {}).items() if k not in _OMITTED_WHEN_ZERO}
        merged.update(status)
        write_status(self, key_of(ds), ds, merged)
