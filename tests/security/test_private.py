"""0700 folders and 0600 files, written atomically (nbkube/security/private.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nbkube.security.private import create_private_file, make_private_dir, restrict_file, write_private_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_folders_are_made_and_tightened_to_0700(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    make_private_dir(str(deep))
    assert _mode(tmp_path / "a") == 0o700 and _mode(deep) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    make_private_dir(str(loose))
    assert _mode(loose) == 0o700


def test_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private_file(str(tmp_path / "w"), b"one")
        write_private_file(str(tmp_path / "w"), b"two")
        assert create_private_file(str(tmp_path / "c"), b"first")
        assert not create_private_file(str(tmp_path / "c"), b"second")
    finally:
        os.umask(old)
    assert (tmp_path / "w").read_bytes() == b"two" and _mode(tmp_path / "w") == 0o600
    assert (tmp_path / "c").read_bytes() == b"first" and _mode(tmp_path / "c") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "w"]  # no temporary files left


def test_restrict_file_tightens_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"")
    os.chmod(path, 0o644)
    restrict_file(str(path))
    assert _mode(path) == 0o600
    restrict_file(str(tmp_path / "missing"))  # nothing to do, no error
