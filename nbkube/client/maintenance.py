"""Node maintenance mode: cordon, uncordon and drain (what the article found missing).

`nbkube cordon|uncordon|drain NODE` (cli/cmd_nodes.py), the notebook and tests call these. They
follow `kubectl drain`: cordon marks the Node `spec.unschedulable` (one compare-and-swap write, so
the scheduler skips it); drain cordons, then checks every pod bound to the node *before* touching
any of them, and evicts only pods a controller will recreate elsewhere. Pods nobody would recreate
(bare pods, or pods whose controller is gone) refuse the whole drain unless `force`; pods with
emptyDir data refuse unless `delete_emptydir_data`; DaemonSet pods refuse the drain (naming them)
unless `ignore_daemonsets`, which leaves them in place (they would come straight back: a DaemonSet
tolerates the cordon); mirror pods are never deleted through the API; finished pods are simply
deleted. Pods go through the eviction subresource (`api.evict`, registry/eviction.py), which a
PodDisruptionBudget may refuse with TooManyRequests: drain retries every `retry_interval` until
`timeout`, then raises DrainBlocked naming the budgets that still hold pods. Then it waits, in the
same `timeout`, until the evicted pods are gone, and reports what moved.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.client.events import record_event
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import Conflict, Forbidden, NbkubeError, NotFound, TooManyRequests

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = [
    "cordon",
    "uncordon",
    "drain",
    "DrainReport",
    "EvictedPod",
    "DrainRefused",
    "DrainTimeout",
    "DrainBlocked",
    "MIRROR_ANNOTATION",
]

log = logging.getLogger(__name__)

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
COMPONENT = "nbkube-drain"
_CAS_RETRIES = 10
# the kinds kubectl drain names; any controller reference whose owner exists counts as managed
_MANAGED_KINDS = "ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet"


class DrainRefused(Forbidden):
    """Some pods on the node cannot be evicted safely; nothing was evicted (the node stays cordoned)."""

    def __init__(self, message: str, report: DrainReport):
        super().__init__(message)
        self.report = report


class DrainTimeout(NbkubeError):
    """Evicted pods were still present when the timeout ran out."""

    reason = "Timeout"
    code = 504

    def __init__(self, message: str, report: DrainReport, remaining: list[str]):
        super().__init__(message)
        self.report = report
        self.remaining = remaining


class DrainBlocked(DrainTimeout):
    """A PodDisruptionBudget still refused some evictions when the timeout ran out; `blocked` maps
    each pod (ns/name) to the eviction's answer, which names the budget."""

    reason = "TooManyRequests"
    code = 429

    def __init__(self, message: str, report: DrainReport, blocked: dict[str, str]):
        super().__init__(message, report, sorted(blocked))
        self.blocked = dict(blocked)


@dataclass(frozen=True)
class EvictedPod:
    namespace: str
    name: str
    owner_kind: str = ""  # "" for a bare pod deleted with force, or a finished pod
    owner_name: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        owner = f" (owned by {self.owner_kind}/{self.owner_name})" if self.owner_kind else ""
        return f"{self.key}{owner}"


@dataclass
class DrainReport:
    node: str
    cordoned: bool = False  # False when the node was already cordoned
    evicted: list[EvictedPod] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (ns/name, why left in place)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (ns/name, why it blocks the drain)
    warnings: list[str] = field(default_factory=list)

    def moved(self) -> list[EvictedPod]:
        """Evicted pods that a controller will recreate elsewhere."""
        return [p for p in self.evicted if p.owner_kind]


# --- cordon / uncordon ------------------------------------------------------------------------------


def _set_unschedulable(api: Registry, node: str, value: bool, clock: Clock) -> bool:
    """CAS-write spec.unschedulable; True when it changed (False: already so)."""
    for attempt in range(_CAS_RETRIES):
        obj = api.get("Node", node)
        spec = obj.get("spec") or {}
        if bool(spec.get("unschedulable")) == value:
            return False
        new = copy.deepcopy(obj)
        if value:
            new.setdefault("spec", {})["unschedulable"] = True
        else:
            new.setdefault("spec", {}).pop("unschedulable", None)
        try:
            written = api.update(new)
        except Conflict:
            if attempt == _CAS_RETRIES - 1:
                raise
            continue
        reason = "NodeNotSchedulable" if value else "NodeSchedulable"
        record_event(
            api, written, reason, f"Node {node} status is now: {reason}", component=COMPONENT, clock=clock
        )
        return True
    raise AssertionError("unreachable")


