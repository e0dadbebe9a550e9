"""nbkube/components.py: child processes of a cluster (start, ready line, restart, stop), the sim
node pool they run, and LocalCluster(separate_processes=True) end to end."""

from __future__ import annotations

import io
import logging
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nbkube.cli import main
from nbkube.client.eventsink import stop_batching
from nbkube.cluster import LocalCluster, make_registry
from nbkube.components import (
    READY_LINE,
    SIM_RELIST_INTERVAL,
    ComponentProcess,
    SimNodePool,
    profile_from_json,
    profile_to_json,
    serve,
)
from nbkube.controlplane.manager import LEADER_LEASE, SCHEDULER_LEASE
from nbkube.controlplane.profiles import get_profile
from nbkube.errors import BadRequest, NbkubeError
from nbkube.store import open_store


def _wait(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not true after {timeout}s: {predicate}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script)]


# -- ComponentProcess ---------------------------------------------------------------------------------


def test_a_child_starts_after_its_ready_line_and_stops_when_stdin_closes(tmp_path: Path) -> None:
    argv = _child(
        tmp_path,
        f"""
        import sys
        print("starting", file=sys.stderr, flush=True)
        print({READY_LINE!r}, flush=True)
        sys.stdin.read()
        print("stdin closed", file=sys.stderr, flush=True)
        """,
    )
    log = tmp_path / "child.log"
    process = ComponentProcess("demo", argv, str(log)).start()
    pid = process.pid
    assert pid is not None and _alive(pid)
    process.stop()
    assert process.pid is None
    assert not _alive(pid)
    assert log.read_text().splitlines() == ["starting", "stdin closed"]
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_a_child_that_dies_before_ready_is_refused_with_its_log(tmp_path: Path) -> None:
    argv = _child(tmp_path, "import sys\nprint('no store here', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(NbkubeError, match=r"demo process exited with code 3; .* ends: no store here"):
        ComponentProcess("demo", argv, str(tmp_path / "child.log")).start()


def test_a_child_that_never_says_ready_is_killed_after_the_timeout(tmp_path: Path) -> None:
    argv = _child(tmp_path, "import time\ntime.sleep(60)\n")
    started = time.monotonic()
    with pytest.raises(NbkubeError, match=r"not ready after 0.5s"):
        ComponentProcess("demo", argv, str(tmp_path / "child.log"), ready_timeout=0.5).start()
    assert time.monotonic() - started < 10


def test_a_child_that_dies_later_is_restarted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran-once"
    argv = _child(
        tmp_path,
        f"""
        import os, sys
        print({READY_LINE!r}, flush=True)
        if not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            sys.exit(7)  # the first run dies on its own after starting
        sys.stdin.read()
        """,
    )
    monkeypatch.setattr(ComponentProcess, "RESTART_BACKOFF", (0.05,))
    caplog.set_level(logging.WARNING, logger="nbkube.components")
    process = ComponentProcess("demo", argv, str(tmp_path / "child.log")).start()
    try:
        _wait(lambda: process.restarts == 1 and process.pid is not None)
        assert _alive(process.pid or 0)
    finally:
        process.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "nbkube.components"]
    assert len(lines) == 1
    assert "demo process" in lines[0] and "exited with code 7" in lines[0] and "restarting in 0.05s" in lines[0]


# -- serve (a child's life) ------------------------------------------------------------------------


def test_serve_says_ready_after_start_and_stops_when_stdin_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def start() -> Callable[[], None]:
        calls.append("start")
        return lambda: calls.append("stop")

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # the parent closed it
    out = io.StringIO()
    serve(start, out=out)
    assert out.getvalue() == READY_LINE + "\n"
    assert calls == ["start", "stop"]


# -- profiles on a command line ---------------------------------------------------------------------


def test_a_profile_crosses_the_command_line_whole() -> None:
    profile = get_profile("kubernetes", heartbeat=3.0)
    assert profile_from_json(profile_to_json(profile)) == profile


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "--profile-json is not JSON"),
        ('{"name": "x", "warp": 9}', "--profile-json must be an object"),
        ("[]", "--profile-json must be an object"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        profile_from_json(text)


# -- the sim node pool -------------------------------------------------------------------------------


def test_a_sim_node_pool_registers_its_nodes_and_runs_their_pods(tmp_path: Path) -> None:
    api = make_registry(open_store("sqlite://:memory:"))
    api.ensure_system_namespaces()
    pool = SimNodePool(api, 4, 2, profile=get_profile("fast"), state_dir=str(tmp_path), capacity={"pods": "7"})
    assert sorted(pool.agents) == ["node-4", "node-5"]
    assert all(a.relist_interval == SIM_RELIST_INTERVAL for a in pool.agents.values())
    pool.start()
    try:
        _wait(lambda: len(api.list("Node")[0]) == 2)
        node = api.get("Node", "node-5")
        assert node["status"]["capacity"]["pods"] == "7"
        api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"nodeName": "node-5", "containers": [{"name": "c", "image": "busybox"}]},
            }
        )
        _wait(lambda: api.get("Pod", "p", "default").get("status", {}).get("phase") == "Running")
    finally:
        pool.stop()
        stop_batching(api)
        api.close()


