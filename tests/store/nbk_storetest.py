"""Helpers shared by the store tests (a uniquely named module: the test dirs are not packages)."""

from __future__ import annotations

from dataclasses import dataclass

from nbkube.store.base import Store


@dataclass
class Backend:
    name: str
    store: Store
    prefix: str  # unique per test: every key a test writes starts with it

    def key(self, name: str) -> str:
        return self.prefix + name
