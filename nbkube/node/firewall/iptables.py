"""The NetworkPolicy firewall of a Docker node: our filter chains in the node's namespace (root).

Called by `FirewallRunner` with each new table. One `iptables-restore --noflush` per sync writes
only our chains whose content changed and deletes those no longer needed (`restore_text`, shared
with the proxy, as is `run_iptables`, which starts iptables-restore inside the namespace); the
first sync also adopts what an earlier run left and inserts the one jump from FORWARD, in the same
transaction. `cleanup` removes the jump and every `NBK-FW-` chain and nothing else.

Pod-to-pod traffic on one node is bridged on cbr0; it reaches FORWARD only with br_netfilter's
`net.bridge.bridge-nf-call-iptables` on in the node's namespace (the proxy's hairpin NAT needs it
too), so the first sync turns it on and fails loudly if the kernel has no br_netfilter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from nbkube.node.firewall.policy import PodFirewall
from nbkube.node.firewall.render import CHAIN_PREFIX, JUMP, render
from nbkube.node.netns import entered
from nbkube.node.proxy.iptables import IptablesError, Tables, restore_text, run_iptables

__all__ = ["IptablesFirewall"]

log = logging.getLogger(__name__)

_BRIDGE_SYSCTL = "net.bridge.bridge-nf-call-iptables"


class IptablesFirewall:
    """Programs one network namespace's filter table (the host's when `netns` is None)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._applied: Tables | None = None
        self.restores = 0  # for tests and benchmarks

    def _restore(self, text: str) -> None:
        if text:
            run_iptables(self.netns, ["iptables-restore", "-w", "--noflush"], input=text)
            self.restores += 1

    def scan(self) -> tuple[set[tuple[str, str]], bool]:
        """Our chains in the kernel now, and whether the jump to them is there (one iptables-save)."""
        chains, position = self._scan()
        return chains, position is not None

    def _scan(self) -> tuple[set[tuple[str, str]], int | None]:
        """Our chains, and where our jump is among FORWARD's rules (0: first; None: absent)."""
        chains: set[tuple[str, str]] = set()
        position: int | None = None
        table = ""
        head = f"-A {JUMP[1]} "
        want = head + JUMP[2]
        seen = 0
        for line in run_iptables(self.netns, ["iptables-save", "-t", "filter"]).splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            elif line.startswith(f":{CHAIN_PREFIX}"):
                chains.add((table, line[1:].split()[0]))
            elif table == JUMP[0] and line.startswith(head):
                if line == want and position is None:
                    position = seen
                seen += 1
        return chains, position

    def check(self) -> bool:
        """Put our jump back first in FORWARD if something (the proxy's own restart, a CNI, an
        administrator) inserted rules in front of it: a rule ahead of it that ACCEPTs (the proxy
        accepts NodePort traffic) would let packets past every policy. Called by the runner when
        the node has been quiet for a while; True when it had to move (or restore) the jump."""
        if self._applied is None:
            return False
        chains, position = self._scan()
        if position == 0 and all((JUMP[0], c) in chains for c in self._applied.get(JUMP[0], {})):
            return False
        log.warning("firewall in %s: our rules were moved or removed; putting them back", self.netns)
        tables, self._applied = self._applied, None
        self._full(tables)
        return True

    def _bridge_netfilter(self) -> None:
        # Written from inside the namespace (/proc/sys/net is the opening thread's namespace's),
        # not through `ip netns exec sysctl`: two program starts less per full sync.
        path = "/proc/sys/" + _BRIDGE_SYSCTL.replace(".", "/")
        try:
            with entered(self.netns), open(path, "w") as fh:
                fh.write("1\n")
        except OSError as exc:
            raise IptablesError(
                f"{_BRIDGE_SYSCTL} cannot be set in {self.netns or 'the host namespace'}"
                f" ({exc}): without br_netfilter, traffic between pods of one node"
                " would bypass every NetworkPolicy"
            ) from exc

    def sync(self, pods: Mapping[str, PodFirewall]) -> bool:
        tables = render(pods)
        if self._applied is not None:
            if tables == self._applied:
                return False
            try:
                self._restore(restore_text(tables, self._applied))
                self._applied = tables
                return True
            except IptablesError as exc:  # someone changed our chains: start from the kernel again
                log.warning("firewall sync in %s failed, rewriting every chain: %s", self.netns, exc)
                self._applied = None
        self._full(tables)
        return True

    def _full(self, tables: Tables) -> None:
        self._bridge_netfilter()
        existing, position = self._scan()
        extra = {JUMP[0]: [f"-I {JUMP[1]} 1 {JUMP[2]}"]}
        if position == 0:
            extra = {}
        elif position is not None:  # there, but behind other rules: moved to the front
            extra[JUMP[0]].insert(0, f"-D {JUMP[1]} {JUMP[2]}")
        self._restore(restore_text(tables, None, existing, extra))
        self._applied = tables

    def cleanup(self) -> None:
        """Remove the jump and our chains in one restore (a namespace already gone took them)."""
        self._applied = None
        if self.netns and not os.path.exists(f"/var/run/netns/{self.netns}"):
            return
        existing, jump = self.scan()
        extra = {JUMP[0]: [f"-D {JUMP[1]} {JUMP[2]}"]} if jump else {}
        self._restore(restore_text({}, None, existing, extra))
