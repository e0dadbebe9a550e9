"""hostPort in the embedded mode: which listeners the userspace proxy opens for pods' hostPorts.

Why: a process pod listens on its own loopback address (in its node's `pod_cidr`), so a `hostPort`
must be answered on its node's loopback address by somebody else. Real nodes DNAT in iptables
(`nbkube.node.network.hostports`); without root the host's one userspace proxy (`kit.HostProxy`)
opens a listener per hostPort, fed by this pure function of the Pod objects, as it opens NodePorts.
The userspace proxy forwards TCP only, so a UDP or SCTP hostPort is reported, never dropped quietly.
"""

from __future__ import annotations

from collections.abc import Iterable

from nbkube.api.meta import Obj, key_of
from nbkube.node.network.hostports import pod_host_ports
from nbkube.node.proxy.rules import Backend, ServicePortRule

__all__ = ["host_port_listeners"]

Address = tuple[str, int]


def host_port_listeners(pods: Iterable[Obj]) -> tuple[dict[Address, ServicePortRule], dict[Address, str]]:
    """({(node ip, hostPort): rule forwarding to the pod}, {address: why it cannot be served})."""
    listeners: dict[Address, ServicePortRule] = {}
    refused: dict[Address, str] = {}
    for pod in sorted(pods, key=key_of):
        status = pod.get("status") or {}
        pod_ip, host_ip = str(status.get("podIP") or ""), str(status.get("hostIP") or "")
        if not pod_ip or not host_ip or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        key = key_of(pod)
        for m in pod_host_ports(pod):
            addr = (host_ip, m.host_port)
            if m.host_ip and m.host_ip != host_ip:
                refused[addr] = f"{key}: hostIP {m.host_ip} is not its node's address {host_ip}"
                continue
            if m.protocol != "TCP":
                refused[addr] = (
                    f"{key}: {m.protocol} hostPort {m.host_port}: the userspace proxy forwards TCP only"
                )
                continue
            if addr in listeners:  # the scheduler keeps them apart; first pod (by name) wins otherwise
                refused[addr] = (
                    f"{key}: hostPort {m.host_port} on {host_ip} is taken by {listeners[addr].service}"
                )
                continue
            listeners[addr] = ServicePortRule(
                service=key,
                port_name=f"hostPort-{m.host_port}",
                protocol="TCP",
                cluster_ip="",
                port=m.host_port,
                node_port=None,
                session_affinity=False,
                affinity_timeout=0,
                backends=(Backend(pod_ip, m.container_port, key),),
            )
    return listeners, refused
