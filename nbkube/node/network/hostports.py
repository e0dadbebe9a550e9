"""hostPort on real nodes: DNAT from the node's own addresses to the pod, as CNI's portmap plugin.

Why it lives in the network layer: a pod's `hostPort` is wired where its sandbox is wired (the CNI
portmap plugin runs beside the bridge plugin), by the one backend that knows the node's namespace
and the pod's IP. `BridgeNetwork.set_host_ports` (and so `HostNetwork`'s, for a joined machine)
keeps the mappings of every pod on the node in its state file and calls `HostPortTable.sync`,
which rewrites our own two nat chains with one `iptables-restore --noflush`:

- `NBK-HOSTPORTS-<n>`, jumped to from PREROUTING and OUTPUT for traffic to a local address: one
  DNAT rule a mapping (`-d hostIP` when the pod asked for one);
- `NBK-HPMASQ-<n>`, jumped to from POSTROUTING: a pod that reaches its own hostPort through the
  node's address is masqueraded, or its reply would bypass the DNAT (hairpin, as portmap does).

`<n>` is the node's index, so several host-mode nodes on one machine never share a chain. Nothing
outside these chains and their three jump rules is touched; `remove` takes all of it out again.
Which ports a node may hand out is the scheduler's business (its host-ports filter); this module
only programs what the pods on the node ask for.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nbkube.node.netns import run_in
from nbkube.node.network.base import NetworkError

__all__ = ["HostPortMapping", "HostPortTable", "pod_host_ports"]

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class HostPortMapping:
    """One `ports[]` entry with a hostPort: host_ip:host_port/protocol -> pod:container_port."""

    host_port: int
    container_port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"hostPort": self.host_port, "containerPort": self.container_port,
                "protocol": self.protocol, "hostIP": self.host_ip}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostPortMapping:
        return cls(int(data["hostPort"]), int(data["containerPort"]), str(data.get("protocol") or "TCP"),
                   str(data.get("hostIP") or ""))  # fmt: skip


def pod_host_ports(pod: Mapping[str, Any]) -> list[HostPortMapping]:
    """Every container port of the pod that asks for a hostPort (validated objects: well typed)."""
    found: list[HostPortMapping] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            host_port = port.get("hostPort")
            if not host_port:
                continue
            found.append(
                HostPortMapping(
                    host_port=int(host_port),
                    container_port=int(port.get("containerPort") or host_port),
                    protocol=str(port.get("protocol") or "TCP"),
                    host_ip=str(port.get("hostIP") or ""),
                )
            )
    return found


class HostPortTable:
    """Our hostPort chains in one network namespace (None: the host's own)."""

    def __init__(self, netns: str | None, index: int) -> None:
        self.netns = netns
        self.dnat_chain = f"NBK-HOSTPORTS-{index}"
        self.masq_chain = f"NBK-HPMASQ-{index}"
        self._jumps = (
            ("PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat_chain]),
            ("OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.dnat_chain]),
            ("POSTROUTING", ["-j", self.masq_chain]),
        )

    def render(self, pods: Mapping[str, tuple[str, Iterable[HostPortMapping]]]) -> str:
        """iptables-restore input for {pod uid: (pod ip, mappings)}; declaring a chain flushes it."""
        lines = ["*nat", f":{self.dnat_chain} - [0:0]", f":{self.masq_chain} - [0:0]"]
        for uid in sorted(pods):
            pod_ip, mappings = pods[uid]
            ipaddress.IPv4Address(pod_ip)  # a state file edited by hand must not reach iptables
            for m in mappings:
                proto = PROTOCOLS.get(m.protocol)
                if proto is None:
                    raise NetworkError(f"pod {uid}: hostPort {m.host_port}: unknown protocol {m.protocol!r}")
                match = f"-p {proto} -m {proto}"
                dest = f" -d {ipaddress.IPv4Address(m.host_ip)}/32" if m.host_ip else ""
                comment = f'-m comment --comment "{uid} hostPort {m.host_port}/{m.protocol}"'
                lines.append(
                    f"-A {self.dnat_chain}{dest} {match} --dport {m.host_port} {comment} "
                    f"-j DNAT --to-destination {pod_ip}:{m.container_port}"
                )
                lines.append(
                    f"-A {self.masq_chain} -s {pod_ip}/32 -d {pod_ip}/32 {match} --dport {m.container_port} "
                    "-m conntrack --ctstate DNAT -j MASQUERADE"
                )
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def sync(self, pods: Mapping[str, tuple[str, Iterable[HostPortMapping]]]) -> None:
        """Make our chains hold exactly `pods`' mappings (one restore), and jump to them once."""
        self._run(["iptables-restore", "-w", "--noflush"], input=self.render(pods))
        for chain, rule in self._jumps:
            if self._run(["iptables", "-w", "-t", "nat", "-C", chain, *rule], check=False).returncode:
                self._run(["iptables", "-w", "-t", "nat", "-I", chain, "1", *rule])

    def remove(self) -> None:
        """Take our jumps and chains out (no-op for what is already gone)."""
        for chain, rule in self._jumps:
            for _ in range(10):  # bounded: more than one copy only after a crash between -C and -I
                if self._run(["iptables", "-w", "-t", "nat", "-D", chain, *rule], check=False).returncode:
                    break
        for chain in (self.dnat_chain, self.masq_chain):
            self._run(["iptables", "-w", "-t", "nat", "-F", chain], check=False)
            self._run(["iptables", "-w", "-t", "nat", "-X", chain], check=False)

    def rules(self) -> list[str]:
        """Our chains' rules as iptables-save prints them (for tests and `describe`)."""
        out = self._run(["iptables-save", "-t", "nat"]).stdout
        ours = (f"-A {self.dnat_chain} ", f"-A {self.masq_chain} ")
        return [line for line in out.splitlines() if line.startswith(ours)]

    def _run(
        self, argv: list[str], *, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        where = f"netns {self.netns}" if self.netns else "the host namespace"
        try:
            proc = run_in(self.netns, argv, input, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetworkError(f"{' '.join(argv)} in {where}: {exc}") from exc
        if check and proc.returncode != 0:
            raise NetworkError(
                f"{' '.join(argv)} in {where} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc
