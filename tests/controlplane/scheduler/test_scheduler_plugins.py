"""Each filter and score plugin as a pure function of (PodInfo, NodeInfo)."""

from __future__ import annotations

import pytest
from nbk_sched_objects import node, pod

from nbkube.controlplane.scheduler.framework import MAX_NODE_SCORE, NodeInfo, PodInfo
from nbkube.controlplane.scheduler.plugins import (
    LeastAllocated,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    SelectorSpread,
    TaintToleration,
)
from nbkube.controlplane.scheduler.plugins.least_allocated import least_allocated
from nbkube.controlplane.scheduler.plugins.node_affinity import expression_matches, node_affinity
from nbkube.controlplane.scheduler.plugins.node_ports import node_ports, port_conflict
from nbkube.controlplane.scheduler.plugins.node_ready import node_ready_schedulable
from nbkube.controlplane.scheduler.plugins.resources import resources_fit
from nbkube.controlplane.scheduler.plugins.selector_spread import normalize_spread, spread_count
from nbkube.controlplane.scheduler.plugins.taint_toleration import (
    taint_toleration,
    toleration_matches,
    untolerated_taint,
)


def info(**kw: object) -> PodInfo:
    return PodInfo(pod("p", **kw))  # type: ignore[arg-type]


# --- NodeReadySchedulable ------------------------------------------------------------------------


def test_ready_schedulable_node_passes() -> None:
    assert node_ready_schedulable(info(), NodeInfo(node("n"))) == []


def test_cordoned_node_is_unschedulable() -> None:
    assert node_ready_schedulable(info(), NodeInfo(node("n", unschedulable=True))) == [
        "node(s) were unschedulable"
    ]


def test_cordon_can_be_tolerated() -> None:
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert node_ready_schedulable(info(tolerations=tol), NodeInfo(node("n", unschedulable=True))) == []


def test_not_ready_node_is_refused() -> None:
    assert node_ready_schedulable(info(), NodeInfo(node("n", ready=False))) == ["node(s) were not ready"]


def test_node_without_conditions_is_not_ready() -> None:
    n = node("n")
    del n["status"]["conditions"]
    assert NodeInfo(n).ready is False


# --- NodeResourcesFit ----------------------------------------------------------------------------


def test_resources_fit_against_allocatable_minus_bound() -> None:
    ni = NodeInfo(node("n", cpu="1", memory="1Gi", pods=3))
    ni.add_pod(PodInfo(pod("a", cpu="600m", memory="512Mi", node_name="n")))
    assert resources_fit(info(cpu="400m", memory="512Mi"), ni) == []
    assert resources_fit(info(cpu="500m"), ni) == ["Insufficient cpu"]
    assert resources_fit(info(memory="600Mi"), ni) == ["Insufficient memory"]
    assert resources_fit(info(cpu="2", memory="2Gi"), ni) == ["Insufficient cpu", "Insufficient memory"]
    assert NodeResourcesFit().filter(info(cpu="400m"), ni) == ()
    assert list(NodeResourcesFit().filter(info(cpu="2"), ni)) == ["Insufficient cpu"]


def test_too_many_pods() -> None:
    ni = NodeInfo(node("n", pods=1))
    ni.add_pod(PodInfo(pod("a", node_name="n")))
    assert resources_fit(info(), ni) == ["Too many pods"]


def test_requests_sum_containers_and_take_max_of_init_containers() -> None:
    p = pod("p", cpu="100m", memory="1Mi")
    p["spec"]["containers"].append({"name": "d", "image": "x", "resources": {"requests": {"cpu": "0.2"}}})
    p["spec"]["initContainers"] = [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "1"}}}]
    pi = PodInfo(p)
    assert pi.cpu == 1000
    assert pi.memory == 1024 * 1024


def test_pods_without_requests_fit_anywhere_with_room_for_pods() -> None:
    ni = NodeInfo(node("n", cpu="0", memory="0"))
    assert resources_fit(info(), ni) == []


# --- NodeAffinity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, True),
        ({"key": "zone", "operator": "In", "values": ["c"]}, False),
        ({"key": "zone", "operator": "NotIn", "values": ["c"]}, True),
        ({"key": "missing", "operator": "NotIn", "values": ["c"]}, True),
        ({"key": "zone", "operator": "Exists"}, True),
        ({"key": "zone", "operator": "DoesNotExist"}, False),
        ({"key": "missing", "operator": "DoesNotExist"}, True),
        ({"key": "cores", "operator": "Gt", "values": ["8"]}, True),
        ({"key": "cores", "operator": "Gt", "values": ["16"]}, False),
        ({"key": "cores", "operator": "Lt", "values": ["16"]}, True),
        ({"key": "zone", "operator": "Lt", "values": ["16"]}, False),  # not a number
        ({"key": "missing", "operator": "Gt", "values": ["1"]}, False),
    ],
)
def test_match_expression_operators(expr: dict[str, object], expected: bool) -> None:
    assert expression_matches(expr, {"zone": "a", "cores": "12"}) is expected


def test_node_selector_must_match_every_label() -> None:
    ni = NodeInfo(node("n", labels={"disktype": "ssd", "zone": "a"}))
    assert node_affinity(info(node_selector={"disktype": "ssd"}), ni) == []
    assert node_affinity(info(node_selector={"disktype": "hdd"}), ni) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]


