"""nbkube/procutil.py: pid identities with start times, lock holders, children dying with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from nbk_clustertest import wait_until

from nbkube.procutil import (
    describe,
    end_process,
    identity_dead,
    lock_holders,
    process_identity,
    same_process,
    start_ticks,
    stop_on_signals,
)


def test_same_process_tells_a_pid_from_its_reuse() -> None:
    me = os.getpid()
    ticks = start_ticks(me)
    assert isinstance(ticks, int)
    assert same_process(me, ticks)
    assert not same_process(me, ticks + 1)  # what a reused pid looks like
    assert not same_process(me, None)
    assert not same_process(True, ticks)
    done = subprocess.Popen(["true"])
    done.wait()
    assert start_ticks(done.pid) is None


def test_lock_holders_names_the_process_holding_a_file(tmp_path: Any) -> None:
    (tmp_path / "member").mkdir()
    target = tmp_path / "member" / "db"
    target.write_bytes(b"x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'rb+')\nfcntl.flock(f,fcntl.LOCK_EX)\n"
            "print('locked',flush=True)\ntime.sleep(60)",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert lock_holders(str(tmp_path)) == {holder.pid: str(target)}
        assert describe(holder.pid).startswith(f"pid {holder.pid} (")
    finally:
        holder.kill()
        holder.wait()
    assert lock_holders(str(tmp_path)) == {}


def test_a_child_started_with_pdeathsig_dies_with_its_parent(tmp_path: Any) -> None:
    pidfile = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import subprocess, sys, time
                from nbkube.procutil import pdeathsig_preexec
                child = subprocess.Popen(["sleep", "60"], preexec_fn=pdeathsig_preexec())
                open({str(pidfile)!r}, "w").write(str(child.pid))
                time.sleep(60)
                """
            ),
        ],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text(), 20, "the child's pid")
        child = int(pidfile.read_text())
        ticks = start_ticks(child)
        assert ticks is not None
        parent.kill()  # SIGKILL: no handler of the parent runs
        parent.wait()
        wait_until(lambda: not same_process(child, ticks) or _zombie(child), 10, "the child ended")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_end_process_terminates_a_recorded_process() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    ticks = start_ticks(proc.pid)
    assert ticks is not None
    assert end_process(proc.pid, ticks, grace=5)
    assert not same_process(proc.pid, ticks)
    proc.wait(5)  # end_process reaped its own child already
    assert end_process(proc.pid, ticks)  # gone already: nothing to do


def test_an_exited_process_not_yet_reaped_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = start_ticks(child.pid)
    assert isinstance(ticks, int)
    try:
        # not waited for: it stays a zombie, as an orphan does under an init slow to reap
        wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[-1][0] == "Z", 10, "exit")
        assert start_ticks(child.pid) == ticks  # the pid is still taken...
        assert not same_process(child.pid, ticks)  # ...but nothing runs there
    finally:
        child.wait()


def test_identity_dead_only_for_a_gone_process_of_this_machine() -> None:
    me = process_identity()
    assert me != process_identity()  # two holders in one process differ
    assert not identity_dead(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = process_identity(child.pid)
    child.wait()
    assert identity_dead(gone)
    # the same pid and ticks from another boot or pid namespace: nothing is known about it
    tag, boot, ns, pid, ticks = gone.split("_")[-2].split(".")
    for other in (f"{tag}.{'0' * 16}.{ns}.{pid}.{ticks}", f"{tag}.{boot}.1.{pid}.{ticks}"):
        assert not identity_dead(gone.replace(gone.split("_")[-2], other))
    for unknown in ("", "a", "host_123_abcd", "cp-a", f"host_nbkpid.{boot}.{ns}.x.y_ab"):
        assert not identity_dead(unknown)


def test_stop_on_signals_sets_the_event_and_puts_the_handlers_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert signal.getsignal(signal.SIGTERM) is before
