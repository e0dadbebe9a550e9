"""Warnings an admitted request carries back to its caller, as Kubernetes' `Warning` headers.

An admission plugin that lets a request through but has something to say (Pod Security `warn`
mode: "would violate PodSecurity ...") calls `warn(text)`. Whoever serves the request opens a
`capture_warnings()` block around the registry call, in the same thread, and gets the texts back:
the API server (`nbkube.apiserver.resources.handle`) turns them into `Warning: 299 - "..."` headers,
which kubectl prints and the Python client surfaces. A warning raised where nobody captures
(a notebook's in-process `LocalCluster.apply`) is logged instead, so it is never lost.

A thread-local list is enough: one registry call runs in one thread from admission to write.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["capture_warnings", "warn"]

log = logging.getLogger(__name__)

_local = threading.local()


@contextlib.contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """Collect the warnings raised in this thread inside the block (nested blocks each get them)."""
    stack: list[list[str]] = getattr(_local, "stack", None) or []
    _local.stack = stack
    texts: list[str] = []
    stack.append(texts)
    try:
        yield texts
    finally:
        stack.remove(texts)


def warn(text: str) -> None:
    """Add `text` to every open capture in this thread, or log it when there is none."""
    stack: list[list[str]] = getattr(_local, "stack", None) or []
    if not stack:
        log.warning("%s", text)
        return
    for texts in stack:
        if text not in texts:  # the same warning twice in one request says nothing more
            texts.append(text)
