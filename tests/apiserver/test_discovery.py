"""Discovery documents are generated from the kind table, in the legacy (non-aggregated) form."""

from __future__ import annotations

from typing import Any

from nbk_apitest import call

from nbkube.api.kinds import KINDS
from nbkube.apiserver import ApiServer, discovery
from nbkube.apiserver.routing import REVIEW_KINDS


def test_core_resource_list(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", "/api/v1")
    assert code == 200 and body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
    by_name: dict[str, Any] = {r["name"]: r for r in body["resources"]}
    pods = by_name["pods"]
    assert pods["namespaced"] and pods["kind"] == "Pod" and pods["shortNames"] == ["po"]
    assert pods["singularName"] == "pod" and "watch" in pods["verbs"]
    assert "pods/status" in by_name and "configmaps/status" not in by_name
    assert by_name["pods/log"]["verbs"] == ["get"]
    assert by_name["replicationcontrollers/scale"]["kind"] == "Scale"
    assert by_name["replicationcontrollers/scale"]["group"] == "autoscaling"
    assert not by_name["nodes"]["namespaced"]


def test_every_kind_is_discoverable(server: ApiServer) -> None:
    _, groups, _ = call(server, "GET", "/apis")
    gvs = ["v1"] + [g["preferredVersion"]["groupVersion"] for g in groups["groups"]]
    found = set()
    for gv in gvs:
        code, body, _ = call(server, "GET", f"/api/{gv}" if gv == "v1" else f"/apis/{gv}")
        assert code == 200
        found |= {r["kind"] for r in body["resources"] if "/" not in r["name"]}
    assert found == {k.kind for k in (*KINDS, *REVIEW_KINDS)}
    _, deploy, _ = call(server, "GET", "/apis/apps/v1")
    assert {"deployments/scale", "replicasets/scale"} <= {r["name"] for r in deploy["resources"]}


def test_version_api_health(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", "/version")
    assert code == 200 and body["major"] == "1" and body["gitVersion"].startswith("v1.32")
    _, api, _ = call(server, "GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    for path in ("/healthz", "/readyz", "/livez"):
        assert call(server, "GET", path)[:2] == (200, "ok")


def test_aggregated_discovery_request_gets_legacy_json(server: ApiServer) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, body, headers = call(server, "GET", "/apis", accept=accept)
    assert code == 200 and body["kind"] == "APIGroupList"
    assert headers["Content-Type"] == "application/json"  # kubectl falls back on this content type


def test_unknown_path_is_a_404_status(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", "/nothing/here")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    assert call(server, "GET", "/apis/example.com/v1")[0] == 404


def test_review_kinds_are_create_only(server: ApiServer) -> None:
    _, body, _ = call(server, "GET", "/apis/authorization.k8s.io/v1")
    verbs = {r["name"]: r["verbs"] for r in body["resources"]}
    assert verbs == {"selfsubjectaccessreviews": ["create"], "selfsubjectrulesreviews": ["create"]}


def test_pod_stream_subresources_are_discovered() -> None:
    doc = discovery.resource_list("v1")
    assert doc is not None
    by_name = {r["name"]: r for r in doc["resources"]}
    for sub, kind in (
        ("exec", "PodExecOptions"),
        ("attach", "PodAttachOptions"),
        ("portforward", "PodPortForwardOptions"),
    ):
        assert by_name[f"pods/{sub}"]["kind"] == kind
        assert by_name[f"pods/{sub}"]["verbs"] == ["create", "get"]
