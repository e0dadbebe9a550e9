"""Private files and folders for credentials: keys, certificates, token tables, kubeconfigs.

Everything that holds a secret is written here, so that the rules live in one place: the folder is
0700 and owned by the user running nbkube (a folder someone else owns is refused, since its owner
could swap the keys), each file is created 0600 under a temporary name and renamed into place (never
readable by others, not even for a moment, and never half-written), and modes that drifted are put
back when a file is loaded. Callers: `pki.ClusterPKI`, `apiserver.authn` (the static token table)
and `apiserver.kubeconfig`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator

from nbkube.errors import NbkubeError

__all__ = ["CredentialError", "ensure_private_dir", "write_private", "read_private", "file_lock"]

DIR_MODE = 0o700
FILE_MODE = 0o600


class CredentialError(NbkubeError):
    """A credential file or folder is unsafe, missing a part, or unreadable; `str()` names it."""


def ensure_private_dir(folder: str, *, fix_existing: bool = True) -> str:
    """Create `folder` 0700 (parents as needed) or check an existing one; returns its absolute path.

    An existing folder must be a directory owned by this user; with `fix_existing` its mode is set
    back to 0700 when it drifted. Folders that merely hold a private file (such as `~/.kube`) are
    checked for ownership but keep their mode when `fix_existing` is False.
    """
    folder = os.path.abspath(os.path.expanduser(folder))
    created = False
    if not os.path.lexists(folder):
        try:
            os.makedirs(folder, mode=DIR_MODE)
            created = True
        except FileExistsError:
            pass  # another process made it meanwhile: check it like any existing folder
        except OSError as exc:
            raise CredentialError(f"{folder}: cannot create folder: {exc.strerror}") from None
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise CredentialError(f"{folder}: not a folder (a symlink or file is not accepted for credentials)")
    uid = os.geteuid()
    if st.st_uid != uid:
        raise CredentialError(
            f"{folder}: owned by uid {st.st_uid}, not by this user (uid {uid}); refusing to keep credentials there"
        )
    if (created or fix_existing) and stat.S_IMODE(st.st_mode) != DIR_MODE:
        os.chmod(folder, DIR_MODE)  # makedirs honours the umask, which may clear bits but never add
    return folder


def write_private(path: str, data: bytes) -> None:
    """Write `data` to `path` as a 0600 file: a temporary sibling created 0600, then renamed over."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as exc:
        raise CredentialError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)  # O_CREAT's mode is filtered by the umask; make it exact
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_private(path: str) -> bytes:
    """The content of a credential file, after putting its mode back to 0600 if it drifted."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CredentialError(f"{path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise CredentialError(f"{path}: owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})")
        if stat.S_IMODE(st.st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CredentialError(f"{path}: missing") from None
    except PermissionError as exc:
        raise CredentialError(f"{path}: cannot read: {exc.strerror}") from None


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created 0600) while the block runs, so that processes
    sharing a credential folder (an API server and the CLI, two servers starting at once) do not
    interleave their read-modify-write of it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise CredentialError(f"{path}: cannot create lock file: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
