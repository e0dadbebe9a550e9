"""LocalCluster end to end (real threads, sim nodes), its store choice, and the `up`/`kill-node` verbs."""

from __future__ import annotations

import io
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "registry"))

from nbk_teststore import leftover_threads  # noqa: E402

from nbkube.cli import main  # noqa: E402
from nbkube.cluster import LocalCluster, connect  # noqa: E402
from nbkube.errors import BadRequest, Forbidden, NotFound  # noqa: E402

RC = """\
apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
spec:
  replicas: 5
  selector:
    app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
"""


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert leftover_threads(before, grace=5.0) == []


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def ready_pods(c: LocalCluster, exclude_node: str = "") -> list[dict]:
    pods, _ = c.api.list("Pod", "default", label_selector="app=nginx")
    return [
        p
        for p in pods
        if p["spec"].get("nodeName") != exclude_node
        and (p.get("status") or {}).get("phase") == "Running"
        and any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions") or [])
    ]


@pytest.mark.slow
def test_killed_node_fails_over_within_3s_under_fast_profile(tmp_path: Path) -> None:
    with LocalCluster(nodes=3, store="sqlite", profile="fast", data_dir=str(tmp_path)) as c:
        assert c.control_plane is not None and c.control_plane.wait_leading(10)
        c.apply(RC)
        pods = wait_for(lambda: r if len(r := ready_pods(c)) == 5 else None, what="5 ready pods")
        assert sorted(Counter(p["spec"]["nodeName"] for p in pods).values()) == [1, 2, 2]  # type: ignore[union-attr]
        victim = Counter(p["spec"]["nodeName"] for p in pods).most_common(1)[0][0]  # type: ignore[union-attr]
        killed_at = time.monotonic()
        c.kill_node(victim, "power-off")
        wait_for(
            lambda: len(ready_pods(c, exclude_node=victim)) == 5, timeout=3.0, what="failover within 3 s"
        )
        assert time.monotonic() - killed_at < 3.0
        # the event log tells the story, in order
        ev = c.events_df("default")
        reasons = list(ev["reason"])
        steps = ["NodeNotReady", "TaintManagerEviction", "SuccessfulCreate", "Scheduled", "Started", "Ready"]
        last_not_ready = reasons.index("NodeNotReady")
        positions = [last_not_ready]
        for step in steps[1:]:
            positions.append(reasons.index(step, positions[-1]))
        assert positions == sorted(positions)
        node_rows = ev[(ev["kind"] == "Node") & (ev["reason"] == "NodeNotReady")]
        assert list(node_rows["name"]) == [victim]
        assert len(ev[ev["reason"] == "TaintManagerEviction"]) == 2
        assert repr(c).startswith(f"LocalCluster(name={c.name!r}, nodes=3, runtime='sim', store='sqlite://")


DATA = Path(__file__).parent / "api" / "data"


@pytest.mark.slow
def test_article_manifests_on_three_sim_nodes(tmp_path: Path) -> None:
    with LocalCluster(nodes=3, store="sqlite", data_dir=str(tmp_path)) as c:
        c.apply(str(DATA / "rc.yaml"))
        c.apply(str(DATA / "service.yaml"))

        def running() -> list[dict]:
            pods, _ = c.api.list("Pod", "default")
            return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]

        pods = wait_for(lambda: r if len(r := running()) == 5 else None, what="5 running pods")
        assert sorted(Counter(p["spec"]["nodeName"] for p in pods).values()) == [1, 2, 2]  # type: ignore[union-attr]
        svc = c.api.get("Service", "nginx-http-service", "default")
        assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["nodePort"] == 30001

        def addresses() -> int:
            try:
                ep = c.api.get("Endpoints", "nginx-http-service", "default")
            except NotFound:
                return 0
            return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])

        wait_for(lambda: addresses() == 5, what="5 endpoint addresses")
        ips = {p["status"]["podIP"] for p in pods}  # type: ignore[union-attr]
        assert len(ips) == 5 and all(ip.startswith("10.244.") for ip in ips)


def test_apply_by_path_and_text_and_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "rc.yaml"
    path.write_text(RC)
    with LocalCluster(nodes=0, store="memory") as c:
        assert c.apply(str(path))[0][1] == "created"
        assert c.apply(RC)[0][1] == "unchanged"
        with pytest.raises(BadRequest, match="missing.yaml: no such file"):
            c.apply(str(tmp_path / "missing.yaml"))
        with pytest.raises(NotFound):
            c.kill_node("node-9")
        assert "store='sqlite://:memory:'" in repr(c)


