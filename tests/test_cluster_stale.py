"""cluster.clean_stale_folders: folders of unnamed clusters whose owner died go at the next start,
with the private etcd they left running; live, named and half-started clusters' folders stay."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from nbkube.cluster import clean_stale_folders
from nbkube.procutil import start_ticks
from nbkube.store.etcd_server import PIDFILE, launch_etcd


def _cluster(root: Any, name: str, pid: int, ticks: int | None) -> str:
    folder = root / name
    folder.mkdir(mode=0o700)
    (folder / "cluster.json").write_text(json.dumps({"name": name, "pid": pid, "pidTicks": ticks}))
    return str(folder)


def test_dead_unnamed_clusters_are_removed_with_their_etcd(tmp_path: Any, etcd_binary: None) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    me, my_ticks = os.getpid(), start_ticks(os.getpid())
    gone = _cluster(tmp_path, "local-0a0a0a", dead.pid, 5)
    reused = _cluster(tmp_path, "local-1b1b1b", me, (my_ticks or 0) + 1)  # our pid, another process
    live = _cluster(tmp_path, "local-2c2c2c", me, my_ticks)
    named = _cluster(tmp_path, "mine", dead.pid, 5)
    starting = tmp_path / "local-3d3d3d"
    starting.mkdir()
    etcd = launch_etcd(os.path.join(gone, "etcd"), socket_dir=gone)
    try:
        with open(os.path.join(gone, PIDFILE)) as fh:
            rec = json.load(fh)
        rec["owner"], rec["ownerTicks"] = dead.pid, 5
        with open(os.path.join(gone, PIDFILE), "w") as fh:
            json.dump(rec, fh)
        removed = clean_stale_folders(str(tmp_path))
        assert sorted(removed) == [gone, reused]
        assert etcd.proc.poll() is not None  # its etcd was ended first
        assert not os.path.exists(gone) and not os.path.exists(reused)
        assert os.path.isdir(live) and os.path.isdir(named) and starting.is_dir()
    finally:
        etcd.stop()
