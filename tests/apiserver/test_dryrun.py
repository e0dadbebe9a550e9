"""dryRun=All over HTTP and from kubectl: every verb validates and admits, nothing is written."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import EXAMPLES, KUBECTL, Kubectl, call, pod

from nbkube.apiserver import ApiServer
from nbkube.apiserver.protobuf import MAGIC
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.admission_service import allocated_ips
from nbkube.registry.registry import Registry
from nbkube.store import open_store

PODS = "/api/v1/namespaces/default/pods"
SVCS = "/api/v1/namespaces/default/services"
SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
}


@pytest.fixture
def registry() -> Iterator[Registry]:
    # overrides conftest's: with the admission chain, so allocations can be seen rolled back
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    yield reg
    reg.close()


def _field(number: int, value: bytes) -> bytes:
    assert len(value) < 128 and number < 16
    return bytes([number << 3 | 2, len(value)]) + value


def _protobuf_delete_options(dry_run: str) -> bytes:
    type_meta = _field(1, b"meta.k8s.io/v1") + _field(2, b"DeleteOptions")
    return MAGIC + _field(1, type_meta) + _field(2, _field(5, dry_run.encode()))


def test_create_dry_run_writes_nothing(server: ApiServer, registry: Registry) -> None:
    code, out, _ = call(server, "POST", f"{SVCS}?dryRun=All", SVC)
    assert code == 201 and out["spec"]["clusterIP"] and "resourceVersion" not in out["metadata"]
    assert call(server, "GET", f"{SVCS}/web")[0] == 404
    assert allocated_ips(registry.store) == []
    code, out, _ = call(server, "POST", f"{PODS}?dryRun=Some", pod("a"))
    assert code == 400 and "dryRun" in out["message"]
    assert call(server, "GET", f"{PODS}/a")[0] == 404


def test_update_patch_scale_dry_run_write_nothing(server: ApiServer, registry: Registry) -> None:
    _, created, _ = call(server, "POST", PODS, pod("a", app="web"))
    rv = created["metadata"]["resourceVersion"]
    changed = {**created, "metadata": {**created["metadata"], "labels": {"app": "db"}}}
    code, out, _ = call(server, "PUT", f"{PODS}/a?dryRun=All", changed)
    assert code == 200 and out["metadata"]["labels"] == {"app": "db"}
    code, out, _ = call(
        server,
        "PATCH",
        f"{PODS}/a?dryRun=All",
        {"metadata": {"labels": {"tier": "x"}}},
        content_type="application/strategic-merge-patch+json",
    )
    assert code == 200 and out["metadata"]["labels"] == {"app": "web", "tier": "x"}
    code, out, _ = call(
        server,
        "PATCH",
        f"{PODS}/a/status?dryRun=All",
        {"status": {"phase": "Running"}},
        content_type="application/merge-patch+json",
    )
    assert code == 200 and out["status"]["phase"] == "Running"
    _, now, _ = call(server, "GET", f"{PODS}/a")
    assert now["metadata"]["resourceVersion"] == rv and now["metadata"]["labels"] == {"app": "web"}
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod()["spec"]}},
    }
    call(server, "POST", "/api/v1/namespaces/default/replicationcontrollers", rc)
    code, scale, _ = call(
        server,
        "PATCH",
        "/api/v1/namespaces/default/replicationcontrollers/rc/scale?dryRun=All",
        {"spec": {"replicas": 7}},
        content_type="application/merge-patch+json",
    )
    assert code == 200 and scale["spec"]["replicas"] == 7
    _, got, _ = call(server, "GET", "/api/v1/namespaces/default/replicationcontrollers/rc")
    assert got["spec"]["replicas"] == 2


def test_delete_dry_run_by_query_json_body_and_protobuf_body(server: ApiServer, registry: Registry) -> None:
    _, created, _ = call(server, "POST", SVCS, SVC)
    code, out, _ = call(server, "DELETE", f"{SVCS}/web?dryRun=All")
    assert code == 200
    code, out, _ = call(server, "DELETE", f"{SVCS}/web", {"kind": "DeleteOptions", "dryRun": ["All"]})
    assert code == 200
    code, out, _ = call(
        server,
        "DELETE",
        f"{SVCS}/web",
        raw=_protobuf_delete_options("All"),
        content_type="application/vnd.kubernetes.protobuf",
    )
    assert code == 200
    code, out, _ = call(server, "DELETE", f"{SVCS}/web", {"dryRun": ["Nope"]})
    assert code == 400
    code, got, _ = call(server, "GET", f"{SVCS}/web")
    assert code == 200 and got["metadata"]["uid"] == created["metadata"]["uid"]
    assert allocated_ips(registry.store) == [created["spec"]["clusterIP"]]


def test_deletecollection_and_eviction_dry_run(server: ApiServer) -> None:
    call(server, "POST", PODS, pod("a"))
    call(server, "POST", PODS, pod("b"))
    code, out, _ = call(server, "DELETE", f"{PODS}?dryRun=All")
    assert code == 200 and sorted(p["metadata"]["name"] for p in out["items"]) == ["a", "b"]
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "a", "namespace": "default"},
        "deleteOptions": {"dryRun": ["All"]},
    }
    code, out, _ = call(server, "POST", f"{PODS}/a/eviction", eviction)
    assert code == 201
    code, lst, _ = call(server, "GET", PODS)
    assert sorted(p["metadata"]["name"] for p in lst["items"]) == ["a", "b"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_delete_dry_run_server_deletes_nothing(kubectl: Kubectl, server: ApiServer) -> None:
    kubectl.ok("create", "-f", "nginx-service.yaml")
    out = kubectl.ok("delete", "-f", "nginx-service.yaml", "--dry-run=server")
    assert "(server dry run)" in out
    assert call(server, "GET", f"{SVCS}/nginx-http-service")[0] == 200
    kubectl.ok("delete", "pods", "--all", "--dry-run=server")
    kubectl.ok("create", "-f", "nginx-rc.yaml", "--dry-run=server")
    assert (
        call(server, "GET", "/api/v1/namespaces/default/replicationcontrollers/nginx-test-controller")[0]
        == 404
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_diff(kubectl: Kubectl, tmp_path: Any) -> None:
    # a new object: the whole of it is the diff
    proc = kubectl("diff", "-f", "nginx-rc.yaml")
    assert proc.returncode == 1 and "+  replicas: 5" in proc.stdout, proc.stderr
    kubectl.ok("apply", "-f", "nginx-rc.yaml", "-f", "nginx-service.yaml")
    for manifest in ("nginx-rc.yaml", "nginx-service.yaml"):
        proc = kubectl("diff", "-f", manifest)
        assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
    with open(os.path.join(EXAMPLES, "nginx-rc.yaml")) as f:
        changed = f.read().replace("replicas: 5", "replicas: 4")
    path = tmp_path / "rc4.yaml"
    path.write_text(changed)
    proc = kubectl("diff", "-f", str(path))
    assert proc.returncode == 1, proc.stderr
    assert "-  replicas: 5" in proc.stdout and "+  replicas: 4" in proc.stdout
    assert json.loads(kubectl.ok("get", "rc", "nginx-test-controller", "-o", "json"))["spec"]["replicas"] == 5
    # created without apply (no last-applied annotation): still no diff
    kubectl.ok("delete", "-f", "nginx-service.yaml")
    kubectl.ok("create", "-f", "nginx-service.yaml")
    proc = kubectl("diff", "-f", "nginx-service.yaml")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr
