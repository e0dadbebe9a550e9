"""OpenAPI descriptions of StatefulSets and of the storage kinds (PersistentVolume,
PersistentVolumeClaim, StorageClass), registered into `schemas.SHAPES` by `register`.

The shapes carry the names `fieldnames_storage` gives them (tests/api/test_schemas.py checks the two
agree). A module of its own, so the shared table in `schemas.py` gains one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register"]

_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."
_STORAGE = "io.k8s.api.storage.v1."
_SPEC = "Desired state of the object."
_STATUS = "Most recently observed status of the object; read-only."
_ACCESS = ("[]string", "ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod.")
_UNSERVED = ("object", "Not served by nbkube's nodes; refused by validation.")
_UNSERVED_SOURCES = tuple(
    [
        "nfs",
        "csi",
        "iscsi",
        "rbd",
        "cephfs",
        "fc",
        "flexVolume",
        "awsElasticBlockStore",
        "gcePersistentDisk",
        "azureDisk",
        "azureFile",
        "cinder",
        "glusterfs",
        "flocker",
        "vsphereVolume",
        "quobyte",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "storageos",
    ]
)


def register(shape: Callable[..., None], kind: Callable[..., None]) -> None:
    """Add the shapes with `schemas._shape` and the kinds with `schemas._kind`."""
    _shapes(shape)
    _kinds(kind)


def _shapes(shape: Callable[..., None]) -> None:
    shape(
        "StatefulSetSpec",
        _APPS + "StatefulSetSpec",
        "The desired state of a stateful set.",
        {
            "replicas": ("int32", "The number of desired pods. Defaults to 1."),
            "selector": ("LabelSelector", "A label query over pods; must match the template's labels."),
            "template": ("PodTemplate", "The pod each ordinal is made from."),
            "volumeClaimTemplates": (
                "[]PersistentVolumeClaim",
                "Claims made per pod (TEMPLATE-SET-ORDINAL) and mounted by name; they outlive the pods.",
            ),
            "serviceName": ("string", "The headless Service that gives the pods their DNS names."),
            "podManagementPolicy": ("string", "OrderedReady (one at a time, in order) or Parallel."),
            "updateStrategy": (
                "StatefulSetUpdateStrategy",
                "How pods are replaced when the template changes.",
            ),
            "revisionHistoryLimit": ("int32", "Revisions kept. Defaults to 10."),
            "minReadySeconds": ("int32", "Seconds a new pod must be ready to count as available."),
            "persistentVolumeClaimRetentionPolicy": (
                "StatefulSetRetention",
                "What happens to the claims when the set is deleted or scaled down.",
            ),
            "ordinals": ("StatefulSetOrdinals", "The number the first pod gets."),
        },
        required=("selector", "template"),
        enums={"podManagementPolicy": ("OrderedReady", "Parallel")},
    )
    shape(
        "StatefulSetUpdateStrategy",
        _APPS + "StatefulSetUpdateStrategy",
        "How a stateful set updates.",
        {
            "type": ("string", "RollingUpdate (default) or OnDelete."),
            "rollingUpdate": ("StatefulSetRollingUpdate", "Parameters of a RollingUpdate."),
        },
        enums={"type": ("OnDelete", "RollingUpdate")},
    )
    shape(
        "StatefulSetRollingUpdate",
        _APPS + "RollingUpdateStatefulSetStrategy",
        "A rolling update.",
        {
            "partition": ("int32", "Pods with an ordinal at or above it are updated. Defaults to 0."),
            "maxUnavailable": ("intstr", "Alpha upstream; not implemented by nbkube (refused)."),
        },
    )
    shape(
        "StatefulSetRetention",
        _APPS + "StatefulSetPersistentVolumeClaimRetentionPolicy",
        "The lifecycle of the claims made from volumeClaimTemplates.",
        {
            "whenDeleted": ("string", "Retain (default: the claims stay) or Delete."),
            "whenScaled": ("string", "Retain (default: the claims stay) or Delete."),
        },
    )
    shape(
        "StatefulSetOrdinals",
        _APPS + "StatefulSetOrdinals",
        "The numbering of a set's pods.",
        {
            "start": ("int32", "The ordinal of the first pod. Defaults to 0."),
        },
    )
    shape(
        "StatefulSetStatus",
        _APPS + "StatefulSetStatus",
        "The observed state of a stateful set.",
        {
            "observedGeneration": ("int64", "The generation observed by the controller."),
            "replicas": ("int32", "Pods created by the controller."),
            "readyReplicas": ("int32", "Pods with a Ready condition."),
            "currentReplicas": ("int32", "Pods at currentRevision."),
            "updatedReplicas": ("int32", "Pods at updateRevision."),
            "currentRevision": ("string", "The revision of the pods 0..currentReplicas-1."),
            "updateRevision": ("string", "The revision of the template now in the spec."),
            "collisionCount": ("int32", "Count of hash collisions of the revisions."),
            "availableReplicas": ("int32", "Pods ready for at least minReadySeconds."),
            "conditions": ("[]WorkloadCondition", "The latest observations of the set's state."),
        },
        required=("replicas",),
    )
    shape(
        "PersistentVolumeClaimSpec",
        _CORE + "PersistentVolumeClaimSpec",
        "What a claim asks for.",
        {
            "accessModes": _ACCESS,
            "selector": ("LabelSelector", "A label query over volumes to bind to."),
            "resources": ("VolumeResourceRequirements", "The storage the claim requests."),
            "volumeName": ("string", "The volume bound to this claim (set by the binder)."),
            "storageClassName": ("string", "The StorageClass; the default class when absent."),
            "volumeMode": ("string", "Filesystem (Block is not served by nbkube)."),
            "dataSource": _UNSERVED,
            "dataSourceRef": _UNSERVED,
            "volumeAttributesClassName": ("string", "A VolumeAttributesClass (unused by nbkube)."),
        },
    )
    shape(
        "VolumeResourceRequirements",
        _CORE + "VolumeResourceRequirements",
        "Storage requested.",
        {
            "limits": ("{}quantity", "The most storage allowed."),
            "requests": ("{}quantity", "The storage required (key `storage`)."),
        },
    )
    shape(
        "PersistentVolumeClaimStatus",
        _CORE + "PersistentVolumeClaimStatus",
        "A claim's state.",
        {
            "phase": ("string", "Pending, Bound or Lost."),
            "accessModes": _ACCESS,
            "capacity": ("{}quantity", "The capacity of the bound volume."),
            "conditions": ("[]object", "Conditions of the claim."),
        },
    )
    pv_fields: dict[str, tuple[str, str]] = {
        "capacity": ("{}quantity", "The volume's size (key `storage`)."),
        "accessModes": _ACCESS,
        "claimRef": ("ObjectReference", "The claim bound to this volume."),
        "persistentVolumeReclaimPolicy": ("string", "Retain or Delete: what happens when the claim goes."),
        "storageClassName": ("string", "The StorageClass this volume belongs to."),
        "mountOptions": ("[]string", "Mount options (unused for folders)."),
        "volumeMode": ("string", "Filesystem."),
        "nodeAffinity": ("VolumeNodeAffinity", "The nodes that can reach this volume."),
        "volumeAttributesClassName": ("string", "A VolumeAttributesClass (unused by nbkube)."),
        "local": ("LocalVolumeSource", "A folder on the node the affinity names."),
        "hostPath": ("HostPathVolumeSource", "A path on the host (single-node testing)."),
    }
    pv_fields.update(dict.fromkeys(_UNSERVED_SOURCES, _UNSERVED))
    shape("PersistentVolumeSpec", _CORE + "PersistentVolumeSpec", "A volume's description.", pv_fields)
    shape(
        "LocalVolumeSource",
        _CORE + "LocalVolumeSource",
        "A folder on one node.",
        {
            "path": ("string", "The absolute path on the node."),
            "fsType": ("string", "Filesystem type (unused for folders)."),
        },
        required=("path",),
    )
    shape(
        "VolumeNodeAffinity",
        _CORE + "VolumeNodeAffinity",
        "Where a volume can be used.",
        {
            "required": ("NodeSelector", "Nodes the volume is reachable from."),
        },
    )
    shape(
        "PersistentVolumeStatus",
        _CORE + "PersistentVolumeStatus",
        "A volume's state.",
        {
            "phase": ("string", "Pending, Available, Bound, Released or Failed."),
            "message": ("string", "Why the volume is in this phase."),
            "reason": ("string", "A short reason for the phase."),
            "lastPhaseTransitionTime": ("time", "When the phase last changed."),
        },
    )
    shape(
        "TopologySelectorTerm",
        _CORE + "TopologySelectorTerm",
        "A topology selector term.",
        {
            "matchLabelExpressions": ("[]object", "Label requirements, ANDed."),
        },
    )


def _kinds(kind: Callable[..., Any]) -> None:
    # the kinds made of a spec and a status: NAME's are the shapes NAMESpec and NAMEStatus above
    for name, model, description in (
        ("StatefulSet", _APPS + "StatefulSet", "Pods with stable names, hostnames and storage."),
        ("PersistentVolume", _CORE + "PersistentVolume", "A piece of storage in the cluster."),
        ("PersistentVolumeClaim", _CORE + "PersistentVolumeClaim", "A user's request for storage."),
    ):
        kind(name, model, description, {"spec": (name + "Spec", _SPEC), "status": (name + "Status", _STATUS)})
    kind(
        "StorageClass",
        _STORAGE + "StorageClass",
        "A class of dynamically provisioned volumes.",
        {
            "provisioner": ("string", "The provisioner (nbkube.io/local-path for nbkube's folders)."),
            "parameters": ("{}string", "Parameters for the provisioner."),
            "reclaimPolicy": ("string", "Delete (default) or Retain, for the volumes it provisions."),
            "mountOptions": ("[]string", "Mount options of its volumes."),
            "allowVolumeExpansion": ("boolean", "Whether claims may grow."),
            "volumeBindingMode": ("string", "Immediate or WaitForFirstConsumer."),
            "allowedTopologies": ("[]TopologySelectorTerm", "Where volumes may be provisioned."),
        },
        required=("provisioner",),
    )
