"""Registry behaviour: CRUD, resourceVersion/conflicts, generation, status split, apply, watch,
namespaces, orphan delete and admission."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest

from nbkube.api import kinds
from nbkube.api.meta import Obj
from nbkube.errors import AlreadyExists, BadRequest, Conflict, Expired, Forbidden, Invalid, NotFound, TooLarge
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import LAST_APPLIED, Registry, RegistryEvent, RegistryWatch
from nbkube.store.base import KeyValue, WatchEvent

RC_ARTICLE: Obj = {
    "apiVersion": "v1",
    "kind": "ReplicationController",
    "metadata": {"name": "nginx-test-controller"},
    "spec": {
        "replicas": 5,
        "selector": {"app": "nginx"},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]},
        },
    },
}

SVC_ARTICLE: Obj = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "nginx-http-service"},
    "spec": {
        "ports": [{"port": 8000, "targetPort": 80, "protocol": "TCP", "nodePort": 30001}],
        "selector": {"app": "nginx"},
        "type": "NodePort",
    },
}


def pod(name: str, ns: str = "default", labels: dict[str, str] | None = None, node: str = "") -> Obj:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": spec,
    }


def cm(name: str, data: dict[str, str] | None = None, ns: str = "default") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data or {"k": "v"},
    }


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


# --- CRUD ------------------------------------------------------------------------------------------


def test_create_sets_server_fields_and_get_returns_it(api: Registry) -> None:
    created = api.create(pod("p1", labels={"app": "web"}))
    meta = created["metadata"]
    assert meta["uid"] and len(meta["uid"]) == 36
    assert meta["creationTimestamp"] == "2023-11-14T22:13:20Z"  # FakeClock's start
    assert meta["generation"] == 1
    assert meta["resourceVersion"].isdigit()
    assert meta["namespace"] == "default"
    got = api.get("Pod", "p1", "default")
    assert got == created
    assert api.get("po", "p1", "default")["metadata"]["uid"] == meta["uid"]


def test_create_does_not_mutate_input_and_stores_compact_json_without_rv(api: Registry) -> None:
    obj = pod("p1")
    before = copy.deepcopy(obj)
    created = api.create(obj)
    assert obj == before
    kv = api.store.get("/registry/pods/default/p1")
    assert kv is not None
    assert b", " not in kv.value and b": " not in kv.value
    assert "resourceVersion" not in json.loads(kv.value)["metadata"]
    assert created["metadata"]["resourceVersion"] == str(kv.mod_revision)


def test_cluster_scoped_key_layout(api: Registry) -> None:
    api.create(namespace("team-a"))
    assert api.store.get("/registry/namespaces/team-a") is not None
    assert api.get("Namespace", "team-a")["metadata"]["name"] == "team-a"


def test_create_twice_is_already_exists(api: Registry) -> None:
    api.create(pod("p1"))
    with pytest.raises(AlreadyExists, match='pods "p1" already exists'):
        api.create(pod("p1"))


def test_get_missing_is_not_found(api: Registry) -> None:
    with pytest.raises(NotFound, match='pods "nope" not found'):
        api.get("Pod", "nope", "default")


def test_generate_name(api: Registry) -> None:
    obj = pod("")
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "web-"
    a = api.create(obj)
    b = api.create(obj)
    assert a["metadata"]["name"].startswith("web-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]


def test_invalid_object_names_field_and_writes_nothing(api: Registry) -> None:
    bad = pod("Bad_Name")
    rev = api.store.current_revision()
    with pytest.raises(Invalid, match="metadata.name"):
        api.create(bad)
    assert api.list("Pod")[0] == []
    # the default namespace may not even be created by a rejected request
    assert api.store.current_revision() == rev


def test_too_large_object_is_rejected(api: Registry) -> None:
    big = pod("big")
    big["spec"]["containers"][0]["env"] = [{"name": "BLOB", "value": "x" * (1536 * 1024)}]
    with pytest.raises(TooLarge, match="too large"):
        api.create(big)
    with pytest.raises(NotFound):
        api.get("Pod", "big", "default")


def test_list_namespace_label_and_field_selectors(api: Registry) -> None:
    api.create(namespace("other"))
    api.create(pod("a", labels={"app": "web", "tier": "fe"}, node="n1"))
    api.create(pod("b", labels={"app": "web"}, node="n2"))
    api.create(pod("c", labels={"app": "db"}))
    api.create(pod("d", ns="other", labels={"app": "web"}))
    names = lambda items: sorted(o["metadata"]["name"] for o in items)  # noqa: E731
    items, rv = api.list("Pod")
    assert names(items) == ["a", "b", "c", "d"]
    assert rv == str(api.store.current_revision())
    assert names(api.list("Pod", "default")[0]) == ["a", "b", "c"]
    assert names(api.list("Pod", "other")[0]) == ["d"]
    assert names(api.list("Pod", label_selector="app=web")[0]) == ["a", "b", "d"]
    assert names(api.list("Pod", label_selector="app in (web,db),!tier")[0]) == ["b", "c", "d"]
    assert names(api.list("Pod", field_selector={"spec.nodeName": "n1"})[0]) == ["a"]
    assert names(api.list("Pod", field_selector={"spec.nodeName": ""})[0]) == ["c", "d"]
    assert names(api.list("Pod", field_selector={"metadata.name": "b"})[0]) == ["b"]
    assert names(
        api.list("Pod", "default", label_selector="app=web", field_selector={"spec.nodeName": "n2"})[0]
    ) == ["b"]


# --- update, conflicts, generation, status ---------------------------------------------------------


def test_update_with_stale_resource_version_conflicts(api: Registry) -> None:
    first = api.create(cm("c1"))
    second = copy.deepcopy(first)
    first["data"] = {"k": "one"}
    updated = api.update(first)
    assert int(updated["metadata"]["resourceVersion"]) > int(second["metadata"]["resourceVersion"])
    second["data"] = {"k": "two"}
    with pytest.raises(
        Conflict, match='Operation cannot be fulfilled on configmaps "c1": the object has been modified'
    ):
        api.update(second)
    assert api.get("ConfigMap", "c1", "default")["data"] == {"k": "one"}


def test_concurrent_updates_exactly_one_wins(api: Registry) -> None:
    base = api.create(cm("race"))
    results: list[str] = []
    barrier = threading.Barrier(4)

    def writer(i: int) -> None:
        obj = copy.deepcopy(base)
        obj["data"] = {"k": str(i)}
        barrier.wait()
        try:
            api.update(obj)
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["conflict"] * 3 + ["ok"]


def test_identical_update_writes_nothing(api: Registry) -> None:
    created = api.create(pod("p1"))
    rev = api.store.current_revision()
    again = api.update(copy.deepcopy(created))
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert api.store.current_revision() == rev


def test_generation_bumps_only_on_spec_change(api: Registry) -> None:
    rc = api.create(RC_ARTICLE)
    assert rc["metadata"]["generation"] == 1
    rc["metadata"]["labels"] = {"x": "y"}
    rc = api.update(rc)
    assert rc["metadata"]["generation"] == 1
    rc["spec"]["replicas"] = 2
    rc = api.update(rc)
    assert rc["metadata"]["generation"] == 2


def test_update_keeps_status_and_update_status_keeps_spec(api: Registry) -> None:
    rc = api.create(RC_ARTICLE)
    rc["status"] = {"replicas": 5}
    rc = api.update_status(rc)
    assert rc["status"] == {"replicas": 5}
    assert rc["metadata"]["generation"] == 1
    rc["status"] = {"replicas": 99}
    rc["spec"]["replicas"] = 3
    rc = api.update(rc)
    assert rc["status"] == {"replicas": 5}  # update ignored status
    assert rc["spec"]["replicas"] == 3
    rc["spec"]["replicas"] = 7
    rc["status"] = {"replicas": 3}
    rc = api.update_status(rc)
    assert rc["spec"]["replicas"] == 3  # update_status ignored spec
    assert api.get("rc", "nginx-test-controller", "default")["status"] == {"replicas": 3}


def test_managed_fields_hook_sees_the_defaulted_object_and_updates_keep_them(api: Registry) -> None:
    seen: list[tuple[Obj, Obj | None]] = []

    def record(new: Obj, old: Obj | None) -> None:
        seen.append((copy.deepcopy(new), old))
        new["metadata"]["managedFields"] = [{"manager": "m", "operation": "Update", "fieldsV1": {}}]

    created = api.create(pod("mf"), managed_fields=record)
    assert seen[0][1] is None and seen[0][0]["spec"]["restartPolicy"] == "Always"  # defaulted
    assert created["metadata"]["managedFields"][0]["manager"] == "m"
    bare = copy.deepcopy(created)
    del bare["metadata"]["managedFields"]  # a writer that knows nothing of field ownership
    bare["metadata"]["labels"] = {"x": "1"}
    updated = api.update(bare)
    assert updated["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    api.mutate("Pod", "mf", "default", lambda cur: cur, managed_fields=record)
    assert seen[-1][1] is not None and seen[-1][1]["metadata"]["labels"] == {"x": "1"}


def test_update_missing_is_not_found_and_immutable_field_is_invalid(api: Registry) -> None:
    with pytest.raises(NotFound):
        api.update(cm("ghost"))
    p = api.create(pod("p1"))
    p["spec"]["containers"].append({"name": "extra", "image": "busybox"})
    with pytest.raises(Invalid):
        api.update(p)


def test_patch_merges_and_deletes_keys(api: Registry) -> None:
    api.create(cm("c1", {"a": "1", "b": "2"}))
    out = api.patch(
        "ConfigMap", "c1", "default", {"data": {"b": None, "c": "3"}, "metadata": {"labels": {"l": "v"}}}
    )
    assert out["data"] == {"a": "1", "c": "3"}
    assert out["metadata"]["labels"] == {"l": "v"}
    api.create(pod("p1"))
    p = api.patch("Pod", "p1", "default", {"status": {"phase": "Running"}}, status=True)
    assert p["status"]["phase"] == "Running"


# --- namespaces ------------------------------------------------------------------------------------


def test_missing_namespace_is_not_found_but_default_ones_are_created(api: Registry) -> None:
    with pytest.raises(NotFound, match='namespaces "nowhere" not found'):
        api.create(pod("p", ns="nowhere"))
    api.create(pod("p", ns="kube-system"))
    assert api.get("Namespace", "kube-system")["metadata"]["name"] == "kube-system"


def test_the_system_namespaces_are_made_at_once_and_only_once(api: Registry) -> None:
    api.ensure_system_namespaces()
    made = {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in api.list("Namespace")[0]}
    assert set(made) == {"default", "kube-system", "kube-public", "kube-node-lease"}
    api.ensure_system_namespaces()  # again (a restart over the same store): nothing rewritten
    assert {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in api.list("Namespace")[0]} == made


def test_terminating_namespace_is_forbidden(api: Registry) -> None:
    ns = api.create(namespace("dying"))
    ns["status"] = {"phase": "Terminating"}
    api.update_status(ns)
    with pytest.raises(Forbidden, match="being terminated"):
        api.create(cm("c", ns="dying"))


# --- delete ----------------------------------------------------------------------------------------


def test_delete_returns_object_and_removes_it(api: Registry) -> None:
    created = api.create(pod("p1"))
    gone = api.delete("Pod", "p1", "default")
    assert gone["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(gone["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        api.get("Pod", "p1", "default")
    with pytest.raises(NotFound):
        api.delete("Pod", "p1", "default")


def test_delete_with_stale_resource_version_conflicts(api: Registry) -> None:
    created = api.create(cm("c1"))
    api.patch("ConfigMap", "c1", "default", {"data": {"k": "new"}})
    with pytest.raises(Conflict):
        api.delete("ConfigMap", "c1", "default", resource_version=created["metadata"]["resourceVersion"])
    assert api.get("ConfigMap", "c1", "default")


def _owned_pod(name: str, owner: Obj) -> Obj:
    p = pod(name, labels={"app": "nginx"})
    p["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    return p


def test_orphan_delete_strips_owner_references(api: Registry) -> None:
    rc = api.create(RC_ARTICLE)
    api.create(_owned_pod("p1", rc))
    api.create(_owned_pod("p2", rc))
    api.delete("rc", "nginx-test-controller", "default", propagation="Orphan")
    for name in ("p1", "p2"):
        assert "ownerReferences" not in api.get("Pod", name, "default")["metadata"]


def test_background_delete_leaves_dependents_to_gc(api: Registry) -> None:
    rc = api.create(RC_ARTICLE)
    api.create(_owned_pod("p1", rc))
    api.delete("rc", "nginx-test-controller", "default")
    refs = api.get("Pod", "p1", "default")["metadata"]["ownerReferences"]
    assert refs[0]["uid"] == rc["metadata"]["uid"]


# --- apply -----------------------------------------------------------------------------------------


def test_apply_article_manifests_is_idempotent(api: Registry) -> None:
    results = api.apply([copy.deepcopy(RC_ARTICLE), copy.deepcopy(SVC_ARTICLE)])
    assert [a for _o, a in results] == ["created", "created"]
    rc, svc = results[0][0], results[1][0]
    assert (
        json.loads(rc["metadata"]["annotations"][LAST_APPLIED])["metadata"]["name"] == "nginx-test-controller"
    )
    rev = api.store.current_revision()
    again = api.apply([copy.deepcopy(RC_ARTICLE), copy.deepcopy(SVC_ARTICLE)])
    assert [a for _o, a in again] == ["unchanged", "unchanged"]
    assert again[0][0]["metadata"]["resourceVersion"] == rc["metadata"]["resourceVersion"]
    assert again[1][0]["metadata"]["resourceVersion"] == svc["metadata"]["resourceVersion"]
    assert api.store.current_revision() == rev


def test_apply_changed_manifest_configures_and_keeps_server_fields(api: Registry) -> None:
    api.apply([copy.deepcopy(SVC_ARTICLE)])
    # what an allocation plugin would have done at admission:
    api.patch("Service", "nginx-http-service", "default", {"spec": {"clusterIP": "10.96.0.10"}})
    changed = copy.deepcopy(SVC_ARTICLE)
    changed["metadata"]["labels"] = {"team": "a"}
    [(svc, action)] = api.apply([changed])
    assert action == "configured"
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert svc["metadata"]["labels"] == {"team": "a"}
    [(_svc, action)] = api.apply([copy.deepcopy(changed)])
    assert action == "unchanged"


def test_apply_keeps_labels_added_by_others_and_drops_removed_ones(api: Registry) -> None:
    m = cm("c1")
    m["metadata"]["labels"] = {"mine": "1", "gone": "x"}
    api.apply([copy.deepcopy(m)])
    api.patch("ConfigMap", "c1", "default", {"metadata": {"labels": {"theirs": "2"}}})
    del m["metadata"]["labels"]["gone"]
    [(out, action)] = api.apply([m])
    assert action == "configured"
    assert out["metadata"]["labels"] == {"mine": "1", "theirs": "2"}


def test_apply_with_one_invalid_document_writes_nothing(api: Registry) -> None:
    bad = copy.deepcopy(SVC_ARTICLE)
    bad["spec"]["ports"][0]["port"] = "not-a-port"
    rev = api.store.current_revision()
    with pytest.raises(Invalid, match=r"doc 2: spec\.ports\[0\]\.port"):
        api.apply([copy.deepcopy(RC_ARTICLE), bad])
    assert api.store.current_revision() == rev
    assert api.list("rc")[0] == []


def test_apply_rejects_duplicates_and_missing_namespace_before_writing(api: Registry) -> None:
    rev = api.store.current_revision()
    with pytest.raises(Invalid, match="duplicate"):
        api.apply([cm("same"), cm("same")])
    with pytest.raises(Invalid, match='namespaces "ghost" not found'):
        api.apply([cm("a"), cm("b", ns="ghost")])
    assert api.store.current_revision() == rev
    # a namespace created by the same batch is fine
    results = api.apply([namespace("fresh"), cm("x", ns="fresh")])
    assert [a for _o, a in results] == ["created", "created"]


# --- watch -----------------------------------------------------------------------------------------


def _drain(w: Any, n: int) -> list[RegistryEvent]:
    out = []
    for _ in range(n):
        ev = w.next(timeout=5)
        assert ev is not None, f"expected {n} events, got {len(out)}"
        out.append(ev)
    return out


def test_watch_translates_events(api: Registry) -> None:
    w = api.watch("ConfigMap", "default")
    try:
        c = api.create(cm("c1"))
        api.patch("ConfigMap", "c1", "default", {"data": {"k": "2"}})
        gone = api.delete("ConfigMap", "c1", "default")
        evs = _drain(w, 3)
        assert [e.type for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
        assert evs[0].object["metadata"]["resourceVersion"] == c["metadata"]["resourceVersion"]
        assert evs[1].object["data"] == {"k": "2"}
        assert evs[2].object["data"] == {"k": "2"}
        assert evs[2].object["metadata"]["resourceVersion"] == gone["metadata"]["resourceVersion"]
        assert w.next(timeout=0.05) is None
    finally:
        w.cancel()


def test_watch_resumes_from_resource_version(api: Registry) -> None:
    a = api.create(cm("a"))
    api.create(cm("b"))
    api.create(cm("c"))
    w = api.watch("ConfigMap", resource_version=a["metadata"]["resourceVersion"])
    try:
        evs = _drain(w, 2)
        assert [e.object["metadata"]["name"] for e in evs] == ["b", "c"]
    finally:
        w.cancel()


def test_watch_from_compacted_revision_is_expired(api: Registry) -> None:
    a = api.create(cm("a"))
    for i in range(5):
        api.patch("ConfigMap", "a", "default", {"data": {"k": str(i)}})
    api.store.compact(api.store.current_revision())
    with pytest.raises(Expired, match="relist"):
        api.watch("ConfigMap", resource_version=a["metadata"]["resourceVersion"])


def test_watch_filters_namespace(api: Registry) -> None:
    api.create(namespace("other"))
    w = api.watch("ConfigMap", "other")
    try:
        api.create(cm("in-default"))
        api.create(cm("in-other", ns="other"))
        [ev] = _drain(w, 1)
        assert ev.object["metadata"]["name"] == "in-other"
    finally:
        w.cancel()


def test_selector_watch_reports_objects_entering_and_leaving(api: Registry) -> None:
    api.create(pod("before", labels={"app": "web"}))
    w = api.watch("Pod", "default", label_selector="app=web")
    try:
        api.create(pod("other", labels={"app": "db"}))
        api.create(pod("p1", labels={"app": "web"}))
        api.patch("Pod", "other", "default", {"metadata": {"labels": {"app": "web"}}})
        api.patch("Pod", "before", "default", {"metadata": {"labels": {"app": "db"}}})
        api.delete("Pod", "other", "default")
        evs = _drain(w, 4)
        assert [(e.type, e.object["metadata"]["name"]) for e in evs] == [
            ("ADDED", "p1"),
            ("ADDED", "other"),
            ("DELETED", "before"),
            ("DELETED", "other"),
        ]
        assert w.next(timeout=0.05) is None
    finally:
        w.cancel()


def test_predicate_watch_leaving_is_deleted_with_the_previous_version(api: Registry) -> None:
    api.create(pod("a"))
    running = lambda o: (o.get("status") or {}).get("phase") == "Running"  # noqa: E731
    w = api.watch("Pod", "default", predicate=running)
    try:
        entered = api.patch("Pod", "a", "default", {"status": {"phase": "Running"}}, status=True)
        api.patch("Pod", "a", "default", {"metadata": {"labels": {"x": "1"}}})
        left = api.patch("Pod", "a", "default", {"status": {"phase": "Succeeded"}}, status=True)
        evs = _drain(w, 3)
        assert [e.type for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
        assert evs[0].object["metadata"]["resourceVersion"] == entered["metadata"]["resourceVersion"]
        assert evs[0].prev is not None and evs[0].prev["status"]["phase"] == "Pending"
        gone = evs[2].object  # the last version that matched, at the leaving event's revision
        assert gone["status"]["phase"] == "Running" and gone["metadata"]["labels"] == {"x": "1"}
        assert gone["metadata"]["resourceVersion"] == left["metadata"]["resourceVersion"]
        assert w.next(timeout=0.05) is None
    finally:
        w.cancel()


def test_a_selector_watch_resumed_from_an_old_revision_knows_what_matched_then(api: Registry) -> None:
    """What matched is taken at the revision the watch resumes from, not now: an object that matched
    then and left is DELETED, one that entered since is ADDED, and no previous version is decoded
    to tell (the watch keeps what matched exact from its start)."""
    api.create(pod("leaves", labels={"app": "web"}))
    start = api.create(pod("enters", labels={"app": "db"}))["metadata"]["resourceVersion"]
    api.patch("Pod", "leaves", "default", {"metadata": {"labels": {"app": "db"}}})
    api.patch("Pod", "enters", "default", {"metadata": {"labels": {"app": "web"}}})
    w = api.watch("Pod", "default", resource_version=start, label_selector="app=web")
    try:
        evs = _drain(w, 2)
        assert [(e.type, e.object["metadata"]["name"]) for e in evs] == [("DELETED", "leaves"), ("ADDED", "enters")]
        assert evs[0].object["metadata"]["labels"] == {"app": "web"}  # its last matching version
        api.patch("Pod", "enters", "default", {"metadata": {"annotations": {"n": "1"}}})
        [again] = _drain(w, 1)
        assert (again.type, again.object["metadata"]["name"]) == ("MODIFIED", "enters")
    finally:
        w.cancel()


class _ListWatch:
    """A store watch replaying fixed events: a backend that sends no `prev`."""

    def __init__(self, events: list[WatchEvent]):
        self.events = events

    def next(self, timeout: float | None = None) -> WatchEvent | None:
        return self.events.pop(0) if self.events else None

    def cancel(self) -> None:
        self.events = []


def test_predicate_watch_without_prev_uses_what_it_knew_matched() -> None:
    def put(phase: str, rev: int) -> WatchEvent:
        body = {"kind": "Pod", "metadata": {"name": "a"}, "status": {"phase": phase}}
        return WatchEvent("PUT", KeyValue("/registry/pods/default/a", json.dumps(body).encode(), 1, rev))

    events = [put("Running", 5), put("Failed", 6), put("Running", 7)]
    running = lambda o: o["status"]["phase"] == "Running"  # noqa: E731
    w = RegistryWatch(_ListWatch(events), None, {"/registry/pods/default/a"}, predicate=running)
    got = [w.next(0) for _ in range(3)]
    assert [(e.type, e.object["status"]["phase"]) for e in got if e] == [
        ("MODIFIED", "Running"),
        ("DELETED", "Failed"),
        ("ADDED", "Running"),
    ]


# --- admission -------------------------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def admit(self, op: str, obj: Obj, old: Obj | None, registry: Registry) -> None:
        self.calls.append((op, obj["metadata"]["name"]))
        if op == "CREATE":
            obj["metadata"].setdefault("labels", {})["admitted"] = "yes"
        if obj["metadata"]["name"] == "forbidden":
            raise Forbidden("no such thing allowed")


def test_admission_plugins_run_in_order_and_may_refuse(api: Registry) -> None:
    first, second = _Recorder(), _Recorder()
    reg = Registry(api.store, admission=[first, second], clock=api.clock)
    created = reg.create(cm("c1"))
    assert created["metadata"]["labels"] == {"admitted": "yes"}
    reg.patch("ConfigMap", "c1", "default", {"data": {"k": "2"}})
    reg.delete("ConfigMap", "c1", "default")
    assert first.calls == second.calls
    assert [op for op, _ in first.calls if _ == "c1"] == ["CREATE", "UPDATE", "DELETE"]
    with pytest.raises(Forbidden):
        reg.create(cm("forbidden"))
    with pytest.raises(NotFound):
        reg.get("ConfigMap", "forbidden", "default")


class _DefaultRequests:
    """Mutating admission like LimitRange: fills in container resource requests."""

    def admit(self, op: str, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if op in ("CREATE", "UPDATE") and obj.get("kind") == "Pod":
            for c in obj["spec"]["containers"]:
                c.setdefault("resources", {}).setdefault("requests", {"cpu": "100m"})


def test_reapplying_a_pod_completed_by_mutating_admission_is_unchanged(api: Registry) -> None:
    reg = Registry(api.store, admission=[_DefaultRequests()], clock=api.clock)
    [(created, action)] = reg.apply([pod("p1")])
    assert action == "created"
    assert created["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "100m"}}
    [(again, action)] = reg.apply([pod("p1")])
    assert action == "unchanged"
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


class _BreaksPods:
    """Mutating admission that makes a Pod invalid (an empty container name)."""

    def __init__(self, mutates: frozenset[str] | None) -> None:
        if mutates is not None:
            self.mutates = mutates

    def admit(self, op: str, obj: Obj, old: Obj | None, registry: Registry) -> None:
        if obj.get("kind") == "Pod":
            obj["spec"]["containers"][0]["name"] = ""


@pytest.mark.parametrize("mutates", [None, frozenset({"Pod"})])
def test_what_admission_changed_is_validated_again(api: Registry, mutates: frozenset[str] | None) -> None:
    reg = Registry(api.store, admission=[_BreaksPods(mutates)], clock=api.clock)
    with pytest.raises(Invalid, match="name"):
        reg.create(pod("broken"))
    [err] = reg.create_many([pod("broken")])
    assert isinstance(err, Invalid)
    with pytest.raises(NotFound):
        reg.get("Pod", "broken", "default")


def test_kinds_no_plugin_mutates_skip_the_copy_before_admission(api: Registry) -> None:
    reg = Registry(api.store, admission=default_admission_plugins(), clock=api.clock)
    event = {"kind": "Event", "metadata": {"name": "e"}}
    assert reg._before_admission(kinds.lookup("Event"), event) is None
    assert reg._before_admission(kinds.lookup("Lease"), event) is None
    copied = reg._before_admission(kinds.lookup("Pod"), pod("p"))
    assert copied == pod("p") and copied is not None
    assert reg._before_admission(kinds.lookup("Service"), {"kind": "Service"}) == {"kind": "Service"}
    # a plugin that does not say what it mutates may change anything
    reg.admission.append(_Recorder())
    assert reg._before_admission(kinds.lookup("Event"), event) == event


# --- deletes without preconditions retry conflicts, as upstream's storage does ---------------------


class _RacingStore:
    """The store, except that before each of the first `races` deletes or updates of a key it
    rewrites that key (a node agent's status write landing between the registry's read and its
    write), so the registry's compare-and-swap genuinely fails."""

    def __init__(self, inner: Any, races: int) -> None:
        self._inner = inner
        self.races = races
        self.target = ""

    def _race(self, key: str) -> None:
        if self.races > 0 and key == self.target:
            self.races -= 1
            kv = self._inner.get(key)
            self._inner.update(key, kv.value, kv.mod_revision)

    def delete(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self._race(key)
        return self._inner.delete(key, *args, **kwargs)

    def update(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self._race(key)
        return self._inner.update(key, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def racing(clock: Any) -> Any:
    from nbk_teststore import make_store

    store = _RacingStore(make_store(), races=0)
    reg = Registry(store, clock=clock)  # type: ignore[arg-type]
    yield reg, store
    reg.close()


@pytest.mark.parametrize("propagation", ["Background", "Orphan"])
def test_delete_without_precondition_retries_concurrent_writes(racing: Any, propagation: str) -> None:
    reg, store = racing
    created = reg.create(cm("c1"))
    store.target = next(k.key for k in store.list("/")[0] if k.key.endswith("/c1"))
    store.races = 3
    gone = reg.delete("ConfigMap", "c1", "default", propagation=propagation)
    assert gone["metadata"]["uid"] == created["metadata"]["uid"]
    assert store.races == 0, "the writes really raced the delete"
    with pytest.raises(NotFound):
        reg.get("ConfigMap", "c1", "default")


def test_delete_with_precondition_still_conflicts_under_a_race(racing: Any) -> None:
    reg, store = racing
    created = reg.create(cm("c1"))
    store.target = next(k.key for k in store.list("/")[0] if k.key.endswith("/c1"))
    store.races = 1
    with pytest.raises(Conflict):
        reg.delete("ConfigMap", "c1", "default", resource_version=created["metadata"]["resourceVersion"])
    assert reg.get("ConfigMap", "c1", "default")


def test_merge_patch_without_resource_version_retries_concurrent_writes(racing: Any) -> None:
    reg, store = racing
    reg.create(cm("c1", {"a": "1"}))
    store.target = next(k.key for k in store.list("/")[0] if k.key.endswith("/c1"))
    store.races = 3
    patched = reg.patch("ConfigMap", "c1", "default", {"data": {"b": "2"}})
    assert patched["data"] == {"a": "1", "b": "2"}
    assert store.races == 0


def test_status_writes_are_validated_by_what_they_change(api: Registry) -> None:
    """A Pod status write checks the status (shape, integer range); a ReplicaSet's whole object,
    whose validator range-checks its status counters."""
    pod = api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )
    ok = api.update_status({**pod, "status": {"phase": "Running", "containerStatuses": [{"restartCount": 2}]}})
    assert ok["status"]["phase"] == "Running"
    with pytest.raises(Invalid) as err:
        api.update_status({**ok, "status": {"phase": "Running", "containerStatuses": [{"restartCount": 2**64}]}})
    assert "status.containerStatuses[0].restartCount" in str(err.value)
    rs = api.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    )
    with pytest.raises(Invalid) as err:
        api.update_status({**rs, "status": {"replicas": -1}})
    assert "status.replicas" in str(err.value)


def _lease(name: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40},
    }


