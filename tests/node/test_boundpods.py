"""A node side's informers keep bound pods only over the in-process registry (as a kubelet's
field-selected watch), and every pod over a client whose watches take no predicate."""

from __future__ import annotations

import time

from nbkube.cluster import make_registry
from nbkube.node.boundpods import BOUND_PODS, node_informers
from nbkube.store import open_store


def _pod(name: str, node: str = "") -> dict:  # type: ignore[type-arg]
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}  # type: ignore[type-arg]
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def test_a_node_sides_pod_informer_keeps_bound_pods_only() -> None:
    api = make_registry(open_store("sqlite://:memory:"))
    api.ensure_system_namespaces()
    factory = node_informers(api)
    pods = factory.informer("Pod")
    assert pods.watch_filter is BOUND_PODS
    factory.start_all()
    try:
        api.create(_pod("pending"))
        api.create(_pod("bound", node="node-1"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not pods.list():
            time.sleep(0.02)
        assert [p["metadata"]["name"] for p in pods.list()] == ["bound"]
    finally:
        factory.stop_all()
        api.close()


def test_the_raw_check_rules_out_only_json_without_the_key() -> None:
    assert BOUND_PODS.raw is not None
    assert not BOUND_PODS.raw(b'{"spec":{"containers":[]}}')
    assert BOUND_PODS.raw(b'{"spec":{"nodeName":"n1"}}')
    assert BOUND_PODS.raw(b'{"spec": {"nodeName": "n1"}}')  # any spacing
    assert not BOUND_PODS.keep({"spec": {"nodeName": ""}})


def test_over_a_client_without_predicate_watches_every_pod_is_kept() -> None:
    class Remote:
        def watch(self, kind: str, namespace: str = "", *, resource_version: str = "") -> None: ...

    factory = node_informers(Remote())
    assert factory.informer("Pod").watch_filter is None
