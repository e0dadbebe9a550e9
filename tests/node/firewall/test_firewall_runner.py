"""The firewall runner recomputes a node's table when Pods, Namespaces or NetworkPolicies change,
and the process runtime's notice says on each policy that it is not enforced there."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbkube.client.events import events_dataframe
from nbkube.client.informer import InformerFactory
from nbkube.node.firewall.base import FakeFirewall
from nbkube.node.firewall.notice import NOT_ENFORCED, NotEnforcedNotice, policies_selecting_node
from nbkube.node.firewall.policy import Peer, PortMatch, Rule
from nbkube.node.firewall.runner import FirewallRunner
from nbkube.registry.registry import Registry
from nbkube.store import open_store


def _wait(pred: Callable[[], Any], timeout: float = 10.0) -> bool:
    # polling a background thread, bounded; no timing is asserted
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return bool(pred())


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"))
    for ns in ("tenant-a", "tenant-b"):
        reg.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    yield reg
    reg.close()


def _pod(api: Registry, name: str, ns: str, ip: str, node: str = "n1") -> None:
    pod = api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    pod["status"] = {"phase": "Running", "podIP": ip}
    api.update_status(pod)


def _policy(ns: str, name: str, spec: dict) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


SAME_NS = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}


@pytest.mark.parametrize("threaded", [True, False])
def test_runner_follows_policies_pods_and_deletion(api: Registry, threaded: bool) -> None:
    factory = InformerFactory(api)
    fw = FakeFirewall()
    runner = FirewallRunner(factory, fw, "n1", threaded=threaded, cleanup_on_stop=True)
    _pod(api, "a1", "tenant-a", "10.244.1.2")
    _pod(api, "b1", "tenant-b", "10.244.1.3")
    _pod(api, "b2", "tenant-b", "10.244.2.3", node="n2")
    runner.start()
    try:
        assert _wait(lambda: runner.syncs > 0)
        assert fw.current == {}
        api.create(_policy("tenant-b", "same-ns", SAME_NS))
        want = (Rule((Peer("10.244.1.3/32"), Peer("10.244.2.3/32")), None),)
        assert _wait(lambda: "10.244.1.3" in fw.current and fw.current["10.244.1.3"].ingress == want)
        assert set(fw.current) == {"10.244.1.3"}  # n2's pod is n2's business
        api.delete("Pod", "b2", "tenant-b")
        assert _wait(lambda: fw.current["10.244.1.3"].ingress == (Rule((Peer("10.244.1.3/32"),), None),))
        api.delete("NetworkPolicy", "same-ns", "tenant-b")
        assert _wait(lambda: fw.current == {})
    finally:
        runner.stop()
        factory.stop_all()
    assert fw.cleaned


def test_a_failing_sync_is_retried(api: Registry) -> None:
    class Flaky(FakeFirewall):
        fails = 2

        def sync(self, pods: Any) -> bool:
            if self.fails:
                self.fails -= 1
                raise RuntimeError("iptables-restore: resource busy")
            return super().sync(pods)

    factory = InformerFactory(api)
    fw = Flaky()
    runner = FirewallRunner(factory, fw, "n1")
    runner.start()
    try:
        assert _wait(lambda: runner.syncs > 0 and fw.fails == 0)
        assert runner.last_error == ""
    finally:
        runner.stop()
        factory.stop_all()


def test_the_runner_waits_for_start_after_and_has_the_firewall_check_its_rules(api: Registry) -> None:
    factory = InformerFactory(api)
    fw = FakeFirewall()
    order: list[str] = []

    def proxy_synced(timeout: float) -> bool:
        order.append(f"proxy synced, firewall syncs so far: {len(fw.synced)}")
        return True

    runner = FirewallRunner(factory, fw, "n1", check_every=0.01, start_after=proxy_synced)
    runner.start()
    try:
        assert _wait(lambda: fw.checks >= 2)
        assert order == ["proxy synced, firewall syncs so far: 0"] and len(fw.synced) == 1
    finally:
        runner.stop()
        factory.stop_all()


def test_the_process_runtime_warns_on_each_policy_that_selects_its_pods(api: Registry) -> None:
    factory = InformerFactory(api)
    notice = NotEnforcedNotice(api, factory, "n1")
    _pod(api, "a1", "tenant-a", "127.244.1.2")
    _pod(api, "b2", "tenant-b", "127.244.2.3", node="n2")
    notice.start()
    try:
        api.create(_policy("tenant-a", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))
        api.create(_policy("tenant-b", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]}))

        def warnings() -> list[tuple[str, str]]:
            df = events_dataframe(api)
            df = df[df["reason"] == NOT_ENFORCED]
            return sorted(zip(df["namespace"], df["message"], strict=True))

        assert _wait(lambda: len(warnings()) == 1)
        ((ns, message),) = warnings()
        assert ns == "tenant-a"  # tenant-b's policy selects no pod on n1
        assert message.startswith("not enforced on node n1: the process runtime has no network isolation")
        api.create(_policy("tenant-a", "deny2", {"podSelector": {"matchLabels": {"app": "a1"}}}))
        assert _wait(lambda: len(warnings()) == 2)
        _pod(api, "a3", "tenant-a", "127.244.1.4")  # more pods: no more events for the same policies
        assert len(warnings()) == 2
    finally:
        factory.stop_all()


def test_policies_selecting_node_is_by_namespace_and_selector() -> None:
    pods = [{"metadata": {"name": "p", "namespace": "a", "labels": {"x": "1"}}, "spec": {"nodeName": "n1"}}]
    pol = [
        {"metadata": {"name": "hit", "namespace": "a"}, "spec": {"podSelector": {"matchLabels": {"x": "1"}}}},
        {"metadata": {"name": "other-ns", "namespace": "b"}, "spec": {"podSelector": {}}},
        {
            "metadata": {"name": "miss", "namespace": "a"},
            "spec": {"podSelector": {"matchLabels": {"x": "2"}}},
        },
    ]
    assert [p["metadata"]["name"] for p in policies_selecting_node(pods, pol, "n1")] == ["hit"]
    assert policies_selecting_node(pods, pol, "n2") == []


@pytest.mark.parametrize("threaded", [True, False])
def test_runner_follows_the_cluster_dns_slices(api: Registry, threaded: bool) -> None:
    # kube-system/kube-dns's addresses are kube-system's DNS pods for egress rules (policy.py)
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}})
    factory = InformerFactory(api)
    fw = FakeFirewall()
    runner = FirewallRunner(factory, fw, "n1", threaded=threaded)
    _pod(api, "a1", "tenant-a", "10.244.1.2")
    allow_dns = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                "ports": [{"protocol": "UDP", "port": 53}],
            }
        ],
    }
    api.create(_policy("tenant-a", "allow-dns", allow_dns))
    runner.start()
    try:
        assert _wait(lambda: "10.244.1.2" in fw.current and fw.current["10.244.1.2"].egress == ())
        dns_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-x",
                "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "kube-dns", "k8s-app": "kube-dns"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.240.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "dns", "port": 40053, "protocol": "UDP"}],
        }
        created = api.create(dns_slice)
        want = (Rule((Peer("10.240.0.1/32"),), (PortMatch("UDP", 40053),)),)
        assert _wait(lambda: fw.current.get("10.244.1.2") is not None and fw.current["10.244.1.2"].egress == want)
        created["ports"] = [{"name": "dns", "port": 40054, "protocol": "UDP"}]  # the server moved
        api.update(created)
        want = (Rule((Peer("10.240.0.1/32"),), (PortMatch("UDP", 40054),)),)
        assert _wait(lambda: fw.current["10.244.1.2"].egress == want)
    finally:
        runner.stop()
