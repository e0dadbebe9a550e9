"""Informers with a WatchFilter keep what it keeps, as a field selector would: a pod entering it
is an add, one leaving it a delete, and stored values the raw check rules out are never decoded."""

from __future__ import annotations

from typing import Any

import pytest
from test_informer import Recorder, pod

from nbkube.api.meta import Obj
from nbkube.client.informer import Informer, InformerFactory, WatchFilter
from nbkube.registry.registry import Registry

BOUND = WatchFilter(
    "bound", keep=lambda p: bool((p.get("spec") or {}).get("nodeName")), raw=lambda v: b'"nodeName"' in v
)


def _bind(api: Registry, name: str, node: str) -> Obj:
    current = api.get("Pod", name, "default")
    return api.update({**current, "spec": {**current["spec"], "nodeName": node}})


def test_a_filtered_informer_lists_and_watches_only_what_its_filter_keeps(api: Registry) -> None:
    api.create(pod("bound-before", node="n1"))
    api.create(pod("pending-before"))
    inf = Informer(api, "Pod", watch_filter=BOUND)
    rec = Recorder()
    inf.add_handler(**rec.handlers())
    inf.start()
    try:
        assert inf.wait_synced(5)
        assert rec.expect(1) == [("add", "bound-before")]
        api.create(pod("pending"))
        _bind(api, "pending", "n2")  # enters the filter: an add, not an update
        assert rec.expect(1) == [("add", "pending")]
        api.delete("Pod", "pending-before", "default")  # never kept: nothing to say
        api.delete("Pod", "pending", "default")
        assert rec.expect(1) == [("delete", "pending")]
        assert sorted(p["metadata"]["name"] for p in inf.list()) == ["bound-before"]
        assert rec.quiet()
    finally:
        inf.stop()


def test_values_the_raw_check_rules_out_are_not_decoded(api: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real = api._decode

    def counting(kv: Any) -> Obj:
        decoded.append(kv.key)
        return real(kv)

    monkeypatch.setattr(api, "_shared_decode", counting)  # what a shared watch decodes with
    watch = api.watch("Pod", "default", predicate=BOUND.keep, raw_filter=BOUND.raw, shared=True)
    try:
        decoded.clear()  # the watch's snapshot of what matches now
        for i in range(20):
            api.create(pod(f"p{i}"))
        api.create(pod("b", node="n1"))
        event = watch.next(5)
        assert event is not None and (event.type, event.object["metadata"]["name"]) == ("ADDED", "b")
        assert decoded and all(key.endswith("/b") for key in decoded)  # no pending pod
        decoded.clear()
        _bind(api, "p0", "n1")  # entering: the bound version decoded, its pending one not
        event = watch.next(5)
        assert event is not None and (event.type, event.object["metadata"]["name"]) == ("ADDED", "p0")
        assert [key.rsplit("/", 1)[-1] for key in decoded] == ["p0"]
    finally:
        watch.cancel()


def test_a_factory_filters_the_kinds_it_is_given(api: Registry) -> None:
    factory = InformerFactory(api, filters={"pods": BOUND})
    assert factory.informer("Pod").watch_filter is BOUND
    assert factory.informer("Service").watch_filter is None


def test_a_client_without_predicate_watches_is_refused(api: Registry) -> None:
    class Remote:
        def watch(self, kind: str, namespace: str = "", *, resource_version: str = "") -> None: ...

    with pytest.raises(TypeError, match="watch filter 'bound' needs the in-process registry"):
        Informer(Remote(), "Pod", watch_filter=BOUND)  # type: ignore[arg-type]
