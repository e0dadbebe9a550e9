"""pods/NAME/binding over HTTP, as a scheduler of one's own binds: JSON, protobuf (client-go's
encoding) and the official Python client; 201 with upstream's bare Success Status, 409 for a pod
already bound, a dry run that binds nothing, and the subresource in discovery."""

from __future__ import annotations

from typing import Any

import kubernetes
from nbk_apitest import call, pod

from nbkube.apiserver import ApiServer
from nbkube.apiserver.protobuf import encode
from nbkube.registry.registry import Registry

PODS = "/api/v1/namespaces/default/pods"


def _binding(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def test_a_binding_puts_the_pod_on_its_node_once(server: ApiServer, registry: Registry) -> None:
    registry.create({**pod("a"), "metadata": {"name": "a", "namespace": "default"}})
    code, body, _ = call(server, "POST", f"{PODS}/a/binding?dryRun=All", _binding("a", "node-1"))
    assert code == 201 and not registry.get("Pod", "a", "default")["spec"].get("nodeName")
    code, body, _ = call(server, "POST", f"{PODS}/a/binding", _binding("a", "node-1"))
    assert (code, body) == (
        201,
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
    )
    bound = registry.get("Pod", "a", "default")
    assert bound["spec"]["nodeName"] == "node-1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= bound["status"]["conditions"][0].items()
    code, body, _ = call(server, "POST", f"{PODS}/a/binding", _binding("a", "node-2"))
    assert (
        code == 409
        and body["reason"] == "Conflict"
        and 'already assigned to node "node-1"' in body["message"]
    )
    code, body, _ = call(server, "POST", f"{PODS}/a/binding", _binding("b", "node-2"))
    assert code == 400 and "does not match" in body["message"]
    code, body, _ = call(server, "POST", f"{PODS}/a/binding", {"metadata": {"name": "a"}, "target": {}})
    assert code == 422 and "target.name: Required value" in body["message"]
    assert call(server, "GET", f"{PODS}/a/binding")[0] == 405
    assert call(server, "POST", "/api/v1/namespaces/default/services/a/binding", _binding("a", "n"))[0] == 404


def test_client_gos_protobuf_binding(server: ApiServer, registry: Registry) -> None:
    registry.create({**pod("p"), "metadata": {"name": "p", "namespace": "default"}})
    raw = encode({**_binding("p", "node-3"), "metadata": {"name": "p", "namespace": "default"}})
    code, body, _ = call(
        server, "POST", f"{PODS}/p/binding", raw=raw, content_type="application/vnd.kubernetes.protobuf"
    )
    assert code == 201, body
    assert registry.get("Pod", "p", "default")["spec"]["nodeName"] == "node-3"


def test_the_python_clients_bind(server: ApiServer, registry: Registry, kubeconfig: str) -> None:
    registry.create({**pod("py"), "metadata": {"name": "py", "namespace": "default"}})
    c = kubernetes.client
    with kubernetes.config.new_client_from_config(config_file=kubeconfig) as api_client:
        body = c.V1Binding(
            metadata=c.V1ObjectMeta(name="py"), target=c.V1ObjectReference(kind="Node", name="node-4")
        )
        # the answer is a Status, which the client cannot read as the V1Binding it expects
        resp = c.CoreV1Api(api_client).create_namespaced_pod_binding(
            "py", "default", body, _preload_content=False
        )
        assert resp.status == 201
    assert registry.get("Pod", "py", "default")["spec"]["nodeName"] == "node-4"


def test_discovery_lists_the_binding_subresource(server: ApiServer) -> None:
    code, body, _ = call(server, "GET", "/api/v1")
    assert code == 200
    sub = next(r for r in body["resources"] if r["name"] == "pods/binding")
    assert sub["kind"] == "Binding" and sub["verbs"] == ["create"] and sub["namespaced"] is True
