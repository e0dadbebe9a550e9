"""EventSink: queued Events are written in batches, flushed on demand, failures logged not raised."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nbkube.client.events import events_dataframe, record_event
from nbkube.client.eventsink import EventSink, batch_events, sink_for, stop_batching
from nbkube.errors import StoreUnavailable
from nbkube.registry.registry import Registry


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": name},
    }


def test_events_go_through_create_many_and_flush_makes_them_visible(api: Registry) -> None:
    calls: list[int] = []
    real = api.create_many

    def counting(objs: Any) -> Any:
        calls.append(len(objs))
        return real(objs)

    api.create_many = counting  # type: ignore[method-assign]
    sink = batch_events(api)
    assert sink is not None and sink_for(api) is sink and batch_events(api) is sink
    try:
        for i in range(300):
            record_event(api, _pod(f"p{i}"), "Started", f"started p{i}")
        df = events_dataframe(api)  # flushes first
        assert len(df) == 300 and set(df["reason"]) == {"Started"}
        assert sum(calls) == 300 and max(calls) <= 128 and len(calls) < 300
    finally:
        stop_batching(api)
    assert sink_for(api) is None
    record_event(api, _pod("after"), "Started", "written at once without a sink")
    assert len(api.list("Event", "default")[0]) == 301


class _Down:
    """An API whose store is gone."""

    def create_many(self, objs: Any) -> Any:
        raise StoreUnavailable("store is closed")

    def create(self, obj: Any) -> Any:
        raise StoreUnavailable("store is closed")


def test_a_failed_batch_is_logged_in_one_line_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    sink = EventSink(_Down())
    try:
        with caplog.at_level(logging.WARNING, logger="nbkube.client.eventsink"):
            for i in range(5):
                sink.add(
                    {"kind": "Event", "reason": "Started", "involvedObject": {"kind": "Pod", "name": f"p{i}"}}
                )
            assert sink.flush()
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "recording events" in lines[0] and "store is closed" in lines[0]
    finally:
        sink.stop()


def test_a_full_queue_drops_and_says_so(caplog: pytest.LogCaptureFixture, api: Registry) -> None:
    sink = EventSink(api, max_queued=3, window=0.5)
    try:
        with caplog.at_level(logging.WARNING, logger="nbkube.client.eventsink"):
            for i in range(10):
                record_event(api, _pod(f"p{i}"), "Started", "x")  # no sink registered: direct
            for i in range(10):
                sink.add(
                    {
                        "apiVersion": "v1",
                        "kind": "Event",
                        "metadata": {"name": f"e{i}", "namespace": "default"},
                        "involvedObject": {"kind": "Pod", "name": f"p{i}"},
                        "reason": "R",
                    }
                )
            assert sink.flush()
        assert any("dropped" in r.getMessage() for r in caplog.records)
    finally:
        sink.stop()
    assert 13 <= len(api.list("Event", "default")[0]) < 20
