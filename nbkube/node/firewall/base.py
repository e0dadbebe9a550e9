"""The Firewall seam: what a node does with the NetworkPolicy table of its pods.

`FirewallRunner` computes the table (`policy.compute`) and hands it to a Firewall; which one is
decided in `nbkube.node.kit`: `IptablesFirewall` on Docker nodes (the node's namespace, or the
host's for a joined machine), `FakeFirewall` on simulated nodes, where it only records what it was
told (and in the unit tests). The process runtime has no firewall at all: its pods share the
host's loopback, which nothing can filter per pod without root (see `notice.NotEnforcedNotice`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from nbkube.node.firewall.policy import PodFirewall

__all__ = ["FakeFirewall", "Firewall"]


class Firewall(Protocol):
    def sync(self, pods: Mapping[str, PodFirewall]) -> bool:
        """Enforce exactly `pods` ({pod IP: what it may receive and send}; others unfiltered).
        False when nothing had changed since the last sync."""
        ...

    def check(self) -> bool:
        """Repair what someone else changed under us (rules moved or removed); True if it had to."""
        ...

    def cleanup(self) -> None:
        """Remove everything this firewall added; traffic is then unfiltered."""
        ...


class FakeFirewall:
    """Records every table it is told to enforce; `current` is the last one."""

    def __init__(self) -> None:
        self.synced: list[dict[str, PodFirewall]] = []
        self.cleaned = False
        self.checks = 0

    @property
    def current(self) -> dict[str, PodFirewall]:
        return self.synced[-1] if self.synced else {}

    def sync(self, pods: Mapping[str, PodFirewall]) -> bool:
        table = dict(pods)
        if self.synced and self.synced[-1] == table:
            return False
        self.synced.append(table)
        self.cleaned = False
        return True

    def check(self) -> bool:
        self.checks += 1
        return False

    def cleanup(self) -> None:
        self.synced.append({})
        self.cleaned = True
