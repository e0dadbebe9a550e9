"""Field names of StatefulSets and of the storage kinds, for `fieldnames` (strict decoding).

Kept in a module of their own so the shared tables in `fieldnames.py` gain one line each;
`schemas_storage.py` describes the same shapes for the OpenAPI documents.
"""

from __future__ import annotations

__all__ = ["CHILDREN", "FIELDS", "SPEC_SHAPE", "TOP_LEVEL"]


def _f(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TOP = "apiVersion kind metadata "

FIELDS: dict[str, frozenset[str]] = {
    "StatefulSetSpec": _f(
        "replicas selector template volumeClaimTemplates serviceName podManagementPolicy updateStrategy "
        "revisionHistoryLimit minReadySeconds persistentVolumeClaimRetentionPolicy ordinals"
    ),
    "StatefulSetUpdateStrategy": _f("type rollingUpdate"),
    "StatefulSetRollingUpdate": _f("partition maxUnavailable"),
    "StatefulSetRetention": _f("whenDeleted whenScaled"),
    "StatefulSetOrdinals": _f("start"),
    # a volumeClaimTemplate is a whole claim
    "PersistentVolumeClaim": _f(_TOP + "spec status"),
    "PersistentVolumeClaimSpec": _f(
        "accessModes selector resources volumeName storageClassName volumeMode dataSource dataSourceRef "
        "volumeAttributesClassName"
    ),
    "VolumeResourceRequirements": _f("limits requests"),
    "PersistentVolumeSpec": _f(
        "capacity accessModes claimRef persistentVolumeReclaimPolicy storageClassName mountOptions volumeMode "
        "nodeAffinity volumeAttributesClassName local hostPath nfs csi iscsi rbd cephfs fc flexVolume "
        "awsElasticBlockStore gcePersistentDisk azureDisk azureFile cinder glusterfs flocker vsphereVolume "
        "quobyte photonPersistentDisk portworxVolume scaleIO storageos"
    ),
    "LocalVolumeSource": _f("path fsType"),
    "VolumeNodeAffinity": _f("required"),
}

TOP_LEVEL: dict[str, frozenset[str]] = {
    "StatefulSet": _f(_TOP + "spec status"),
    "PersistentVolume": _f(_TOP + "spec status"),
    "PersistentVolumeClaim": _f(_TOP + "spec status"),
    "StorageClass": _f(
        _TOP + "provisioner parameters reclaimPolicy mountOptions allowVolumeExpansion volumeBindingMode "
        "allowedTopologies"
    ),
}

CHILDREN: dict[tuple[str, str], str] = {
    ("StatefulSetSpec", "template"): "PodTemplate",
    ("StatefulSetSpec", "selector"): "LabelSelector",
    ("StatefulSetSpec", "updateStrategy"): "StatefulSetUpdateStrategy",
    ("StatefulSetSpec", "persistentVolumeClaimRetentionPolicy"): "StatefulSetRetention",
    ("StatefulSetSpec", "ordinals"): "StatefulSetOrdinals",
    ("StatefulSetSpec", "volumeClaimTemplates"): "PersistentVolumeClaim",
    ("StatefulSetUpdateStrategy", "rollingUpdate"): "StatefulSetRollingUpdate",
    ("PersistentVolumeClaim", "metadata"): "ObjectMeta",
    ("PersistentVolumeClaim", "spec"): "PersistentVolumeClaimSpec",
    ("PersistentVolumeClaimSpec", "selector"): "LabelSelector",
    ("PersistentVolumeClaimSpec", "resources"): "VolumeResourceRequirements",
    ("PersistentVolumeSpec", "local"): "LocalVolumeSource",
    ("PersistentVolumeSpec", "nodeAffinity"): "VolumeNodeAffinity",
    ("PersistentVolumeSpec", "claimRef"): "ObjectReference",
}

SPEC_SHAPE: dict[str, str] = {
    "StatefulSet": "StatefulSetSpec",
    "PersistentVolume": "PersistentVolumeSpec",
    "PersistentVolumeClaim": "PersistentVolumeClaimSpec",
}
