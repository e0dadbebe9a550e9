"""The Event spam filter: a burst per source and object, then one per refill period."""

from __future__ import annotations

import logging

import pytest

from nbkube.client.events import record_event
from nbkube.client.eventspam import SpamFilter, spam_filter_for, spam_key, spam_key_of
from nbkube.clock import FakeClock
from nbkube.registry.registry import Registry


def _event(name: str = "web", uid: str = "u1", component: str = "replicaset-controller") -> dict:
    return {
        "involvedObject": {"kind": "ReplicaSet", "namespace": "default", "name": name, "uid": uid},
        "source": {"component": component},
        "type": "Normal",
        "reason": "SuccessfulCreate",
    }


def test_a_burst_then_one_per_refill_period() -> None:
    f = SpamFilter(burst=3, refill_seconds=10)
    assert [f.allow(_event(), 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert f.dropped == 2
    assert not f.allow(_event(), 9.0)  # nine tenths of a token
    assert f.allow(_event(), 10.5)
    assert not f.allow(_event(), 10.6)
    assert f.dropped == 4


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    f = SpamFilter(burst=2, refill_seconds=1)
    assert f.allow(_event(), 0.0)
    assert [f.allow(_event(), 1000.0) for _ in range(3)] == [True, True, False]


def test_keys_are_source_and_object() -> None:
    f = SpamFilter(burst=1, refill_seconds=300)
    assert f.allow(_event(), 0.0)
    assert not f.allow(_event(), 0.0)
    assert f.allow(_event(uid="u2"), 0.0)  # same name, another object (recreated)
    assert f.allow(_event(name="api"), 0.0)
    assert f.allow(_event(component="kubelet"), 0.0)
    warning = {**_event(), "type": "Warning"}
    assert f.allow(warning, 0.0)


def test_least_recently_used_keys_are_forgotten() -> None:
    f = SpamFilter(burst=1, refill_seconds=300, max_keys=2)
    assert f.allow(_event(name="a"), 0.0)
    assert f.allow(_event(name="b"), 0.0)
    assert f.allow(_event(name="c"), 0.0)  # "a" forgotten
    assert f.allow(_event(name="a"), 0.0)
    assert not f.allow(_event(name="c"), 0.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        SpamFilter(burst=0)
    with pytest.raises(ValueError, match="refill_seconds"):
        SpamFilter(refill_seconds=0)


def test_record_event_writes_the_burst_and_says_once_what_it_drops(
    api: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
    }
    clock = FakeClock(1000.0)
    burst = spam_filter_for(api).burst
    with caplog.at_level(logging.INFO, logger="nbkube.client.eventspam"):
        for i in range(burst + 5):
            record_event(api, rs, "SuccessfulCreate", f"Created pod: web-{i}", component="rs", clock=clock)
    events, _ = api.list("Event", "default")
    assert sorted(e["message"] for e in events) == sorted(f"Created pod: web-{i}" for i in range(burst))
    assert spam_filter_for(api).dropped == 5
    said = [r.getMessage() for r in caplog.records if r.name == "nbkube.client.eventspam"]
    assert len(said) == 1 and "ReplicaSet default/web" in said[0]
    clock.advance(spam_filter_for(api).refill_seconds)
    record_event(api, rs, "SuccessfulCreate", "Created pod: later", component="rs", clock=clock)
    assert len(api.list("Event", "default")[0]) == burst + 1
    # the recorder checks the key before it builds an Event: the same key as the Event's
    written = api.list("Event", "default")[0][0]
    assert spam_key_of("rs", "", written["involvedObject"], "Normal") == spam_key(written)


def test_each_api_has_its_own_filter(api: Registry) -> None:
    other = Registry.__new__(Registry)
    assert spam_filter_for(api) is spam_filter_for(api)
    assert spam_filter_for(api) is not spam_filter_for(other)
