"""Framework.schedule_one over a Snapshot: messages, spreading, accounting, caching, sampling."""

from __future__ import annotations

from collections import Counter

import pytest
from nbk_sched_objects import node, pod

from nbkube.controlplane.scheduler.framework import (
    Framework,
    PodInfo,
    Snapshot,
    failure_message,
    num_feasible_nodes_to_find,
    schedule_one,
)


def test_failure_message_counts_reasons_per_node_most_frequent_first() -> None:
    snap = Snapshot.from_objects(
        [node("a", cpu="1"), node("b", cpu="1"), node("c", cpu="8", unschedulable=True)]
    )
    result = schedule_one(pod("big", cpu="2"), snap)
    assert result.node_name is None
    assert result.message == "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
    assert result.reasons == {
        "a": ["Insufficient cpu"],
        "b": ["Insufficient cpu"],
        "c": ["node(s) were unschedulable"],
    }


def test_failure_message_ties_sort_alphabetically_and_multi_reason_nodes_count_each() -> None:
    msg = failure_message(
        3,
        {
            "a": ["Insufficient memory", "Insufficient cpu"],
            "b": ["node(s) were not ready"],
            "c": ["Insufficient cpu"],
        },
    )
    assert msg == (
        "0/3 nodes are available: 2 Insufficient cpu, 1 Insufficient memory, 1 node(s) were not ready."
    )
    assert failure_message(0, {}) == "0/0 nodes are available: no nodes available to schedule pods."


def test_no_nodes_at_all() -> None:
    result = schedule_one(pod("p"), Snapshot())
    assert result.node_name is None and "0/0 nodes are available" in result.message


def test_every_filter_shows_in_the_message() -> None:
    snap = Snapshot.from_objects(
        [
            node("cordoned", unschedulable=True),
            node("down", ready=False),
            node("tainted", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            node("small", cpu="100m"),
            node("other-disk", labels={"disktype": "hdd"}),
        ],
        pods=[pod("holder", node_name="small", host_port=80)],
    )
    p = pod("p", cpu="500m", node_selector={"disktype": "hdd"}, host_port=80)
    result = schedule_one(p, snap)
    # other-disk matches the selector and has room; take it away to see every reason
    assert result.node_name == "other-disk"
    snap.set_pod(pod("squatter", node_name="other-disk", host_port=80))
    result = schedule_one(p, snap)
    assert result.node_name is None
    assert result.message == (
        "0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) didn't have free ports for the requested pod ports, 1 node(s) were not ready, "
        "1 node(s) were unschedulable."
    )


def test_replicas_of_one_owner_spread_across_nodes() -> None:
    snap = Snapshot.from_objects([node("n1"), node("n2"), node("n3")])
    fw = Framework()
    placed: Counter[str] = Counter()
    for i in range(5):
        info = PodInfo(pod(f"web-{i}", cpu="100m", owner_uid="rc-uid", labels={"app": "web"}))
        result = fw.schedule_one(info, snap)
        assert result.node_name is not None
        snap.assume(info, result.node_name)
        placed[result.node_name] += 1
    assert sorted(placed.values()) == [1, 2, 2]


def test_service_selector_spreads_pods_without_owner() -> None:
    svc = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}},
    }
    snap = Snapshot.from_objects([node("n1"), node("n2")], services=[svc])
    # n1 already has a web pod and is otherwise emptier: spreading must still pick n2
    snap.set_pod(pod("existing", node_name="n1", labels={"app": "web"}))
    snap.set_pod(pod("heavy", node_name="n2", cpu="1", labels={"app": "db"}))
    result = schedule_one(pod("new", labels={"app": "web"}), snap)
    assert result.node_name == "n2"


def test_cordoned_node_is_skipped() -> None:
    snap = Snapshot.from_objects([node("n1", unschedulable=True), node("n2")])
    for i in range(4):
        info = PodInfo(pod(f"p{i}"))
        result = schedule_one(info, snap)
        assert result.node_name == "n2"
        snap.assume(info, "n2")