def test_required_affinity_terms_are_ored_expressions_anded() -> None:
    ni = NodeInfo(node("n", labels={"zone": "a", "gpu": "yes"}))
    terms = [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
        {
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]},
                {"key": "gpu", "operator": "Exists"},
            ]
        },
    ]
    assert node_affinity(info(affinity_terms=terms), ni) == []
    terms[1]["matchExpressions"].append({"key": "gpu", "operator": "DoesNotExist"})
    assert node_affinity(info(affinity_terms=terms), ni) != []


def test_empty_terms_match_nothing_and_match_fields_select_by_name() -> None:
    ni = NodeInfo(node("n1"))
    assert node_affinity(info(affinity_terms=[]), ni) != []
    assert node_affinity(info(affinity_terms=[{}]), ni) != []
    by_name = [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
    assert node_affinity(info(affinity_terms=by_name), ni) == []
    assert node_affinity(info(affinity_terms=by_name), NodeInfo(node("n2"))) != []


def test_affinity_plugin_is_skipped_for_pods_without_constraints() -> None:
    assert NodeAffinity().applies(info()) is False
    assert NodeAffinity().applies(info(node_selector={"a": "b"})) is True


# --- TaintToleration -----------------------------------------------------------------------------


def test_untolerated_noschedule_taint_refuses_with_its_key_and_value() -> None:
    ni = NodeInfo(node("n", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]))
    assert taint_toleration(info(), ni) == ["node(s) had untolerated taint {dedicated: gpu}"]
    assert TaintToleration().filter(info(), NodeInfo(node("clean"))) == ()


def test_prefer_no_schedule_is_not_a_filter() -> None:
    ni = NodeInfo(node("n", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]))
    assert taint_toleration(info(), ni) == []


@pytest.mark.parametrize(
    ("tol", "ok"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "gpu"}, True),  # any effect, Equal by default
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # tolerates everything
        ({"key": "dedicated", "operator": "Equal", "value": "cpu"}, False),
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_toleration_matching(tol: dict[str, str], ok: bool) -> None:
    assert toleration_matches(tol, ("dedicated", "gpu", "NoSchedule")) is ok


def test_noexecute_taints_must_be_tolerated_too() -> None:
    taints = [("node.kubernetes.io/unreachable", "", "NoExecute")]
    assert untolerated_taint([], taints) == taints[0]
    tol = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]
    assert untolerated_taint(tol, taints) is None


# --- NodePorts -----------------------------------------------------------------------------------


def test_host_port_conflicts() -> None:
    ni = NodeInfo(node("n"))
    ni.add_pod(PodInfo(pod("a", host_port=8080, node_name="n")))
    assert node_ports(info(host_port=8080), ni) == [
        "node(s) didn't have free ports for the requested pod ports"
    ]
    assert node_ports(info(host_port=8081), ni) == []
    assert NodePorts().applies(info()) is False
    ni.remove_pod("default/a")
    assert node_ports(info(host_port=8080), ni) == []


def test_port_conflict_rules() -> None:
    assert port_conflict(("TCP", "0.0.0.0", 80), [("TCP", "10.0.0.1", 80)])
    assert port_conflict(("TCP", "10.0.0.1", 80), [("TCP", "0.0.0.0", 80)])
    assert not port_conflict(("TCP", "10.0.0.1", 80), [("TCP", "10.0.0.2", 80)])
    assert not port_conflict(("UDP", "0.0.0.0", 80), [("TCP", "0.0.0.0", 80)])


# --- scores --------------------------------------------------------------------------------------


def test_least_allocated_prefers_the_emptier_node() -> None:
    empty, busy = NodeInfo(node("a", cpu="4", memory="4Gi")), NodeInfo(node("b", cpu="4", memory="4Gi"))
    busy.add_pod(PodInfo(pod("x", cpu="2", memory="2Gi", node_name="b")))
    p = info(cpu="1", memory="1Gi")
    assert least_allocated(p, empty) == pytest.approx(75.0)
    assert least_allocated(p, busy) == pytest.approx(25.0)
    assert LeastAllocated().score(p, [empty, busy]) == pytest.approx([75.0, 25.0])


def test_least_allocated_uses_nonzero_defaults_for_best_effort_pods() -> None:
    a, b = NodeInfo(node("a")), NodeInfo(node("b"))
    b.add_pod(PodInfo(pod("x", node_name="b")))  # requests nothing, still counts for scoring
    p = info()
    assert least_allocated(p, a) > least_allocated(p, b)
    assert least_allocated(p, a) <= MAX_NODE_SCORE


def test_selector_spread_counts_owner_and_service_peers() -> None:
    a, b = NodeInfo(node("a")), NodeInfo(node("b"))
    peer = PodInfo(pod("x", owner_uid="rc-1", node_name="a"))
    peer.spread_keys = (peer.owner_key,)
    a.add_pod(peer)
    p = info(owner_uid="rc-1")
    assert spread_count(p, a) == 1 and spread_count(p, b) == 0
    raw = SelectorSpread().score(p, [a, b])
    assert raw == [1, 0]
    assert SelectorSpread().normalize(p, raw) == [0.0, 100.0]
    assert normalize_spread([0, 0]) == [100.0, 100.0]
    stranger = info(owner_uid="rc-2")
    assert SelectorSpread().score(stranger, [a, b]) == [0, 0]
