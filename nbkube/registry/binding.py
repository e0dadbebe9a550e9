"""The binding subresource: assign a pending pod to a node, as a scheduler does.

`POST pods/NAME/binding` (what client-go's `Pods(ns).Bind` sends: kube-scheduler, and any scheduler
of one's own) and `Registry.bind` come here. The rule is upstream's (kube-apiserver's BindingREST):
- the Binding names the pod (its `metadata.name` is the URL's) and a node (`target.name`; a
  `target.kind` other than Node is refused);
- its `metadata.uid` and `metadata.resourceVersion`, when given, are preconditions on the pod;
- a pod being deleted, or one already on a node, is not bound again: 409 Conflict, and nothing is
  written (two schedulers racing for one pod: the first wins, the second is told);
- the binding's annotations are added to the pod's, `spec.nodeName` is set, and the pod's
  PodScheduled condition becomes True.

Upstream writes the node name and the condition in one storage update. Here the node name is a
pod update (its compare-and-swap decides the race) and the condition a status write just after it:
a reader may see the pod bound a moment before it reads PodScheduled=True, as it may anyway see a
pod before its kubelet reports on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.clock import rfc3339
from nbkube.errors import BadRequest, Conflict, FieldError, Invalid, NotFound

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["BindTo", "bind", "binding_target", "with_pod_scheduled"]


@dataclass(frozen=True)
class BindTo:
    """What a Binding asks: the node, annotations for the pod, and preconditions on the pod's uid
    and resourceVersion ("": none)."""

    node: str
    annotations: dict[str, str] = field(default_factory=dict)
    uid: str = ""
    resource_version: str = ""


def binding_target(binding: Any, pod_name: str) -> BindTo:
    """What a Binding body sent for the pod `pod_name` asks; BadRequest or Invalid naming the
    field for anything else."""
    if not isinstance(binding, dict):
        raise BadRequest("the request body must be a Binding object")
    meta = binding.get("metadata") or {}
    if not isinstance(meta, dict):
        raise Invalid([FieldError("metadata", "must be an object")], kind="Binding", name=pod_name)
    name = meta.get("name")
    if name not in (None, "", pod_name):
        raise BadRequest("name in URL does not match name in Binding object")
    target = binding.get("target")
    errors: list[FieldError] = []
    if not isinstance(target, dict):
        errors.append(FieldError("target", "Required value"))
        target = {}
    node = target.get("name")
    if not isinstance(node, str) or not node:
        errors.append(FieldError("target.name", "Required value"))
    kind = target.get("kind")
    if kind not in (None, "", "Node"):
        errors.append(FieldError("target.kind", f"Invalid value: {kind!r}: must be empty or 'Node'"))
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        errors.append(FieldError("metadata.annotations", "must be a map of strings to strings"))
    if errors:
        raise Invalid(errors, kind="Binding", name=pod_name)
    return BindTo(
        str(node), dict(annotations), str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
    )


def bind(registry: Registry, name: str, namespace: str, to: BindTo, *, dry_run: bool = False) -> Obj:
    """Bind the pod `namespace/name` as `to` asks (see the module doc); the bound pod."""

    def assign(pod: Obj) -> Obj:
        # called by `mutate` on each fresh read: a pod bound meanwhile is refused, not rebound
        meta = pod["metadata"]
        if to.uid and meta.get("uid") != to.uid:
            raise Conflict(
                f'Operation cannot be fulfilled on pods "{name}": Precondition failed: UID in precondition: '
                f"{to.uid}, UID in object meta: {meta.get('uid')}"
            )
        if to.resource_version and meta.get("resourceVersion") != to.resource_version:
            raise Conflict(
                f'Operation cannot be fulfilled on pods "{name}": Precondition failed: ResourceVersion in '
                f"precondition: {to.resource_version}, ResourceVersion in object meta: {meta.get('resourceVersion')}"
            )
        if meta.get("deletionTimestamp"):
            raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise Conflict(f'pod {name} is already assigned to node "{current}"')
        if to.annotations:
            meta = {**meta, "annotations": {**(meta.get("annotations") or {}), **to.annotations}}
        return {**pod, "metadata": meta, "spec": {**pod["spec"], "nodeName": to.node}}

    bound = registry.mutate("Pod", name, namespace, assign, dry_run=dry_run)
    return bound if dry_run else _scheduled(registry, bound)


def with_pod_scheduled(status: Obj, at: str) -> Obj:
    """A copy of a pod's `status` whose PodScheduled condition is True since `at` (RFC 3339): what
    a bind leaves (here, and nbkube's own scheduler after it bound a pod once unschedulable)."""
    conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": at})
    return {**status, "conditions": conditions}


def _scheduled(registry: Registry, bound: Obj) -> Obj:
    """PodScheduled=True on the bound pod (kept if it already says so)."""
    meta = bound["metadata"]
    for c in (bound.get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "True":
            return bound
    try:
        return registry.mutate(
            "Pod",
            meta["name"],
            meta.get("namespace") or "default",
            lambda pod: {
                **pod,
                "status": with_pod_scheduled(pod.get("status") or {}, rfc3339(registry.clock.now())),
            },
            status=True,
        )
    except NotFound:
        return bound  # deleted just after its binding: the binding stands as written
