"""Registry.bind (registry/binding.py): a pending pod put on a node, once, as upstream's BindingREST
does; and the Binding bodies it refuses, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.errors import BadRequest, Conflict, Invalid, NotFound
from nbkube.registry.binding import BindTo, binding_target
from nbkube.registry.registry import Registry


def _pod(api: Registry, name: str = "web", **meta: Any) -> dict[str, Any]:
    return api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", **meta},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )


def _scheduled(pod: dict[str, Any]) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c["type"] == "PodScheduled":
            return str(c["status"])
    return None


def test_a_pending_pod_is_bound_once_with_its_annotations_and_podscheduled(api: Registry) -> None:
    _pod(api, annotations={"keep": "me"})
    bound = api.bind(
        "web", "default", BindTo("node-2", annotations={"scheduler.example/why": "least loaded"})
    )
    stored = api.get("Pod", "web", "default")
    assert stored == bound
    assert stored["spec"]["nodeName"] == "node-2"
    assert stored["metadata"]["annotations"] == {"keep": "me", "scheduler.example/why": "least loaded"}
    assert _scheduled(stored) == "True"
    # a second scheduler racing for the same pod is told, and changes nothing
    with pytest.raises(Conflict, match='pod web is already assigned to node "node-2"'):
        api.bind("web", "default", "node-3")
    assert (
        api.get("Pod", "web", "default")["metadata"]["resourceVersion"]
        == stored["metadata"]["resourceVersion"]
    )


def test_preconditions_deletion_and_a_missing_pod(api: Registry) -> None:
    created = _pod(api)
    with pytest.raises(Conflict, match="UID in precondition: not-its-uid"):
        api.bind("web", "default", BindTo("node-1", uid="not-its-uid"))
    with pytest.raises(Conflict, match="ResourceVersion in precondition: 1"):
        api.bind("web", "default", BindTo("node-1", resource_version="1"))
    # being deleted: marked as an orphaning delete marks it before it releases the dependents
    info = api._info("Pod")
    api._mark_deleting(info, api.store.get(api._key(info, "web", "default")), "web", retry=True)
    with pytest.raises(Conflict, match="being deleted"):
        api.bind("web", "default", BindTo("node-1", uid=created["metadata"]["uid"]))
    with pytest.raises(NotFound):
        api.bind("nope", "default", "node-1")


def test_a_dry_run_writes_nothing(api: Registry) -> None:
    created = _pod(api)
    answer = api.bind("web", "default", "node-1", dry_run=True)
    assert answer["spec"]["nodeName"] == "node-1"
    assert api.get("Pod", "web", "default") == created


def test_a_binding_body_names_its_node_and_nothing_else() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "web", "uid": "u-1", "resourceVersion": "7", "annotations": {"a": "b"}},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
    }
    assert binding_target(body, "web") == BindTo("node-1", {"a": "b"}, "u-1", "7")
    assert binding_target({"target": {"name": "node-1"}}, "web") == BindTo("node-1")
    with pytest.raises(BadRequest, match="name in URL does not match"):
        binding_target({**body, "metadata": {"name": "other"}}, "web")
    with pytest.raises(BadRequest, match="must be a Binding"):
        binding_target(["node-1"], "web")
    with pytest.raises(Invalid, match="target.name: Required value"):
        binding_target({"metadata": {"name": "web"}, "target": {"kind": "Node"}}, "web")
    with pytest.raises(Invalid, match="target: Required value"):
        binding_target({"metadata": {"name": "web"}}, "web")
    with pytest.raises(Invalid, match="target.kind: Invalid value: 'Pod'"):
        binding_target({"target": {"kind": "Pod", "name": "p"}}, "web")
    with pytest.raises(Invalid, match="metadata.annotations"):
        binding_target({"metadata": {"annotations": {"a": 1}}, "target": {"name": "n"}}, "web")
