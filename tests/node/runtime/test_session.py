"""Host-process sessions for exec (nbkube/node/runtime/session.py): pipes, a terminal, a kill."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from nbkube.node.runtime.session import PopenSession, make_controlling_tty


def test_pipes_stdin_and_exit_code() -> None:
    proc = subprocess.Popen(
        ["sh", "-c", "cat; echo err >&2; exit 3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    s = PopenSession(proc)
    s.write(b"hello\n")
    s.close_stdin()
    out: list[tuple[int, bytes]] = []
    assert s.run(lambda ch, d: out.append((ch, d))) == 3
    assert b"".join(d for ch, d in out if ch == 1) == b"hello\n"
    assert b"".join(d for ch, d in out if ch == 2) == b"err\n"


def test_a_terminal_with_its_size() -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen(
        ["sh", "-c", "read x; stty size"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=make_controlling_tty,
    )
    os.close(slave)
    s = PopenSession(proc, master)
    s.resize(100, 40)
    s.write(b"go\n")
    out: list[tuple[int, bytes]] = []
    assert s.run(lambda ch, d: out.append((ch, d))) == 0
    assert b"40 100" in b"".join(d for _, d in out)


def test_kill_ends_the_session_and_what_it_started() -> None:
    proc = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!; wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    s = PopenSession(proc)
    out: list[tuple[int, bytes]] = []
    done = threading.Event()
    code: list[int | None] = []

    def run() -> None:
        code.append(s.run(lambda ch, d: out.append((ch, d))))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    while not out:
        done.wait(0.05)
    child = int(out[0][1])
    s.kill()
    assert done.wait(10) and code == [137]
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the background child of the exec outlived its kill"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