def cordon(api: Registry, node: str, *, clock: Clock = REAL_CLOCK) -> bool:
    """Mark the node unschedulable; True if this call changed it. NotFound for an unknown node."""
    return _set_unschedulable(api, node, True, clock)


def uncordon(api: Registry, node: str, *, clock: Clock = REAL_CLOCK) -> bool:
    """Make the node schedulable again; True if this call changed it."""
    return _set_unschedulable(api, node, False, clock)


# --- drain ------------------------------------------------------------------------------------------


def _key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def _controller_ref(pod: Obj) -> dict[str, Any] | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def _owner_exists(api: Registry, pod: Obj, ref: dict[str, Any]) -> bool:
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    try:
        owner = api.get(str(ref.get("kind")), str(ref.get("name")), namespace)
    except NotFound:
        return False
    except NbkubeError:
        # a kind nbkube does not serve (Job, StatefulSet, ...): trust the reference, as kubectl does
        return True
    uid = ref.get("uid")
    return not uid or (owner.get("metadata") or {}).get("uid") == uid


def _has_emptydir(pod: Obj) -> bool:
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return any(isinstance(v, dict) and "emptyDir" in v for v in volumes)


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _budget_detail(err: TooManyRequests) -> str:
    """The DisruptionBudget cause of a refused eviction (it names the budget), else the message."""
    for cause in err.causes:
        if cause.get("reason") == "DisruptionBudget" and cause.get("message"):
            return str(cause["message"])
    return str(err)


def _classify(
    api: Registry,
    pods: list[Obj],
    report: DrainReport,
    *,
    force: bool,
    ignore_daemonsets: bool,
    delete_emptydir_data: bool,
) -> list[tuple[Obj, EvictedPod]]:
    """Decide for every pod before touching any; fills report.ignored/refused/warnings."""
    to_evict: list[tuple[Obj, EvictedPod]] = []
    unmanaged: list[str] = []
    daemonsets: list[str] = []
    local: list[str] = []
    for pod in sorted(pods, key=_key):
        key = _key(pod)
        meta = pod.get("metadata") or {}
        entry = EvictedPod(str(meta.get("namespace", "default")), str(meta.get("name", "")))
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            report.ignored.append((key, "mirror pod (managed by its node, not the API)"))
            continue
        if _finished(pod):
            to_evict.append((pod, entry))  # nothing runs any more: deleting it loses nothing
            continue
        ref = _controller_ref(pod)
        if ref is not None and ref.get("kind") == "DaemonSet":
            if ignore_daemonsets:
                report.ignored.append((key, "DaemonSet-managed"))
            else:
                daemonsets.append(key)
            continue
        if ref is not None and _owner_exists(api, pod, ref):
            entry = EvictedPod(
                entry.namespace, entry.name, str(ref.get("kind", "")), str(ref.get("name", ""))
            )
        elif force:
            report.warnings.append(f"deleting Pod not managed by {_MANAGED_KINDS}: {key}")
        else:
            unmanaged.append(key)
            continue
        if _has_emptydir(pod):
            if delete_emptydir_data:
                report.warnings.append(f"deleting Pod with local storage (emptyDir data is lost): {key}")
            else:
                local.append(key)
                continue
        to_evict.append((pod, entry))
    if unmanaged:
        why = f"cannot delete Pods not managed by {_MANAGED_KINDS} (use --force to override)"
        report.refused += [(k, why) for k in unmanaged]
    if daemonsets:
        why = "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
        report.refused += [(k, why) for k in daemonsets]
    if local:
        why = "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
        report.refused += [(k, why) for k in local]
    return to_evict


