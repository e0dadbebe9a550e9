"""The Deployment controller: declarative rollouts over ReplicaSets, as Kubernetes does them.

A Deployment owns one ReplicaSet per pod template it has run, named `<deployment>-<hash>` where the
hash is of the pod template and is also a `pod-template-hash` label on the ReplicaSet's selector,
template and so on its pods (so ReplicaSets of one Deployment never fight over pods). Reconcile
moves replicas from the old ReplicaSets to the new one under the strategy:

- RollingUpdate: the new ReplicaSet grows while the pod total stays <= desired + maxSurge, old ones
  shrink while available pods stay >= desired - maxUnavailable (percentages: surge rounds up,
  unavailable rounds down; both 0 means unavailable 1, as upstream);
- Recreate: old ReplicaSets go to 0, and only when none of their pods is left does the new one grow.

It also keeps revision numbers (`deployment.kubernetes.io/revision`), prunes history beyond
`revisionHistoryLimit`, stops at `spec.paused`, writes status with the Available and Progressing
conditions, and records a `ScalingReplicaSet` Event at every step (the rollout tests read them).

Counting is done from the pod cache rather than from ReplicaSet status, conservatively: a
ReplicaSet counts as `max(spec.replicas, live pods)` towards the surge limit (pods a scale-down has
not yet removed still exist) and as `min(spec.replicas, available pods)` towards availability (pods
a scale-down will remove may be the available ones). So the bounds hold for the pods actually
observed, not only for the numbers written.

The CLI's `rollout undo|history|status|pause|resume` use the helpers at the bottom.
The control-plane manager starts `DeploymentController`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbkube.api.defaults import default_pod_spec
from nbkube.api.intstr import resolve_int_or_percent
from nbkube.api.meta import Obj, controller_of, key_of
from nbkube.api.selectors import selector_from_label_selector
from nbkube.api.wirenorm import from_wire
from nbkube.client.controller import Controller, only_status_changed
from nbkube.client.events import record_event
from nbkube.clock import REAL_CLOCK, Clock, rfc3339, timestamp_or_none
from nbkube.controlplane.controllers.podcounts import pod_counts
from nbkube.controlplane.controllers.replication import (
    STATUS_FLOOR,
    claim_pods,
    is_active,
    is_available,
    is_ready,
    owner_ref,
    seconds_until_available,
)
from nbkube.errors import AlreadyExists, BadRequest, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "DeploymentController",
    "REVISION",
    "HASH_LABEL",
    "template_hash",
    "resolve_fenceposts",
    "RSView",
    "plan_new_scale",
    "plan_old_scale_down",
    "rollback",
    "rollout_history",
    "rollout_status",
    "set_paused",
]

REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"
COMPONENT = "deployment-controller"

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # no vowels: a hash never spells a word


# --- pure helpers ---------------------------------------------------------------------------------


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A short stable hash of a pod template (10 characters, DNS-label safe); equal for templates
    that `same_template` finds equal."""
    text = json.dumps(canonical_template(template), sort_keys=True, separators=(",", ":"))
    if collision_count:
        text += f"#{collision_count}"
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        n, r = divmod(n, len(_HASH_ALPHABET))
        out.append(_HASH_ALPHABET[r])
    return "".join(out)


def strip_hash(template: Obj) -> Obj:
    """The template without the pod-template-hash label (what a Deployment's template looks like)."""
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict) and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return t


def canonical_template(template: Obj) -> Obj:
    """The template as the registry would store it today: no hash label, nulls dropped (a template
    copied from `kubectl get` carries `creationTimestamp: null`), pod spec defaults filled in (a
    ReplicaSet stored before a default was added lacks it). Compared instead of the raw templates,
    so `rollout undo` finds the old revision's ReplicaSet again instead of making a new one."""
    t = from_wire(strip_hash(template))
    spec = t.get("spec")
    if isinstance(spec, dict):
        default_pod_spec(spec)
    return t


