"""The PodNetwork seam: how a node agent gives its node and its pods an address.

The node agent (`nbkube.node.agent`) is the only caller. At start it calls `setup_node()` to learn
(and, for real backends, build) its node IP, pod CIDR and network namespace, reports the node IP as
the Node's `InternalIP`, and calls `set_routes()` whenever the set of nodes changes so that every
node reaches every other node's pods (host-gw). For each pod it calls `attach_pod()` once the pod's
sandbox exists (a pid or a netns path) and reports the returned address as `status.podIP`; it calls
`detach_pod()` when the pod is gone and `teardown()` on `down`.

Backends:
- `bridge.BridgeNetwork` (root): node netns + bridge + veth per pod, routes between nodes;
- `loopback.LoopbackNetwork` (embedded, rootless): each pod its own loopback address from the
  cluster's block (`blocks.LoopbackBlock`), nothing created;
- `NoNetwork` here (sim runtime, unit tests): addresses handed out from the pod CIDR, nothing created.

Contract every backend keeps: `setup_node` and `attach_pod` are idempotent (a second call adopts
what exists and returns the same answer, also across a restart of the agent when the backend keeps
state), `detach_pod` of an unknown pod is a no-op, and `teardown` removes all the backend made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from nbkube.node.network.hostports import HostPortMapping

__all__ = ["NetworkError", "NoNetwork", "NodeNetInfo", "PodNetwork", "node_addresses", "record_host_ports"]


class NetworkError(RuntimeError):
    """A network operation failed; the message names the object and the command's own error."""


@dataclass(frozen=True)
class NodeNetInfo:
    node_ip: str  # the Node's InternalIP
    pod_cidr: str  # e.g. "10.244.1.0/24"; the Node's spec.podCIDR
    netns: str | None  # name under /var/run/netns the node's processes (and proxy) run in; None = host


@runtime_checkable
class PodNetwork(Protocol):
    """What the node agent asks of a pod network backend."""

    def setup_node(self) -> NodeNetInfo: ...

    def attach_pod(self, pod_uid: str, netns: str | int, ifname: str = "eth0") -> str:
        """Wire the pod's network namespace (a pid, or a path such as /var/run/netns/X) in; its IP."""
        ...

    def detach_pod(self, pod_uid: str) -> None: ...

    def set_host_ports(self, pod_uid: str, mappings: Sequence[HostPortMapping]) -> None:
        """Answer the node's `hostPort`s for the attached pod (empty: none); detach_pod drops them."""
        ...

    def set_routes(self, peers: dict[str, tuple[str, str]]) -> None:
        """Routes to the other nodes' pods: {node_name: (node_ip, pod_cidr)}; may include this node."""
        ...

    def teardown(self) -> None: ...


# The address plan of the local multi-node cluster (docs/architecture.md): node N (1..253) has the node IP
# 10.240.0.(N+1) on the host bridge, whose host side is 10.240.0.1, and the pod CIDR 10.244.N.0/24.
NODE_NET = ipaddress.IPv4Network("10.240.0.0/24")
HOST_IP = "10.240.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
MAX_NODE_INDEX = 253


def node_addresses(index: int) -> tuple[str, str]:
    """(node_ip, pod_cidr) of node number `index` in the local address plan."""
    if not isinstance(index, int) or not 1 <= index <= MAX_NODE_INDEX:
        raise ValueError(f"node index must be an integer in 1..{MAX_NODE_INDEX}, got {index!r}")
    return f"10.240.0.{index + 1}", f"10.244.{index}.0/24"


def record_host_ports(
    table: dict[str, list[HostPortMapping]],
    attached: Container[str],
    pod_uid: str,
    mappings: Sequence[HostPortMapping],
) -> None:
    """Keep `mappings` as the pod's hostPorts in `table` (backends that only record them)."""
    if pod_uid not in attached:
        raise NetworkError(f"pod {pod_uid}: hostPort before the pod is attached")
    if mappings:
        table[pod_uid] = list(mappings)
    else:
        table.pop(pod_uid, None)


class NoNetwork:
    """A pod network that creates nothing: for the sim runtime and for unit tests of the agent.

    Hands out addresses from the node's pod CIDR (stable per uid for the life of the object) so pod
    status looks as it would on a real node; keeps routes in `routes` for assertions.
    """

    def __init__(self, index: int = 1, node_ip: str | None = None, pod_cidr: str | None = None) -> None:
        default_ip, default_cidr = node_addresses(index)
        self.info = NodeNetInfo(node_ip or default_ip, pod_cidr or default_cidr, None)
        self._hosts = ipaddress.IPv4Network(self.info.pod_cidr).hosts()
        next(self._hosts)  # the first host address is the bridge's gateway on real nodes
        self.pods: dict[str, str] = {}
        self._free: list[str] = []
        self.routes: dict[str, tuple[str, str]] = {}
        self.host_ports: dict[str, list[HostPortMapping]] = {}

    def setup_node(self) -> NodeNetInfo:
        return self.info

    def attach_pod(self, pod_uid: str, netns: str | int, ifname: str = "eth0") -> str:
        if pod_uid not in self.pods:
            ip = self._free.pop(0) if self._free else str(next(self._hosts, ""))
            if not ip:
                raise NetworkError(f"pod CIDR {self.info.pod_cidr} is exhausted (pod {pod_uid})")
            self.pods[pod_uid] = ip
        return self.pods[pod_uid]

    def detach_pod(self, pod_uid: str) -> None:
        ip = self.pods.pop(pod_uid, None)
        self.host_ports.pop(pod_uid, None)
        if ip:
            self._free.append(ip)

    def set_host_ports(self, pod_uid: str, mappings: Sequence[HostPortMapping]) -> None:
        record_host_ports(self.host_ports, self.pods, pod_uid, mappings)

    def set_routes(self, peers: dict[str, tuple[str, str]]) -> None:
        self.routes = dict(peers)

    def teardown(self) -> None:
        self.pods.clear()
        self.routes.clear()
        self.host_ports.clear()
