"""The embedded (rootless) pod network: each pod its own loopback address, nothing to create.

On Linux all of 127.0.0.0/8 is routed to `lo`, so a process may bind 127.P.N.z without root and
without any setup; giving every pod its own such address lets two pods both listen on port 8080, as
two pods with their own network namespaces would. Which addresses come from the cluster's block
(`nbkube.node.network.blocks`): node N answers on `block.node_ip(N)` (where the userspace proxy
opens its NodePorts) and its pods get .2 .. .254 of `block.pod_cidr(N)`; without a block, the fixed
plan of slot 0 (127.240.0.(N+1), 127.244.N.z).

Called by the node agent in the embedded mode (process runtime) through the `PodNetwork` seam; the
pod's `netns` argument is ignored because the pod shares the host's namespace.
"""

from __future__ import annotations

from collections.abc import Sequence

from nbkube.node.network.base import MAX_NODE_INDEX, NetworkError, NodeNetInfo, record_host_ports
from nbkube.node.network.blocks import LEGACY, LoopbackBlock
from nbkube.node.network.hostports import HostPortMapping

__all__ = ["LoopbackNetwork"]


class LoopbackNetwork:
    def __init__(self, index: int, block: LoopbackBlock = LEGACY) -> None:
        if not isinstance(index, int) or not 1 <= index <= MAX_NODE_INDEX:
            raise ValueError(f"node index must be an integer in 1..{MAX_NODE_INDEX}, got {index!r}")
        self.index = index
        self.info = NodeNetInfo(block.node_ip(index), block.pod_cidr(index), None)
        self._prefix = self.info.pod_cidr.rsplit(".", 1)[0]
        self.pods: dict[str, str] = {}
        self._next = 2  # .1 is kept for the node, as a bridge gateway would be
        self._released: list[str] = []
        self.routes: dict[str, tuple[str, str]] = {}
        self.host_ports: dict[str, list[HostPortMapping]] = {}

    def setup_node(self) -> NodeNetInfo:
        return self.info

    def attach_pod(self, pod_uid: str, netns: str | int = 0, ifname: str = "eth0") -> str:
        ip = self.pods.get(pod_uid)
        if ip:
            return ip
        if self._next <= 254:
            ip = f"{self._prefix}.{self._next}"
            self._next += 1
        elif self._released:
            # Fresh addresses first, then the oldest released one: a client still holding a just
            # released address is less likely to reach the wrong pod.
            ip = self._released.pop(0)
        else:
            raise NetworkError(f"no loopback address left in {self.info.pod_cidr} for pod {pod_uid}")
        self.pods[pod_uid] = ip
        return ip

    def detach_pod(self, pod_uid: str) -> None:
        ip = self.pods.pop(pod_uid, None)
        self.host_ports.pop(pod_uid, None)
        if ip:
            self._released.append(ip)

    def set_host_ports(self, pod_uid: str, mappings: Sequence[HostPortMapping]) -> None:
        # Recorded only: in the embedded mode the host's one userspace proxy opens every node's
        # hostPort listeners from the Pod objects (`nbkube.node.kit.HostProxy`), as it does NodePorts.
        record_host_ports(self.host_ports, self.pods, pod_uid, mappings)

    def set_routes(self, peers: dict[str, tuple[str, str]]) -> None:
        # Every loopback address is already reachable from every process: nothing to route.
        self.routes = dict(peers)

    def teardown(self) -> None:
        self.pods.clear()
        self._released.clear()
        self.host_ports.clear()
        self._next = 2
