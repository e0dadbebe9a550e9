"""PersistentVolume binding and the local-path provisioner: claims meet folders on nodes.

The binder does what upstream's PV controller does for nbkube's volumes:
- a claim without a volume is bound to the smallest Available volume that fits (same class,
  enough capacity, the access modes asked, the claim's selector, and, for a claim a scheduled
  pod waits on, a node affinity that admits the pod's node); both sides are written: the
  volume's `claimRef` and phase Bound, then the claim's `volumeName` and status Bound;
- a claim no volume fits, of a class whose provisioner is `nbkube.io/local-path`, gets a volume
  made for it: `pvc-<claim uid>`, a `local` folder `<root>/<node>/<volume name>` (root: the class's
  `path` parameter, the cluster's folder for the default class), node affinity to that node, and
  the class's reclaim policy. The class's volumeBindingMode says which node: WaitForFirstConsumer
  waits for the scheduler to write the node of the first pod that uses the claim into the claim's
  `volume.kubernetes.io/selected-node` annotation (plugins/volume_binding.py); Immediate is
  refused with an event, since a folder belongs to one node and nothing has chosen it yet;
- a volume whose claim is gone is Released, and deleted with its folder when its reclaim policy
  is Delete (the folder only when the provisioner made it and it is on this host).

`ensure_default_class(api, root)` creates the default `local-path` StorageClass once per cluster.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.api.meta import meta_of as _meta
from nbkube.api.meta import spec_of as _spec
from nbkube.api.printers_storage import DEFAULT_CLASS_ANNOTATION, is_default_class
from nbkube.api.quantity import parse_decimal
from nbkube.api.selectors import selector_from_label_selector
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.controllers.writes import event
from nbkube.controlplane.scheduler.plugins.node_affinity import term_matches
from nbkube.errors import AlreadyExists, Conflict, NbkubeError, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = [
    "DEFAULT_CLASS",
    "PROVISIONER",
    "SELECTED_NODE",
    "VolumeBinder",
    "claim_class",
    "default_class",
    "ensure_default_class",
    "volume_fits",
    "volume_on_node",
]

PROVISIONER = "nbkube.io/local-path"
DEFAULT_CLASS = "local-path"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
COMPONENT = "persistentvolume-controller"


def default_class(classes: list[Obj]) -> Obj | None:
    """The default StorageClass (the newest, as upstream, when several say they are)."""
    marked = [c for c in classes if is_default_class(c)]
    marked.sort(key=lambda c: (str(_meta(c).get("creationTimestamp") or ""), str(_meta(c).get("name"))))
    return marked[-1] if marked else None


def claim_class(claim: Obj, classes: list[Obj]) -> str:
    """The class a claim asks for: its storageClassName, else the default class's name ("" = none)."""
    name = _spec(claim).get("storageClassName")
    if name is not None:
        return str(name)
    found = default_class(classes)
    return str(_meta(found).get("name")) if found is not None else ""


def _storage(amounts: Any) -> Any:
    try:
        return parse_decimal((amounts or {}).get("storage", 0))
    except (ValueError, NbkubeError, ArithmeticError):
        return None


