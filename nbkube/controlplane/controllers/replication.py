"""The ReplicationController and ReplicaSet controllers: keep exactly N pods per controller.

Both kinds share one reconcile loop (they differ only in how the selector is written: a label map
for an RC, a `{matchLabels, matchExpressions}` object for a ReplicaSet). The control-plane manager
starts a `ReplicationManager` and a `ReplicaSetController`; the Deployment controller drives
ReplicaSets only through their `spec.replicas`, and reuses the pod helpers defined here.

What reconcile does, as upstream's ReplicaSet controller:
- claim pods: adopt matching orphans (CAS write of an ownerReference), release owned pods whose
  labels no longer match (remove the reference);
- create pods from the template or delete surplus ones (least valuable first), guarded by
  *expectations* so that a second reconcile that runs before the informer has seen this one's
  creates/deletes does not act again;
- write status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
  observedGeneration) only when it changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbkube.api.fieldcheck import INT32_MAX
from nbkube.api.meta import Obj, controller_of, json_clone, key_of, split_key
from nbkube.api.selectors import Selector, selector_from_label_selector, selector_from_map
from nbkube.client.controller import Controller
from nbkube.client.events import record_event
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339
from nbkube.controlplane.controllers.writes import controller_key, set_controller_ref, write_status
from nbkube.errors import Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "PodOwnerController",
    "ReplicationManager",
    "ReplicaSetController",
    "Expectations",
    "is_active",
    "is_ready",
    "is_available",
    "deletion_order",
    "pods_to_delete",
    "owner_selector",
    "pod_from_template",
    "owner_ref",
    "claim_pods",
    "adopt_claimed",
    "release_claimed",
    "created_at",
    "owners_selecting",
    "candidate_pods",
    "compute_status",
    "desired_replicas",
    "slow_start_batch",
    "slow_start_batches",
]

# More pods than this in one reconcile would hold the worker for long; the rest follow next time.
BURST = 500
# Creates go out in batches of 1, 2, 4, ... (upstream's slow start): a template every create of
# which fails (quota, admission, a full store) costs one failed write, not BURST of them.
SLOW_START_INITIAL_BATCH = 1
# Count-only syncs of one owner that writes its status come at most this often (client/controller.py).
STATUS_FLOOR = 0.2
# Expectations older than this are ignored (a lost watch event must not block a controller forever).
EXPECTATIONS_TIMEOUT = 300.0


# --- pure pod helpers (also used by the deployment controller and the rolling updater) -----------


def is_active(pod: Obj) -> bool:
    """Counts towards replicas: not finished (Succeeded/Failed) and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def _ready_condition(pod: Obj) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def is_ready(pod: Obj) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> float | None:
    """When the pod last became Ready (None if not ready or the time is unknown)."""
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    ts = cond.get("lastTransitionTime")
    if not ts:
        return None
    try:
        return parse_rfc3339(str(ts))
    except ValueError:
        return None


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `minReadySeconds` (just Ready when that is 0)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: float) -> float | None:
    """How long until a ready-but-not-yet-available pod becomes available (None if not pending)."""
    if min_ready_seconds <= 0 or not is_ready(pod):
        return None
    since = ready_since(pod)
    if since is None:
        return None
    left = since + min_ready_seconds - now
    return left if left > 0 else None


def created_at(pod: Obj) -> float:
    """The pod's creationTimestamp in seconds (0.0 when absent or unreadable: oldest first)."""
    ts = (pod.get("metadata") or {}).get("creationTimestamp")
    try:
        return parse_rfc3339(str(ts)) if ts else 0.0
    except ValueError:
        return 0.0


def deletion_order(pod: Obj) -> tuple[int, int, int, float, str]:
    """Sort key: the pods to delete first come first.

    Unscheduled < Pending < not ready < ready (as upstream's ActivePods ordering); among equals the
    newest goes first (a new pod has the least work invested in it)."""
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    return (
        0 if not spec.get("nodeName") else 1,
        {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase, 1),
        1 if is_ready(pod) else 0,
        -created_at(pod),
        str((pod.get("metadata") or {}).get("name", "")),
    )