def same_template(a: Obj, b: Obj) -> bool:
    return canonical_template(a) == canonical_template(b)


def revision_of(obj: Obj) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def resolve_fenceposts(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts for a RollingUpdate deployment."""
    spec = deploy.get("spec") or {}
    desired = int(spec.get("replicas", 1) or 0)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = resolve_int_or_percent(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # otherwise no rollout could ever make progress
    return surge, unavailable


@dataclass
class RSView:
    """What the rollout arithmetic needs to know about one ReplicaSet."""

    name: str
    replicas: int  # spec.replicas
    pods: int = 0  # live (active) pods it owns
    available: int = 0  # of those, available
    ready: int = 0
    revision: int = 0
    obj: Obj = field(default_factory=dict)

    @property
    def counted_total(self) -> int:
        return max(self.replicas, self.pods)

    @property
    def counted_available(self) -> int:
        return min(self.replicas, self.available)


def plan_new_scale(desired: int, max_surge: int, new: RSView, olds: list[RSView]) -> int:
    """The replicas the new ReplicaSet should have now (rolling update)."""
    if new.replicas >= desired:
        return desired
    all_total = new.counted_total + sum(o.counted_total for o in olds)
    room = desired + max_surge - all_total
    if room <= 0:
        return new.replicas
    return new.replicas + min(room, desired - new.replicas)


def plan_old_scale_down(
    desired: int, max_unavailable: int, new: RSView, olds: list[RSView]
) -> dict[str, int]:
    """New replica counts for old ReplicaSets (oldest first), never below desired - maxUnavailable
    available pods. Unhealthy old pods go first: removing them costs no availability."""
    if sum(o.replicas for o in olds) == 0:
        return {}
    min_available = desired - max_unavailable
    all_total = new.replicas + sum(o.replicas for o in olds)
    new_unavailable = new.replicas - new.counted_available
    max_scaled_down = all_total - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    target = {o.name: o.replicas for o in olds}
    ordered = sorted(olds, key=lambda o: (o.revision, o.name))
    cleaned = 0
    for o in ordered:
        if cleaned >= max_scaled_down:
            break
        unhealthy = target[o.name] - o.counted_available
        if target[o.name] == 0 or unhealthy <= 0:
            continue
        n = min(max_scaled_down - cleaned, unhealthy)
        target[o.name] -= n
        cleaned += n
    total_available = new.counted_available + sum(min(target[o.name], o.available) for o in olds)
    scale_down = total_available - min_available
    done = 0
    for o in ordered:
        if done >= scale_down:
            break
        if target[o.name] == 0:
            continue
        n = min(target[o.name], scale_down - done)
        target[o.name] -= n
        done += n
    return {name: n for name, n in target.items() if n != next(o.replicas for o in olds if o.name == name)}


def set_condition(status: dict[str, Any], cond: dict[str, Any]) -> None:
    """Put `cond` in status.conditions; its lastTransitionTime moves only when status flips."""
    conds = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == cond["type"]), None)
    if old is not None and old.get("status") == cond.get("status"):
        cond["lastTransitionTime"] = old.get("lastTransitionTime", cond.get("lastTransitionTime"))
    conds.append(cond)
    conds.sort(key=lambda c: c.get("type", ""))
    status["conditions"] = conds


def get_condition(obj: Obj, ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return dict(c)
    return None


# --- the controller -------------------------------------------------------------------------------


class DeploymentController(Controller):
    name = "deployment"
    coalesce_floor = STATUS_FLOOR  # its status follows pod counts: a few writes a second at most

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.deployments: Informer = factory.informer("Deployment")
        self.replicasets: Informer = factory.informer("ReplicaSet")
        self.pods: Informer = factory.informer("Pod")
        self.counts = pod_counts(self.pods)
        self.deployments.add_handler(
            on_add=self.enqueue, on_update=self.enqueue_update, on_delete=self.enqueue
        )
        self.replicasets.add_handler(
            on_add=self._rs_changed,
            on_update=self._rs_updated,
            on_delete=self._rs_changed,
        )
        # pods only move the counts our status and rollout steps read: every pod event is coalesced
        self.pods.add_handler(
            on_add=lambda pod: self._pod_changed(pod, coalesce=True),
            on_update=lambda old, new: self._pod_changed(new, coalesce=True),
            on_delete=lambda pod: self._pod_changed(pod, coalesce=True),
        )

    # -- handlers ------------------------------------------------------------------------------------

    def _rs_changed(self, rs: Obj, *, coalesce: bool = False) -> None:
        ns = (rs.get("metadata") or {}).get("namespace") or "default"
        ref = controller_of(rs)
        if ref is not None:
            if ref.get("kind") == "Deployment":
                key = f"{ns}/{ref.get('name')}"
                if coalesce:
                    self.enqueue_coalesced(key)
                else:
                    self.queue.add(key)
            return
        labels = (rs.get("metadata") or {}).get("labels") or {}
        for d in self.deployments.by_index("namespace", ns):
            try:
                if selector_from_label_selector((d.get("spec") or {}).get("selector")).matches(labels):
                    self.enqueue(d)
            except NbkubeError:
                continue

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if only_status_changed(old, new):
            self._rs_changed(new, coalesce=True)  # its counts moved: our status follows, coalesced
            return
        self._rs_changed(old)
        self._rs_changed(new)

    def _pod_changed(self, pod: Obj, *, coalesce: bool = False) -> None:
        """A pod of one of our ReplicaSets changed: its counts feed our status and rollout."""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        ns = (pod.get("metadata") or {}).get("namespace") or "default"
        rs = self.replicasets.get(f"{ns}/{ref.get('name')}")
        if rs is not None:
            self._rs_changed(rs, coalesce=coalesce)

    # -- reconcile -----------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        try:
            self._reconcile(key)
        except Conflict as e:
            # a stale cache read: expected now and then, retried once the informer catches up
            self.log.debug("%s: %s", key, e)
            self.queue.add_rate_limited(key)

    def _reconcile(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return  # its ReplicaSets are the garbage collector's
        d = copy.deepcopy(cached)
        ns = d["metadata"].get("namespace") or "default"
        rss = self._claim_replicasets(d, ns)
        views = [self._view(d, rs) for rs in rss]
        new = self._find_new(d, views)
        olds = [v for v in views if v is not new]
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1) or 0)
        progressed = False
        if spec.get("paused"):
            # no rollout while paused; plain scaling of a settled deployment still works
            if new is not None and not any(o.replicas for o in olds) and new.replicas != desired:
                self._scale(d, new, desired)
                progressed = True
        elif (spec.get("strategy") or {}).get("type") == "Recreate":
            new, progressed = self._recreate(d, new, olds, desired)
        else:
            new, progressed = self._rolling(d, new, olds, desired)
        if new is not None:
            self._sync_revision(d, new, olds)
        self._cleanup(d, [o for o in olds if new is None or o.name != new.name])
        self._sync_status(d, new, olds, desired, progressed)

    def _claim_replicasets(self, d: Obj, ns: str) -> list[Obj]:
        candidates = self.replicasets.by_index("namespace", ns)
        claim = claim_pods(d, candidates, selector_from_label_selector(d["spec"].get("selector")))
        owned = list(claim.owned)
        uid = d["metadata"].get("uid")
        if claim.adopt:
            # live re-check, as the ReplicaSet controller does: never adopt for a deleting owner
            try:
                fresh = self.api.get("Deployment", d["metadata"]["name"], ns)
            except NotFound:
                fresh = {}
            fmeta = fresh.get("metadata") or {}
            if fmeta.get("uid") != uid or fmeta.get("deletionTimestamp"):
                claim.adopt = []
        for rs in claim.release + claim.adopt:
            new = copy.deepcopy(rs)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if rs in claim.adopt:
                refs.append(owner_ref(d))
            new["metadata"]["ownerReferences"] = refs
            if not refs:
                new["metadata"].pop("ownerReferences")
            try:
                written = self.api.update(new)
            except (Conflict, NotFound):
                self.queue.add_rate_limited(key_of(d))
                continue
            if rs in claim.adopt:
                owned.append(written)
        return owned

    def _view(self, d: Obj, rs: Obj) -> RSView:
        uid = rs["metadata"].get("uid")
        min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.clock.now()
        ns = rs["metadata"].get("namespace") or "default"
        if min_ready <= 0:
            # the common case, from the counts kept current by pod events (podcounts.py)
            tally = self.counts.tally(ns, str(uid or ""))
            return RSView(
                name=rs["metadata"]["name"],
                replicas=int((rs.get("spec") or {}).get("replicas", 1) or 0),
                pods=tally.active,
                available=tally.ready,
                ready=tally.ready,
                revision=revision_of(rs),
                obj=rs,
            )
        pods = [
            p
            for p in self.pods.by_index("controller", str(uid or ""))
            if ((p.get("metadata") or {}).get("namespace") or "default") == ns and is_active(p)
        ]
        ready = [p for p in pods if is_ready(p)]
        return RSView(
            name=rs["metadata"]["name"],
            replicas=int((rs.get("spec") or {}).get("replicas", 1) or 0),
            pods=len(pods),
            available=len(ready)
            if min_ready <= 0
            else sum(1 for p in ready if is_available(p, min_ready, now)),
            ready=len(ready),
            revision=revision_of(rs),
            obj=rs,
        )

    def _pods_of(self, views: list[RSView]) -> list[Obj]:
        return [
            p
            for v in views
            for p in self.pods.by_index("controller", str(v.obj["metadata"].get("uid") or ""))
            if ((p.get("metadata") or {}).get("namespace") or "default")
            == (v.obj["metadata"].get("namespace") or "default")
            and is_active(p)
        ]

    @staticmethod
    def _find_new(d: Obj, views: list[RSView]) -> RSView | None:
        template = (d.get("spec") or {}).get("template") or {}
        want = canonical_template(template)
        matching = [
            v for v in views if canonical_template((v.obj.get("spec") or {}).get("template") or {}) == want
        ]
        if not matching:
            return None
        # several identical templates can only come from a hash collision; take the oldest
        return min(matching, key=lambda v: (v.obj["metadata"].get("creationTimestamp", ""), v.name))

    def _create_new(self, d: Obj, olds: list[RSView], replicas: int) -> RSView:
        spec = d["spec"]
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        h = template_hash(spec["template"], collisions)
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        revision = max([o.revision for o in olds] + [0]) + 1
        surge, _ = resolve_fenceposts(d)
        annotations = {
            REVISION: str(revision),
            DESIRED: str(int(spec.get("replicas", 1) or 0)),
            MAX_REPLICAS: str(int(spec.get("replicas", 1) or 0) + surge),
        }
        cause = ((d["metadata"].get("annotations")) or {}).get(CHANGE_CAUSE)
        if cause:
            annotations[CHANGE_CAUSE] = cause
        name = f"{d['metadata']['name']}-{h}"
        namespace = str(d["metadata"].get("namespace") or "default")
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.api.create(rs)
        except AlreadyExists:
            existing = self.api.get("ReplicaSet", name, namespace)
            ref = controller_of(existing)
            if same_template(existing["spec"]["template"], spec["template"]) and (
                ref is None or ref.get("uid") == d["metadata"].get("uid")
            ):
                raise Conflict(f'replicasets "{name}" exists already: adopting it on the next pass') from None
            # a different template under our hash: count the collision so the next hash differs
            status = dict(d.get("status") or {})
            status["collisionCount"] = collisions + 1
            self.api.update_status({**d, "status": status})
            raise Conflict(f'hash collision on replicasets "{name}": retrying') from None
        if replicas:
            self._event(d, f"Scaled up replica set {name} to {replicas}")
        return RSView(name=name, replicas=replicas, revision=revision, obj=created)

    def _scale(self, d: Obj, rs: RSView, replicas: int) -> None:
        if rs.replicas == replicas:
            return
        new = copy.deepcopy(rs.obj)
        new["spec"]["replicas"] = replicas
        surge, _ = resolve_fenceposts(d)
        desired = int(d["spec"].get("replicas", 1) or 0)
        ann = new["metadata"].setdefault("annotations", {})
        ann[DESIRED] = str(desired)
        ann[MAX_REPLICAS] = str(desired + surge)
        rs.obj = self.api.update(new)
        direction = "up" if replicas > rs.replicas else "down"
        self._event(d, f"Scaled {direction} replica set {rs.name} to {replicas} from {rs.replicas}")
        rs.replicas = replicas

    def _event(self, d: Obj, message: str) -> None:
        record_event(self.api, d, "ScalingReplicaSet", message, component=COMPONENT, clock=self.clock)

    def _rolling(self, d: Obj, new: RSView | None, olds: list[RSView], desired: int) -> tuple[RSView, bool]:
        surge, unavailable = resolve_fenceposts(d)
        if new is None:
            probe = RSView(name="", replicas=0)
            target = plan_new_scale(desired, surge, probe, olds) if olds else desired
            return self._create_new(d, olds, target), True
        target = plan_new_scale(desired, surge, new, olds)
        if target != new.replicas:
            self._scale(d, new, target)
            return new, True
        changes = plan_old_scale_down(desired, unavailable, new, olds)
        for o in olds:
            if o.name in changes:
                self._scale(d, o, changes[o.name])
        return new, bool(changes)

    def _recreate(
        self, d: Obj, new: RSView | None, olds: list[RSView], desired: int
    ) -> tuple[RSView | None, bool]:
        scaled = False
        for o in olds:
            if o.replicas > 0:
                self._scale(d, o, 0)
                scaled = True
        if scaled or any(o.pods > 0 for o in olds):
            return new, scaled  # wait until every old pod is gone
        if new is None:
            return self._create_new(d, olds, desired), True
        if new.replicas != desired:
            self._scale(d, new, desired)
            return new, True
        return new, False

    def _sync_revision(self, d: Obj, new: RSView, olds: list[RSView]) -> None:
        """The new ReplicaSet carries the highest revision (after an undo, the old template's RS
        becomes the newest revision again); the Deployment shows it too."""
        top = max([o.revision for o in olds] + [0])
        if new.revision <= top:
            rs = copy.deepcopy(new.obj)
            rs["metadata"].setdefault("annotations", {})[REVISION] = str(top + 1)
            cause = ((d["metadata"].get("annotations")) or {}).get(CHANGE_CAUSE)
            if cause:
                rs["metadata"]["annotations"][CHANGE_CAUSE] = cause
            new.obj = self.api.update(rs)
            new.revision = top + 1
        if revision_of(d) != new.revision:
            d2 = copy.deepcopy(d)
            d2["metadata"].setdefault("annotations", {})[REVISION] = str(new.revision)
            try:
                written = self.api.update(d2)
            except Conflict:
                self.queue.add_rate_limited(key_of(d))
                return
            d["metadata"] = written["metadata"]

    def _cleanup(self, d: Obj, olds: list[RSView]) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        dead = sorted(
            (o for o in olds if o.replicas == 0 and o.pods == 0), key=lambda o: (o.revision, o.name)
        )
        for o in dead[: max(0, len(dead) - limit)]:
            try:
                self.api.delete("ReplicaSet", o.name, o.obj["metadata"].get("namespace", ""))
            except (NotFound, Conflict):
                continue

    def _sync_status(
        self, d: Obj, new: RSView | None, olds: list[RSView], desired: int, progressed: bool
    ) -> None:
        now = self.clock.now()
        ts = rfc3339(now)
        views = ([new] if new is not None else []) + olds
        spec = d.get("spec") or {}
        _surge, unavailable = resolve_fenceposts(d)
        old_status = d.get("status") or {}
        status: dict[str, Any] = {
            k: v for k, v in old_status.items() if k in ("conditions", "collisionCount")
        }
        status["observedGeneration"] = int(d["metadata"].get("generation") or 1)
        status["replicas"] = sum(v.pods for v in views)
        status["updatedReplicas"] = new.pods if new is not None else 0
        status["readyReplicas"] = sum(v.ready for v in views)
        status["availableReplicas"] = sum(v.available for v in views)
        status["unavailableReplicas"] = max(0, desired - status["availableReplicas"])
        available_ok = status["availableReplicas"] >= desired - unavailable
        set_condition(
            status,
            {
                "type": "Available",
                "status": "True" if available_ok else "False",
                "reason": "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": ts,
                "lastTransitionTime": ts,
            },
        )
        old_avail = get_condition(d, "Available")
        if old_avail is not None and old_avail.get("status") == ("True" if available_ok else "False"):
            # nothing changed: keep the old times so an idle deployment does not write status
            for c in status["conditions"]:
                if c["type"] == "Available":
                    c["lastUpdateTime"] = old_avail.get("lastUpdateTime", ts)
        rs_name = new.name if new is not None else ""
        complete = (
            new is not None
            and status["updatedReplicas"] == desired
            and status["replicas"] == desired
            and status["availableReplicas"] >= desired
            and not any(o.pods or o.replicas for o in olds)
        )
        prev = get_condition(d, "Progressing")
        numbers_moved = any(
            status.get(k) != old_status.get(k)
            for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        )
        deadline = int(spec.get("progressDeadlineSeconds", 600))
        cond: dict[str, Any] | None
        if spec.get("paused"):
            cond = {"status": "Unknown", "reason": "DeploymentPaused", "message": "Deployment is paused"}
        elif complete:
            cond = {
                "status": "True",
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
            }
        elif (
            progressed
            or numbers_moved
            or prev is None
            or prev.get("reason") in ("DeploymentPaused", "NewReplicaSetAvailable")
        ):
            cond = {
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{rs_name}" is progressing.',
            }
        elif prev.get("status") == "True" and now - _ts(prev.get("lastUpdateTime")) > deadline:
            cond = {
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{rs_name}" has timed out progressing.',
            }
        else:
            cond = None  # keep what is there
        if cond is not None:
            same = prev is not None and all(prev.get(k) == cond[k] for k in ("status", "reason", "message"))
            keep_time = same and cond["reason"] != "ReplicaSetUpdated"
            cond = {
                "type": "Progressing",
                **cond,
                "lastUpdateTime": prev.get("lastUpdateTime", ts) if keep_time and prev else ts,
                "lastTransitionTime": ts,
            }
            set_condition(status, cond)
        if not complete and not spec.get("paused"):
            cur = get_condition({"status": status}, "Progressing") or {}
            if cur.get("reason") == "ReplicaSetUpdated":
                left = _ts(cur.get("lastUpdateTime")) + deadline - now
                self.queue.add_after(key_of(d), max(0.001, left + 0.001))
        min_ready = int(spec.get("minReadySeconds") or 0)
        # only minReadySeconds makes a pod turn available without an event of its own
        pods = self._pods_of(views) if min_ready > 0 else []
        waits = [w for p in pods if (w := seconds_until_available(p, min_ready, now)) is not None]
        if waits:
            self.queue.add_after(key_of(d), min(waits) + 0.001)
        if status == old_status:
            return
        try:
            self.api.update_status({**d, "status": status})
        except NotFound:
            return
        except Conflict:
            self.queue.add_rate_limited(key_of(d))


def _ts(text: Any) -> float:
    return timestamp_or_none(text) or 0.0


# --- rollout helpers (the CLI's `rollout` verbs) ------------------------------------------------


def _owned_replicasets(api: Registry, d: Obj) -> list[Obj]:
    items, _ = api.list("ReplicaSet", d["metadata"].get("namespace") or "default")
    uid = d["metadata"].get("uid")
    return [rs for rs in items if (controller_of(rs) or {}).get("uid") == uid]


def rollout_history(api: Registry, name: str, namespace: str = "default") -> list[tuple[int, str, str]]:
    """(revision, ReplicaSet name, change-cause) for every kept revision, oldest first."""
    d = api.get("Deployment", name, namespace)
    out = [
        (
            revision_of(rs),
            rs["metadata"]["name"],
            ((rs["metadata"].get("annotations")) or {}).get(CHANGE_CAUSE, ""),
        )
        for rs in _owned_replicasets(api, d)
    ]
    return sorted(out)


def rollback(api: Registry, name: str, namespace: str = "default", to_revision: int = 0) -> tuple[Obj, int]:
    """`rollout undo`: copy a revision's pod template back into the Deployment (the previous
    revision by default). Returns the updated Deployment and the revision rolled back to."""
    d = api.get("Deployment", name, namespace)
    rss = _owned_replicasets(api, d)
    by_rev = {revision_of(rs): rs for rs in rss}
    if not by_rev:
        raise NotFound(f'no rollout history found for deployment "{name}"')
    if to_revision:
        if to_revision not in by_rev:
            raise NotFound(
                f'unable to find specified revision {to_revision} in history of deployment "{name}"'
            )
        target_rev = to_revision
    else:
        current = revision_of(d) or max(by_rev)
        earlier = [r for r in by_rev if r < current]
        if not earlier:
            raise BadRequest(f'no previous revision to roll back to for deployment "{name}"')
        target_rev = max(earlier)
    template = strip_hash(by_rev[target_rev]["spec"]["template"])
    if same_template(template, d["spec"].get("template") or {}):
        return d, target_rev  # as kubectl: "skipped rollback (current template already matches)"
    d["spec"]["template"] = template
    cause = ((by_rev[target_rev]["metadata"].get("annotations")) or {}).get(CHANGE_CAUSE)
    ann = d["metadata"].setdefault("annotations", {})
    if cause:
        ann[CHANGE_CAUSE] = cause
    else:
        ann.pop(CHANGE_CAUSE, None)
    return api.update(d), target_rev


def set_paused(api: Registry, name: str, namespace: str, paused: bool) -> Obj:
    """`rollout pause` / `rollout resume`."""
    d = api.get("Deployment", name, namespace)
    if bool((d.get("spec") or {}).get("paused")) == paused:
        state = "paused" if paused else "not paused"
        raise BadRequest(f'deployment "{name}" is already {state}')
    return api.patch("Deployment", name, namespace, {"spec": {"paused": paused}})


def rollout_status(d: Obj) -> tuple[bool, str]:
    """(done, message) as `kubectl rollout status` words it. Raises BadRequest when the rollout
    exceeded its progress deadline."""
    name = d["metadata"]["name"]
    spec, status = d.get("spec") or {}, d.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(d["metadata"].get("generation") or 1):
        return False, "Waiting for deployment spec update to be observed..."
    cond = get_condition(d, "Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        raise BadRequest(f'deployment "{name}" exceeded its progress deadline')
    desired = int(spec.get("replicas", 1) or 0)
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < desired:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {desired} new replicas have been updated...'
        )
    if replicas > updated:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old replicas are pending termination...'
        )
    if available < updated:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are available...'
        )
    return True, f'deployment "{name}" successfully rolled out'
