"""record_event writes Event objects (never raising); events_dataframe reads them back in order."""

from __future__ import annotations

import logging

import pytest

from nbkube.client.events import EVENT_COLUMNS, events_dataframe, record_event
from nbkube.clock import FakeClock
from nbkube.registry.registry import Registry


def _web_1(api: Registry) -> dict:
    return api.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
    )


def test_record_and_dataframe(api: Registry) -> None:
    clock = FakeClock()
    pod = _web_1(api)
    node = api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    record_event(api, pod, "Scheduled", "assigned default/web-1 to n1", component="scheduler", clock=clock)
    clock.advance(0.000123)
    record_event(
        api,
        node,
        "NodeNotReady",
        "node n1 is not ready",
        type="Warning",
        component="node-lifecycle",
        clock=clock,
    )
    clock.advance(1.5)
    record_event(api, pod, "Started", "started container c", component="agent", clock=clock)

    events, _ = api.list("Event")
    assert len(events) == 3
    scheduled = next(e for e in events if e["reason"] == "Scheduled")
    assert scheduled["metadata"]["namespace"] == "default"
    assert scheduled["metadata"]["name"].startswith("web-1.")
    assert scheduled["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert scheduled["eventTime"] == "2023-11-14T22:13:20.000000Z"
    assert scheduled["count"] == 1
    assert scheduled["source"] == {"component": "scheduler"}

    df = events_dataframe(api)
    assert list(df.columns) == EVENT_COLUMNS
    assert list(df["reason"]) == ["Scheduled", "NodeNotReady", "Started"]
    assert list(df["kind"]) == ["Pod", "Node", "Pod"]
    assert list(df["namespace"]) == ["default", "default", "default"]
    assert df["time"].is_monotonic_increasing
    gap = (df["time"][1] - df["time"][0]).total_seconds()
    assert gap == pytest.approx(0.000123, abs=2e-6)
    assert df["type"][1] == "Warning"
    assert len(events_dataframe(api, "kube-system")) == 0


def test_record_event_never_raises(api: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    orphan = {"kind": "Pod", "metadata": {"name": "p", "namespace": "no-such-ns"}}
    record_event(api, orphan, "Odd", "namespace does not exist")
    assert "recording an event (Odd for Pod p) failed (not found)" in caplog.text
    assert not [r for r in caplog.records if r.exc_info]  # expected: one line, no traceback
    assert api.list("Event")[0] == []


def test_event_names_are_the_objects_and_the_time_in_hex_unique_at_one_instant(api: Registry) -> None:
    """As upstream's recorder names them (`<object>.<unix nanoseconds in hex>`); a clock that
    stands still still gives each event a name of its own."""
    clock = FakeClock()
    pod = _web_1(api)
    for reason in ("Started", "Ready", "Killing"):
        record_event(api, pod, reason, "at one instant", component="agent", clock=clock)
    events, _ = api.list("Event")
    names = [e["metadata"]["name"] for e in events]
    assert len(events) == 3 and len(set(names)) == 3
    suffixes = sorted(int(n.removeprefix("web-1."), 16) for n in names)
    # the first is the instant itself (later ones take the next nanoseconds); an earlier test
    # in this process may have named one at this fake instant already
    assert suffixes[0] >= int(clock.now() * 1_000_000_000) and suffixes[2] - suffixes[0] == 2
