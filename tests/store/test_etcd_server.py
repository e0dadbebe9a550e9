"""store/etcd_server.py: a private etcd's pidfile, the leftover of a dead owner ended at the next
launch, and a data folder locked by another process named at once (real etcd processes)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

import pytest

from nbkube.errors import StoreUnavailable
from nbkube.procutil import same_process, start_ticks
from nbkube.store.etcd_server import PIDFILE, launch_etcd


def _folder(tmp_path: Any) -> str:
    folder = tmp_path / "c"
    folder.mkdir(mode=0o700)
    return str(folder)


def test_pidfile_names_etcd_and_its_owner(tmp_path: Any, etcd_binary: None) -> None:
    folder = _folder(tmp_path)
    with launch_etcd(os.path.join(folder, "etcd"), socket_dir=folder) as server:
        with open(os.path.join(folder, PIDFILE)) as fh:
            rec = json.load(fh)
        assert rec["etcd"] == server.proc.pid and same_process(rec["etcd"], rec["etcdTicks"])
        assert rec["owner"] == os.getpid() and rec["ownerTicks"] == start_ticks(os.getpid())
    assert not os.path.exists(os.path.join(folder, PIDFILE))  # stop() removes it


def test_etcd_snapshots_every_ten_thousand_entries(tmp_path: Any, etcd_binary: None) -> None:
    # its raft entries since the last snapshot stay in memory (see etcd_server.py)
    with launch_etcd(os.path.join(_folder(tmp_path), "etcd")) as server:
        with open(f"/proc/{server.proc.pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
        assert b"--snapshot-count=10000" in args


def test_leftover_etcd_of_a_dead_owner_is_ended_in_one_line(
    tmp_path: Any, etcd_binary: None, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _folder(tmp_path)
    first = launch_etcd(os.path.join(folder, "etcd"), socket_dir=folder)
    try:
        # as if the process that launched it had died without stopping it
        path = os.path.join(folder, PIDFILE)
        with open(path) as fh:
            rec = json.load(fh)
        dead = subprocess.Popen(["true"])
        dead.wait()
        rec["owner"], rec["ownerTicks"] = dead.pid, 1
        with open(path, "w") as fh:
            json.dump(rec, fh)
        with caplog.at_level(logging.INFO, logger="nbkube"):
            second = launch_etcd(os.path.join(folder, "etcd"), socket_dir=folder)
        try:
            assert first.proc.poll() is not None  # ended
            assert second.proc.poll() is None
            lines = [r for r in caplog.records if r.name == "nbkube.store.etcd_server"]
            assert len(lines) == 1 and f"ended etcd pid {first.proc.pid}" in lines[0].getMessage()
            assert lines[0].exc_info is None
        finally:
            second.stop()
    finally:
        first.stop()


def test_etcd_of_a_live_owner_is_not_taken(tmp_path: Any, etcd_binary: None) -> None:
    folder = _folder(tmp_path)
    with launch_etcd(os.path.join(folder, "etcd"), socket_dir=folder) as server:
        with pytest.raises(StoreUnavailable, match=f"an etcd already serves .* for process {os.getpid()}, which still runs"):
            launch_etcd(os.path.join(folder, "etcd"), socket_dir=folder)
        assert server.proc.poll() is None


def test_locked_data_folder_names_the_holder_at_once(tmp_path: Any, etcd_binary: None) -> None:
    folder = _folder(tmp_path)
    data = os.path.join(folder, "etcd")
    os.makedirs(os.path.join(data, "member", "snap"), mode=0o700)
    db = os.path.join(data, "member", "snap", "db")
    open(db, "wb").close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'rb+')\nfcntl.flock(f,fcntl.LOCK_EX)\n"
            "print('locked',flush=True)\ntime.sleep(60)",
            db,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreUnavailable, match=f"locked by pid {holder.pid} "):
            launch_etcd(data, socket_dir=folder)
    finally:
        holder.kill()
        holder.wait()
