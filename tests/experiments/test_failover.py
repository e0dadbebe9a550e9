from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from nbk_exptest import name_server

from nbkube.cluster import LocalCluster
from nbkube.errors import BadRequest
from nbkube.experiments import Experiments, ExperimentTimeout, failover
from nbkube.experiments.failover import failover_summary
from nbkube.experiments.target import parse_service_ref


@pytest.mark.slow
def test_failover_of_a_sim_node_under_load(demo_cluster: LocalCluster) -> None:
    pods, _ = demo_cluster.api.list("Pod", "default", label_selector="app=web")
    victim = str(pods[0]["spec"]["nodeName"])
    lines: list[tuple[str, float]] = []
    result = Experiments(demo_cluster, progress=lambda m, f: lines.append((m, f))).failover(
        victim, "web-http-service", timeout=30
    )
    df = result.df
    assert {"event", "probe", "pod", "action"} <= set(df["source"])
    # the control plane's story is in the frame, after the kill
    after = df[(df["source"] == "event") & (df["t"] >= 0)]
    assert "NodeNotReady" in set(after["reason"]) and "Scheduled" in set(after["reason"])
    summary = result.summary.set_index("metric")["value"]
    steps = [
        summary["time to detect (node NotReady)"],
        summary["time to evict (first pod marked for deletion)"],
        summary["time to reschedule (all pods scheduled elsewhere)"],
        summary["time to ready (all replicas ready elsewhere)"],
    ]
    assert all(s is not None and s >= 0 for s in steps) and steps == sorted(steps)
    assert summary["requests sent"] > 0 and summary["replicas"] == 5
    # the stand-in fails requests routed to the dead node's pods until the endpoints move
    assert summary["requests failed"] >= 1
    # every pod ends ready off the victim
    live = df[(df["source"] == "pod")].groupby("pod").last()
    ready_off = live[(live["node"] != victim) & (live["ready"] == True) & (live["gone"] == False)]  # noqa: E712
    assert len(ready_off) == 5
    # reproducible from the frame alone
    assert failover_summary(df.copy()).equals(result.summary)
    assert isinstance(result.plot(), Figure)
    assert lines[-1][1] == 1.0 and all(0 <= f <= 1 for _m, f in lines)
    assert result.node == victim


@pytest.mark.slow
def test_failover_with_an_explicit_address_and_timeout(demo_cluster: LocalCluster) -> None:
    # a controller that can never be whole again: every node fails, so the wait must give up
    with name_server(["x"]) as address:
        for node in ("node-2", "node-3"):
            demo_cluster.kill_node(node, "power-off")
        with pytest.raises(ExperimentTimeout) as info:
            failover(
                demo_cluster, "node-1", address, controller="rc/web-test-controller", timeout=1.0, warmup=0.1
            )
    partial = info.value.result
    assert partial is not None and "KillNode" in set(partial.df["reason"])
    assert partial.df[partial.df["source"] == "probe"]["ok"].all()  # the fake server kept answering


def test_bad_input_is_refused_before_anything_happens(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with LocalCluster(nodes=1, store="memory", data_dir=str(tmp_path)) as c:
        with pytest.raises(BadRequest, match="no node named 'node-9'"):
            failover(c, "node-9")
        with pytest.raises(BadRequest, match="runs no controller's pods"):
            failover(c, "node-1")
        with pytest.raises(BadRequest, match="timeout"):
            failover(c, "node-1", timeout=0)
        with pytest.raises(BadRequest, match="no ReplicationController"):
            failover(c, "node-1", controller="rc/nope")
        assert c.agents["node-1"].fault is None


def test_service_refs() -> None:
    assert parse_service_ref("web") == ("default", "web", None)
    assert parse_service_ref("svc/team/web:8000") == ("team", "web", 8000)
    with pytest.raises(BadRequest, match="port 'x'"):
        parse_service_ref("web:x")


def test_default_runtime_names_its_choice() -> None:
    from nbkube.experiments import default_runtime

    assert default_runtime("sim")[0] == "sim"
    runtime, note = default_runtime()
    assert runtime == "process" and note.startswith("runtime process:")
    with pytest.raises(BadRequest, match="expected auto, process or sim"):
        default_runtime("docker")