def test_update_many_writes_each_object_with_its_own_compare_and_swap(api: Registry) -> None:
    a, b, c = (api.create(_lease(n)) for n in "abc")
    stale_b = copy.deepcopy(b)
    api.update({**b, "spec": {**b["spec"], "leaseDurationSeconds": 41}})  # b moves on
    gone = _lease("gone")
    gone["metadata"]["resourceVersion"] = a["metadata"]["resourceVersion"]
    w = api.watch("Lease", "default")
    results = api.update_many(
        [
            {**a, "spec": {**a["spec"], "holderIdentity": "a2"}},
            {**stale_b, "spec": {**stale_b["spec"], "holderIdentity": "b2"}},
            {**c, "spec": {**c["spec"], "leaseDurationSeconds": -5}},  # invalid
            gone,
        ]
    )
    assert isinstance(results[0], dict) and results[0]["spec"]["holderIdentity"] == "a2"
    assert int(results[0]["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert isinstance(results[1], Conflict)
    assert isinstance(results[2], Invalid)
    assert isinstance(results[3], NotFound)
    assert api.get("Lease", "a", "default") == results[0]
    assert api.get("Lease", "b", "default")["spec"]["holderIdentity"] == "b"
    ev = w.next(2.0)
    assert ev is not None and ev.object["metadata"]["name"] == "a" and ev.type == "MODIFIED"
    w.cancel()
    # status writes: each pod's status, in one transaction
    pods = [
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"p{i}", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }
        )
        for i in range(3)
    ]
    done = api.update_many([{**p, "status": {"phase": "Running"}} for p in pods], status=True)
    assert [d["status"]["phase"] for d in done if isinstance(d, dict)] == ["Running"] * 3
    first = done[0]
    assert isinstance(first, dict)
    with pytest.raises(BadRequest, match="same object"):
        api.update_many([{**first, "status": {"phase": p}} for p in ("Succeeded", "Failed")], status=True)
    assert api.get("Pod", "p0")["status"]["phase"] == "Running"
