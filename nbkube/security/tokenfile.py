"""Static bearer tokens in a CSV file, as kube-apiserver's `--token-auth-file`.

Each line is `token,user,uid,"group1,group2"` (the groups column may be left out). nbkube keeps the
file as `tokens.csv` in the cluster's PKI folder (0600) and hands such tokens out in tenants'
kubeconfigs when a client certificate is not wanted. `StaticTokenFile.add` appends a fresh random
token under a file lock (several processes may add at once) and rewrites the file atomically;
`lookup` re-reads the file when it changed on disk, so tokens added by another process (the CLI)
work without restarting the API server. Tokens are kept in memory only as SHA-256 digests.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from nbkube.security.files import CredentialError, file_lock, read_private, write_private

__all__ = ["StaticTokenFile", "StaticToken"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaticToken:
    user: str
    uid: str
    groups: tuple[str, ...]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _parse(path: str, text: str) -> dict[bytes, StaticToken]:
    out: dict[bytes, StaticToken] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 3 or len(row) > 4:
            raise CredentialError(
                f'{path} line {lineno}: want token,user,uid[,"group1,group2"], got {len(row)} columns'
            )
        token, user, uid = (cell.strip() for cell in row[:3])
        if not token or not user:
            raise CredentialError(f"{path} line {lineno}: token and user may not be empty")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) == 4 else ()
        digest = _digest(token)
        if digest in out:
            raise CredentialError(f"{path} line {lineno}: the same token appears twice")
        out[digest] = StaticToken(user, uid, groups)
    return out


class StaticTokenFile:
    """The tokens of one CSV file; missing file = no tokens."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self._lock = threading.Lock()
        self._tokens: dict[bytes, StaticToken] = {}
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) last read
        self.reload()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def reload(self) -> None:
        """Read the file now; a malformed file raises `CredentialError` naming file and line."""
        with self._lock:
            sig = self._signature()
            tokens = _parse(self.path, read_private(self.path).decode()) if sig is not None else {}
            self._tokens, self._seen = tokens, sig

    def lookup(self, token: str) -> StaticToken | None:
        """Who `token` belongs to, or None. A file broken on disk keeps the last good table (logged)."""
        if self._signature() != self._seen:
            try:
                self.reload()
            except CredentialError as exc:
                log.warning("static tokens not reloaded (keeping the previous ones): %s", exc)
                with self._lock:
                    self._seen = self._signature()  # say it once per change, not per request
        return self._tokens.get(_digest(token))

    def add(self, user: str, groups: Iterable[str] = (), uid: str = "") -> str:
        """Append a new random token for `user` in `groups`; returns the token."""
        group_list = [groups] if isinstance(groups, str) else list(groups)
        if not user or any(c in user for c in "\r\n"):
            raise CredentialError(f"{self.path}: a token's user name may not be empty or hold a line break")
        if any(not g or "," in g or "\n" in g for g in group_list):
            raise CredentialError(f"{self.path}: group names may not be empty or hold a comma or line break")
        token = secrets.token_urlsafe(32)
        with file_lock(self.path + ".lock"):
            text = read_private(self.path).decode() if os.path.exists(self.path) else ""
            _parse(self.path, text)  # refuse to append to a file that is already broken
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow([token, user, uid, ",".join(group_list)])
            if text and not text.endswith("\n"):
                text += "\n"
            write_private(self.path, (text + buf.getvalue()).encode())
        self.reload()
        return token
