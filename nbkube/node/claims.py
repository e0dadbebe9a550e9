"""How a node finds the folder behind a pod's persistentVolumeClaim volume.

The runtimes mount (Docker: a bind mount) or hand over (processes: `$NBKUBE_VOLUME_<NAME>`) a host
folder; this resolver turns a claim name into that folder through the API: the claim must be
Bound, its volume a `local` or `hostPath` one whose node affinity admits this node. A volume made
by nbkube's local-path provisioner gets its folder made here when missing (the provisioner runs
in the control plane, which may be on another host than a joined node). Until the claim is bound
the answer is a retryable PodConfigError, so the pod waits (as the kubelet's volume manager does)
and starts once the binder has done its work.
"""

from __future__ import annotations

import os
from typing import Any

from nbkube.api.meta import Obj
from nbkube.errors import NotFound
from nbkube.node.runtime.volumes import ClaimResolver, PodConfigError

__all__ = ["claim_resolver", "LOCAL_PATH_PROVISIONER"]

LOCAL_PATH_PROVISIONER = "nbkube.io/local-path"
_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def _on_node(volume: Obj, node_name: str) -> bool:
    terms = (((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get(
        "nodeSelectorTerms"
    )
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchExpressions") or []
        # the hostname label and the metadata.name field both equal the node's name here
        named = [e for e in exprs if e.get("key") == "kubernetes.io/hostname"] + [
            f for f in term.get("matchFields") or [] if f.get("key") == "metadata.name"
        ]
        if any(e.get("operator") == "In" and node_name in (e.get("values") or []) for e in named):
            return True
        if not named:
            return True  # other labels: the scheduler checked them against the node's labels
    return False


def claim_resolver(api: Any, node_name: str) -> ClaimResolver:
    def resolve(pod: Obj, claim_name: str) -> str:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        where = f"persistentvolumeclaim {claim_name!r}"
        try:
            claim = api.get("PersistentVolumeClaim", claim_name, namespace)
        except NotFound:
            raise PodConfigError("CreateContainerConfigError", f"{where} not found", retry=True) from None
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
            raise PodConfigError("ContainerCreating", f"{where} is not bound yet", retry=True)
        try:
            volume = api.get("PersistentVolume", str(volume_name))
        except NotFound:
            raise PodConfigError(
                "CreateContainerConfigError", f"{where}: volume {volume_name} not found", retry=True
            ) from None
        spec = volume.get("spec") or {}
        source = spec.get("local") or spec.get("hostPath") or {}
        path = str(source.get("path") or "")
        if not path or not os.path.isabs(path):
            raise PodConfigError(
                "VolumeUnsupported", f"{where}: volume {volume_name} is not a local or hostPath folder"
            )
        if not _on_node(volume, node_name):
            raise PodConfigError(
                "CreateContainerConfigError", f"{where}: volume {volume_name} is not on node {node_name}"
            )
        ours = ((volume.get("metadata") or {}).get("annotations") or {}).get(
            _PROVISIONED_BY
        ) == LOCAL_PATH_PROVISIONER
        if ours and not os.path.isdir(path):
            try:
                os.makedirs(path, exist_ok=True)
                os.chmod(path, 0o777)  # any runAsUser of the pods may write
            except OSError as exc:
                raise PodConfigError(
                    "CreateContainerConfigError", f"{where}: {path}: {exc}", retry=True
                ) from exc
        if not os.path.isdir(path):
            raise PodConfigError(
                "CreateContainerConfigError",
                f"{where}: folder {path} of volume {volume_name} does not exist on node {node_name}",
                retry=True,
            )
        return path

    return resolve
