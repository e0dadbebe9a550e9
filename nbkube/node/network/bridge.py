"""The local multi-node pod network (root): a network namespace per node, a bridge per node, host-gw.

docs/architecture.md, "A local multi-node cluster on one host". Node N (1..253) is the namespace
`nbk-<node>`; its uplink is a veth whose outer end is a port of the host bridge `nbk0` (10.240.0.1)
and whose inner end `eth0` carries the node IP 10.240.0.(N+1), the Node's InternalIP, reachable
from the host. Inside, the bridge `cbr0` holds 10.244.N.1/24, the pods' gateway. A pod is wired in
as the CNI bridge plugin does: a veth pair whose inner end moves into the pod's namespace as `eth0`
with the next free address of the pod CIDR and a default route via the gateway. Routes (flannel's
host-gw): each node routes every other node's pod CIDR via that node's IP, and the host routes each
pod CIDR via its node IP. Nothing is NATed, so a pod sees the other pod's own address.

Called by the node agent through the `PodNetwork` seam. Everything is done with `ip` commands (one
`ip -batch` where several changes go together); no extra dependency is needed. Address assignments
are kept in `<state_dir>/<node>.json` so an agent restart keeps every pod's IP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nbkube.node.network.base import CLUSTER_CIDR, HOST_IP, NetworkError, NodeNetInfo, node_addresses
from nbkube.node.network.hostports import HostPortMapping, HostPortTable

__all__ = [
    "BridgeNetwork",
    "HOST_BRIDGE",
    "ensure_forward_accept",
    "host_locked",
    "links",
    "netns_name",
    "remove_forward_accept",
    "run",
]

HOST_BRIDGE = "nbk0"
NODE_BRIDGE = "cbr0"
SERVICE_DUMMY = "nbksvc0"
HOST_FORWARD_CHAIN = "NBK-HOST-FORWARD"
SERVICE_CIDR = "10.96.0.0/12"
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,50}[a-z0-9])?$")
_LOCK_PATH = "/run/lock/nbkube-network.lock"
_host_lock = threading.Lock()


def netns_name(node_name: str) -> str:
    return f"nbk-{node_name}"


def run(args: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 20.0) -> str:
    """Run one command; its stdout, or NetworkError naming the command and its stderr."""
    try:
        proc = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"{' '.join(args)}: {exc}") from exc
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def host_locked() -> Iterator[None]:
    """Serialise changes to what nodes share (the host bridge, host routes), across threads and processes."""
    with _host_lock:
        os.makedirs(os.path.dirname(_LOCK_PATH), exist_ok=True)
        with open(_LOCK_PATH, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def links(netns: str | None) -> dict[str, dict[str, Any]]:
    cmd = ["ip", "-j"] + (["-n", netns] if netns else []) + ["link", "show"]
    return {link["ifname"]: link for link in json.loads(run(cmd) or "[]")}


def _netns_exists(name: str) -> bool:
    return os.path.exists(f"/var/run/netns/{name}")


def _ns_path(netns: str | int) -> str:
    """A netns reference as `ip`/`nsenter` take it: a pid, a path, or a name under /var/run/netns."""
    if isinstance(netns, int) or netns.isdigit():
        return f"/proc/{int(netns)}/ns/net"
    if "/" in netns:
        return netns
    return f"/var/run/netns/{netns}"


class BridgeNetwork:
    """One node's network; see the module docstring. Needs root."""

    def __init__(
        self, node_name: str, index: int, state_dir: str | os.PathLike[str], service_cidr: str = SERVICE_CIDR
    ) -> None:
        if not _NAME_RE.match(node_name):
            raise ValueError(f"node name {node_name!r} is not a DNS label usable in a netns name")
        self.node_name = node_name
        self.index = index
        self.node_ip, self.pod_cidr = node_addresses(index)
        self.service_cidr = str(ipaddress.IPv4Network(service_cidr))
        self.netns = netns_name(node_name)
        self.uplink = f"nbkv{index}"  # host side of the node's uplink veth; <= 15 chars
        net = ipaddress.IPv4Network(self.pod_cidr)
        self.gateway = str(net.network_address + 1)
        self.prefix = net.prefixlen
        self.state_path = Path(state_dir) / f"{node_name}.json"
        self.pod_bridge = NODE_BRIDGE  # where pods' veths are enslaved (host mode names its own)
        self._lock = threading.Lock()

    def _ip(self) -> list[str]:
        """`ip` aimed at the namespace pods are wired into (None: the host's own, as on real machines)."""
        return ["ip", "-n", self.netns] if self.netns else ["ip"]

    # --- node -------------------------------------------------------------------------------

    def setup_node(self) -> NodeNetInfo:
        with host_locked():
            self._ensure_host_bridge()
            if not _netns_exists(self.netns):
                run(["ip", "netns", "add", self.netns])
            inner = links(self.netns)
            if self.uplink in links(None) and "eth0" not in inner:
                # Our uplink's name is taken by a veth whose peer is not in this namespace (a node of
                # the same index whose namespace outlived its name, e.g. pinned by a process):
                # take it back, or this node would come up without its eth0.
                run(["ip", "link", "del", self.uplink])
            if self.uplink not in links(None):
                if "eth0" in inner:  # a half-made uplink from an interrupted setup: start again
                    run(["ip", "-n", self.netns, "link", "del", "eth0"])
                uplink = ["ip", "link", "add", self.uplink, "type", "veth", "peer", "name", "eth0"]
                run([*uplink, "netns", self.netns])
            run(["ip", "link", "set", self.uplink, "master", HOST_BRIDGE, "up"])
            batch = [
                "link set lo up",
                f"address replace {self.node_ip}/24 dev eth0",
                "link set eth0 up",
            ]
            inner_links = links(self.netns)
            if NODE_BRIDGE not in inner_links:
                batch.append(f"link add {NODE_BRIDGE} type bridge")
            if SERVICE_DUMMY not in inner_links:
                batch.append(f"link add {SERVICE_DUMMY} type bridge")  # no `dummy` module everywhere
            batch += [
                f"address replace {self.gateway}/{self.prefix} dev {NODE_BRIDGE}",
                f"link set {NODE_BRIDGE} up",
                # The node has no default route; its own connections to a ClusterIP need some
                # route to pass the routing decision before the proxy's DNAT in nat/OUTPUT. A sink
                # (a bridge without ports, like IPVS mode's dummy kube-ipvs0): an address that no
                # rule DNATs dies there. Via the host, whose ip_forward Docker turns on, it could
                # reach the outside world; via cbr0, a REJECT (service without endpoints) of a
                # pod's packet would not reach the pod.
                f"link set {SERVICE_DUMMY} up",
                f"route replace {self.service_cidr} dev {SERVICE_DUMMY}",
            ]
            run(["ip", "-n", self.netns, "-batch", "-"], input="\n".join(batch) + "\n")
            run(["ip", "netns", "exec", self.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            run(["ip", "route", "replace", self.pod_cidr, "via", self.node_ip, "dev", HOST_BRIDGE])
        self._save(self._load())
        return NodeNetInfo(self.node_ip, self.pod_cidr, self.netns)

    def _ensure_host_bridge(self) -> None:
        if HOST_BRIDGE not in links(None):
            run(["ip", "link", "add", HOST_BRIDGE, "type", "bridge"])
        run(["ip", "address", "replace", f"{HOST_IP}/24", "dev", HOST_BRIDGE])
        run(["ip", "link", "set", HOST_BRIDGE, "up"])
        # With br_netfilter loaded, frames bridged on nbk0 (node to node) cross the host's FORWARD
        # chain, whose policy Docker sets to DROP: accept them in a chain of our own.
        ensure_forward_accept(HOST_FORWARD_CHAIN, [["-i", HOST_BRIDGE, "-o", HOST_BRIDGE, "-j", "ACCEPT"]])

    def set_routes(self, peers: dict[str, tuple[str, str]]) -> None:
        want = {
            str(ipaddress.IPv4Network(cidr)): ip
            for name, (ip, cidr) in peers.items()
            if name != self.node_name and cidr != self.pod_cidr
        }
        cluster = ipaddress.IPv4Network(CLUSTER_CIDR)
        have: dict[str, str] = {}
        for route in json.loads(run(["ip", "-j", "-n", self.netns, "-4", "route", "show"]) or "[]"):
            dst, gw = route.get("dst", ""), route.get("gateway")
            if gw and "/" in dst and ipaddress.IPv4Network(dst).subnet_of(cluster):
                have[dst] = gw
        batch = [f"route del {dst}" for dst in have if dst not in want]
        batch += [f"route replace {dst} via {ip} dev eth0" for dst, ip in want.items() if have.get(dst) != ip]
        if batch:
            run(["ip", "-n", self.netns, "-batch", "-"], input="\n".join(batch) + "\n")

    def teardown(self) -> None:
        with host_locked():
            run(["ip", "route", "del", self.pod_cidr, "via", self.node_ip], check=False)
            if self.uplink in links(None):
                run(["ip", "link", "del", self.uplink])
            if _netns_exists(self.netns):
                # Links go explicitly: a process left inside would keep the namespace (and our
                # veths in it) alive after `ip netns del`.
                for name, link in links(self.netns).items():
                    if name != "lo" and (link.get("link_type") == "ether"):
                        run(["ip", "-n", self.netns, "link", "del", name], check=False)
                run(["ip", "netns", "del", self.netns])
            self.state_path.unlink(missing_ok=True)
            host_links = links(None)
            if HOST_BRIDGE in host_links and not any(
                link.get("master") == HOST_BRIDGE for link in host_links.values()
            ):
                run(["ip", "link", "del", HOST_BRIDGE])
                remove_host_forward()

    # --- pods -------------------------------------------------------------------------------

    def pod_ifname(self, pod_uid: str) -> str:
        """The node-side end of the pod's veth: stable per uid, unique in the node namespace."""
        return "veth" + hashlib.sha1(pod_uid.encode()).hexdigest()[:8]

    def attach_pod(self, pod_uid: str, netns: str | int, ifname: str = "eth0") -> str:
        path = _ns_path(netns)
        if not os.path.exists(path):
            raise NetworkError(f"pod {pod_uid}: network namespace {path} does not exist")
        # Only the address is chosen under the node's lock (and recorded at once, so a concurrent
        # attach picks another); the wiring runs outside it, so a burst of pods on one node is wired
        # in parallel rather than one `ip` process after another.
        with self._lock:
            state = self._load()
            ip = state["pods"].get(pod_uid)
            fresh = ip is None
            if fresh:
                ip = self._allocate(state)
                state["pods"][pod_uid] = ip
                self._save(state)
        try:
            self._wire_pod(pod_uid, path, ifname, str(ip))
        except NetworkError:
            if fresh:  # nothing half-made stays behind, not even the address
                with self._lock:
                    state = self._load()
                    if state["pods"].get(pod_uid) == ip:
                        del state["pods"][pod_uid]
                        self._save(state)
            raise
        return str(ip)

    def _wire_pod(self, pod_uid: str, path: str, ifname: str, ip: str) -> None:
        """The veth pair, the pod's end configured and the node's end on the bridge: two `ip` runs."""
        outer = self.pod_ifname(pod_uid)
        create = f"link add {outer} type veth peer name {ifname} netns {path}"
        node_batch = [
            f"link set {outer} master {self.pod_bridge}",
            # Hairpin: a pod that reaches itself through a service is DNATed back to the port its
            # frame came in on (br_netfilter NATs bridged frames), as kubelet's hairpin-veth.
            f"link set {outer} type bridge_slave hairpin on",
            f"link set {outer} up",
            # A reused address may still map to a gone pod's MAC in the node's cache.
            f"neigh flush to {ip}",
        ]
        created = True
        try:
            run([*self._ip(), "-batch", "-"], input="\n".join([create, *node_batch]) + "\n")
        except NetworkError as exc:
            if "File exists" not in str(exc):
                raise
            # attached before (an agent restart adopting its pods): keep the pair, redo the rest
            created = False
            run([*self._ip(), "-batch", "-"], input="\n".join(node_batch) + "\n")
        pod_batch = [
            "link set lo up",
            f"address replace {ip}/{self.prefix} dev {ifname}",
            f"link set {ifname} up",
            f"route replace default via {self.gateway} dev {ifname}",
        ]
        try:
            run(["nsenter", f"--net={path}", "ip", "-batch", "-"], input="\n".join(pod_batch) + "\n")
        except NetworkError:
            if created:
                run([*self._ip(), "link", "del", outer], check=False)
            raise

    def detach_pod(self, pod_uid: str) -> None:
        with self._lock:
            if self.netns is None or _netns_exists(self.netns):
                run([*self._ip(), "link", "del", self.pod_ifname(pod_uid)], check=False)
            state = self._load()
            mapped = state.get("hostports", {}).pop(pod_uid, None)
            if mapped and (self.netns is None or _netns_exists(self.netns)):
                self._sync_host_ports(state)
            if state["pods"].pop(pod_uid, None) is not None or mapped:
                self._save(state)

    def set_host_ports(self, pod_uid: str, mappings: Sequence[HostPortMapping]) -> None:
        """DNAT the node's `hostPort`s to the attached pod `pod_uid` (an empty list: none any more)."""
        with self._lock:
            state = self._load()
            if pod_uid not in state["pods"]:
                raise NetworkError(f"pod {pod_uid}: hostPort before the pod is attached to {self.node_name}")
            table: dict[str, Any] = state.setdefault("hostports", {})
            want = [m.to_json() for m in mappings]
            if table.get(pod_uid, []) == want:
                return
            if want:
                table[pod_uid] = want
            else:
                table.pop(pod_uid, None)
            self._sync_host_ports(state)
            self._save(state)

    def host_port_table(self) -> HostPortTable:
        """Our hostPort chains in the namespace the node's pods are wired into."""
        return HostPortTable(self.netns, self.index)

    def _sync_host_ports(self, state: dict[str, Any]) -> None:
        pods = {
            uid: (str(state["pods"][uid]), [HostPortMapping.from_json(m) for m in mappings])
            for uid, mappings in (state.get("hostports") or {}).items()
            if uid in state["pods"]
        }
        self.host_port_table().sync(pods)

    def pod_ips(self) -> dict[str, str]:
        """{pod uid: ip} as recorded; for adoption after an agent restart."""
        return dict(self._load()["pods"])

    def _allocate(self, state: dict[str, Any]) -> str:
        # Round robin from the last address handed out, as CNI's host-local IPAM does: an address
        # freed a moment ago is still in neighbour caches with the old pod's MAC.
        used = set(state["pods"].values()) | {self.gateway}
        hosts = [str(h) for h in ipaddress.IPv4Network(self.pod_cidr).hosts()]
        last = state.get("last")
        start = hosts.index(last) + 1 if last in hosts else 0
        for ip in hosts[start:] + hosts[:start]:
            if ip not in used:
                state["last"] = ip
                return ip
        raise NetworkError(f"node {self.node_name}: pod CIDR {self.pod_cidr} is exhausted")

    def _load(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"node": self.node_name, "index": self.index, "pods": {}}
        except (OSError, ValueError) as exc:
            raise NetworkError(f"network state file {self.state_path} is unreadable: {exc}") from exc
        if state.get("index") != self.index or not isinstance(state.get("pods"), dict):
            raise NetworkError(
                f"network state file {self.state_path} belongs to node index {state.get('index')!r},"
                f" not {self.index}; remove it or use the same index"
            )
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_path)


def ensure_forward_accept(chain: str, rules: list[list[str]]) -> None:
    """A chain of ours holding `rules`, jumped to first from the host's FORWARD (idempotent).

    Docker sets FORWARD's policy to DROP; what our nodes forward is accepted here, in a chain that
    `remove_forward_accept` takes out again without touching anyone else's rules."""
    run(["iptables", "-w", "-N", chain], check=False)  # fails harmlessly when it exists
    for rule in rules:
        if subprocess.run(["iptables", "-w", "-C", chain, *rule], capture_output=True).returncode:
            run(["iptables", "-w", "-A", chain, *rule])
    jump = ["-j", chain]
    if subprocess.run(["iptables", "-w", "-C", "FORWARD", *jump], capture_output=True).returncode:
        run(["iptables", "-w", "-I", "FORWARD", "1", *jump])


def remove_forward_accept(chain: str) -> None:
    """Remove the FORWARD jump to `chain` and the chain itself (no-op when absent)."""
    jump = ["-j", chain]
    for _ in range(10):  # bounded: one copy is normal, more only after a crash mid-setup
        if subprocess.run(["iptables", "-w", "-D", "FORWARD", *jump], capture_output=True).returncode:
            break
    run(["iptables", "-w", "-F", chain], check=False)
    run(["iptables", "-w", "-X", chain], check=False)


def remove_host_forward() -> None:
    """Remove the host FORWARD jump and chain that `setup_node` added (no-op when absent)."""
    remove_forward_accept(HOST_FORWARD_CHAIN)
