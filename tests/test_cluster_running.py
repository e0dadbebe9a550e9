"""The clusters running in a process (nbkube/cluster.py): folders, the registry, stop callbacks, exit.

Every test runs with HOME in tmp_path, so `~/.nbkube/clusters` is the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbkube.cluster import LocalCluster, connect, running_clusters
from nbkube.errors import BadRequest


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HOME", str(tmp_path))
    yield tmp_path
    for cluster in running_clusters().values():  # a failed test must not leak into the next
        cluster.close()


def clusters_dir(home: Path) -> Path:
    return home / ".nbkube" / "clusters"


def test_unnamed_clusters_get_their_own_folder_removed_on_stop(home: Path) -> None:
    a = LocalCluster(nodes=1, store="sqlite")
    b = LocalCluster(nodes=1, store="sqlite")
    try:
        assert a.name != b.name and a.name.startswith("local-") and b.name.startswith("local-")
        assert a.data_dir == str(clusters_dir(home) / a.name) and os.path.isdir(a.data_dir)
        assert os.path.isdir(b.data_dir) and a.data_dir != b.data_dir
        assert list(running_clusters()) == [a.name, b.name]
    finally:
        a.stop()
        b.stop()
    assert not os.path.exists(a.data_dir) and not os.path.exists(b.data_dir)
    assert running_clusters() == {}


def test_a_named_cluster_keeps_its_folder_and_runs_once_per_process(home: Path) -> None:
    with LocalCluster(nodes=1, store="sqlite", name="lab") as c:
        assert c.data_dir == str(clusters_dir(home) / "lab")
        with pytest.raises(BadRequest, match="a cluster named 'lab' already runs in this process"):
            LocalCluster(nodes=1, store="sqlite", name="lab")
        assert running_clusters() == {"lab": c}
    assert (clusters_dir(home) / "lab" / "store.db").exists()
    assert running_clusters() == {}


def test_a_named_cluster_running_in_another_process_is_refused_at_once(home: Path) -> None:
    folder = clusters_dir(home) / "shared"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / "cluster.json").write_text(f'{{"name": "shared", "pid": {sleeper.pid}}}')
        with pytest.raises(BadRequest, match=f"already runs in process {sleeper.pid}"):
            LocalCluster(nodes=1, store="sqlite", name="shared")
    finally:
        sleeper.kill()
        sleeper.wait()
    # that process gone, the folder is free again
    with LocalCluster(nodes=1, store="sqlite", name="shared") as c:
        assert c.running


def test_stop_runs_callbacks_first_is_idempotent_and_a_stopped_cluster_displays(home: Path) -> None:
    c = LocalCluster(nodes=1, store="sqlite")
    seen: list[str] = []

    def callback() -> None:
        c.api.list("Node")  # the store is still open while callbacks run
        seen.append("stopped")

    cancelled = c.on_stop(lambda: seen.append("cancelled"))
    c.on_stop(callback)
    cancelled()
    c.stop()
    c.stop()
    assert seen == ["stopped"]
    assert repr(c).endswith("stopped)")
    assert "stopped" in c._repr_html_() and c.name in c._repr_html_()


def test_a_failing_callback_does_not_keep_the_cluster_running(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = LocalCluster(nodes=1, store="sqlite")

    def broken() -> None:
        raise RuntimeError("boom")

    c.on_stop(broken)
    c.stop()
    assert not c.running and running_clusters() == {}
    assert any("stop callback" in r.getMessage() for r in caplog.records)


def test_connect_registers_until_close(home: Path) -> None:
    with LocalCluster(nodes=0, store="sqlite", name="src") as src:
        handle = connect(src.store_url, name="remote")
        assert list(running_clusters()) == ["src", "remote"]
        assert "connected" in repr(handle)
        handle.close()
        handle.close()
        assert list(running_clusters()) == ["src"]
        assert "stopped" in handle._repr_html_()
    with pytest.raises(BadRequest, match="cluster name"):
        connect("sqlite://:memory:", name="Bad_Name")


def test_process_exit_stops_what_its_clusters_started(home: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import nbkube
        c = nbkube.LocalCluster(nodes=2, runtime="sim", store="sqlite")
        print(c.data_dir, flush=True)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    data_dir = done.stdout.strip()
    assert data_dir.startswith(str(clusters_dir(home))) and not os.path.exists(data_dir)
    assert "Traceback" not in done.stderr


def test_no_thread_outlives_stop(home: Path) -> None:
    before = set(threading.enumerate())
    c = LocalCluster(nodes=2, store="sqlite")
    c.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.05)
    assert [t.name for t in set(threading.enumerate()) - before] == []
