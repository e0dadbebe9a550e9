"""`nbkube cordon|uncordon|drain`: kubectl-like lines, refusals as one error line, timeouts parsed."""

from __future__ import annotations

from nbk_clitest import Run

from nbkube.registry.registry import Registry
from nbkube.store import open_store


def seed(store_url: str, *pods: tuple[str, bool]) -> None:
    """Nodes node-1/node-2 and pods on node-1; (name, owned) -> owned ones have an RC owner."""
    api = Registry(open_store(store_url))
    try:
        for n in ("node-1", "node-2"):
            api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}})
        rc = api.create(
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 0,
                    "selector": {"app": "web"},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
        )
        for name, owned in pods:
            meta: dict[str, object] = {"name": name}
            if owned:
                meta["ownerReferences"] = [
                    {
                        "apiVersion": "v1",
                        "kind": "ReplicationController",
                        "name": "web",
                        "uid": rc["metadata"]["uid"],
                        "controller": True,
                    }
                ]
            api.create(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": meta,
                    "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
                }
            )
    finally:
        api.close()


def test_cordon_uncordon(nbkube: Run, store_url: str) -> None:
    seed(store_url)
    assert nbkube("cordon", "node-1").out == "node/node-1 cordoned\n"
    assert nbkube("cordon", "node-1").out == "node/node-1 already cordoned\n"
    assert nbkube("uncordon", "node-1").out == "node/node-1 uncordoned\n"
    r = nbkube("cordon", "nope")
    assert r.code == 1 and r.err_lines == ['error: nodes "nope" not found']


def test_drain_refuses_bare_pod_then_force(nbkube: Run, store_url: str) -> None:
    seed(store_url, ("x", True), ("bare", False))
    r = nbkube("drain", "node-1")
    assert r.code == 1
    assert r.out == "node/node-1 cordoned\n"
    assert r.err_lines == [
        'error: unable to drain node "node-1" (it stays cordoned): cannot delete Pods not managed by '
        "ReplicationController, ReplicaSet, Job, DaemonSet or StatefulSet (use --force to override): default/bare"
    ]
    r = nbkube("drain", "node-1", "--force", "--timeout", "5s")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "node/node-1 already cordoned",
        "evicting pod default/bare",
        "evicting pod default/x",
        "pod/bare evicted",
        "pod/x evicted (its ReplicationController web recreates it elsewhere)",
        "node/node-1 drained",
    ]
    assert "Warning: deleting Pod not managed by" in r.err


def test_drain_bad_timeout_is_usage_error(nbkube: Run, store_url: str) -> None:
    seed(store_url)
    r = nbkube("drain", "node-1", "--timeout", "soon")
    assert r.code == 2
    assert "invalid duration 'soon'" in r.err
