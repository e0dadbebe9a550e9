"""Cards, tables and DataFrame views: escaping, status colours and the columns per kind."""

from __future__ import annotations

from typing import Any

import pytest
from nbk_nbtest import node, pod, rc

from nbkube.notebook import html
from nbkube.notebook.summary import COLOURS, status_of
from nbkube.notebook.views import ClusterViews, ObjectList, ObjectView
from nbkube.registry.registry import Registry


def _pod(phase: str, *, ready: bool = False, waiting: str = "", name: str = "p") -> dict[str, Any]:
    obj = pod(name, "n1")
    cs: dict[str, Any] = {"name": "c", "ready": ready, "restartCount": 2, "state": {}}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting}}
    obj["status"] = {
        "phase": phase,
        "podIP": "127.1.0.5",
        "containerStatuses": [cs],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return obj


@pytest.mark.parametrize(
    ("obj", "word", "colour"),
    [
        (_pod("Running", ready=True), "Running", "green"),
        (_pod("Running", ready=False), "Running", "amber"),
        (_pod("Pending"), "Pending", "amber"),
        (_pod("Failed"), "Failed", "red"),
        (_pod("Running", waiting="CrashLoopBackOff"), "CrashLoopBackOff", "red"),
        (_pod("Unknown"), "Unknown", "grey"),
        (node("n1"), "Ready", "green"),
        (node("n1", ready="False"), "NotReady", "red"),
        (node("n1", ready="Unknown"), "NotReady", "red"),
        ({"kind": "Node", "metadata": {"name": "fresh"}}, "Unknown", "grey"),
        (node("n1", unschedulable=True), "Ready,SchedulingDisabled", "amber"),
        ({"kind": "DaemonSet", "metadata": {"name": "ds"}, "status": {"desiredNumberScheduled": 2, "numberReady": 2}},
         "2/2 nodes ready", "green"),
        ({"kind": "DaemonSet", "metadata": {"name": "ds"}, "status": {"desiredNumberScheduled": 2, "numberReady": 1}},
         "1/2 nodes ready", "amber"),
    ],
)
def test_status_words_and_colours(obj: dict[str, Any], word: str, colour: str) -> None:
    assert status_of(obj) == (word, colour)
    card = ObjectView(obj)._repr_html_()
    assert COLOURS[colour] in card
    assert html.escape(word) in card


def test_everything_from_the_object_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    obj = _pod("Running", ready=True, name=evil)
    obj["metadata"]["labels"] = {"app": evil, "x&y": '"q"'}
    obj["status"]["podIP"] = evil
    card = ObjectView(obj)._repr_html_()
    table = ObjectList("pods", [obj])._repr_html_()
    for out in (card, table):
        assert "<script>" not in out
        assert "&lt;script&gt;" in out
    assert "x&amp;y=&quot;q&quot;" in card  # labels are chips, escaped too
    assert html.error_line("<b>bad</b>") == '<span style="color:#c00">&lt;b&gt;bad&lt;/b&gt;</span>'


def test_table_marks_status_cells_with_the_colour() -> None:
    out = ObjectList("Pod", [_pod("Failed", name="a"), _pod("Running", ready=True, name="b")])._repr_html_()
    assert out.count("nbk-red") == 1 and out.count("nbk-green") == 1
    assert "No Pod objects" in ObjectList("Pod", [])._repr_html_()


def test_pod_dataframe_columns_and_values() -> None:
    obj = _pod("Running", ready=True, name="web-1")
    obj["metadata"]["labels"] = {"app": "web"}
    obj["metadata"]["ownerReferences"] = [
        {"kind": "ReplicationController", "name": "web", "controller": True}
    ]
    df = ObjectList("Pod", [obj]).df
    for col in ("namespace", "name", "phase", "ready", "restarts", "node", "ip", "owner", "age", "labels"):
        assert col in df.columns
    row = df.iloc[0]
    assert (row["name"], row["phase"], row["ready"], row["restarts"]) == ("web-1", "Running", "1/1", 2)
    assert (row["node"], row["ip"], row["owner"], row["labels"]) == (
        "n1",
        "127.1.0.5",
        "ReplicationController/web",
        "app=web",
    )


def test_sequence_protocol() -> None:
    objs = ObjectList("po", [_pod("Pending", name="b"), _pod("Pending", name="a")])
    assert len(objs) == 2
    assert [v.name for v in objs] == ["a", "b"]  # sorted as kubectl lists
    assert objs[0].name == "a" and objs["b"].name == "b" and objs["default/b"].name == "b"
    assert len(objs[:1]) == 1
    with pytest.raises(KeyError):
        objs["zzz"]


def test_cluster_views_read_the_registry(api: Registry) -> None:
    api.create(node("n1"))
    api.create(pod("p1", "n1", {"app": "web"}))
    api.create(rc("web", 2))
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
    )
    views = ClusterViews(api)
    assert views.pods.names == ["p1"]
    assert list(views.nodes.df["name"]) == ["n1"]
    assert list(views.nodes.df["status"]) == ["Ready"]
    assert list(views.services.df.columns)[:4] == ["namespace", "name", "type", "cluster_ip"]
    assert list(views.replicationcontrollers.df["desired"]) == [2]
    assert "<table" in views.pods._repr_html_()
    events = views.events
    assert list(events.df.columns) == [
        "time",
        "namespace",
        "kind",
        "name",
        "reason",
        "message",
        "type",
        "component",
    ]
