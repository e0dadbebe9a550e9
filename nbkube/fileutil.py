"""Replace a small file whole, so readers never see it half-written and writers never collide.

Pod folders are written by several worker threads at once (each container of a pod has its own),
so a fixed temporary name such as `state.json.tmp` lets one thread rename away the file another is
still writing. Each write here uses its own temporary sibling, then renames it over the target.
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["replace_file"]


def replace_file(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write `data` to a private temporary sibling of `path`, set `mode`, then rename it over `path`."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, mode)  # O_CREAT's mode passes through the umask; make it exact
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
