"""The proxy runner recomputes the rule table when Services or their EndpointSlices change."""

from __future__ import annotations

import threading

from nbkube.client.informer import InformerFactory
from nbkube.node.proxy.rules import ServicePortRule
from nbkube.node.proxy.runner import ProxyRunner
from nbkube.node.proxy.userspace import loopback_address
from nbkube.registry.registry import Registry
from nbkube.store import open_store


def _service() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "selector": {"app": "web"},
            "ports": [{"port": 8000, "targetPort": 8080}],
        },
    }


def _slice(*ips: str, name: str = "web-abcde", ready: bool = True) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips],
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def test_runner_syncs_at_start_and_after_each_change():
    api = Registry(open_store("sqlite://:memory:"))
    factory = InformerFactory(api)
    seen: list[list[ServicePortRule]] = []
    changed = threading.Event()

    def apply(rules: list[ServicePortRule]) -> None:
        seen.append(rules)
        changed.set()

    runner = ProxyRunner(factory, apply)
    runner.start()
    try:
        assert runner.wait_synced(10)
        assert seen[-1] == []
        api.create(_service())
        ep = api.create(_slice("127.244.1.2"))

        def backends() -> list[str]:
            return [b.ip for r in runner.rules for b in r.backends]

        deadline_ok = _wait(lambda: backends() == ["127.244.1.2"])
        assert deadline_ok, runner.rules
        ep["endpoints"].append({"addresses": ["127.244.2.2"], "conditions": {"ready": True}})
        api.update(ep)
        assert _wait(lambda: backends() == ["127.244.1.2", "127.244.2.2"])
        # a second slice of the same Service adds its ready endpoints; not-ready ones are skipped
        api.create(_slice("127.244.3.2", name="web-fghij"))
        api.create(_slice("127.244.4.2", name="web-klmno", ready=False))
        assert _wait(lambda: backends() == ["127.244.1.2", "127.244.2.2", "127.244.3.2"])
        api.delete("EndpointSlice", "web-fghij", "default")
        assert _wait(lambda: backends() == ["127.244.1.2", "127.244.2.2"])
        api.delete("Service", "web", "default")
        assert _wait(lambda: runner.rules == [])
    finally:
        runner.stop()
        factory.stop_all()
        api.close()


def test_a_failing_sync_is_retried():
    api = Registry(open_store("sqlite://:memory:"))
    factory = InformerFactory(api)
    calls = []

    def apply(rules: list[ServicePortRule]) -> None:
        calls.append(len(rules))
        if len(calls) == 1:
            raise OSError("iptables-restore: resource busy")

    runner = ProxyRunner(factory, apply)
    runner.start()
    try:
        assert _wait(lambda: runner.syncs >= 1)
        assert len(calls) >= 2 and runner.last_error == ""
    finally:
        runner.stop()
        factory.stop_all()
        api.close()


def test_on_idle_runs_once_after_a_quiet_spell_following_a_sync():
    api = Registry(open_store("sqlite://:memory:"))
    factory = InformerFactory(api)
    events: list[str] = []
    runner = ProxyRunner(factory, lambda rules: events.append("sync"), on_idle=lambda: events.append("idle"),
                         idle_after=0.05)  # fmt: skip
    runner.start()
    try:
        assert _wait(lambda: events == ["sync", "idle"])
        api.create(_service())
        assert _wait(lambda: events[-2:] == ["sync", "idle"] and len(events) == 4)
        assert events == ["sync", "idle", "sync", "idle"]  # once per quiet spell, not repeatedly
    finally:
        runner.stop()
        factory.stop_all()
        api.close()


def test_cluster_ips_mirror_into_loopback():
    assert loopback_address("10.96.0.10") == "127.96.0.10"
    assert loopback_address("10.111.255.254") == "127.111.255.254"


def _wait(predicate, timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        done.wait(0.02)
    return predicate()