def drain(
    api: Registry,
    node: str,
    *,
    force: bool = False,
    ignore_daemonsets: bool = False,
    delete_emptydir_data: bool = False,
    timeout: float = 60.0,
    poll_interval: float = 0.1,
    retry_interval: float = 1.0,
    clock: Clock = REAL_CLOCK,
    on_evict: Callable[[EvictedPod], None] | None = None,
) -> DrainReport:
    """Cordon `node` and evict its pods (see module doc); returns what was evicted and left.

    Raises DrainRefused (nothing evicted) when some pod blocks the drain, DrainBlocked when a
    PodDisruptionBudget still refuses evictions after `timeout` seconds of `clock` time (retried
    every `retry_interval`), and DrainTimeout when evicted pods are still present then. `on_evict`
    is called for each pod as it is first tried (the CLI prints `evicting pod ns/name`)."""
    deadline = clock.monotonic() + timeout
    report = DrainReport(node)
    report.cordoned = cordon(api, node, clock=clock)
    pods, _rv = api.list("Pod", field_selector={"spec.nodeName": node})
    to_evict = _classify(
        api,
        pods,
        report,
        force=force,
        ignore_daemonsets=ignore_daemonsets,
        delete_emptydir_data=delete_emptydir_data,
    )
    if report.refused:
        by_reason: dict[str, list[str]] = {}
        for key, why in report.refused:
            by_reason.setdefault(why, []).append(key)
        message = "; ".join(f"{why}: {', '.join(keys)}" for why, keys in by_reason.items())
        raise DrainRefused(message, report)
    uids: dict[str, str] = {}
    pending = list(to_evict)
    for _pod, entry in pending:
        if on_evict is not None:
            on_evict(entry)
    while True:
        blocked: dict[str, str] = {}
        for pod, entry in pending:
            try:
                api.evict(entry.name, entry.namespace)
            except NotFound:
                continue  # gone already: what the drain wants
            except TooManyRequests as e:
                blocked[entry.key] = _budget_detail(e)
                continue
            uids[entry.key] = str((pod.get("metadata") or {}).get("uid", ""))
            report.evicted.append(entry)
            owner = f" (owner {entry.owner_kind}/{entry.owner_name})" if entry.owner_kind else ""
            record_event(
                api,
                pod,
                "Evicted",
                f"Evicted by drain of node {node}{owner}",
                component=COMPONENT,
                clock=clock,
            )
        pending = [(p, e) for p, e in pending if e.key in blocked]
        if not pending:
            break
        if clock.monotonic() >= deadline:
            budgets = sorted(set(blocked.values()))
            raise DrainBlocked(
                f"drain node/{node} stopped after {timeout:g}s: a PodDisruptionBudget refuses to evict "
                f"{', '.join(sorted(blocked))}: " + "; ".join(budgets),
                report,
                blocked,
            )
        log.info("drain %s: %d eviction(s) refused by a disruption budget; retrying", node, len(blocked))
        clock.sleep(max(0.0, min(retry_interval, deadline - clock.monotonic())))
    _wait_gone(
        api,
        node,
        uids,
        report,
        timeout=max(0.0, deadline - clock.monotonic()),
        poll_interval=poll_interval,
        clock=clock,
    )
    return report


def _wait_gone(
    api: Registry,
    node: str,
    uids: dict[str, str],
    report: DrainReport,
    *,
    timeout: float,
    poll_interval: float,
    clock: Clock,
) -> None:
    """Until every evicted pod is gone (a pod of the same name with another uid is a new pod)."""
    deadline = clock.monotonic() + timeout
    remaining = dict(uids)
    while True:
        for key, uid in list(remaining.items()):
            namespace, _, name = key.partition("/")
            try:
                current = api.get("Pod", name, namespace)
            except NotFound:
                del remaining[key]
                continue
            if uid and (current.get("metadata") or {}).get("uid") != uid:
                del remaining[key]
        if not remaining:
            return
        if clock.monotonic() >= deadline:
            keys = sorted(remaining)
            raise DrainTimeout(
                f"drain node/{node} timed out after {timeout:g}s waiting for {len(keys)} pod(s) to go: "
                + ", ".join(keys),
                report,
                keys,
            )
        clock.sleep(min(poll_interval, max(0.0, deadline - clock.monotonic())) or poll_interval)