def volume_on_node(volume: Obj, node: Mapping[str, Any]) -> bool:
    """Whether a volume's node affinity admits `node` (a Node object); no affinity admits all."""
    terms = ((_spec(volume).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    if not terms:
        return True
    meta = node.get("metadata") or {}
    return any(term_matches(t, meta.get("labels") or {}, str(meta.get("name") or "")) for t in terms)


def volume_fits(volume: Obj, claim: Obj, class_name: str) -> bool:
    """Whether an unbound volume can serve a claim (class, size, access modes, selector)."""
    vspec, cspec = _spec(volume), _spec(claim)
    ref = vspec.get("claimRef")
    if ref:
        cmeta = _meta(claim)
        if ref.get("name") != cmeta.get("name") or (ref.get("namespace") or "default") != (
            cmeta.get("namespace") or "default"
        ):
            return False
        if ref.get("uid") and ref.get("uid") != cmeta.get("uid"):
            return False
    elif (volume.get("status") or {}).get("phase") not in (None, "Pending", "Available"):
        return False
    if _meta(volume).get("deletionTimestamp"):
        return False
    if str(vspec.get("storageClassName") or "") != class_name:
        return False
    want, have = _storage((cspec.get("resources") or {}).get("requests")), _storage(vspec.get("capacity"))
    if want is None or have is None or have < want:
        return False
    if not set(cspec.get("accessModes") or []) <= set(vspec.get("accessModes") or []):
        return False
    if (cspec.get("volumeMode") or "Filesystem") != (vspec.get("volumeMode") or "Filesystem"):
        return False
    if cspec.get("selector") is not None:
        try:
            if not selector_from_label_selector(cspec["selector"]).matches(_meta(volume).get("labels") or {}):
                return False
        except NbkubeError:
            return False
    return True


def ensure_default_class(api: Registry, root: str) -> None:
    """Create the default `local-path` StorageClass (folders under `root`) unless it exists."""
    obj = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": PROVISIONER,
        "parameters": {"path": root},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    try:
        api.create(obj)
    except AlreadyExists:
        return


class VolumeBinder(Controller):
    """Binds claims to volumes and provisions local-path folders. Keys: `claim:NS/NAME`, `volume:NAME`."""

    name = "volumebinding"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.claims: Informer = factory.informer("PersistentVolumeClaim")
        self.volumes: Informer = factory.informer("PersistentVolume")
        self.classes: Informer = factory.informer("StorageClass")
        self.nodes: Informer = factory.informer("Node")
        self.pods: Informer = factory.informer("Pod")
        self._said: dict[str, str] = {}  # claim uid -> the last waiting reason told in an event
        self.claims.add_handler(
            on_add=self._claim_event,
            on_update=lambda old, new: self._claim_event(new),
            on_delete=self._claim_deleted,
        )
        self.volumes.add_handler(
            on_add=self._volume_event,
            on_update=lambda old, new: self._volume_event(new),
            on_delete=self._volume_event,
        )
        self.classes.add_handler(on_add=self._class_event, on_update=lambda old, new: self._class_event(new))

    def _claim_event(self, claim: Obj) -> None:
        self.queue.add(f"claim:{_meta(claim).get('namespace') or 'default'}/{_meta(claim).get('name')}")

    def _claim_deleted(self, claim: Obj) -> None:
        self._said.pop(str(_meta(claim).get("uid")), None)
        name = _spec(claim).get("volumeName")
        if name:
            self.queue.add(f"volume:{name}")

    def _volume_event(self, volume: Obj) -> None:
        self.queue.add(f"volume:{_meta(volume).get('name')}")
        ref = _spec(volume).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"claim:{ref.get('namespace') or 'default'}/{ref.get('name')}")
        elif (volume.get("status") or {}).get("phase") in (None, "Pending", "Available"):
            for claim in self.claims.list():  # a new volume may fit a waiting claim
                if not _spec(claim).get("volumeName"):
                    self._claim_event(claim)

    def _class_event(self, cls: Obj) -> None:
        for claim in self.claims.list():
            if not _spec(claim).get("volumeName"):
                self._claim_event(claim)

    def reconcile(self, key: str) -> None:
        what, _, rest = key.partition(":")
        if what == "claim":
            claim = self.claims.get(rest)
            if claim is not None and not _meta(claim).get("deletionTimestamp"):
                self._sync_claim(claim)
        elif what == "volume":
            volume = self.volumes.get(rest)
            if volume is not None:
                self._sync_volume(volume)

    # -- claims ------------------------------------------------------------------------------------

    def _sync_claim(self, claim: Obj) -> None:
        name = _spec(claim).get("volumeName")
        if name:
            volume = self.volumes.get(str(name))
            if volume is None:
                self._claim_status(claim, "Lost", None)
                self._event(claim, "ClaimLost", f"bound volume {name} is gone", warning=True)
                return
            ref = _spec(volume).get("claimRef") or {}
            if ref.get("uid") not in (None, _meta(claim).get("uid")):
                self._claim_status(claim, "Lost", None)
                return
            if not ref.get("uid") or (volume.get("status") or {}).get("phase") != "Bound":
                self._bind_volume(volume, claim)
            self._claim_status(claim, "Bound", volume)
            return
        classes = self.classes.list()
        class_name = claim_class(claim, classes)
        node = (_meta(claim).get("annotations") or {}).get(SELECTED_NODE)
        candidates = [v for v in self.volumes.list() if volume_fits(v, claim, class_name)]
        if node:
            node_obj = self._node(node)
            candidates = [v for v in candidates if node_obj is None or volume_on_node(v, node_obj)]
        cls = next((c for c in classes if _meta(c).get("name") == class_name), None)
        if candidates:
            # a volume made for this claim first, then the smallest that fits
            candidates.sort(
                key=lambda v: (
                    not (_spec(v).get("claimRef") or {}).get("name"),
                    _storage(_spec(v).get("capacity")),
                )
            )
            self._bind(candidates[0], claim, class_name)
            return
        if cls is None:
            why = (
                f'storageclass.storage.k8s.io "{class_name}" not found'
                if class_name
                else "no persistent volumes available for this claim and no storage class is set"
            )
            self._waiting(claim, "FailedBinding", why, warning=True)
            return
        if cls.get("provisioner") != PROVISIONER:
            self._waiting(
                claim,
                "ExternalProvisioning",
                f'Waiting for a volume to be created either by the external provisioner "{cls.get("provisioner")}" '
                "or manually by the system administrator",
            )
            return
        if cls.get("volumeBindingMode", "Immediate") != "WaitForFirstConsumer":
            self._waiting(
                claim,
                "ProvisioningFailed",
                f"storageclass {class_name}: {PROVISIONER} makes a folder on one node and needs "
                "volumeBindingMode WaitForFirstConsumer to know which",
                warning=True,
            )
            return
        if not node:
            self._waiting(
                claim, "WaitForFirstConsumer", "waiting for first consumer to be created before binding"
            )
            return
        self._provision(claim, cls, str(node))

    def _node(self, name: str) -> Obj | None:
        return self.nodes.get(name)

    def _provision(self, claim: Obj, cls: Obj, node: str) -> None:
        cmeta = _meta(claim)
        name = f"pvc-{cmeta.get('uid')}"
        root = str((cls.get("parameters") or {}).get("path") or "")
        if not root or not os.path.isabs(root):
            self._waiting(
                claim,
                "ProvisioningFailed",
                f"storageclass {_meta(cls).get('name')}: parameters.path must "
                f"be an absolute folder, got {root!r}",
                warning=True,
            )
            return
        path = os.path.join(root, node, name)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": {
                "capacity": {
                    "storage": str((_spec(claim).get("resources") or {}).get("requests", {}).get("storage"))
                },
                "accessModes": list(_spec(claim).get("accessModes") or []),
                "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy") or "Delete",
                "storageClassName": _meta(cls).get("name"),
                "volumeMode": "Filesystem",
                "local": {"path": path},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                                ]
                            }
                        ]
                    }
                },
                "claimRef": {
                    "kind": "PersistentVolumeClaim",
                    "apiVersion": "v1",
                    "namespace": cmeta.get("namespace") or "default",
                    "name": cmeta.get("name"),
                    "uid": cmeta.get("uid"),
                },
            },
        }
        # the folder is made here when this host is the node's (a local cluster); the node agent
        # makes it otherwise, before the first pod mounts it
        try:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o777)  # any runAsUser of the pods may write, as local-path-provisioner's folders
        except OSError as exc:
            self.log.info("volumebinding: folder %s not made here (%s); the node makes it", path, exc)
        try:
            self.api.create(volume)
        except AlreadyExists:
            return
        self._event(
            claim, "ProvisioningSucceeded", f"Successfully provisioned volume {name} on node {node} ({path})"
        )

    def _bind(self, volume: Obj, claim: Obj, class_name: str) -> None:
        bound = self._bind_volume(volume, claim)
        if bound is None:
            return
        new = copy.deepcopy(claim)
        new["spec"]["volumeName"] = _meta(bound).get("name")
        if _spec(claim).get("storageClassName") is None and class_name:
            new["spec"]["storageClassName"] = class_name
        annotations = new["metadata"].setdefault("annotations", {})
        annotations[BIND_COMPLETED] = "yes"
        annotations[BOUND_BY_CONTROLLER] = "yes"
        try:
            updated = self.api.update(new)
        except (Conflict, NotFound):
            self._claim_event(claim)
            return
        self._claim_status(updated, "Bound", bound)

    def _bind_volume(self, volume: Obj, claim: Obj) -> Obj | None:
        cmeta = _meta(claim)
        new = copy.deepcopy(volume)
        new["spec"]["claimRef"] = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": cmeta.get("namespace") or "default",
            "name": cmeta.get("name"),
            "uid": cmeta.get("uid"),
            "resourceVersion": str(cmeta.get("resourceVersion") or ""),
        }
        try:
            if new["spec"] != _spec(volume):
                new = self.api.update(new)
            if (new.get("status") or {}).get("phase") != "Bound":
                new["status"] = {**(new.get("status") or {}), "phase": "Bound"}
                new = self.api.update_status(new)
        except (Conflict, NotFound):
            self.queue.add_rate_limited(f"claim:{cmeta.get('namespace') or 'default'}/{cmeta.get('name')}")
            return None
        return new

    def _claim_status(self, claim: Obj, phase: str, volume: Obj | None) -> None:
        status: dict[str, Any] = {"phase": phase}
        if volume is not None and phase == "Bound":
            status["accessModes"] = list(_spec(volume).get("accessModes") or [])
            status["capacity"] = dict(_spec(volume).get("capacity") or {})
        if (claim.get("status") or {}) == status:
            return
        try:
            self.api.update_status({**claim, "status": status})
        except (Conflict, NotFound):
            self._claim_event(claim)
            return
        self._said.pop(str(_meta(claim).get("uid")), None)

    def _waiting(self, claim: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        uid = str(_meta(claim).get("uid"))
        if self._said.get(uid) == message:
            return  # told already; a new event each pass would flood the namespace
        self._said[uid] = message
        self._event(claim, reason, message, warning=warning)

    def _event(self, obj: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        event(self, obj, reason, message, COMPONENT, warning=warning)

    # -- volumes ---------------------------------------------------------------------------------

    def _sync_volume(self, volume: Obj) -> None:
        ref = _spec(volume).get("claimRef") or {}
        phase = (volume.get("status") or {}).get("phase")
        if not ref.get("name"):
            if phase != "Available":
                self._volume_phase(volume, "Available")
            return
        if not ref.get("uid"):
            return  # pre-bound by a user to a claim by name: the claim's pass binds it
        claim = self.claims.get(f"{ref.get('namespace') or 'default'}/{ref.get('name')}")
        if claim is not None and _meta(claim).get("uid") == ref.get("uid"):
            return
        try:  # the claim cache may lag the volume's: ask before releasing
            live = self.api.get(
                "PersistentVolumeClaim", str(ref.get("name")), str(ref.get("namespace") or "default")
            )
            if _meta(live).get("uid") == ref.get("uid"):
                return
        except NotFound:
            pass
        if phase != "Released":
            self._volume_phase(volume, "Released")  # the update brings this key back
            return
        if _spec(volume).get("persistentVolumeReclaimPolicy") == "Delete":
            users = self._users(str(ref.get("namespace") or "default"), str(ref.get("name")))
            if users:
                # nbkube has no pvc-protection finalizer: a claim deleted under a running pod must
                # not take the pod's data with it before the pod is gone
                self.log.info(
                    "volumebinding: volume %s waits for pod %s to stop before it is deleted",
                    _meta(volume).get("name"),
                    users[0],
                )
                self.queue.add_after(f"volume:{_meta(volume).get('name')}", 1.0)
                return
            self._delete_volume(volume)

    def _users(self, namespace: str, claim_name: str) -> list[str]:
        """Pods of `namespace` not finished that use the claim `claim_name`."""
        out = []
        for pod in self.pods.by_index("namespace", namespace):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for v in (pod.get("spec") or {}).get("volumes") or []:
                if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim_name:
                    out.append(str(_meta(pod).get("name")))
        return out

    def _volume_phase(self, volume: Obj, phase: str) -> None:
        try:
            self.api.update_status({**volume, "status": {**(volume.get("status") or {}), "phase": phase}})
        except (Conflict, NotFound):
            self._volume_event(volume)

    def _delete_volume(self, volume: Obj) -> None:
        name = str(_meta(volume).get("name"))
        path = str((_spec(volume).get("local") or {}).get("path") or "")
        ours = (_meta(volume).get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
        # only what the provisioner made: `<root>/<node>/<volume name>`
        if ours and path and os.path.isdir(path) and os.path.basename(path) == name:
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.api.delete("PersistentVolume", name)
        except NotFound:
            return
        self.log.info("volumebinding: deleted volume %s (reclaim policy Delete)", name)
