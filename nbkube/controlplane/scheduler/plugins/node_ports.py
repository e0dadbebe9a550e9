"""Filter NodePorts: a pod's hostPorts must be free on the node.

Why: two pods cannot bind the same host port (same protocol) on one node; an address of 0.0.0.0
conflicts with every address. Dynamic filter over NodeInfo.used_ports; skipped for the (usual)
pods that ask for no host port.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nbkube.controlplane.scheduler.framework import NodeInfo, PodInfo

MSG_PORTS = "node(s) didn't have free ports for the requested pod ports"
WILDCARD = "0.0.0.0"

HostPort = tuple[str, str, int]  # (protocol, hostIP, port)


def port_conflict(wanted: HostPort, used: Iterable[HostPort]) -> bool:
    proto, ip, port = wanted
    for u_proto, u_ip, u_port in used:
        if u_port == port and u_proto == proto and (ip == u_ip or WILDCARD in (ip, u_ip)):
            return True
    return False


def node_ports(pod: PodInfo, node: NodeInfo) -> list[str]:
    used = list(node.used_ports)
    if any(port_conflict(p, used) for p in pod.host_ports):
        return [MSG_PORTS]
    return []


class NodePorts:
    name = "NodePorts"
    static = False

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def filter(self, pod: PodInfo, node: NodeInfo) -> Sequence[str]:
        if not node.used_ports:
            return ()
        return node_ports(pod, node)
