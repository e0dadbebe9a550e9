"""The minimal OpenAPI v3: what kubectl reads to decide on server-side field validation."""

from __future__ import annotations

from nbk_apitest import call

from nbkube.apiserver import ApiServer


def test_root_lists_every_group_version(server: ApiServer) -> None:
    code, root, _ = call(server, "GET", "/openapi/v3")
    assert code == 200
    assert {"api/v1", "apis/apps/v1", "apis/networking.k8s.io/v1", "apis/coordination.k8s.io/v1"} <= set(
        root["paths"]
    )
    assert root["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")


def test_patch_operations_declare_field_validation(server: ApiServer) -> None:
    code, doc, _ = call(server, "GET", "/openapi/v3/apis/apps/v1?hash=x")
    assert code == 200 and doc["openapi"].startswith("3.")
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    # no strategic content type: kubectl computes apply's patch from its compiled-in types
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    _, core, _ = call(server, "GET", "/openapi/v3/api/v1")
    assert "/api/v1/nodes/{name}" in core["paths"]
    assert call(server, "GET", "/openapi/v3/apis/example.com/v1")[0] == 404