def pods_to_delete(pods: Iterable[Obj], count: int) -> list[Obj]:
    return sorted(pods, key=deletion_order)[: max(0, count)]


def owner_selector(owner: Obj) -> Selector:
    """The selector of an RC (map) or a ReplicaSet/Deployment (label selector)."""
    sel = (owner.get("spec") or {}).get("selector")
    if owner.get("kind") == "ReplicationController":
        return selector_from_map(sel or {})
    return selector_from_label_selector(sel)


def owner_ref(owner: Obj) -> dict[str, Any]:
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion")
        or ("apps/v1" if owner.get("kind") != "ReplicationController" else "v1"),
        "kind": owner.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(
    owner: Obj,
    template: Obj | None = None,
    *,
    ref: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    name: str | None = None,
    generate_name: str | None = None,
) -> Obj:
    """A new pod for `owner` (RC, ReplicaSet, and the other workload controllers' pods):
    `template` (default: the owner's spec.template) with `labels` added to its labels, in the
    owner's namespace, controlled by it (`ref`: `owner_ref(owner)` by default), named `name`, else
    generated from `generate_name` (default `<owner>-`)."""
    meta = owner.get("metadata") or {}
    if template is None:
        template = (owner.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    naming = {"name": name} if name is not None else {"generateName": generate_name or f"{meta.get('name')}-"}
    pod_meta: dict[str, Any] = {
        **naming,
        "namespace": meta.get("namespace") or "default",
        "labels": {**(tmeta.get("labels") or {}), **(labels or {})},
        "ownerReferences": [ref if ref is not None else owner_ref(owner)],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": json_clone(template.get("spec") or {}),
    }


def is_owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


@dataclass
class Claim:
    """The outcome of matching an owner's selector against candidate dependents."""

    owned: list[Obj] = field(default_factory=list)  # controlled by the owner and matching
    adopt: list[Obj] = field(default_factory=list)  # orphans that match: to adopt
    release: list[Obj] = field(default_factory=list)  # controlled by the owner, no longer matching


def candidate_pods(pods: Informer, owner: Obj, namespace: str) -> list[Obj]:
    """The pods `claim_pods` needs to see for `owner`: those it controls and the orphans of its
    namespace (pods controlled by another owner are never claimed). Read from the informer's
    controller and orphan indexes, so the cost follows the owner's pods, not the namespace's."""
    uid = str((owner.get("metadata") or {}).get("uid") or "")
    owned = [
        p for p in pods.by_index("controller", uid) if (p.get("metadata") or {}).get("namespace") == namespace
    ] if uid else []
    return owned + pods.by_index("orphan", namespace)


def owners_selecting(owners: Informer, pod: Obj) -> list[Obj]:
    """The owners (from their informer) in the pod's namespace whose selector matches its labels:
    those that may adopt it when it is an orphan."""
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    labels = (pod.get("metadata") or {}).get("labels") or {}
    out = []
    for owner in owners.by_index("namespace", ns):
        try:
            if owner_selector(owner).matches(labels):
                out.append(owner)
        except NbkubeError:
            continue
    return out


def claim_pods(owner: Obj, candidates: Iterable[Obj], selector: Selector | None = None) -> Claim:
    """Pure: which candidates the owner keeps, should adopt and should release (as upstream's
    ControllerRefManager). Inactive orphans are not adopted; a controller being deleted adopts none."""
    sel = selector if selector is not None else owner_selector(owner)
    deleting = bool((owner.get("metadata") or {}).get("deletionTimestamp"))
    out = Claim()
    for obj in candidates:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        matches = sel.matches(labels)
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != (owner.get("metadata") or {}).get("uid"):
                continue
            (out.owned if matches else out.release).append(obj)
        elif (
            matches
            and not deleting
            and is_active(obj)
            and not (obj.get("metadata") or {}).get("deletionTimestamp")
        ):
            out.adopt.append(obj)
    return out


def adopt_claimed(api: Registry, claim: Claim, ref: dict[str, Any]) -> tuple[list[Obj], bool]:
    """Adopt the claim's orphans with the controller reference `ref` (one CAS write each):
    the adopted pods as written, and whether every adoption succeeded (a pod that changed
    meanwhile is left for the next pass, which its informer event brings)."""
    adopted = [set_controller_ref(api, pod, ref, adopt=True) for pod in claim.adopt]
    return [p for p in adopted if p is not None], all(p is not None for p in adopted)


def release_claimed(api: Registry, claim: Claim, ref: dict[str, Any]) -> bool:
    """Remove `ref` from the claimed pods that no longer match; whether every write succeeded."""
    # a list, not a generator: every release is written even after one fails
    return all([set_controller_ref(api, pod, ref, adopt=False) is not None for pod in claim.release])


def template_labels(owner: Obj) -> dict[str, str]:
    """The labels of an RC's/ReplicaSet's pod template (what fullyLabeledReplicas counts)."""
    return ((((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}


def status_block(owner: Obj, *, replicas: int, fully_labeled: int, ready: int, available: int) -> dict[str, Any]:
    """The status an RC/ReplicaSet should show for these counts of its (active, owned) pods."""
    status: dict[str, Any] = dict(owner.get("status") or {})
    status["replicas"] = replicas
    status["fullyLabeledReplicas"] = fully_labeled
    status["readyReplicas"] = ready
    status["availableReplicas"] = available
    status["observedGeneration"] = int((owner.get("metadata") or {}).get("generation") or 1)
    return status


def compute_status(owner: Obj, pods: list[Obj], now: float) -> dict[str, Any]:
    """The status block an RC/ReplicaSet should show for its (active, owned) pods."""
    min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
    labels = template_labels(owner)
    return status_block(
        owner,
        replicas=len(pods),
        fully_labeled=sum(
            1
            for p in pods
            if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in labels.items())
        ),
        ready=sum(1 for p in pods if is_ready(p)),
        available=sum(1 for p in pods if is_available(p, min_ready, now)),
    )


def desired_replicas(owner: Obj) -> int | None:
    """spec.replicas (default 1), or None when it is not an int32 count (never true of a validated
    object; the controller then refuses to act rather than create without end)."""
    value = (owner.get("spec") or {}).get("replicas", 1)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT32_MAX:
        return None
    return value


def slow_start_batch(count: int, initial: int, call: Callable[[], object]) -> NbkubeError | None:
    """Make `count` calls in batches of `initial`, then twice as many each time, as upstream's
    slowStartBatch; stop at the first failure and return it (None when every call succeeded).

    Upstream runs a batch's calls in parallel goroutines and stops after the batch; here they run
    one after another, so the first failure stops at once: never more writes than upstream makes.
    """

    def calls(n: int) -> NbkubeError | None:
        for _ in range(n):
            try:
                call()
            except NbkubeError as exc:
                return exc
        return None

    return slow_start_batches(count, initial, calls)


def slow_start_batches(
    count: int, initial: int, batch: Callable[[int], NbkubeError | None]
) -> NbkubeError | None:
    """`slow_start_batch` for a caller that makes a whole batch at once: `batch(n)` makes n and
    returns its first failure (None when all succeeded); stop after a batch that failed, as
    upstream's slowStartBatch does, and return that failure."""
    done, size = 0, max(1, initial)
    while done < count:
        n = min(size, count - done)
        error = batch(n)
        if error is not None:
            return error
        done += n
        size *= 2
    return None


# --- expectations ------------------------------------------------------------------------------


@dataclass
class _Expect:
    adds: int
    deletes: set[str]
    at: float


class Expectations:
    """Creates and deletes a controller has issued but its informer has not yet reported.

    While any are outstanding for a key, reconcile does not create or delete more for it (it would
    count stale pods and overshoot). Entries expire after EXPECTATIONS_TIMEOUT so a lost event only
    delays, never blocks, a controller."""

    def __init__(self, clock: Clock = REAL_CLOCK, timeout: float = EXPECTATIONS_TIMEOUT):
        self.clock = clock
        self.timeout = timeout
        self._lock = threading.Lock()
        self._by_key: dict[str, _Expect] = {}

    def satisfied(self, key: str) -> bool:
        with self._lock:
            e = self._by_key.get(key)
            if e is None:
                return True
            if (e.adds <= 0 and not e.deletes) or self.clock.monotonic() - e.at > self.timeout:
                del self._by_key[key]
                return True
            return False

    def expect(self, key: str, adds: int = 0, deletes: Iterable[str] = ()) -> None:
        with self._lock:
            self._by_key[key] = _Expect(adds, set(deletes), self.clock.monotonic())

    def created(self, key: str) -> None:
        """An add was observed (or a create failed and will not be observed)."""
        with self._lock:
            e = self._by_key.get(key)
            if e is not None:
                e.adds -= 1

    def deleted(self, key: str, uid: str) -> None:
        with self._lock:
            e = self._by_key.get(key)
            if e is not None:
                e.deletes.discard(uid)

    def forget(self, key: str) -> None:
        with self._lock:
            self._by_key.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        with self._lock:
            e = self._by_key.get(key)
            return (0, 0) if e is None else (max(0, e.adds), len(e.deletes))


# --- the controller ----------------------------------------------------------------------------


class PodOwnerController(Controller):
    """The pod and owner event handlers every controller that claims pods by selector shares (the
    RS/RC and DaemonSet controllers): observed creates and deletes settle its expectations, a pod's
    owner is enqueued, and an orphan is offered to every owner whose selector matches it. A
    subclass names `kind` and sets `owners` (that kind's informer) and `expectations`."""

    kind = ""
    owners: Informer
    expectations: Expectations

    def _owner_deleted(self, obj: Obj) -> None:
        self.expectations.forget(key_of(obj))
        self.enqueue(obj)

    def _owner_key(self, pod: Obj) -> str | None:
        return controller_key(pod, self.kind)

    def _enqueue_matching(self, pod: Obj) -> None:
        """An orphan changed: every controller of this kind whose selector matches may adopt it."""
        for owner in owners_selecting(self.owners, pod):
            self.enqueue(owner)

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.created(key)
            self.queue.add(key)
        elif controller_of(pod) is None:
            self._enqueue_matching(pod)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deleted(key, str((pod.get("metadata") or {}).get("uid", "")))
            self.queue.add(key)


class _ReplicaController(PodOwnerController):
    """Shared reconcile for RC and ReplicaSet; subclasses name the kind."""

    component = ""
    coalesce_floor = STATUS_FLOOR

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.expectations = Expectations(clock)
        self.owners: Informer = factory.informer(self.kind)
        self.pods: Informer = factory.informer("Pod")
        # imported here: podcounts reads this module's pod predicates
        from nbkube.controlplane.controllers.podcounts import pod_counts

        self.counts = pod_counts(self.pods)
        self.owners.add_handler(
            on_add=self.enqueue,
            on_update=self.enqueue_update,
            on_delete=self._owner_deleted,
        )
        self.pods.add_handler(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    # -- event handlers: only bookkeeping and enqueueing (the rest in PodOwnerController) ------------

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if new_key is not None:
            # same owner: a status change moves counts only, coalesced (see Controller)
            if new_key == old_key:
                self.enqueue_coalesced(new_key)
            else:
                self.queue.add(new_key)
        if old_key is not None and old_key != new_key:
            self.queue.add(old_key)
        labels_changed = (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get(
            "labels"
        )
        if controller_of(new) is None or (labels_changed and new_key is None):
            self._enqueue_matching(new)
        if labels_changed and controller_of(new) is None:
            self._enqueue_matching(old)

    # -- reconcile ----------------------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            super()._pod_added(pod)
            return
        self.expectations.created(key)
        if self.expectations.satisfied(key):
            self.queue.add(key)  # the last create of a batch observed: the next batch may go
        else:
            self.enqueue_coalesced(key)  # only the count moved: one sync for many adds

    def reconcile(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.forget(key)
            return  # its pods are the garbage collector's (or were orphaned by the registry)
        ns, _name = split_key(key)
        selector = owner_selector(owner)
        if self._reconcile_counted(key, owner, ns or "default", selector):
            return
        candidates = candidate_pods(self.pods, owner, ns or "default")
        claim = claim_pods(owner, candidates, selector)
        requeue = not release_claimed(self.api, claim, owner_ref(owner))
        owned = [p for p in claim.owned if is_active(p)]
        if claim.adopt and not self._can_adopt(owner):
            claim.adopt = []
            requeue = True
        adopted, all_adopted = adopt_claimed(self.api, claim, owner_ref(owner))
        owned.extend(adopted)
        requeue |= not all_adopted
        # a failed adoption leaves the count unknown: creating now could make one pod too many
        if (
            not requeue
            and self.expectations.satisfied(key)
            and not (owner.get("metadata") or {}).get("deletionTimestamp")
        ):
            self._manage(key, owner, owned)
        self._sync_status(owner, owned)
        if requeue:
            self.queue.add_rate_limited(key)

    def _reconcile_counted(self, key: str, owner: Obj, ns: str, selector: Selector) -> bool:
        """The common sync from the owner's pod counts (podcounts.py), without reading its pods:
        when no owned pod is to be released, no orphan to be adopted, no pod to be deleted and no
        minReadySeconds to wait out. False (nothing done) when any of those needs the pods."""
        spec = owner.get("spec") or {}
        if int(spec.get("minReadySeconds") or 0) > 0:
            return False
        want = desired_replicas(owner)
        if want is None:
            return False
        tally = self.counts.tally(ns, str((owner.get("metadata") or {}).get("uid") or ""))
        if tally.active > want or not tally.all_match(selector):
            return False
        if claim_pods(owner, self.pods.by_index("orphan", ns), selector).adopt:
            return False
        deleting = bool((owner.get("metadata") or {}).get("deletionTimestamp"))
        if tally.active < want and not deleting and self.expectations.satisfied(key):
            self._create_pods(key, owner, want - tally.active)
        status = status_block(
            owner,
            replicas=tally.active,
            fully_labeled=tally.fully_labeled(template_labels(owner)),
            ready=tally.ready,
            available=tally.ready,  # no minReadySeconds: available is Ready
        )
        write_status(self, key_of(owner), owner, status)
        return True

    def _can_adopt(self, owner: Obj) -> bool:
        """A live read of the owner before adopting (as upstream's ClaimPods does): a cached owner
        may already be being deleted with orphans, and re-adopting the pods the registry is
        releasing would leave them pointing at a deleted owner, for the garbage collector."""
        meta = owner.get("metadata") or {}
        try:
            fresh = self.api.get(self.kind, str(meta.get("name")), str(meta.get("namespace") or ""))
        except NotFound:
            return False
        fmeta = fresh.get("metadata") or {}
        return fmeta.get("uid") == meta.get("uid") and not fmeta.get("deletionTimestamp")

    def _manage(self, key: str, owner: Obj, owned: list[Obj]) -> None:
        want = desired_replicas(owner)
        if want is None:
            # only an object stored before validation bounded the field gets here: creating
            # towards 1e23 pods 500 at a time would fill the store, so do nothing and say why
            record_event(
                self.api,
                owner,
                "InvalidReplicas",
                f"spec.replicas must be an integer in 0..{INT32_MAX}, got "
                f"{(owner.get('spec') or {}).get('replicas')!r}: not managing pods",
                type="Warning",
                component=self.component,
                clock=self.clock,
            )
            return
        diff = len(owned) - want
        if diff < 0:
            self._create_pods(key, owner, -diff)
        elif diff > 0:
            victims = pods_to_delete(owned, min(diff, BURST))
            self.expectations.expect(key, deletes=[str(p["metadata"].get("uid", "")) for p in victims])
            for i, pod in enumerate(victims):
                pname = pod["metadata"]["name"]
                try:
                    delete_pod(self.api, pod)
                except NotFound:
                    self.expectations.deleted(key, str(pod["metadata"].get("uid", "")))
                    continue
                except NbkubeError:
                    for rest in victims[i:]:
                        self.expectations.deleted(key, str(rest["metadata"].get("uid", "")))
                    raise
                record_event(
                    self.api,
                    owner,
                    "SuccessfulDelete",
                    f"Deleted pod: {pname}",
                    component=self.component,
                    clock=self.clock,
                )

    def _create_pods(self, key: str, owner: Obj, missing: int) -> None:
        """Create up to BURST of the `missing` pods in slow-start batches, under expectations."""
        count = min(missing, BURST)
        self.expectations.expect(key, adds=count)
        made: list[Obj] = []
        if callable(getattr(self.api, "create_many", None)):
            error = slow_start_batches(
                count, SLOW_START_INITIAL_BATCH, lambda n: self._create_batch(owner, n, made)
            )
        else:
            error = slow_start_batch(count, SLOW_START_INITIAL_BATCH, lambda: made.append(self._create(owner)))
        # the creates not made (the failed one and those skipped after it) will never be observed
        for _ in range(count - len(made)):
            self.expectations.created(key)
        if error is not None:
            record_event(
                self.api,
                owner,
                "FailedCreate",
                f"Error creating: {error}",
                type="Warning",
                component=self.component,
                clock=self.clock,
            )
            raise error

    def _create_batch(self, owner: Obj, n: int, made: list[Obj]) -> NbkubeError | None:
        """One slow-start batch: `n` pods written in one store transaction (create_many), as
        upstream sends a batch's creates at once; each is admitted and fails on its own. The
        pods made go to `made`; the first failure is returned."""
        first: NbkubeError | None = None
        try:
            results = self.api.create_many([pod_from_template(owner) for _ in range(n)])
        except NbkubeError as exc:  # the whole batch refused (the store unavailable): none made
            return exc
        for result in results:
            if isinstance(result, NbkubeError):
                first = first or result
                continue
            made.append(result)
            self._created_event(owner, result)
        return first

    def _created_event(self, owner: Obj, pod: Obj) -> None:
        record_event(
            self.api,
            owner,
            "SuccessfulCreate",
            f"Created pod: {pod['metadata']['name']}",
            component=self.component,
            clock=self.clock,
        )

    def _create(self, owner: Obj) -> Obj:
        pod = self.api.create(pod_from_template(owner))
        self._created_event(owner, pod)
        return pod

    def _sync_status(self, owner: Obj, owned: list[Obj]) -> None:
        now = self.clock.now()
        status = compute_status(owner, owned, now)
        min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
        waits = [w for p in owned if (w := seconds_until_available(p, min_ready, now)) is not None]
        if waits:
            # nothing else will happen when a pod crosses minReadySeconds: look again then
            self.queue.add_after(key_of(owner), min(waits) + 0.001)
        write_status(self, key_of(owner), owner, status)


class ReplicationManager(_ReplicaController):
    """Keeps ReplicationControllers' pod counts (the article's `replicationcontrollers`)."""

    name = "replicationmanager"
    kind = "ReplicationController"
    component = "replication-controller"


class ReplicaSetController(_ReplicaController):
    """Keeps ReplicaSets' pod counts (Deployments own ReplicaSets)."""

    name = "replicaset"
    kind = "ReplicaSet"
    component = "replicaset-controller"


def delete_pod(api: Registry, pod: Obj, attempts: int = 5) -> Obj:
    """Delete a pod whatever its current resourceVersion (a node agent may be writing its status at
    the same moment; the registry's delete then reports a conflict, which is no reason to keep it)."""
    meta = pod["metadata"]
    for attempt in range(attempts):
        try:
            return api.delete("Pod", meta["name"], meta.get("namespace", ""))
        except Conflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def scale(api: Registry, kind: str, name: str, namespace: str, replicas: int) -> Obj:
    """`nbkube scale`: set spec.replicas (CAS, retried by the registry's patch)."""
    if replicas < 0:
        raise ValueError(f"--replicas must be >= 0, got {replicas}")
    return api.patch(kind, name, namespace, {"spec": {"replicas": int(replicas)}})
