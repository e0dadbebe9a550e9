"""StatefulSet and storage kinds in the api layer: defaults, initial status, printers, unknown
fields and update rules (the controllers' behaviour is tested in tests/controlplane)."""

from __future__ import annotations

from typing import Any

from nbkube.api import kinds
from nbkube.api.defaults import apply_defaults
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.initial_status import fill_initial_status
from nbkube.api.printers import table_rows
from nbkube.api.validation import validate, validate_update
from nbkube.clock import rfc3339


def _sts() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
            ],
        },
    }  # fmt: skip


def test_kinds_and_short_names() -> None:
    assert kinds.lookup("sts").kind == "StatefulSet" and kinds.lookup("statefulsets.apps").kind == "StatefulSet"
    assert kinds.lookup("pv").namespaced is False and kinds.lookup("pvc").namespaced is True
    assert kinds.lookup("sc").api_version == "storage.k8s.io/v1" and kinds.lookup("sc").namespaced is False
    assert kinds.lookup("controllerrevisions").api_version == "apps/v1"


def test_statefulset_defaults_and_initial_status() -> None:
    obj = apply_defaults(_sts())
    spec = obj["spec"]
    assert spec["replicas"] == 1 and spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert validate(obj) == []
    fill_initial_status(obj)
    assert obj["status"] == {"replicas": 0, "availableReplicas": 0}
    on_delete = apply_defaults({**_sts(), "spec": {**_sts()["spec"], "updateStrategy": {"type": "OnDelete"}}})
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_storage_defaults() -> None:
    sc = apply_defaults({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "x"},
                         "provisioner": "nbkube.io/local-path"})  # fmt: skip
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "Immediate"
    pv = apply_defaults({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "v"},
                         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                  "hostPath": {"path": "/tmp/v"}}})  # fmt: skip
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and validate(pv) == []
    fill_initial_status(pv)
    assert pv["status"] == {"phase": "Pending"}


def test_printers() -> None:
    now = 1_000_000.0
    meta = {"creationTimestamp": rfc3339(now - 90)}
    sts = {**_sts(), "metadata": {"name": "db", **meta}, "status": {"readyReplicas": 2}}
    sts["spec"]["replicas"] = 3
    headers, rows = table_rows("sts", [sts], wide=True, now=now)
    assert headers == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"] and rows == [["db", "2/3", "90s", "c", "busybox"]]
    pvc = {"kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-0", **meta},
           "spec": {"volumeName": "pv1", "storageClassName": "local-path"},
           "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}}  # fmt: skip
    headers, rows = table_rows("pvc", [pvc], now=now)
    assert headers[1:5] == ["STATUS", "VOLUME", "CAPACITY", "ACCESS MODES"]
    assert rows[0][:6] == ["data-db-0", "Bound", "pv1", "1Gi", "RWO,ROX", "local-path"]
    pv = {"kind": "PersistentVolume", "metadata": {"name": "pv1", **meta},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete",
                   "claimRef": {"namespace": "default", "name": "data-db-0"}, "storageClassName": "local-path"},
          "status": {"phase": "Bound"}}  # fmt: skip
    headers, rows = table_rows("pv", [pv], now=now)
    assert headers[1:7] == ["CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS"]
    assert rows[0][:7] == ["pv1", "1Gi", "RWO", "Delete", "Bound", "default/data-db-0", "local-path"]
    sc = {"kind": "StorageClass", "provisioner": "nbkube.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
          "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}, **meta}}  # fmt: skip
    headers, rows = table_rows("sc", [sc], now=now)
    assert headers == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert rows == [["local-path (default)", "nbkube.io/local-path", "Delete", "WaitForFirstConsumer", "false", "90s"]]


def test_unknown_fields_are_named() -> None:
    obj = _sts()
    obj["spec"]["podManagmentPolicy"] = "Parallel"
    obj["spec"]["volumeClaimTemplates"][0]["spec"]["storageClass"] = "x"
    paths = {e.path for e in unknown_fields(obj)}
    assert paths == {"spec.podManagmentPolicy", "spec.volumeClaimTemplates[0].spec.storageClass"}


def test_volume_claim_templates_may_not_change() -> None:
    old = apply_defaults(_sts())
    new = apply_defaults(_sts())
    new["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert any(e.path == "spec" for e in validate_update(new, old))
    scaled = apply_defaults(_sts())
    scaled["spec"]["replicas"] = 4
    assert validate_update(scaled, old) == []
