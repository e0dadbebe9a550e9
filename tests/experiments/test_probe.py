from __future__ import annotations

import socket

import pytest
from nbk_exptest import name_server, wait_for

from nbkube.experiments.probe import PROBE_COLUMNS, Probe, probe_once, round_robin


def test_probe_records_every_request_with_the_answering_pod() -> None:
    with name_server(["pod-a", "pod-b"]) as (host, port):
        probe = Probe(host, port, rate=50, duration=10).start()
        try:
            wait_for(lambda: len(probe.records) >= 6, what="six requests")
        finally:
            probe.stop()
    assert not probe.running
    df = probe.df
    assert list(df.columns) == PROBE_COLUMNS
    assert df["ok"].all() and set(df["status"]) == {200}
    assert set(df["pod"]) == {"pod-a", "pod-b"}
    assert df["time"].is_monotonic_increasing and str(df["time"].dt.tz) == "UTC"
    assert (df["latency"] > 0).all()


def test_probe_stops_at_its_duration() -> None:
    with name_server(["p"]) as (host, port):
        probe = Probe(host, port, rate=20, duration=0.3).start()
        wait_for(lambda: not probe.running, timeout=5, what="the probe to end by itself")
        probe.stop()
    # 0.3 s at 20/s: at most 6 slots
    assert 1 <= len(probe.records) <= 7


def test_failures_are_recorded_not_raised() -> None:
    down = {"now": True}
    with name_server(["p"], fail=lambda: down["now"]) as (host, port):
        bad = probe_once(host, port)
        down["now"] = False
        good = probe_once(host, port)
    assert (bad.ok, bad.status, bad.error) == (False, 503, "HTTP 503")
    assert good.ok and good.pod == "p"
    # nothing listens on a port we just closed
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed_port = s.getsockname()[1]
    s.close()
    refused = probe_once("127.0.0.1", closed_port, timeout=0.5)
    assert not refused.ok and refused.status == 0 and "Connection" in refused.error


def test_ok_since_tells_recovery() -> None:
    with name_server(["p"]) as (host, port):
        probe = Probe(host, port, rate=50, duration=5)
        assert not probe.ok_since(0.0)
        with probe:
            wait_for(lambda: probe.ok_since(0.0), what="a good answer")
        assert not probe.ok_since(probe.records[-1].time + 1)


def test_round_robin_counts_per_pod() -> None:
    with name_server(["a", "b", "c", "d"]) as (host, port):
        table = round_robin(host, port, requests=20)
    assert list(table.columns) == ["pod", "requests", "share"]
    assert dict(zip(table["pod"], table["requests"], strict=True)) == {"a": 5, "b": 5, "c": 5, "d": 5}
    assert table["share"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"rate": 0}, "rate"), ({"duration": -1}, "duration"), ({"timeout": 99}, "timeout")]
)
def test_bad_probe_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Probe("127.0.0.1", 1, **kwargs)
