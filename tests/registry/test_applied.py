"""ApplyResult: still the (object, action) list callers iterate, shown as a small table."""

from __future__ import annotations

from nbkube.registry.applied import ApplyResult


def _obj(kind: str, name: str, namespace: str = "") -> dict[str, object]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta}


def test_it_is_the_list_of_pairs_callers_already_use() -> None:
    result = ApplyResult(
        [(_obj("Service", "web", "default"), "created"), (_obj("Namespace", "a"), "unchanged")]
    )
    assert isinstance(result, list) and len(result) == 2
    (obj, action), _ = result
    assert obj["kind"] == "Service" and action == "created" and result[1][1] == "unchanged"
    assert result.counts() == {"created": 1, "unchanged": 1}


def test_text_and_html_tables() -> None:
    result = ApplyResult([(_obj("ReplicationController", "web<x>", "default"), "configured")])
    text = repr(result).splitlines()
    assert text[0].split() == ["KIND", "NAME", "NAMESPACE", "ACTION"]
    assert text[1].split() == ["ReplicationController", "web<x>", "default", "configured"]
    html = result._repr_html_()
    assert "<table" in html and "web&lt;x&gt;" in html and "configured" in html and "1 configured" in html
    assert repr(ApplyResult()) == "ApplyResult: nothing applied"


def test_ipython_pretty_prints_the_table() -> None:
    from IPython.lib.pretty import pretty

    result = ApplyResult([(_obj("Pod", "p", "default"), "created")])
    assert pretty(result) == repr(result)


def test_two_applies_add_up_to_one_table() -> None:
    both = ApplyResult([(_obj("ReplicationController", "web", "default"), "created")]) + ApplyResult(
        [(_obj("Service", "web", "default"), "created")]
    )
    assert isinstance(both, ApplyResult) and [r[0] for r in both.rows()] == [
        "ReplicationController",
        "Service",
    ]
