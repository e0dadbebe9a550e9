"""One value per live object, made on first use and forgotten with the object.

Why: several parts of nbkube keep something per object they do not own: the batching Event sink
and the Event spam filter of an API, the pod counts the controllers sharing one pod informer share.
Each needs the same three things: made once even when two threads ask at once, found again by the
object's identity, and dropped when the object is garbage (a weak key), so a notebook that makes
and drops clusters does not keep their sinks and counters alive.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerObject"]

K = TypeVar("K")
V = TypeVar("V")


class PerObject(Generic[K, V]):
    """`get(owner)`: the owner's value, made by `make(owner)` the first time (under a lock)."""

    def __init__(self, make: Callable[[K], V]):
        self._make = make
        self._values: weakref.WeakKeyDictionary[K, V] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, owner: K) -> V:
        with self._lock:
            value = self._values.get(owner)
            if value is None:
                value = self._values[owner] = self._make(owner)
            return value

    def peek(self, owner: K) -> V | None:
        """The owner's value if it has one (no lock: a lookup, for hot paths); None for an object
        that cannot be weakly referenced, which never has one."""
        try:
            return self._values.get(owner)
        except TypeError:
            return None

    def pop(self, owner: K) -> V | None:
        with self._lock:
            try:
                return self._values.pop(owner, None)
            except TypeError:
                return None
