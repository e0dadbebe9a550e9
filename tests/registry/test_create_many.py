"""Registry.create_many: each object admitted and failing on its own, the writes in one batch."""

from __future__ import annotations

from typing import Any

from nbkube.errors import AlreadyExists, Forbidden, Invalid
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import Registry
from nbkube.store import open_store


def _cm(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", **meta},
    }


def test_each_object_succeeds_or_fails_on_its_own(api: Registry) -> None:
    api.create(_cm("taken"))
    w = api.watch("ConfigMap", "default")
    results = api.create_many(
        [_cm("a"), _cm("taken"), _cm("Bad_Name"), _cm("", generateName="gen-"), _cm("b")]
    )
    a, taken, bad, gen, b = results
    assert isinstance(a, dict) and api.get("ConfigMap", "a", "default") == a
    assert isinstance(taken, AlreadyExists)
    assert isinstance(bad, Invalid)
    assert isinstance(gen, dict) and gen["metadata"]["name"].startswith("gen-")
    assert isinstance(b, dict) and int(b["metadata"]["resourceVersion"]) > int(
        a["metadata"]["resourceVersion"]
    )
    assert a["metadata"]["uid"] and a["metadata"]["creationTimestamp"]
    seen = [w.next(2.0) for _ in range(3)]
    assert [e.object["metadata"]["name"] for e in seen if e is not None] == [
        "a",
        gen["metadata"]["name"],
        "b",
    ]
    w.cancel()


def test_admission_charges_and_refuses_per_object() -> None:
    store = open_store("sqlite://:memory:")
    api = Registry(store, admission=default_admission_plugins())
    try:
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "q", "namespace": "default"},
                "spec": {"hard": {"configmaps": "2"}},
            }
        )
        results = api.create_many([_cm("x"), _cm("y"), _cm("z")])
        assert [isinstance(r, dict) for r in results] == [True, True, False]
        assert isinstance(results[2], Forbidden)
        assert api.get("ResourceQuota", "q", "default")["status"]["used"]["configmaps"] == "2"
        # a write the store refuses gives its charge back
        api.delete("ConfigMap", "y", "default")
        refused = api.create_many([_cm("x")])
        assert isinstance(refused[0], AlreadyExists)
        assert api.get("ResourceQuota", "q", "default")["status"]["used"]["configmaps"] == "1"
    finally:
        api.close()


def test_a_batch_reads_a_namespace_without_policies_once() -> None:
    store = open_store("sqlite://:memory:")
    api = Registry(store, admission=default_admission_plugins())
    reads: list[tuple[str, str]] = []
    real = api.list

    def counting(kind: str, namespace: str = "", **kw: Any) -> Any:
        reads.append((kind, namespace))
        return real(kind, namespace, **kw)

    api.list = counting  # type: ignore[method-assign]
    try:
        assert all(isinstance(r, dict) for r in api.create_many([_cm(f"c{i}") for i in range(20)]))
        assert reads.count(("ResourceQuota", "default")) == 1  # the absence read once a batch
        reads.clear()
        api.create_many([_cm("d0"), _cm("d1")])
        assert reads.count(("ResourceQuota", "default")) == 1  # ... and once again by the next
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quoted"}})
        api.create(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "q", "namespace": "quoted"},
                "spec": {"hard": {"configmaps": "2"}},
            }
        )
        reads.clear()
        results = api.create_many([_cm(f"e{i}", namespace="quoted") for i in range(3)])
        assert [isinstance(r, dict) for r in results] == [True, True, False]
        assert reads.count(("ResourceQuota", "quoted")) >= 3  # a quota found is read each time
    finally:
        api.close()
