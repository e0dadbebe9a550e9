"""PodCounts: per-owner counts follow the informer's add/update/delete calls."""

from __future__ import annotations

from typing import Any

from nbkube.api.selectors import selector_from_map
from nbkube.controlplane.controllers.podcounts import PodCounts


class _Informer:
    """Records the handlers PodCounts registers, so the test can play informer events."""

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self.on_add, self.on_update, self.on_delete = on_add, on_update, on_delete


def _pod(name: str, uid: str | None, *, ready: bool = False, phase: str = "Running", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "labels": labels or {"app": "a"}}
    if uid:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": True}]
    return {
        "metadata": meta,
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_counts_follow_adds_updates_and_deletes() -> None:
    inf = _Informer()
    counts = PodCounts(inf)  # type: ignore[arg-type]
    a, b = _pod("a", "u1"), _pod("b", "u1")
    inf.on_add(a)
    inf.on_add(b)
    inf.on_add(_pod("orphan", None))
    inf.on_add(_pod("other", "u2"))
    t = counts.tally("ns", "u1")
    assert (t.pods, t.active, t.ready) == (2, 2, 0)
    a_ready = _pod("a", "u1", ready=True)
    inf.on_update(a, a_ready)
    assert counts.tally("ns", "u1").ready == 1
    inf.on_update(a_ready, _pod("a", "u1", ready=True))  # nothing counted moved: counts stay
    t = counts.tally("ns", "u1")
    assert (t.pods, t.active, t.ready) == (2, 2, 1)
    released = _pod("a", None, ready=True)
    inf.on_update(a_ready, released)  # its owner let go of it: counted nowhere
    assert counts.tally("ns", "u1").pods == 1
    inf.on_update(released, a_ready)  # adopted again
    b_done = _pod("b", "u1", ready=True, phase="Succeeded")
    inf.on_update(b, b_done)
    t = counts.tally("ns", "u1")
    assert (t.pods, t.active, t.ready) == (2, 1, 1)  # a finished pod is owned, not active
    inf.on_delete(b_done)
    inf.on_delete(a_ready)
    t = counts.tally("ns", "u1")
    assert (t.pods, t.active, t.ready) == (0, 0, 0)
    assert counts.tally("ns", "u2").active == 1
    assert counts.tally("other-ns", "u2").pods == 0


def test_label_sets_answer_selector_and_template_questions() -> None:
    inf = _Informer()
    counts = PodCounts(inf)  # type: ignore[arg-type]
    inf.on_add(_pod("a", "u1", app="web", tier="x"))
    inf.on_add(_pod("b", "u1", app="web"))
    t = counts.tally("ns", "u1")
    assert t.all_match(selector_from_map({"app": "web"}))
    assert not t.all_match(selector_from_map({"app": "web", "tier": "x"}))
    assert t.fully_labeled({"app": "web", "tier": "x"}) == 1
    assert t.fully_labeled({"app": "web"}) == 2


def test_a_tally_is_a_copy() -> None:
    inf = _Informer()
    counts = PodCounts(inf)  # type: ignore[arg-type]
    inf.on_add(_pod("a", "u1"))
    t = counts.tally("ns", "u1")
    inf.on_add(_pod("b", "u1"))
    assert t.active == 1 and counts.tally("ns", "u1").active == 2
