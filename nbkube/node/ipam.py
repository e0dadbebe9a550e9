"""Host-local IP address management for one node's pod CIDR (what the CNI host-local plugin does).

The node agent gives every pod it starts an address from its node's `podCIDR` (10.244.N.0/24):
`.1` is the node bridge's gateway, pods get `.2` upward. Addresses of pods already bound to the
node are re-reserved when an agent restarts, so a pod keeps its IP across agent restarts.
"""

from __future__ import annotations

import ipaddress
import threading

from nbkube.errors import BadRequest

__all__ = ["HostLocalIPAM"]


class HostLocalIPAM:
    def __init__(self, cidr: str):
        try:
            self.network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise BadRequest(f"pod CIDR {cidr!r}: {exc}") from None
        if self.network.num_addresses < 4:
            raise BadRequest(f"pod CIDR {cidr!r} is too small for pods (need at least a /30)")
        self.gateway = str(self.network.network_address + 1)
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._used: set[str] = set()
        self._next = 2  # offset of the next address to try (round robin, as host-local does)

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def allocate(self, uid: str, preferred: str = "") -> str:
        """The pod's address: its existing one, `preferred` if free and inside the CIDR, else the next free."""
        with self._lock:
            if uid in self._by_uid:
                return self._by_uid[uid]
            if (
                preferred
                and self.contains(preferred)
                and preferred not in self._used
                and preferred != self.gateway
            ):
                return self._take(uid, preferred)
            size = self.network.num_addresses
            for _ in range(size):
                offset = self._next
                self._next = self._next + 1 if self._next + 1 < size - 1 else 2
                ip = str(self.network.network_address + offset)
                if ip not in self._used:
                    return self._take(uid, ip)
        raise BadRequest(f"pod CIDR {self.network} is exhausted ({len(self._used)} addresses in use)")

    def _take(self, uid: str, ip: str) -> str:
        self._by_uid[uid] = ip
        self._used.add(ip)
        return ip

    def release(self, uid: str) -> None:
        with self._lock:
            ip = self._by_uid.pop(uid, None)
            if ip is not None:
                self._used.discard(ip)

    def in_use(self) -> int:
        with self._lock:
            return len(self._used)
