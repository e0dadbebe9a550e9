"""DaemonSets and PodDisruptionBudgets with the real kubectl against a served LocalCluster(nodes=2,
runtime="sim"): a DaemonSet Ready on both nodes (`get ds`, `rollout status`), `create pdb`, `get
pdb`, and `kubectl drain` (which evicts through pods/eviction) refusing DaemonSet pods without
--ignore-daemonsets and stopped by a budget whose name it prints; the RestClient rebuilds the 429.

Every kubectl call is bounded by a subprocess timeout; waits for controllers are bounded polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl, served_sim
from nbk_daemonsets import DAEMONSET, WEB

from nbkube.client.kubeconfig import load_kubeconfig
from nbkube.client.rest import RestClient
from nbkube.errors import TooManyRequests

pytestmark = [pytest.mark.slow, pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")]

@pytest.fixture
def served(tmp_path: Any) -> Iterator[tuple[Kubectl, str]]:
    with served_sim(tmp_path) as (kubeconfig, home):
        yield Kubectl(kubeconfig, home), kubeconfig


def _until(cond: Callable[[], Any], what: str) -> Any:
    for _ in range(60):  # bounded: the sim controllers settle in well under this
        value = cond()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_daemonset_ready_on_both_nodes_and_drain_blocked_by_a_budget(served: tuple[Kubectl, str]) -> None:
    kc, kubeconfig = served
    assert "daemonset.apps/agent created" in kc.ok("apply", "-f", "-", stdin=DAEMONSET)
    out = kc.ok("rollout", "status", "ds/agent", "--timeout=30s", timeout=60)
    assert 'daemon set "agent" successfully rolled out' in out
    table = kc.ok("get", "ds")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    assert row.split()[:7] == ["agent", "2", "2", "2", "2", "2", "<none>"]
    nodes = kc.ok("get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.nodeName}").split()
    assert sorted(nodes) == ["node-1", "node-2"]

    kc.ok("apply", "-f", "-", stdin=WEB)
    assert "poddisruptionbudget.policy/web-pdb created" in kc.ok(
        "create", "pdb", "web-pdb", "--selector=app=web", "--min-available=2"
    )
    _until(
        lambda: kc.ok("get", "pdb", "web-pdb", "-o", "jsonpath={.status.currentHealthy}") == "2",
        "the budget to count 2 healthy pods",
    )
    header, row = kc.ok("get", "pdb").splitlines()[:2]
    assert header.split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert row.split()[:4] == ["web-pdb", "2", "N/A", "0"]
    victim = kc.ok("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].spec.nodeName}")

    # without --ignore-daemonsets the DaemonSet's pod refuses the drain, named
    refused = kc("drain", victim, "--timeout=10s", timeout=60)
    assert refused.returncode != 0
    assert "cannot delete DaemonSet-managed Pods" in refused.stderr and "default/agent-" in refused.stderr

    # with it, the DaemonSet pod stays and the budget stops the drain, named
    blocked = kc("drain", victim, "--ignore-daemonsets", "--timeout=5s", timeout=60)
    assert blocked.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in blocked.stderr
    assert "web-pdb" in blocked.stderr
    assert "Warning: ignoring DaemonSet-managed Pods: default/agent-" in blocked.stderr
    assert victim in kc.ok("get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.nodeName}")

    # the RestClient rebuilds the 429 and its cause
    api = RestClient(load_kubeconfig(kubeconfig))
    try:
        web = api.list("Pod", "default", label_selector="app=web")[0][0]["metadata"]["name"]
        with pytest.raises(TooManyRequests) as exc:
            api.evict(web, "default")
        assert exc.value.causes[0]["reason"] == "DisruptionBudget"
        assert exc.value.causes[0]["message"] == "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"
    finally:
        api.close()

    # a budget that allows it lets kubectl drain finish; the DaemonSet pod stays where it is
    kc.ok("patch", "pdb", "web-pdb", "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
    _until(
        lambda: kc.ok("get", "pdb", "web-pdb", "-o", "jsonpath={.status.disruptionsAllowed}") == "1",
        "the budget to allow 1 disruption",
    )
    out = kc.ok("drain", victim, "--ignore-daemonsets", "--timeout=30s", timeout=60)
    assert f"node/{victim} drained" in out
    assert victim in kc.ok("get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.nodeName}")


def test_bad_daemonset_and_budget_are_refused_with_field_errors(served: tuple[Kubectl, str]) -> None:
    kc, _ = served
    bad = DAEMONSET.replace("containers:", "restartPolicy: Never\n      containers:")
    proc = kc("apply", "-f", "-", stdin=bad)
    assert proc.returncode != 0 and "spec.template.spec.restartPolicy" in proc.stderr
    proc = kc("create", "pdb", "both", "--selector=app=web", "--min-available=1", "--max-unavailable=1")
    assert proc.returncode != 0
    budget = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: both}
spec: {minAvailable: 1, maxUnavailable: 1, selector: {matchLabels: {app: web}}}
"""
    proc = kc("apply", "-f", "-", stdin=budget)
    assert proc.returncode != 0 and "minAvailable and maxUnavailable cannot be both set" in proc.stderr
    # a budget selecting nothing says so
    kc.ok("create", "pdb", "none", "--selector=app=nothing", "--min-available=1")
    _until(
        lambda: "No matching pods found"
        in kc.ok("get", "pdb", "none", "-o", "jsonpath={.status.conditions[0].message}"),
        "the empty budget's condition",
    )


def test_rollout_history_and_undo_through_controller_revisions(served: tuple[Kubectl, str]) -> None:
    kc, _ = served
    kc.ok("apply", "-f", "-", stdin=DAEMONSET)
    kc.ok("rollout", "status", "ds/agent", "--timeout=30s", timeout=60)
    kc.ok("set", "image", "ds/agent", "agent=busybox:2")
    kc.ok("rollout", "status", "ds/agent", "--timeout=30s", timeout=60)
    header, *rows = kc.ok("get", "controllerrevisions").splitlines()
    assert header.split() == ["NAME", "CONTROLLER", "REVISION", "AGE"]
    assert sorted(r.split()[1:3] for r in rows) == [["daemonset.apps/agent", "1"], ["daemonset.apps/agent", "2"]]
    history = kc.ok("rollout", "history", "ds/agent").split()
    assert history[history.index("CHANGE-CAUSE") + 1 :] == ["1", "<none>", "2", "<none>"]
    assert "daemonset.apps/agent rolled back" in kc.ok("rollout", "undo", "ds/agent")
    kc.ok("rollout", "status", "ds/agent", "--timeout=30s", timeout=60)
    assert kc.ok("get", "ds", "agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}") == "busybox"
    history = kc.ok("rollout", "history", "ds/agent").split()
    assert history[history.index("CHANGE-CAUSE") + 1 :] == ["2", "<none>", "3", "<none>"]  # 1 became 3
    hashes = kc.ok("get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].metadata.labels.controller-revision-hash}")
    first = kc.ok("get", "controllerrevisions", "-o", "jsonpath={.items[?(@.revision==3)].metadata.name}")
    assert set(hashes.split()) == {first.removeprefix("agent-")}
