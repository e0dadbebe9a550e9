"""The dashboard widget, headless: a counting comm stands in for the kernel, a Registry on
sqlite://:memory: for the cluster. Traits must follow the informers; controls must write through
the registry; only changed widgets may send messages; stop() leaves no thread behind."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_nbtest import CountingComm, node, pod, rc, wait_for

from nbkube.client.informer import InformerFactory
from nbkube.notebook.dashboard import ControllerRef, Dashboard
from nbkube.notebook.summary import COLOURS
from nbkube.registry.registry import Registry


@pytest.fixture
def dash(api: Registry, comms: list[CountingComm]) -> Iterator[Dashboard]:
    d = Dashboard(api, throttle=0.01)
    yield d
    d.stop()


def _set_running(api: Registry, name: str, ready: bool) -> None:
    obj = copy.deepcopy(api.get("Pod", name, "default"))
    obj["status"] = {
        "phase": "Running",
        "podIP": "127.1.0.9",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0, "state": {"running": {}}}],
    }
    api.update_status(obj)


def _messages(w: Any) -> int:
    return len(w.comm.messages)


def test_columns_and_chips_follow_pods_and_nodes(api: Registry, dash: Dashboard) -> None:
    api.create(node("n1"))
    api.create(node("n2"))
    api.create(pod("web-1", "n1"))
    wait_for(lambda: "web-1" in dash._columns.get("n1", None).pods.value if "n1" in dash._columns else False)
    col = dash._columns["n1"]
    assert COLOURS["amber"] in col.pods.value  # Pending
    assert [c.key for c in dash._columns.values()] == ["n1", "n2"]
    assert tuple(dash.columns_box.children) == (dash._columns["n1"].box, dash._columns["n2"].box)

    _set_running(api, "web-1", ready=True)
    wait_for(lambda: COLOURS["green"] in col.pods.value, what="chip turns green")

    api.create(pod("pending-1"))  # no node: an "unscheduled" column appears
    wait_for(lambda: "" in dash._columns, what="unscheduled column")
    assert "pending-1" in dash._columns[""].pods.value

    api.patch(
        "Node", "n2", "", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, status=True
    )
    wait_for(lambda: "NotReady" in dash._columns["n2"].header.value, what="NotReady badge")

    api.delete("Pod", "web-1", "default")
    wait_for(lambda: "web-1" not in col.pods.value, what="chip removed")
    assert "3 pods" not in dash.title.value and "1 pods" in dash.title.value
    assert dash.node.options == ("n1", "n2")


def test_only_changed_widgets_send(api: Registry, dash: Dashboard) -> None:
    api.create(node("n1"))
    api.create(node("n2"))
    api.create(pod("a", "n1"))
    api.create(pod("b", "n2"))
    wait_for(lambda: "n2" in dash._columns and "b" in dash._columns["n2"].pods.value)
    n1, n2 = dash._columns["n1"], dash._columns["n2"]
    before = {"n1": _messages(n1.pods), "n2": _messages(n2.pods), "h2": _messages(n2.header)}
    refreshes = dash.refreshes
    _set_running(api, "a", ready=True)
    wait_for(lambda: COLOURS["green"] in n1.pods.value)
    assert dash.refreshes > refreshes
    assert _messages(n1.pods) == before["n1"] + 1  # one update message, batched by hold_sync
    assert _messages(n2.pods) == before["n2"]  # the other column sent nothing
    assert _messages(n2.header) == before["h2"]
    # a refresh with nothing changed sends nothing at all
    total = sum(len(c.messages) for c in dash_comms(dash))
    dash.refresh()
    assert sum(len(c.messages) for c in dash_comms(dash)) == total


def dash_comms(dash: Dashboard) -> list[CountingComm]:
    ws = [dash, dash.title, dash.columns_box, dash.controller, dash.replicas, dash.node, dash.status]
    ws += [w for c in dash._columns.values() for w in (c.header, c.pods, c.box)]
    return [w.comm for w in ws]


def test_slider_scales_the_selected_controller(api: Registry, dash: Dashboard) -> None:
    assert dash.replicas.disabled
    api.create(rc("web", 3))
    wait_for(lambda: not dash.replicas.disabled and dash.replicas.value == 3, what="slider shows 3")
    assert dash.controller.value == ControllerRef("ReplicationController", "default", "web")

    dash.replicas.value = 5  # as a user's drag arrives: the observer writes spec.replicas
    assert api.get("ReplicationController", "web", "default")["spec"]["replicas"] == 5
    assert "scaled rc/default/web to 5" in dash.status.value

    api.patch("ReplicationController", "web", "default", {"spec": {"replicas": 7}})  # e.g. from the CLI
    wait_for(lambda: dash.replicas.value == 7, what="slider follows an outside scale")
    assert api.get("ReplicationController", "web", "default")["spec"]["replicas"] == 7

    api.create(rc("api", 1))  # a new controller must not steal the selection
    wait_for(lambda: len(dash.controller.options) == 2)
    assert dash.controller.value.name == "web"
    dash.controller.value = ControllerRef("ReplicationController", "default", "api")
    assert dash.replicas.value == 1


def test_node_buttons_and_callbacks(api: Registry, comms: list[CountingComm]) -> None:
    killed: list[str] = []
    rolled: list[tuple[ControllerRef, str]] = []
    api.create(node("n1"))
    api.create(rc("web", 1))
    d = Dashboard(
        api, throttle=0.01, on_kill=killed.append, on_rolling_update=lambda r, i: rolled.append((r, i))
    )
    try:
        wait_for(lambda: d.node.options == ("n1",) and d.controller.value is not None)
        d.node.value = "n1"
        d.buttons["cordon"].click()
        wait_for(lambda: api.get("Node", "n1").get("spec", {}).get("unschedulable"), what="cordoned")
        wait_for(lambda: "SchedulingDisabled" in d._columns["n1"].header.value)
        d.buttons["uncordon"].click()
        wait_for(lambda: not api.get("Node", "n1").get("spec", {}).get("unschedulable"), what="uncordoned")
        d.buttons["kill"].click()
        wait_for(lambda: killed == ["n1"], what="on_kill called")
        d.rollout.click()
        assert "enter the new image" in d.status.value and "#c00" in d.status.value
        d.image.value = "busybox:1.36"
        d.rollout.click()
        wait_for(lambda: rolled, what="rolling update called")
        assert rolled == [(ControllerRef("ReplicationController", "default", "web"), "busybox:1.36")]
        wait_for(lambda: "done" in d.status.value)
    finally:
        d.stop()


def test_without_callbacks_buttons_explain(api: Registry, dash: Dashboard) -> None:
    api.create(node("n1"))
    wait_for(lambda: dash.node.options == ("n1",))
    dash.node.value = "n1"
    dash.buttons["kill"].click()
    assert "#c00" in dash.status.value and "kill" in dash.status.value


def test_shared_factory_is_left_running(api: Registry, comms: list[CountingComm]) -> None:
    factory = InformerFactory(api)
    factory.start_all()
    try:
        api.create(node("n1"))
        d = Dashboard(api, factory, throttle=0.01)
        wait_for(lambda: "n1" in d._columns)
        d.stop()
        assert not d._thread.is_alive()
        pods = factory.informer("Pod")
        api.create(pod("after-stop", "n1"))
        wait_for(lambda: pods.get("default/after-stop") is not None, what="factory still running")
    finally:
        factory.stop_all()


def test_updater_never_prints(api: Registry, dash: Dashboard, capfd: pytest.CaptureFixture[str]) -> None:
    # ipykernel 7 routes a thread's output by the cell that started it: the updater must only set traits
    api.create(node("n1"))
    for i in range(5):
        api.create(pod(f"p{i}", "n1"))
    wait_for(lambda: "n1" in dash._columns and "p4" in dash._columns["n1"].pods.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_close_stops_the_updater(api: Registry, comms: list[CountingComm]) -> None:
    d = Dashboard(api, throttle=0.01)
    d.close()
    assert not d._thread.is_alive()
    d.stop()  # idempotent


def test_header_counts_not_ready_and_cordoned_nodes(api: Registry, dash: Dashboard) -> None:
    for name in ("n1", "n2", "n3"):
        api.create(node(name))
    wait_for(lambda: "3 nodes" in dash.title.value)
    assert "NotReady" not in dash.title.value and "cordoned" not in dash.title.value
    api.patch(
        "Node", "n2", "", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, status=True
    )
    api.patch("Node", "n3", "", {"spec": {"unschedulable": True}})
    wait_for(lambda: "1 NotReady" in dash.title.value and "1 cordoned" in dash.title.value, what="header")
    widths = {c.box.layout.width for c in dash._columns.values()}
    assert len(widths) == 1 and widths == {c.box.layout.max_width for c in dash._columns.values()}


def test_restart_button_calls_the_clusters_restart_node(api: Registry, comms: list[CountingComm]) -> None:
    restarted: list[str] = []
    api.create(node("n1"))
    d = Dashboard(api, throttle=0.01, on_restart=restarted.append)
    try:
        wait_for(lambda: d.node.options == ("n1",))
        d.node.value = "n1"
        d.buttons["restart"].click()
        wait_for(lambda: restarted == ["n1"], what="on_restart called")
        wait_for(lambda: "restart n1: done" in d.status.value)
    finally:
        d.stop()


def test_a_stopped_dashboard_says_so_and_disables_its_controls(
    api: Registry, comms: list[CountingComm]
) -> None:
    api.create(node("n1"))
    api.create(pod("web-1", "n1"))
    d = Dashboard(api, throttle=0.01)
    wait_for(lambda: "n1" in d._columns and "web-1" in d._columns["n1"].pods.value)
    d.stop()
    assert "stopped" in d.title.value and "1 nodes, 1 pods" in d.title.value
    assert all(b.disabled for b in d.buttons.values()) and d.replicas.disabled and d.rollout.disabled
    assert "opacity:0.45" in d._columns["n1"].pods.value
    title = d.title.value
    api.create(pod("web-2", "n1"))
    d.refresh()
    assert d.title.value == title  # nothing turns it live again
    d.stop()  # idempotent: said once
    assert d._columns["n1"].pods.value.count("opacity:0.45") == 1
