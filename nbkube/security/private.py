"""Folders and files only their owner may open: 0700 folders, 0600 files, written atomically.

Why: a cluster's folder holds its store, its encryption keys and the node agents' credential; on a
shared machine another Unix user must not read any of them. Every writer of such a file (the
encryption configuration, the agent credential, `cluster.json`) goes through here, so the modes are
set in one place and a file is never visible half-written or, for a moment, with wider permissions.
"""

from __future__ import annotations

import contextlib
import os
import stat

__all__ = ["make_private_dir", "restrict_file", "write_private_file", "create_private_file"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: str) -> str:
    """Create `path` (and missing parents) as 0700; tighten it to 0700 when it exists and is ours.

    A folder that belongs to someone else is left as it is: its owner decides (root running a
    cluster in another user's folder must not take it away from them)."""
    path = os.path.abspath(path)
    missing: list[str] = []
    cur = path
    while not os.path.isdir(cur):
        missing.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, DIR_MODE)
    st = os.stat(path)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def restrict_file(path: str) -> None:
    """Make an existing file of ours 0600 (files written before modes were enforced)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(path)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


def _write_temp(path: str, data: bytes) -> str:
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_private_file(path: str, data: bytes) -> None:
    """Replace `path` with `data`, mode 0600, atomically (readers see the old or the new file)."""
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_private_file(path: str, data: bytes) -> bool:
    """Create `path` with `data` (0600) unless it exists; True when this call created it.

    Atomic against a concurrent creator (two processes starting the same cluster): the file is
    linked into place complete, and only one link can win."""
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