def test_taints_and_tolerations() -> None:
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    snap = Snapshot.from_objects([node("gpu", taints=[taint], labels={"gpu": "yes"}), node("plain")])
    assert schedule_one(pod("a", node_selector={"gpu": "yes"}), snap).message == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: gpu}."
    )
    tol = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    assert schedule_one(pod("b", node_selector={"gpu": "yes"}, tolerations=tol), snap).node_name == "gpu"


def test_host_port_conflict_moves_second_pod_elsewhere() -> None:
    snap = Snapshot.from_objects([node("n1"), node("n2")])
    first = PodInfo(pod("a", host_port=8080))
    r1 = schedule_one(first, snap)
    assert r1.node_name is not None
    snap.assume(first, r1.node_name)
    r2 = schedule_one(pod("b", host_port=8080), snap)
    assert r2.node_name not in (None, r1.node_name)
    snap.assume(PodInfo(pod("b", host_port=8080)), str(r2.node_name))
    r3 = schedule_one(pod("c", host_port=8080), snap)
    assert (
        r3.message == "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
    )


def test_resource_accounting_assume_confirm_forget_and_delete() -> None:
    snap = Snapshot.from_objects([node("n1", cpu="1", memory="1Gi")])
    ni = snap.nodes["n1"]
    info = PodInfo(pod("a", cpu="600m", memory="256Mi"))
    snap.assume(info, "n1")
    assert (ni.requested_cpu, ni.requested_memory, ni.pod_count) == (600, 256 * 2**20, 1)
    assert schedule_one(pod("b", cpu="600m"), snap).message == "0/1 nodes are available: 1 Insufficient cpu."
    # the informer confirms the bind: still counted once
    snap.set_pod(pod("a", cpu="600m", memory="256Mi", node_name="n1"))
    assert (ni.requested_cpu, ni.pod_count) == (600, 1)
    assert "default/a" not in snap.assumed
    # a failed bind is forgotten only while it is still just assumed
    snap.forget("default/a")
    assert ni.requested_cpu == 600
    other = PodInfo(pod("c", cpu="100m"))
    snap.assume(other, "n1")
    snap.forget("default/c")
    assert (ni.requested_cpu, ni.pod_count) == (600, 1)
    # deleting (or finishing) the pod frees its resources
    assert snap.remove_pod("default/a") is True
    assert (ni.requested_cpu, ni.requested_memory, ni.pod_count) == (0, 0, 0)
    snap.set_pod(pod("d", cpu="300m", node_name="n1"))
    done = pod("d", cpu="300m", node_name="n1")
    done["status"] = {"phase": "Succeeded"}
    assert snap.set_pod(done) is True
    assert ni.requested_cpu == 0


def test_a_status_change_keeps_the_accounting_and_a_spec_or_label_change_redoes_it() -> None:
    snap = Snapshot.from_objects([node("n1", cpu="2")])
    ni = snap.nodes["n1"]
    snap.set_pod(pod("a", cpu="600m", node_name="n1", labels={"app": "web"}))
    held = ni.pods["default/a"]
    running = pod("a", cpu="600m", node_name="n1", labels={"app": "web"})
    running["status"] = {"phase": "Running"}
    assert snap.set_pod(running) is False
    assert ni.pods["default/a"] is held and held.obj is running  # the same facts, the newest object
    # ... and none of the older version's parts held (its labels, its tolerations)
    assert held.labels is running["metadata"]["labels"]
    assert (ni.requested_cpu, ni.pod_count) == (600, 1)
    relabelled = pod("a", cpu="600m", node_name="n1", labels={"app": "db"})
    snap.set_pod(relabelled)
    assert ni.pods["default/a"] is not held and ni.pods["default/a"].labels == {"app": "db"}
    resized = pod("a", cpu="1", node_name="n1", labels={"app": "db"})
    snap.set_pod(resized)
    assert (ni.requested_cpu, ni.pod_count) == (1000, 1)


