"""Server-side apply and managedFields through the API: the real kubectl (`apply --server-side`,
conflicts with `kubectl scale`, `--force-conflicts`, the upgrade from client-side apply) and raw
HTTP (Status causes, dryRun, fieldValidation, the manager of every write)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from nbk_apitest import Kubectl, call

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

APPLY = "application/apply-patch+yaml"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(replicas: int = 2, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 8080}]}]
                },
            },
        },
    }


def manifest(tmp_path: Path, obj: dict[str, Any]) -> str:
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for e in obj["metadata"].get("managedFields", []):
        key = f"{e['manager']}/{e['operation']}" + (f"/{e['subresource']}" if e.get("subresource") else "")
        out[key] = e
    return out


def get(kubectl: Kubectl) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kubectl.ok("get", "deploy/web", "-o", "json", "--show-managed-fields"))
    return obj


def apply(server: ApiServer, obj: dict[str, Any], query: str = "fieldManager=tool") -> tuple[int, Any]:
    code, body, _ = call(server, "PATCH", f"{DEPLOYMENTS}/web?{query}", obj, content_type=APPLY)
    return code, body


# -- the real kubectl -------------------------------------------------------------------------------


def test_kubectl_apply_server_side_twice(kubectl: Kubectl, tmp_path: Path) -> None:
    path = manifest(tmp_path, deployment())
    assert "deployment.apps/web serverside-applied" in kubectl.ok("apply", "--server-side", "-f", path)
    first = get(kubectl)
    entry = managers(first)["kubectl/Apply"]
    assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "apps/v1"
    container = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert container["."] == {} and container["f:image"] == {}
    kubectl.ok("apply", "--server-side", "-f", path)
    second = get(kubectl)
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]  # unchanged
    # kubectl hides managedFields unless asked; the server always sends them
    assert "managedFields" not in kubectl.ok("get", "deploy/web", "-o", "yaml")


def test_kubectl_scale_then_apply_conflicts_until_forced(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.ok("apply", "--server-side", "-f", manifest(tmp_path, deployment(replicas=2)))
    kubectl.ok("scale", "deploy/web", "--replicas=3")
    assert "kubectl/Update/scale" in managers(get(kubectl))
    path = manifest(tmp_path, deployment(replicas=4))
    proc = kubectl("apply", "--server-side", "-f", path)
    assert proc.returncode == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: '
        ".spec.replicas" in proc.stderr
    )
    assert "--force-conflicts" in proc.stderr  # kubectl recognised an apply conflict
    assert get(kubectl)["spec"]["replicas"] == 3
    kubectl.ok("apply", "--server-side", "--force-conflicts", "-f", path)
    obj = get(kubectl)
    assert obj["spec"]["replicas"] == 4
    assert "kubectl/Update/scale" not in managers(obj)  # it owned only replicas, now taken
    assert "f:replicas" in managers(obj)["kubectl/Apply"]["fieldsV1"]["f:spec"]


def test_kubectl_apply_removes_what_it_stopped_applying(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.ok("apply", "--server-side", "-f", manifest(tmp_path, deployment(tier="db")))
    kubectl.ok("label", "deploy/web", "team=a")  # another manager's label stays
    assert get(kubectl)["metadata"]["labels"] == {"app": "web", "tier": "db", "team": "a"}
    kubectl.ok("apply", "--server-side", "-f", manifest(tmp_path, deployment()))
    obj = get(kubectl)
    assert obj["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert "kubectl-label/Update" in managers(obj)


def test_kubectl_apply_server_side_after_client_side(kubectl: Kubectl, tmp_path: Path) -> None:
    path = manifest(tmp_path, deployment(replicas=2))
    kubectl.ok("apply", "-f", path)
    created = get(kubectl)
    assert set(managers(created)) == {"kubectl-client-side-apply/Update"}
    # the manifest changed: client-side apply owns replicas, but left it as it last applied it
    out = kubectl.ok("apply", "--server-side", "-f", manifest(tmp_path, deployment(replicas=5)))
    assert "serverside-applied" in out
    obj = get(kubectl)
    assert obj["spec"]["replicas"] == 5
    # kubectl moved client-side apply's fields to its own applier (and the annotation's owner)
    assert "kubectl-client-side-apply/Update" not in managers(obj)
    assert "kubectl/Apply" in managers(obj)
    last = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["replicas"] == 5
    kubectl.ok("apply", "--server-side", "-f", manifest(tmp_path, deployment(replicas=5)))
    assert get(kubectl)["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_kubectl_writes_record_their_managers(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl.ok("create", "-f", manifest(tmp_path, deployment()))
    kubectl.ok("annotate", "deploy/web", "note=x")
    assert {"kubectl-create/Update", "kubectl-annotate/Update"} <= set(managers(get(kubectl)))


# -- HTTP -------------------------------------------------------------------------------------------


def test_apply_creates_then_changes_nothing(server: ApiServer, registry: Registry) -> None:
    code, created = apply(server, deployment())
    assert code == 201
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("tool", "Apply")
    code, again = apply(server, deployment())
    assert code == 200 and again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert registry.get("Deployment", "web", "default")["metadata"]["managedFields"] == [entry]


def test_conflict_status_has_causes_and_force_takes_the_field(server: ApiServer) -> None:
    apply(server, deployment(), "fieldManager=first")
    code, status = apply(server, deployment(replicas=3, tier="x"), "fieldManager=second")
    assert code == 409
    assert status["reason"] == "Conflict" and status["code"] == 409
    assert status["message"] == ('Apply failed with 1 conflict: conflict with "first": .spec.replicas')
    assert status["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "first"', "field": ".spec.replicas"}
    ]
    code, obj = apply(server, deployment(replicas=3), "fieldManager=second&force=true")
    assert code == 200 and obj["spec"]["replicas"] == 3
    first = managers(obj)["first/Apply"]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in first and "f:replicas" in managers(obj)["second/Apply"]["fieldsV1"]["f:spec"]


def test_apply_dry_run_writes_nothing(server: ApiServer, registry: Registry) -> None:
    code, obj = apply(server, deployment(), "fieldManager=tool&dryRun=All")
    assert code == 201 and obj["metadata"]["managedFields"][0]["manager"] == "tool"
    assert registry.list("Deployment", "default")[0] == []
    apply(server, deployment())
    before = registry.get("Deployment", "web", "default")
    code, obj = apply(server, deployment(replicas=9), "fieldManager=tool&dryRun=All")
    assert code == 200 and obj["spec"]["replicas"] == 9
    assert registry.get("Deployment", "web", "default") == before


def test_apply_strict_field_validation_names_unknown_fields(server: ApiServer, registry: Registry) -> None:
    bad = deployment()
    bad["spec"]["replicaz"] = 1
    code, status = apply(server, bad, "fieldManager=tool&fieldValidation=Strict")
    assert code == 400 and "replicaz" in status["message"]
    assert registry.list("Deployment", "default")[0] == []


def test_apply_options_are_checked(server: ApiServer) -> None:
    code, status = apply(server, deployment(), "")
    assert code == 422 and "fieldManager: Required value" in status["message"]
    code, status = apply(server, deployment(), "fieldManager=tool&force=maybe")
    assert code == 400
    apply(server, deployment())
    code, status, _ = call(
        server,
        "PATCH",
        f"{DEPLOYMENTS}/web?force=true",
        {"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )
    assert code == 400 and "non-apply patch" in status["message"]


def test_every_write_records_its_manager(server: ApiServer) -> None:
    code, created, _ = call(server, "POST", f"{DEPLOYMENTS}?fieldManager=maker", deployment())
    assert code == 201 and set(managers(created)) == {"maker/Update"}
    created["spec"]["replicas"] = 4
    code, updated, _ = call(server, "PUT", f"{DEPLOYMENTS}/web?fieldManager=editor", created)
    assert code == 200
    owners = managers(updated)
    assert owners["editor/Update"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners["maker/Update"]["fieldsV1"]["f:spec"]
    code, patched, _ = call(
        server,
        "PATCH",
        f"{DEPLOYMENTS}/web/status?fieldManager=controller",
        {"status": {"observedGeneration": 2}},
        content_type="application/merge-patch+json",
    )
    assert code == 200
    assert managers(patched)["controller/Update/status"]["fieldsV1"] == {
        "f:status": {"f:observedGeneration": {}}
    }


def test_apply_to_the_status_subresource(server: ApiServer) -> None:
    apply(server, deployment())
    status = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    status["status"] = {"observedGeneration": 1, "replicas": 2}
    code, obj, _ = call(
        server, "PATCH", f"{DEPLOYMENTS}/web/status?fieldManager=ctl", status, content_type=APPLY
    )
    assert code == 200 and obj["status"]["replicas"] == 2
    entry = managers(obj)["ctl/Apply/status"]
    assert entry["fieldsV1"] == {"f:status": {"f:observedGeneration": {}, "f:replicas": {}}}
    assert "tool/Apply" in managers(obj)  # the main resource's applier is untouched


def test_apply_to_the_scale_subresource(server: ApiServer) -> None:
    apply(server, deployment(), "fieldManager=first")
    scale = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web"},
        "spec": {"replicas": 6},
    }
    path = f"{DEPLOYMENTS}/web/scale?fieldManager=hpa"
    code, status, _ = call(server, "PATCH", path, scale, content_type=APPLY)
    assert (
        code == 409
        and status["message"] == 'Apply failed with 1 conflict: conflict with "first": .spec.replicas'
    )
    code, body, _ = call(server, "PATCH", path + "&force=true", scale, content_type=APPLY)
    assert code == 200 and body["kind"] == "Scale" and body["spec"]["replicas"] == 6
    _code, obj, _ = call(server, "GET", f"{DEPLOYMENTS}/web")
    assert managers(obj)["hpa/Apply/scale"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