@pytest.mark.skipif(shutil.which("etcd") is None, reason="no etcd binary")
def test_store_auto_launches_a_private_etcd_and_stops_it(tmp_path: Path) -> None:
    c = LocalCluster(nodes=1, store="auto", data_dir=str(tmp_path))
    try:
        assert c.store_url == f"etcd+unix://{tmp_path}/etcd.sock:2379"  # no port: see test_cluster_isolation.py
        assert "private etcd" in repr(c) and str(tmp_path / "etcd") in repr(c)
        assert c.api.get("Node", "node-1")["status"]["conditions"]
        proc = c.etcd.proc  # type: ignore[union-attr]
        assert (tmp_path / "cluster.json").read_text().count(c.store_url) == 1
    finally:
        c.stop()
    assert proc.poll() is not None  # the private etcd went with the cluster
    assert (tmp_path / "etcd").is_dir()  # its data stays for the next start


def test_store_auto_falls_back_to_sqlite_without_etcd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbkube.store.etcd_server as etcd_server

    monkeypatch.setattr(etcd_server, "etcd_available", lambda: False)
    with LocalCluster(nodes=1, store="auto", data_dir=str(tmp_path)) as c:
        assert c.store_url == f"sqlite://{tmp_path}/store.db" and c.etcd is None


@pytest.mark.slow
def test_restarted_control_plane_finishes_a_rollout(tmp_path: Path) -> None:
    deploy = RC.replace(
        "apiVersion: v1\nkind: ReplicationController", "apiVersion: apps/v1\nkind: Deployment"
    ).replace("  selector:\n    app: nginx\n", "  selector:\n    matchLabels:\n      app: nginx\n")
    with LocalCluster(nodes=3, store="sqlite", data_dir=str(tmp_path)) as c:
        assert c.control_plane is not None
        c.control_plane.wait_leading(10)
        assert "deployment" in c.control_plane.components
        c.apply(deploy)
        wait_for(lambda: len(ready_pods(c)) == 5, what="first rollout")
        c.apply(deploy.replace("image: nginx", "image: nginx:1.9"))
        wait_for(
            lambda: any(p["spec"]["containers"][0]["image"] == "nginx:1.9" for p in c.api.list("Pod")[0]),
            what="rollout began",
        )
    # a new cluster object on the same store picks the rollout up where it stopped
    with LocalCluster(nodes=3, store="sqlite", data_dir=str(tmp_path)) as c2:

        def done() -> bool:
            pods = ready_pods(c2)
            return len(pods) == 5 and all(p["spec"]["containers"][0]["image"] == "nginx:1.9" for p in pods)

        wait_for(done, timeout=20, what="rollout finished after the restart")
        d = c2.api.get("Deployment", "nginx", "default")
        wait_for(
            lambda: (c2.api.get("Deployment", "nginx", "default")["status"] or {}).get("updatedReplicas") == 5
        )
        assert d["spec"]["replicas"] == 5
        all_pods = c2.api.list("Pod", "default", label_selector="app=nginx")[0]
        wait_for(
            lambda: len(c2.api.list("Pod", "default", label_selector="app=nginx")[0]) == 5,
            what="old pods gone",
        )
        assert len(all_pods) >= 5


def test_cli_up_prints_store_and_nodes_first(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            [
                "up",
                "--nodes",
                "2",
                "--store",
                f"sqlite://{tmp_path}/s.db",
                "--duration",
                "0.2",
                "--profile",
                "kubernetes",
            ]
        )
    assert code == 0
    lines = out.getvalue().splitlines()
    assert "profile kubernetes (heartbeat 10s, grace 40s, toleration 300s)" in lines[0]
    assert lines[1] == f"store: sqlite://{tmp_path}/s.db"
    assert lines[2] == "nodes: node-1 (10.244.1.0/24), node-2 (10.244.2.0/24); runtime sim"


def test_cli_kill_node_sets_the_fault_the_agent_obeys(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db"
    with LocalCluster(nodes=1, store=url, profile="fast", data_dir=str(tmp_path)) as c:
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["--store", url, "kill-node", "node-1", "--mode", "stop-heartbeats"]) == 0
        assert "fault injected: stop-heartbeats" in out.getvalue()
        agent = c.agents["node-1"]
        wait_for(lambda: agent.fault == "stop-heartbeats", timeout=5, what="agent obeys the annotation")
        with redirect_stdout(io.StringIO()):
            assert main(["--store", url, "kill-node", "node-1", "--revive"]) == 0
        wait_for(lambda: agent.fault is None, timeout=5, what="agent revived")
        handle = connect(url)
        try:
            assert (
                handle.api.get("Node", "node-1")["metadata"].get("annotations", {}).get("nbkube.io/fault")
                is None
            )
        finally:
            handle.close()