def test_pods_bound_to_unknown_nodes_are_counted_when_the_node_appears() -> None:
    snap = Snapshot()
    snap.set_pod(pod("early", cpu="1", node_name="late"))
    assert snap.set_node(node("late", cpu="1")) is True
    assert snap.nodes["late"].requested_cpu == 1000
    assert schedule_one(pod("p", cpu="1"), snap).node_name is None


def test_static_cache_follows_node_changes() -> None:
    snap = Snapshot.from_objects([node("n1"), node("n2", unschedulable=True)])
    fw = Framework()
    assert fw.schedule_one(pod("a", node_selector={"disk": "ssd"}), snap).node_name is None
    gen = snap.generation
    # a heartbeat-like status change does not invalidate; a label or cordon change does
    hb = node("n1")
    hb["status"]["conditions"][0]["lastHeartbeatTime"] = "2024-01-01T00:00:00Z"
    assert snap.set_node(hb) is False
    assert snap.generation == gen
    assert snap.set_node(node("n2", labels={"disk": "ssd"})) is True
    assert snap.generation > gen
    assert fw.schedule_one(pod("a", node_selector={"disk": "ssd"}), snap).node_name == "n2"
    snap.set_node(node("n2", labels={"disk": "ssd"}, unschedulable=True))
    assert fw.schedule_one(pod("a", node_selector={"disk": "ssd"}), snap).node_name is None
    snap.remove_node("n2")
    assert fw.schedule_one(pod("b"), snap).node_name == "n1"


def test_allocatable_change_is_a_cluster_change() -> None:
    snap = Snapshot.from_objects([node("n1", cpu="1")])
    assert schedule_one(pod("p", cpu="2"), snap).node_name is None
    assert snap.set_node(node("n1", cpu="4")) is True
    assert schedule_one(pod("p", cpu="2"), snap).node_name == "n1"


def test_sampling_scores_a_bounded_number_of_feasible_nodes() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(1000) == 100
    assert num_feasible_nodes_to_find(5000) == 100
    assert num_feasible_nodes_to_find(1000, "adaptive") == 420
    assert num_feasible_nodes_to_find(5000, "adaptive") == 500
    assert num_feasible_nodes_to_find(1000, 30) == 300
    assert num_feasible_nodes_to_find(1000, 100) == 1000
    with pytest.raises(ValueError, match="percentage_of_nodes_to_score"):
        Framework(percentage_of_nodes_to_score=0)
    snap = Snapshot.from_objects([node(f"n{i:03d}") for i in range(300)])
    fw = Framework(record_scores=True)
    first = fw.schedule_one(pod("a"), snap)
    second = fw.schedule_one(pod("b"), snap)
    assert first.feasible == second.feasible == 100
    # the rotating start moves on: the second pod looks at other nodes
    assert not set(first.scores) & set(second.scores)


def test_unfit_pod_is_checked_against_every_node_even_with_sampling() -> None:
    nodes = [node(f"n{i:03d}", cpu="1") for i in range(250)]
    nodes.append(node("cordoned", unschedulable=True))
    snap = Snapshot.from_objects(nodes)
    result = Framework().schedule_one(pod("p", cpu="2"), snap)
    assert result.message == "0/251 nodes are available: 250 Insufficient cpu, 1 node(s) were unschedulable."


def test_ties_are_broken_deterministically_but_spread() -> None:
    snap = Snapshot.from_objects([node(f"n{i}") for i in range(4)])
    picks = {Framework().schedule_one(pod(f"p{i}"), snap).node_name for i in range(20)}
    assert len(picks) > 1
    again = {Framework().schedule_one(pod(f"p{i}"), snap).node_name for i in range(20)}
    assert picks == again
