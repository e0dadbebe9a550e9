"""Filter VolumeBinding: a pod goes where its claims' volumes are, and names the node for new ones.

Why: a local volume is a folder on one node, so a pod whose claim is bound to one can only run
there (the volume's node affinity). A claim not yet bound, of a WaitForFirstConsumer class, is
bound after scheduling: any node that has a fitting volume, or any node at all when the class's
provisioner is nbkube's local-path one, is feasible; once the node is chosen, `pre_bind` writes it
into each such claim's `volume.kubernetes.io/selected-node` annotation, from which the binder
(controllers/volumebinding.py) binds or provisions on that node. Claims of an Immediate class must
be bound before the pod is scheduled, as upstream. Dynamic filter: claims and volumes change
without the node changing.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.controlplane.controllers.volumebinding import (
    PROVISIONER,
    SELECTED_NODE,
    claim_class,
    volume_fits,
)
from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo
from nbkube.controlplane.scheduler.plugins.node_affinity import term_matches
from nbkube.errors import Conflict, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer
    from nbkube.registry.registry import Registry

__all__ = ["VolumeBinding", "MSG_CONFLICT", "MSG_NO_VOLUME", "MSG_IMMEDIATE"]

log = logging.getLogger(__name__)

# How long the bind of a pod waits for its claims to be bound (upstream waits up to 10 minutes; the
# binder here answers in milliseconds, so this only bounds a stuck one)
BIND_WAIT = 5.0
MSG_CONFLICT = "node(s) had volume node affinity conflict"
MSG_NO_VOLUME = "node(s) didn't find available persistent volumes to bind"
MSG_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


def _claim_names(pod: PodInfo) -> list[str]:
    return [
        str((v.get("persistentVolumeClaim") or {}).get("claimName"))
        for v in (pod.obj.get("spec") or {}).get("volumes") or ()
        if isinstance(v, dict) and v.get("persistentVolumeClaim")
    ]


def _on(volume: Obj, node: NodeInfo) -> bool:
    terms = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    )
    return not terms or any(term_matches(t, node.labels, node.name) for t in terms)


class VolumeBinding:
    name = "VolumeBinding"
    static = False

    def __init__(self, claims: Informer, volumes: Informer, classes: Informer, api: Registry | None = None):
        self.claims, self.volumes, self.classes = claims, volumes, classes
        self.api = api
        self._live: dict[str, Obj | None] = {}  # live reads of claims the cache lacked, for one pod
        self._live_for = ""

    def applies(self, pod: PodInfo) -> bool:
        return bool(_claim_names(pod))

    def _claim(self, pod: PodInfo, name: str) -> Obj | None:
        key = f"{pod.namespace}/{name}"
        found = self.claims.get(key)
        if found is not None or self.api is None:
            return found
        # A StatefulSet makes a pod's claims just before the pod: the claim informer may not have
        # them yet. One live read per claim and pod (not per node) before calling it missing.
        if self._live_for != pod.uid:
            self._live, self._live_for = {}, pod.uid
        if key not in self._live:
            try:
                self._live[key] = self.api.get("PersistentVolumeClaim", name, pod.namespace)
            except NotFound:
                self._live[key] = None
        return self._live[key]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]:
        classes = self.classes.list()
        for name in _claim_names(pod):
            claim = self._claim(pod, name)
            if claim is None:
                return [f'persistentvolumeclaim "{name}" not found']
            if (claim.get("metadata") or {}).get("deletionTimestamp"):
                return [f'persistentvolumeclaim "{name}" is being deleted']
            bound = (claim.get("spec") or {}).get("volumeName")
            if bound:
                volume = self.volumes.get(str(bound))
                if volume is None:
                    return [
                        f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume "{bound}"'
                    ]
                if not _on(volume, node):
                    return [MSG_CONFLICT]
                continue
            class_name = claim_class(claim, classes)
            cls = next((c for c in classes if (c.get("metadata") or {}).get("name") == class_name), None)
            if cls is None or cls.get("volumeBindingMode", "Immediate") != "WaitForFirstConsumer":
                return [MSG_IMMEDIATE]
            if cls.get("provisioner") == PROVISIONER:
                continue  # a folder can be made on any node
            if not any(volume_fits(v, claim, class_name) and _on(v, node) for v in self.volumes.list()):
                return [MSG_NO_VOLUME]
        return []

    def pre_bind(self, api: Registry, pod: Obj, node_name: str, wait: float = BIND_WAIT) -> None:
        """Name the chosen node on each unbound claim the pod uses, then wait (at most `wait`
        seconds) for the binder to bind them, as upstream's PreBind does: a pod bound to its node
        before its volume is ready would wait there for the node's next retry instead."""
        info = PodInfo(pod)
        named = self._name_node(api, info, node_name)
        if not named:
            return
        deadline = time.monotonic() + wait
        pending = named
        while pending and time.monotonic() < deadline:
            time.sleep(0.005)
            pending = [
                n for n in pending
                if ((self.claims.get(f"{info.namespace}/{n}") or {}).get("status") or {}).get("phase") != "Bound"
            ]  # fmt: skip
        if pending:
            log.info(
                "volume binding: claims %s of pod %s not bound within %gs; binding the pod, its node waits for them",
                ", ".join(pending),
                info.key,
                wait,
            )

    def _name_node(self, api: Registry, info: PodInfo, node_name: str) -> list[str]:
        """Annotate the pod's unbound claims with the node; the names of those claims."""
        named: list[str] = []
        for name in _claim_names(info):
            claim = self._claim(info, name)
            if claim is None or (claim.get("spec") or {}).get("volumeName"):
                continue
            named.append(name)
            annotations: dict[str, Any] = (claim.get("metadata") or {}).get("annotations") or {}
            if annotations.get(SELECTED_NODE) == node_name:
                continue
            for _attempt in range(3):
                new = copy.deepcopy(claim)
                new["metadata"].setdefault("annotations", {})[SELECTED_NODE] = node_name
                try:
                    api.update(new)
                    break
                except Conflict:
                    claim = api.get("PersistentVolumeClaim", name, info.namespace)
                except NotFound:
                    break
        return named