# --- a store knows its cluster ---------------------------------------------------------------------


def test_a_truncated_store_of_an_existing_cluster_is_refused(tmp_path: Path) -> None:
    from nbkube.store.clusterid import WrongStore

    with LocalCluster(nodes=0, store="sqlite", data_dir=str(tmp_path)) as c:
        first_id = c.cluster_id
        c.apply(RC)
    info = (tmp_path / "cluster.json").read_text()
    assert first_id and first_id in info
    with LocalCluster(nodes=0, store="sqlite", data_dir=str(tmp_path)) as c:
        assert c.cluster_id == first_id, "the same store reopens"
        assert c.api.get("ReplicationController", "nginx", "default")
    db = tmp_path / "store.db"
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"store.db{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"")
    with pytest.raises(WrongStore) as info_exc:
        LocalCluster(nodes=0, store="sqlite", data_dir=str(tmp_path))
    message = str(info_exc.value)
    assert "\n" not in message and str(db) in message and "--fresh" in message
    with LocalCluster(nodes=0, store="sqlite", data_dir=str(tmp_path), fresh=True) as c:
        assert c.cluster_id != first_id
        new_id = c.cluster_id
    assert new_id in (tmp_path / "cluster.json").read_text()


def test_a_foreign_store_at_the_recorded_url_is_refused(tmp_path: Path) -> None:
    from nbkube.store.clusterid import WrongStore

    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    with LocalCluster(nodes=0, store="sqlite", data_dir=str(mine)):
        pass
    with LocalCluster(nodes=0, store="sqlite", data_dir=str(theirs)):
        pass
    shutil.copy(theirs / "store.db", mine / "store.db")
    with pytest.raises(WrongStore, match="belongs to another cluster"):
        LocalCluster(nodes=0, store="sqlite", data_dir=str(mine))


def test_cli_up_refuses_an_emptied_store_unless_fresh(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/s.db"
    args = ["up", "--nodes", "0", "--store", url, "--data-dir", str(tmp_path), "--duration", "0"]
    with redirect_stdout(io.StringIO()):
        assert main(args) == 0
    (tmp_path / "s.db").write_bytes(b"")
    err = io.StringIO()
    from contextlib import redirect_stderr

    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        assert main(args) == 1
    assert err.getvalue().count("\n") == 1 and f"{tmp_path}/s.db is empty" in err.getvalue()
    with redirect_stdout(io.StringIO()):
        assert main([*args, "--fresh"]) == 0
def test_pod_security_default_of_a_local_cluster(tmp_path: Path) -> None:
    host_network = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "h"},
        "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox"}]},
    }
    with (
        LocalCluster(nodes=0, store="memory", pod_security="baseline") as c,
        pytest.raises(Forbidden, match=r'violates PodSecurity "baseline:latest": host namespaces'),
    ):
        c.api.create(host_network)
    with LocalCluster(nodes=0, store="memory") as c:  # privileged, as upstream's default
        assert c.api.create(host_network)["metadata"]["name"] == "h"
    with pytest.raises(BadRequest, match="level must be one of privileged, baseline, restricted"):
        LocalCluster(nodes=0, store="memory", pod_security="strict", start=False)


def test_cli_up_pod_security(tmp_path: Path) -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            ["up", "--nodes", "0", "--store", f"sqlite://{tmp_path}/s.db", "--duration", "0.1"]
            + ["--pod-security", "enforce=baseline,warn=restricted"]
        )
    assert code == 0
    assert (
        "pod security: enforce baseline:latest, warn restricted:latest, audit privileged:latest"
        in out.getvalue()
    )


def test_sim_nodes_beyond_the_local_address_plan_share_one_agent_pool() -> None:
    with pytest.raises(BadRequest, match="0 to 250 \\(runtime process\\)"):
        LocalCluster(nodes=300, runtime="process", store="memory", start=False)
    with LocalCluster(nodes=300, store="memory") as c:
        assert c.agent_pool is not None
        # the pool's threads, not six per node
        assert threading.active_count() < 100
        node = c.api.get("Node", "node-300")
        assert node["spec"]["podCIDR"] == "10.129.44.0/24"
        c.apply(RC)
        wait_for(lambda: len(ready_pods(c)) == 5, what="5 ready pods")
