"""The REST verbs over HTTP: create/get/list/update/patch/delete, status and scale, errors."""

from __future__ import annotations

import pytest
from nbk_apitest import call, pod

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

PODS = "/api/v1/namespaces/default/pods"
RC = {
    "apiVersion": "v1",
    "kind": "ReplicationController",
    "metadata": {"name": "rc1"},
    "spec": {
        "replicas": 2,
        "selector": {"app": "web"},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        },
    },
}
SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
}


def test_create_get_list(server: ApiServer) -> None:
    code, created, _ = call(server, "POST", PODS, pod("a", app="web"))
    assert code == 201 and created["metadata"]["uid"] and created["metadata"]["namespace"] == "default"
    call(server, "POST", PODS, pod("b", app="db"))
    code, got, _ = call(server, "GET", f"{PODS}/a")
    assert code == 200 and got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    code, lst, _ = call(server, "GET", PODS)
    assert code == 200 and lst["kind"] == "PodList" and lst["apiVersion"] == "v1"
    assert lst["metadata"]["resourceVersion"] and [p["metadata"]["name"] for p in lst["items"]] == ["a", "b"]
    _, sel, _ = call(server, "GET", f"{PODS}?labelSelector=app%3Ddb&limit=10")
    assert [p["metadata"]["name"] for p in sel["items"]] == ["b"]
    _, fs, _ = call(
        server, "GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault,metadata.name%21%3Db"
    )
    assert [p["metadata"]["name"] for p in fs["items"]] == ["a"]
    _, none, _ = call(server, "GET", "/api/v1/pods?fieldSelector=status.phase%3DRunning")
    assert none["items"] == []


def test_errors(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", f"{PODS}/missing")
    assert (
        code == 404 and body["message"] == 'pods "missing" not found' and body["details"]["name"] == "missing"
    )
    call(server, "POST", PODS, pod("a"))
    code, body, _ = call(server, "POST", PODS, pod("a"))
    assert (code, body["reason"]) == (409, "AlreadyExists")
    bad = pod("b")
    bad["spec"]["containers"][0].pop("image")
    code, body, _ = call(server, "POST", PODS, bad)
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].image"
    code, body, _ = call(server, "POST", PODS, raw=b"{not json")
    assert code == 400 and "not valid JSON" in body["message"]
    code, body, _ = call(
        server,
        "POST",
        "/api/v1/namespaces/other/pods",
        pod("c") | {"metadata": {"name": "c", "namespace": "x"}},
    )
    assert code == 400 and "does not match the namespace" in body["message"]


def test_update_conflict_and_status(server: ApiServer) -> None:
    _, created, _ = call(server, "POST", PODS, pod("a"))
    created["metadata"]["labels"] = {"v": "2"}
    code, updated, _ = call(server, "PUT", f"{PODS}/a", created)
    assert code == 200 and updated["metadata"]["labels"] == {"v": "2"}
    code, body, _ = call(server, "PUT", f"{PODS}/a", created)  # the old resourceVersion
    assert (code, body["reason"]) == (409, "Conflict")
    updated["status"] = {"phase": "Running"}
    code, st, _ = call(server, "PUT", f"{PODS}/a/status", updated)
    assert code == 200 and st["status"]["phase"] == "Running"
    code, st, _ = call(server, "GET", f"{PODS}/a/status")
    assert code == 200 and st["status"]["phase"] == "Running"


def test_field_validation(server: ApiServer) -> None:
    typo = pod("a")
    typo["spec"]["containerz"] = []
    code, body, _ = call(server, "POST", f"{PODS}?fieldValidation=Strict", typo)
    assert code == 400 and "strict decoding error" in body["message"] and "containerz" in body["message"]
    code, _, headers = call(server, "POST", f"{PODS}?fieldValidation=Warn", typo)
    assert code == 201 and "containerz" in headers["Warning"]


@pytest.mark.parametrize(
    ("ctype", "patch"),
    [
        ("application/merge-patch+json", {"metadata": {"labels": {"x": "1"}}}),
        ("application/json-patch+json", [{"op": "add", "path": "/metadata/labels/x", "value": "1"}]),
        ("application/strategic-merge-patch+json", {"metadata": {"labels": {"x": "1"}}}),
    ],
)
def test_patch_types(server: ApiServer, ctype: str, patch: object) -> None:
    call(server, "POST", PODS, pod("a", app="web"))
    code, body, _ = call(server, "PATCH", f"{PODS}/a", patch, content_type=ctype)
    assert code == 200, body
    assert body["metadata"]["labels"] == {"app": "web", "x": "1"}


def test_strategic_patch_merges_containers_by_name(server: ApiServer) -> None:
    two = pod("a")
    two["spec"]["containers"].append({"name": "side", "image": "busybox"})
    call(server, "POST", PODS, two)
    patch = {"spec": {"containers": [{"name": "side", "image": "busybox:1"}]}}
    code, body, _ = call(
        server, "PATCH", f"{PODS}/a", patch, content_type="application/strategic-merge-patch+json"
    )
    assert code == 200 and [c["image"] for c in body["spec"]["containers"]] == ["nginx", "busybox:1"]


