"""replace_file: whole files, exact modes, and concurrent writers of one path never collide."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from nbkube.fileutil import replace_file


def test_writes_text_and_bytes_with_the_exact_mode(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        replace_file(str(tmp_path / "a"), "hello", 0o644)
    finally:
        os.umask(old)
    replace_file(str(tmp_path / "b"), b"\x00\x01", 0o600)
    assert (tmp_path / "a").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


def test_concurrent_writers_of_one_path_all_succeed_and_leave_no_temporaries(tmp_path: Path) -> None:
    target = str(tmp_path / "resolv.conf")
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(50):
                replace_file(target, f"nameserver 10.96.0.{i}\n")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Path(target).read_text().startswith("nameserver 10.96.0.")
    assert os.listdir(tmp_path) == ["resolv.conf"]


def test_a_failed_write_leaves_neither_target_nor_temporary(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "f"
    try:
        replace_file(str(missing), "x")
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("writing into a missing folder must fail")
    assert os.listdir(tmp_path) == []
