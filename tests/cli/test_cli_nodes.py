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


def test_drain_stopped_by_a_disruption_budget_names_it(nbkube: Run, store_url: str) -> None:
    seed(store_url, ("x", True))
    api = Registry(open_store(store_url))
    try:
        pod = api.get("Pod", "x", "default")
        pod["metadata"]["labels"] = {"app": "web"}
        pod = api.update(pod)
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        api.update_status(pod)
        pdb = api.create(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "web-pdb", "namespace": "default"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            }
        )
        # what the disruption controller (not running here) writes for one healthy pod of one
        pdb["status"] = {
            "observedGeneration": 1,
            "disruptionsAllowed": 0,
            "currentHealthy": 1,
            "desiredHealthy": 1,
            "expectedPods": 1,
        }
        api.update_status(pdb)
    finally:
        api.close()
    r = nbkube("drain", "node-1", "--timeout", "1s")
    assert r.code == 1
    assert r.out.splitlines() == ["node/node-1 cordoned", "evicting pod default/x"]
    assert r.err_lines == [
        "error: drain node/node-1 stopped after 1s: a PodDisruptionBudget refuses to evict default/x: "
        "The disruption budget web-pdb needs 1 healthy pods and has 1 currently"
    ]


def test_drain_refuses_daemonset_pods_unless_ignored(nbkube: Run, store_url: str) -> None:
    seed(store_url)
    api = Registry(open_store(store_url))
    try:
        ds = api.create(
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "agent", "namespace": "default"},
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "agent"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
        )
        ref = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": ds["metadata"]["uid"], "controller": True}
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "agent-1", "labels": {"app": "agent"}, "ownerReferences": [ref]},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
            }
        )
    finally:
        api.close()
    r = nbkube("drain", "node-1")
    assert r.code == 1
    assert r.err_lines == [
        'error: unable to drain node "node-1" (it stays cordoned): cannot delete DaemonSet-managed Pods '
        "(use --ignore-daemonsets to ignore): default/agent-1"
    ]
    r = nbkube("drain", "node-1", "--ignore-daemonsets", "--timeout", "5s")
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["node/node-1 already cordoned", "node/node-1 drained"]
    assert r.err_lines == ["Warning: ignoring default/agent-1: DaemonSet-managed"]