def test_patch_pinned_resource_version_conflicts(server: ApiServer) -> None:
    call(server, "POST", PODS, pod("a"))
    patch = {"metadata": {"resourceVersion": "1", "labels": {"x": "1"}}}
    code, body, _ = call(server, "PATCH", f"{PODS}/a", patch, content_type="application/merge-patch+json")
    assert (code, body["reason"]) == (409, "Conflict")
    code, body, _ = call(server, "PATCH", f"{PODS}/a", {"a": 1}, content_type="text/plain")
    assert code == 415


def test_patch_status(server: ApiServer) -> None:
    call(server, "POST", PODS, pod("a"))
    patch = {"status": {"phase": "Running"}, "spec": {"nodeName": "ignored"}}
    code, body, _ = call(
        server, "PATCH", f"{PODS}/a/status", patch, content_type="application/merge-patch+json"
    )
    assert code == 200 and body["status"]["phase"] == "Running" and "nodeName" not in body["spec"]


def test_scale(server: ApiServer, registry: Registry) -> None:
    base = "/api/v1/namespaces/default/replicationcontrollers"
    assert call(server, "POST", base, RC)[0] == 201
    code, scale, _ = call(server, "GET", f"{base}/rc1/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"]["selector"] == "app=web"
    code, scale, _ = call(
        server,
        "PATCH",
        f"{base}/rc1/scale",
        {"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert code == 200 and scale["spec"]["replicas"] == 3
    scale["spec"]["replicas"] = 4
    code, scale, _ = call(server, "PUT", f"{base}/rc1/scale", scale)
    assert code == 200 and registry.get("rc", "rc1", "default")["spec"]["replicas"] == 4
    code, body, _ = call(server, "PUT", f"{base}/rc1/scale", {"spec": {"replicas": -1}})
    assert code == 400


def test_nulls_in_a_body_are_absent_fields(server: ApiServer) -> None:
    body = pod("a")
    body["kind"] = None
    body["metadata"]["creationTimestamp"] = None
    body["metadata"]["annotations"] = {}
    body["spec"]["nodeSelector"] = None
    code, created, _ = call(server, "POST", PODS, body)
    assert code == 201 and created["kind"] == "Pod" and created["metadata"]["creationTimestamp"]
    assert "annotations" not in created["metadata"] and "nodeSelector" not in created["spec"]
    code, cm, _ = call(
        server, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": None, "data": {"a": "b"}}
    )
    assert code == 422  # no name: the null metadata is an absent one, refused by validation


def test_delete(server: ApiServer, registry: Registry) -> None:
    call(server, "POST", PODS, pod("a"))
    code, body, _ = call(
        server, "DELETE", f"{PODS}/a", {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
    )
    assert code == 200 and body["kind"] == "Pod"  # pods come back, as Kubernetes returns them
    assert call(server, "DELETE", f"{PODS}/a")[0] == 404
    base = "/api/v1/namespaces/default/replicationcontrollers"
    call(server, "POST", base, RC)
    code, body, _ = call(server, "DELETE", f"{base}/rc1?propagationPolicy=Orphan")
    # an orphaning delete answers with the object it marked, as upstream's orphan finalizer does
    assert code == 200 and body["kind"] == "ReplicationController" and body["metadata"]["deletionTimestamp"]
    call(server, "POST", base, RC)
    code, body, _ = call(server, "DELETE", f"{base}/rc1")
    assert code == 200 and body["kind"] == "Status" and body["status"] == "Success"
    assert body["details"] == {"name": "rc1", "kind": "replicationcontrollers", "uid": body["details"]["uid"]}
    call(server, "POST", "/api/v1/namespaces/default/services", SVC)
    code, body, _ = call(server, "DELETE", "/api/v1/namespaces/default/services/web")
    assert code == 200 and body["kind"] == "Service" and body["metadata"]["name"] == "web"
    code, body, _ = call(server, "DELETE", f"{PODS}/x?propagationPolicy=Sideways")
    assert code == 400


def test_cluster_scoped_and_table(server: ApiServer) -> None:
    code, ns, _ = call(
        server,
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
    )
    assert code == 201
    code, table, _ = call(
        server, "GET", "/api/v1/namespaces/team", accept="application/json;as=Table;v=v1;g=meta.k8s.io"
    )
    assert code == 200 and table["kind"] == "Table" and table["rows"][0]["cells"][:2] == ["team", "Active"]
    code, body, _ = call(
        server,
        "GET",
        "/api/v1/pods?includeObject=Everything",
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    assert code == 400


def test_delete_collection(server: ApiServer, registry: Registry) -> None:
    for name, app in (("a", "web"), ("b", "web"), ("c", "db")):
        call(server, "POST", PODS, pod(name, app=app))
    code, body, _ = call(server, "DELETE", f"{PODS}?labelSelector=app%3Dweb")
    assert code == 200 and body["kind"] == "PodList"
    assert sorted(p["metadata"]["name"] for p in body["items"]) == ["a", "b"]
    assert [p["metadata"]["name"] for p in registry.list("Pod")[0]] == ["c"]