def test_a_sim_node_pool_refuses_an_empty_range(tmp_path: Path) -> None:
    api = make_registry(open_store("sqlite://:memory:"))
    with pytest.raises(BadRequest, match="--first and --count must be at least 1"):
        SimNodePool(api, 1, 0, profile=get_profile("fast"), state_dir=str(tmp_path))


def test_the_component_verb_needs_the_clusters_store(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NBKUBE_STORE", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    code = main(["component", "scheduler", "--profile-json", profile_to_json(get_profile("fast"))])
    assert code == 1
    assert "component needs the cluster's store" in capsys.readouterr().err


# -- LocalCluster(separate_processes=True) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runtime": "process"}, "runtime must be sim"),
        ({"store": "memory"}, "store memory lives in this process only"),
        ({"store": "sqlite://:memory:"}, "store sqlite://:memory: lives in this process only"),
        ({"runtime_options": {"clock": object()}}, "runtime_options must be plain JSON values"),
    ],
)
def test_separate_processes_refuses_what_it_cannot_honour(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        LocalCluster(nodes=1, start=False, separate_processes=True, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("store", ["sqlite", "auto"])
def test_a_cluster_with_separate_processes_schedules_and_runs_pods(tmp_path: Path, store: str) -> None:
    """The scheduler and the sim nodes in child processes (own Leases, own logs), the controllers
    here; a Deployment's pods are scheduled and become Ready; stop leaves no child behind."""
    cluster = LocalCluster(
        nodes=3, store=store, data_dir=str(tmp_path / "c"), separate_processes=True, pod_security="baseline"
    )
    try:
        pids = {part: p.pid for part, p in cluster.components.items()}
        assert sorted(pids) == ["scheduler", "sim-nodes"]
        assert all(pid is not None and pid != os.getpid() and _alive(pid) for pid in pids.values())
        assert cluster.agents == {} and cluster.node_names() == ["node-1", "node-2", "node-3"]
        cluster.api.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 6,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
        )

        def ready() -> list[dict]:  # type: ignore[type-arg]
            pods = cluster.api.list("Pod", "default")[0]
            return [
                p
                for p in pods
                if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            ]

        _wait(lambda: len(ready()) == 6)
        assert {p["spec"]["nodeName"] for p in ready()} <= {"node-1", "node-2", "node-3"}
        holders = {
            name: cluster.api.get("Lease", name, "kube-system")["spec"]["holderIdentity"]
            for name in (LEADER_LEASE, SCHEDULER_LEASE)
        }
        assert str(pids["scheduler"]) in holders[SCHEDULER_LEASE]
        assert str(os.getpid()) in holders[LEADER_LEASE]
        with pytest.raises(BadRequest, match="fixed at start"):
            cluster.add_node("node-4")
    finally:
        cluster.stop()
    assert cluster.components == {}
    assert not any(_alive(pid or 0) for pid in pids.values())
    for part in ("scheduler", "sim-nodes"):
        assert "Traceback" not in (tmp_path / "c" / f"{part}.log").read_text()


def test_a_node_of_the_sim_nodes_process_fails_by_annotation(tmp_path: Path) -> None:
    """kill_node reaches an agent of the child process through the Node's fault annotation."""
    cluster = LocalCluster(
        nodes=2, store="sqlite", data_dir=str(tmp_path / "c"), separate_processes=True, profile="fast"
    )
    try:
        cluster.kill_node("node-2", "stop-heartbeats")

        def node_2_ready() -> str:
            node = cluster.api.get("Node", "node-2")
            return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")

        _wait(lambda: node_2_ready() == "Unknown")
        cluster.kill_node("node-2", "none")
        _wait(lambda: node_2_ready() == "True")
    finally:
        cluster.stop()


def test_up_runs_separate_processes(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NBKUBE_STORE", raising=False)
    code = main(
        ["up", "--nodes", "2", "--separate-processes", "--data-dir", str(tmp_path / "c"), "--duration", "0.5", "--fresh"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "nodes: node-1..node-2; runtime sim; processes: sim-nodes (pid" in out
    assert "scheduler (pid" in out
