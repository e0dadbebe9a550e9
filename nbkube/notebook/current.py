"""Which cluster the `%nbkube` magics talk to when no `--store` is given.

Kept apart from magics.py so that the cluster wiring can register itself without importing IPython:
LocalCluster calls `set_current(self.api)` when it starts in a kernel and `set_current(None)` when it
stops (only if it is still the current one: see `clear_current`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_current", "get_current", "clear_current"]

_current: Any = None  # a Registry (used in-process) or a store URL


def set_current(api_or_store_url: Any) -> None:
    """Make the magics talk to this cluster: a Registry (in-process) or a store URL; None to forget."""
    global _current
    _current = api_or_store_url


def get_current() -> Any:
    return _current


def clear_current(api_or_store_url: Any) -> None:
    """Forget the current cluster if it is this one (a later cluster may have replaced it)."""
    global _current
    if _current is api_or_store_url:
        _current = None
