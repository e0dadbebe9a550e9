"""The pod network of a real machine (root): pods bridged in the host's own namespace, host-gw routes.

`nbkube node join` on a machine of its own: the node is the host itself, its InternalIP an address
the machine already has (`--node-ip`), and other nodes reach its pods through it. As the CNI
bridge plugin does on a real kubelet, a bridge `nbkh<N>` holds 10.244.N.1/24 and each pod gets a
veth into it (the same wiring code as the local multi-node `BridgeNetwork`, aimed at the host
namespace); routes to every other node's pod CIDR go via that node's IP (flannel host-gw).

What it adds to the host is its own and is removed by `teardown()`: the two bridges, the routes it
added, and one FORWARD chain accepting pod traffic (Docker sets FORWARD's policy to DROP). The
service range gets a port-less sink bridge, so a ClusterIP the proxy does not DNAT never leaves
the machine by its default route.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from nbkube.node.network.base import CLUSTER_CIDR, NetworkError, NodeNetInfo
from nbkube.node.network.bridge import (
    SERVICE_CIDR,
    BridgeNetwork,
    ensure_forward_accept,
    host_locked,
    links,
    remove_forward_accept,
    run,
)

__all__ = ["HostNetwork", "PODS_FORWARD_CHAIN"]

PODS_FORWARD_CHAIN = "NBK-PODS-FORWARD"


class HostNetwork(BridgeNetwork):
    """One node whose pods live in the host's namespace; see the module docstring."""

    def __init__(
        self,
        node_name: str,
        index: int,
        state_dir: str | os.PathLike[str],
        node_ip: str,
        service_cidr: str = SERVICE_CIDR,
    ) -> None:
        super().__init__(node_name, index, state_dir, service_cidr)
        try:
            ipaddress.IPv4Address(node_ip)
        except ValueError:
            raise NetworkError(f"node {node_name}: --node-ip {node_ip!r} is not an IPv4 address") from None
        self.node_ip = node_ip
        self.netns = None  # type: ignore[assignment]  # the host's own namespace
        self.pod_bridge = f"nbkh{index}"
        self.sink = f"nbkhs{index}"
        self.routes_path = Path(state_dir) / f"{node_name}.routes.json"

    def setup_node(self) -> NodeNetInfo:
        with host_locked():
            have = links(None)
            batch = []
            for name in (self.pod_bridge, self.sink):
                if name not in have:
                    batch.append(f"link add {name} type bridge")
            batch += [
                f"address replace {self.gateway}/{self.prefix} dev {self.pod_bridge}",
                f"link set {self.pod_bridge} up",
                f"link set {self.sink} up",
                f"route replace {self.service_cidr} dev {self.sink}",
            ]
            run(["ip", "-batch", "-"], input="\n".join(batch) + "\n")
            run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            accept = [["-s", CLUSTER_CIDR, "-j", "ACCEPT"], ["-d", CLUSTER_CIDR, "-j", "ACCEPT"]]
            ensure_forward_accept(PODS_FORWARD_CHAIN, accept)
        self._save(self._load())
        return NodeNetInfo(self.node_ip, self.pod_cidr, None)

    def set_routes(self, peers: dict[str, tuple[str, str]]) -> None:
        want = {
            str(ipaddress.IPv4Network(cidr)): ip
            for name, (ip, cidr) in peers.items()
            if name != self.node_name and cidr != self.pod_cidr
        }
        added = self._added_routes()
        with host_locked():
            batch = [f"route del {dst}" for dst in added if dst not in want]
            batch += [f"route replace {dst} via {ip}" for dst, ip in want.items() if added.get(dst) != ip]
            if batch:
                run(["ip", "-batch", "-"], input="\n".join(batch) + "\n")
        self._write_routes(want)

    def teardown(self) -> None:
        with host_locked():
            for dst in self._added_routes():
                run(["ip", "route", "del", dst], check=False)
            run(["ip", "route", "del", self.service_cidr, "dev", self.sink], check=False)
            have = links(None)
            for name, link in have.items():  # veths of pods whose sandbox outlived us
                if link.get("master") == self.pod_bridge:
                    run(["ip", "link", "del", name], check=False)
            for name in (self.pod_bridge, self.sink):
                if name in have:
                    run(["ip", "link", "del", name], check=False)
            self.host_port_table().remove()
            if not any(n.startswith("nbkh") for n in links(None)):  # the last host-mode node here
                remove_forward_accept(PODS_FORWARD_CHAIN)
        self.state_path.unlink(missing_ok=True)
        self.routes_path.unlink(missing_ok=True)

    def _added_routes(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.routes_path.read_text()))
        except (OSError, ValueError):
            return {}

    def _write_routes(self, routes: dict[str, str]) -> None:
        self.routes_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.routes_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(routes, sort_keys=True))
        os.replace(tmp, self.routes_path)
