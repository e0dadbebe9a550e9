"""Discovery documents are generated from the kind table, in the legacy form and the aggregated
(apidiscovery.k8s.io v2 and v2beta1) form kubectl asks for first."""

from __future__ import annotations

from typing import Any

from nbk_apitest import call

from nbkube.api.kinds import KINDS
from nbkube.apiserver import ApiServer, discovery
from nbkube.apiserver.routing import METRICS_KINDS, REVIEW_KINDS


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
    assert found == {k.kind for k in (*KINDS, *REVIEW_KINDS, *METRICS_KINDS)}
    _, deploy, _ = call(server, "GET", "/apis/apps/v1")
    assert {"deployments/scale", "replicasets/scale"} <= {r["name"] for r in deploy["resources"]}


def test_version_api_health(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", "/version")
    assert code == 200 and body["major"] == "1" and body["gitVersion"].startswith("v1.32")
    _, api, _ = call(server, "GET", "/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    for path in ("/healthz", "/readyz", "/livez"):
        assert call(server, "GET", path)[:2] == (200, "ok")


_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def test_plain_json_request_gets_legacy_documents(server: ApiServer) -> None:
    code, body, headers = call(server, "GET", "/apis", accept="application/json")
    assert code == 200 and body["kind"] == "APIGroupList"
    assert headers["Content-Type"] == "application/json"


def test_aggregated_discovery_best_version_first(server: ApiServer) -> None:
    # kubectl >= 1.30 asks for v2, then v2beta1, then the legacy form
    accept = f"{_V2},{_V2BETA1},application/json"
    code, body, headers = call(server, "GET", "/apis", accept=accept)
    assert code == 200 and headers["Content-Type"] == _V2
    assert body["kind"] == "APIGroupDiscoveryList" and body["apiVersion"] == "apidiscovery.k8s.io/v2"
    # kubectl 1.28 and 1.29 ask for v2beta1 only
    code, body, headers = call(server, "GET", "/api", accept=f"{_V2BETA1},application/json")
    assert code == 200 and headers["Content-Type"] == _V2BETA1
    assert body["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    # a protobuf-only aggregated ask is answered in the legacy JSON form
    accept = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    assert call(server, "GET", "/apis", accept=accept)[1]["kind"] == "APIGroupList"


def test_aggregated_core_group(server: ApiServer) -> None:
    _, body, _ = call(server, "GET", "/api", accept=_V2)
    [core] = body["items"]
    assert "name" not in core["metadata"]
    [v1] = core["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod" and pods["shortNames"] == ["po"]
    assert pods["categories"] == ["all"] and "watch" in pods["verbs"]
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert subs["log"]["verbs"] == ["get"] and subs["status"]["responseKind"]["kind"] == "Pod"
    nodes = next(r for r in v1["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"
    assert {r["responseKind"]["kind"] for r in v1["resources"]} == {k.kind for k in KINDS if k.api_version == "v1"}


def test_aggregated_groups_match_the_legacy_documents(server: ApiServer) -> None:
    _, body, _ = call(server, "GET", "/apis", accept=_V2)
    _, legacy, _ = call(server, "GET", "/apis")
    assert [g["metadata"]["name"] for g in body["items"]] == [g["name"] for g in legacy["groups"]]
    for group in body["items"]:
        for version in group["versions"]:
            gv = f"{group['metadata']['name']}/{version['version']}"
            _, listing, _ = call(server, "GET", f"/apis/{gv}")
            assert [r["resource"] for r in version["resources"]] == [
                r["name"] for r in listing["resources"] if "/" not in r["name"]
            ]
            assert version["resources"], f"{gv} is advertised without resources"
    apps = next(g for g in body["items"] if g["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}


def test_no_group_without_resources(server: ApiServer) -> None:
    # an empty group makes `kubectl api-resources` fail; policy/v1 is served for its
    # PodDisruptionBudgets (Eviction is found as pods/eviction)
    _, legacy, _ = call(server, "GET", "/apis")
    _, policy, _ = call(server, "GET", "/apis/policy/v1")
    assert [r["name"] for r in policy["resources"]] == ["poddisruptionbudgets", "poddisruptionbudgets/status"]
    for group in legacy["groups"]:
        _, listing, _ = call(server, "GET", f"/apis/{group['preferredVersion']['groupVersion']}")
        assert listing["resources"], group["name"]


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


def test_metrics_group_and_autoscaling_versions(server: ApiServer) -> None:
    _, groups, _ = call(server, "GET", "/apis")
    by_name = {g["name"]: g for g in groups["groups"]}
    assert by_name["metrics.k8s.io"]["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    autoscaling = by_name["autoscaling"]
    assert autoscaling["preferredVersion"]["version"] == "v2"
    assert [v["version"] for v in autoscaling["versions"]] == ["v2", "v1"]
    _, metrics, _ = call(server, "GET", "/apis/metrics.k8s.io/v1beta1")
    assert {(r["name"], tuple(r["verbs"])) for r in metrics["resources"]} == {
        ("pods", ("get", "list")),
        ("nodes", ("get", "list")),
    }
    _, v1, _ = call(server, "GET", "/apis/autoscaling/v1")
    assert {r["name"] for r in v1["resources"]} == {"horizontalpodautoscalers", "horizontalpodautoscalers/status"}
    _, agg, _ = call(server, "GET", "/apis", accept=_V2)
    entry = next(i for i in agg["items"] if i["metadata"]["name"] == "autoscaling")
    assert [v["version"] for v in entry["versions"]] == ["v2", "v1"]
    assert any(i["metadata"]["name"] == "metrics.k8s.io" for i in agg["items"])
