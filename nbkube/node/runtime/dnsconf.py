"""A pod's `/etc/resolv.conf`, from its dnsPolicy and dnsConfig, as the kubelet writes it.

Who calls it: the node agent, which knows the cluster's DNS address and domain, hands the result to
the runtime in the pod's sandbox config; the Docker runtime writes it into the pod's folder and
bind-mounts it over every container's `/etc/resolv.conf`. The process runtime cannot (host
processes read the host's file) and says so instead (see `nbkube.node.runtime.process`).

Policies (upstream's):
- `ClusterFirst` (the default): the cluster DNS server, search `NS.svc.DOMAIN svc.DOMAIN DOMAIN` then
  the node's own search domains, `options ndots:5`. A hostNetwork pod falls back to `Default`
  unless its policy is `ClusterFirstWithHostNet`; a node without cluster DNS falls back too.
- `Default`: the node's resolv.conf (its nameservers, search domains, options).
- `None`: only what `dnsConfig` says.
`dnsConfig` is merged into any of them: nameservers and searches appended without duplicates,
options merged by name (the pod's value wins). Limits as the kubelet's: 3 nameservers,
32 search domains.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from nbkube.api.meta import Obj

__all__ = [
    "ResolvConf",
    "parse_resolv_conf",
    "host_resolv_conf",
    "pod_resolv_conf",
    "wants_cluster_dns",
    "dns_refusals",
    "MAX_NAMESERVERS",
    "MAX_SEARCHES",
]

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[tuple[str, str | None]] = field(default_factory=list)  # (name, value or None)

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in self.nameservers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(n if v is None else f"{n}:{v}" for n, v in self.options))
        return "\n".join(lines) + "\n"


def parse_resolv_conf(text: str) -> ResolvConf:
    """The nameserver, search (last one wins, as the resolver reads it) and options lines."""
    out = ResolvConf()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            out.nameservers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            out.searches = parts[1:]
        elif parts[0] == "options":
            for opt in parts[1:]:
                name, sep, value = opt.partition(":")
                out.options.append((name, value if sep else None))
    return out


def host_resolv_conf(path: str = "/etc/resolv.conf") -> ResolvConf:
    """The node's resolv.conf (an empty one when the file is missing, as on a bare namespace)."""
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8", errors="replace") as f:
        return parse_resolv_conf(f.read())
    return ResolvConf()


def wants_cluster_dns(pod: Obj) -> bool:
    """Whether the pod's policy asks for the cluster DNS server."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet":
        return True
    return policy == "ClusterFirst" and spec.get("hostNetwork") is not True


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def pod_resolv_conf(
    pod: Obj, *, cluster_dns: list[str], cluster_domain: str, host: ResolvConf
) -> ResolvConf:
    """The resolv.conf of `pod` (see the module docstring)."""
    spec = pod.get("spec") or {}
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        base = ResolvConf()
    elif wants_cluster_dns(pod) and cluster_dns:
        base = ResolvConf(
            nameservers=list(cluster_dns),
            searches=[f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host.searches],
            options=[("ndots", "5")],
        )
    else:
        base = ResolvConf(list(host.nameservers), list(host.searches), list(host.options))
    cfg = spec.get("dnsConfig") or {}
    nameservers = _dedup([*base.nameservers, *(str(x) for x in cfg.get("nameservers") or [])])
    searches = _dedup([*base.searches, *(str(x) for x in cfg.get("searches") or [])])
    options: dict[str, str | None] = dict(base.options)
    for opt in cfg.get("options") or []:
        if isinstance(opt, dict) and opt.get("name"):
            options[str(opt["name"])] = None if opt.get("value") is None else str(opt["value"])
    return ResolvConf(nameservers[:MAX_NAMESERVERS], searches[:MAX_SEARCHES], list(options.items()))


def dns_refusals(pod: Obj) -> list[str]:
    """What the process runtime refuses: it has no resolv.conf to give a pod (host processes read
    the host's), so a policy or config that only a pod's own resolv.conf could honour is an error."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    why = "host processes read the host's /etc/resolv.conf, a pod cannot have its own (use runtime docker)"
    if spec.get("dnsPolicy") == "None":
        out.append(f"spec.dnsPolicy: Forbidden: the process runtime cannot honour None: {why}")
    if spec.get("dnsConfig"):
        out.append(f"spec.dnsConfig: Forbidden: the process runtime cannot honour it: {why}")
    return out
