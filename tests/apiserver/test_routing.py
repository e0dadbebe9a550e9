"""URL paths to (kind, namespace, name, subresource), and field selectors."""

from __future__ import annotations

import pytest

from nbkube.apiserver.routing import parse_field_selector, parse_resource_path
from nbkube.errors import BadRequest, NotFound


def test_namespaced_paths() -> None:
    r = parse_resource_path("/api/v1/namespaces/default/pods/web/status")
    assert r is not None and (r.info.kind, r.namespace, r.name, r.subresource) == (
        "Pod",
        "default",
        "web",
        "status",
    )
    r = parse_resource_path("/apis/apps/v1/namespaces/ns1/deployments")
    assert r is not None and (r.info.kind, r.namespace, r.name) == ("Deployment", "ns1", "")


def test_all_namespaces_and_cluster_scoped() -> None:
    r = parse_resource_path("/api/v1/pods")
    assert r is not None and (r.info.kind, r.namespace, r.name) == ("Pod", "", "")
    r = parse_resource_path("/api/v1/nodes/node-1")
    assert r is not None and (r.info.kind, r.name) == ("Node", "node-1")
    # the Namespace object itself: /api/v1/namespaces/NAME is not a namespaced collection
    r = parse_resource_path("/api/v1/namespaces/kube-system")
    assert r is not None and (r.info.kind, r.name) == ("Namespace", "kube-system")


def test_scale_subresource() -> None:
    r = parse_resource_path("/api/v1/namespaces/default/replicationcontrollers/rc1/scale")
    assert r is not None and r.subresource == "scale"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/widgets",
        "/apis/apps/v1/pods",  # pods live in the core group
        "/api/v1/namespaces/default/pods/web/proxy",  # not served
        "/api/v1/namespaces/default/services/web/exec",  # exec is a pod's
        "/api/v1/namespaces/default/configmaps/c/status",  # ConfigMaps have no status
        "/api/v1/namespaces/default/nodes/n1",  # cluster-scoped
    ],
)
def test_unknown_resources_are_not_found(path: str) -> None:
    with pytest.raises(NotFound):
        parse_resource_path(path)


@pytest.mark.parametrize("sub", ["exec", "attach", "portforward"])
def test_pod_stream_subresources(sub: str) -> None:
    r = parse_resource_path(f"/api/v1/namespaces/default/pods/web/{sub}")
    assert r is not None and (r.info.kind, r.name, r.subresource) == ("Pod", "web", sub)


def test_non_resource_paths() -> None:
    assert parse_resource_path("/metrics") is None
    assert parse_resource_path("/api/v1") is None


def test_field_selector() -> None:
    reqs = parse_field_selector("metadata.name=web,status.phase!=Running,spec.nodeName==n1")
    obj = {"metadata": {"name": "web"}, "status": {"phase": "Pending"}, "spec": {"nodeName": "n1"}}
    assert all(r.matches(obj) for r in reqs)
    assert not parse_field_selector("status.phase=Running")[0].matches(obj)
    assert parse_field_selector("spec.nodeName=")[0].matches({"spec": {}})
    with pytest.raises(BadRequest):
        parse_field_selector("metadata.name")
