"""Everything one node needs besides its agent: runtime, pod network, service proxy, routes.

Who calls it: `LocalCluster` (several nodes in one process) and `nbkube node join` (one node on a
machine of its own). The agent itself only knows the Runtime seam; which network and which proxy go
with which runtime is decided here, once:

- `docker` (root): a network namespace per node with a bridge and veths (`BridgeNetwork`), pods as
  Docker containers wired into it, and an iptables proxy in the node's namespace;
- `process` (embedded, rootless): each pod on its own loopback address from 127.244.N.0/24, node N
  answering on 127.240.0.(N+1), and one userspace proxy for the whole host (`HostProxy`);
- `sim`: nothing real; addresses from 10.244.N.0/24 for show.

Routes between nodes follow the Node objects (InternalIP + podCIDR), so a node that joins from
another machine is routed to as soon as it registers.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import BadRequest, NotFound
from nbkube.node.agentserver import AgentServer
from nbkube.node.firewall.base import FakeFirewall
from nbkube.node.firewall.notice import NotEnforcedNotice
from nbkube.node.firewall.runner import FirewallRunner
from nbkube.node.network.base import NodeNetInfo, PodNetwork, node_addresses
from nbkube.node.proxy.hostport_rules import host_port_listeners
from nbkube.node.proxy.rules import ServicePortRule
from nbkube.node.proxy.runner import ProxyRunner
from nbkube.node.proxy.userspace import UserspaceProxy, loopback_address
from nbkube.node.runtime import create_runtime
from nbkube.node.runtime.base import Runtime

__all__ = ["NodeKit", "HostProxy", "build_node", "embedded_addresses", "volume_resolver"]

log = logging.getLogger(__name__)


def embedded_addresses(index: int) -> tuple[str, str]:
    """(node_ip, pod_cidr) of node `index` in the embedded mode: all on loopback, no root needed."""
    node_ip, cidr = node_addresses(index)
    return "127." + node_ip.split(".", 1)[1], "127." + cidr.split(".", 1)[1]


def volume_resolver(api: Any) -> Callable[[Obj, Obj], dict[str, bytes] | None]:
    """The files of a pod's configMap / secret volume, read from the registry (None if missing)."""

    def resolve(pod: Obj, volume: Obj) -> dict[str, bytes] | None:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        if "configMap" in volume:
            source = volume["configMap"] or {}
            kind, name = "ConfigMap", str(source.get("name", ""))
        elif "secret" in volume:
            source = volume["secret"] or {}
            kind, name = "Secret", str(source.get("secretName", ""))
        else:
            return None
        try:
            obj = api.get(kind, name, namespace)
        except NotFound:
            return None
        files: dict[str, bytes] = {}
        if kind == "ConfigMap":
            files.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
            files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            files.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
            files.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        items = source.get("items")
        if items:  # only the listed keys, under the paths given
            files = {str(i["path"]): files[str(i["key"])] for i in items if str(i.get("key")) in files}
        return files

    return resolve


class RouteSync:
    """Keeps a node's routes to every other node's pods in step with the Node objects (host-gw)."""

    def __init__(self, factory: InformerFactory, network: PodNetwork):
        self._nodes = factory.informer("Node")
        self._network = network
        self._last: dict[str, tuple[str, str]] = {}

    def start(self) -> None:
        self._nodes.add_handler(
            on_add=self._sync, on_update=lambda _o, n: self._sync(n), on_delete=self._sync
        )
        self._nodes.start()

    def _sync(self, _obj: Obj) -> None:
        peers: dict[str, tuple[str, str]] = {}
        for node in self._nodes.list():
            cidr = str((node.get("spec") or {}).get("podCIDR") or "")
            ips = [
                a.get("address")
                for a in (node.get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ]
            if cidr and ips:
                peers[str(node["metadata"]["name"])] = (str(ips[0]), cidr)
        if peers == self._last:
            return
        try:
            self._network.set_routes(peers)
            self._last = peers
        except Exception as exc:  # the next Node change retries
            log.warning("routes to other nodes could not be set: %s", exc)


class HostProxy:
    """The embedded mode's one userspace proxy for every node on this host.

    ClusterIPs answer on their loopback mirror (10.96.x.y -> 127.96.x.y) and every node's
    NodePorts on that node's loopback address, which is where the article's "request to port
    30001 on any node" lands without root.
    """

    def __init__(self, factory: InformerFactory):
        self.proxy = UserspaceProxy(address_map=loopback_address)
        self.node_ips: list[str] = []
        self.errors: dict[tuple[str, int], str] = {}
        self.runner = ProxyRunner(factory, self._apply, name="userspace-proxy")
        # Pods' hostPorts are listeners too (on their node's address); they change with Pods, not
        # Services, so they are kept here and merged into every sync (under one lock: two informer
        # threads call in).
        self._pods = factory.informer("Pod")
        self._lock = threading.Lock()
        self._rules: list[ServicePortRule] = []
        self._host_ports: dict[tuple[str, int], ServicePortRule] = {}
        self._host_port_errors: dict[tuple[str, int], str] = {}

    def _apply(self, rules: list[ServicePortRule]) -> None:
        with self._lock:
            self._rules = list(rules)
            self._sync()

    def _pods_changed(self, *_objs: Obj) -> None:
        listeners, refused = host_port_listeners(self._pods.list())
        with self._lock:
            if (listeners, refused) == (self._host_ports, self._host_port_errors):
                return
            self._host_ports, self._host_port_errors = listeners, refused
            for addr, why in refused.items():
                log.warning("hostPort %s:%d not served: %s", addr[0], addr[1], why)
            self._sync()

    def _sync(self) -> None:
        errors = self.proxy.sync(self._rules, self.node_ips, extra=self._host_ports)
        self.errors = {**self._host_port_errors, **errors}

    def start(self) -> None:
        self.proxy.start()
        self._pods.add_handler(
            on_add=self._pods_changed, on_update=self._pods_changed, on_delete=self._pods_changed
        )
        self._pods.start()  # no-op when the factory already runs it
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.proxy.stop()


@dataclass
class NodeKit:
    """The parts of one node besides its agent, and how to take them down."""

    name: str
    runtime: Runtime
    net: NodeNetInfo
    network: PodNetwork | None = None
    parts: list[Any] = field(default_factory=list)  # things with start()/stop()
    _teardown: list[Callable[[], None]] = field(default_factory=list)

    @property
    def node_ip(self) -> str:
        return self.net.node_ip

    @property
    def pod_cidr(self) -> str:
        return self.net.pod_cidr

    def start(self) -> None:
        for part in self.parts:
            part.start()

    def stop(self, *, remove: bool = True) -> None:
        """Stop the proxy and routes; with `remove`, also delete every container, rule and link."""
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):
                part.stop()
        if remove:
            for step in reversed(self._teardown):
                try:
                    step()
                except Exception as exc:
                    log.warning("node %s: cleanup step failed: %s", self.name, exc)
        else:
            # a kubelet restart: the runtime lets go but its pods run on, for the next one to adopt
            close: Callable[..., None] = self.runtime.close
            try:
                close(remove=False)
            except TypeError:  # a runtime without pods to leave behind (sim)
                close()


def build_node(
    runtime: str,
    node_name: str,
    index: int,
    *,
    api: Any,
    factory: InformerFactory,
    state_dir: str,
    clock: Clock = REAL_CLOCK,
    options: dict[str, Any] | None = None,
    host_ip: str | None = None,
    agent_token: str | None = None,
) -> NodeKit:
    """Create (but do not start) the runtime, network and proxy of node `index` (1..253).

    With `host_ip` a Docker node lives in the host's own namespace with that InternalIP (a real
    machine joining a cluster); without, it gets a namespace of its own on this host's `nbk0`.
    `agent_token` is the cluster's node agent credential (nbkube/security/agentauth.py), which the
    logs/exec endpoint of a docker or process node demands; simulated nodes serve none."""
    options = dict(options or {})
    if runtime in ("docker", "process") and not agent_token:
        raise BadRequest(
            f"node {node_name}: runtime {runtime} serves logs and exec and needs the agent credential"
        )
    if runtime == "docker":
        return _docker_node(
            node_name,
            index,
            api=api,
            factory=factory,
            state_dir=state_dir,
            clock=clock,
            options=options,
            host_ip=host_ip,
            agent_token=str(agent_token),
        )
    if runtime == "process":
        node_ip, cidr = embedded_addresses(index)
        options.setdefault("clock", clock)
        options.setdefault("resolve_volume", volume_resolver(api))
        options.setdefault("node_name", node_name)
        rt = create_runtime("process", state_dir=os.path.join(state_dir, "process", node_name), **options)
        kit = NodeKit(node_name, rt, NodeNetInfo(node_ip, cidr, None))
        # No per-pod isolation on loopback: say so on every policy that selects a pod here.
        kit.parts = [
            AgentServer(api, node_name, rt, token=str(agent_token)),
            NotEnforcedNotice(api, factory, node_name),
        ]
        kit._teardown.append(rt.close)
        return kit
    if runtime == "sim":
        node_ip, cidr = node_addresses(index)
        rt = create_runtime("sim", **options)
        kit = NodeKit(node_name, rt, NodeNetInfo(node_ip, cidr, None))
        # Nothing to filter, but the same decisions a real node would enforce, for inspection;
        # inline (no thread per node): a scale study may simulate thousands of nodes.
        kit.parts = [FirewallRunner(factory, FakeFirewall(), node_name, threaded=False)]
        kit._teardown.append(rt.close)
        return kit
    raise BadRequest(f"unknown runtime {runtime!r} (expected docker, process or sim)")


def _docker_node(
    node_name: str,
    index: int,
    *,
    api: Any,
    factory: InformerFactory,
    state_dir: str,
    clock: Clock,
    options: dict[str, Any],
    host_ip: str | None = None,
    agent_token: str,
) -> NodeKit:
    from nbkube.node.firewall.iptables import IptablesFirewall
    from nbkube.node.network import make_network
    from nbkube.node.network.host import HostNetwork
    from nbkube.node.proxy.iptables import IptablesProxy
    from nbkube.node.runtime.images import ensure_images

    if os.geteuid() != 0:
        raise BadRequest(
            "runtime docker needs root (network namespaces, veths and iptables); use runtime process"
        )
    network: PodNetwork
    if host_ip:
        network = HostNetwork(node_name, index, os.path.join(state_dir, "net"), host_ip)
    else:
        network = make_network("bridge", node_name, index, os.path.join(state_dir, "net"))
    net = network.setup_node()
    options.setdefault("clock", clock)
    options.setdefault("resolve_volume", volume_resolver(api))
    options.setdefault("state_dir", os.path.join(state_dir, "docker", node_name))
    from nbkube.node.runtime.docker import DockerRuntime

    rt = DockerRuntime(node_name=node_name, network=network, **options)
    client = getattr(rt, "client", None)
    if client is not None:
        ensure_images(client)  # offline: busybox and the pause image come from the host
    iptables = IptablesProxy(net.netns, [net.node_ip])
    firewall = IptablesFirewall(net.netns)
    kit = NodeKit(node_name, rt, net, network)
    proxy = ProxyRunner(factory, iptables.sync, name=f"proxy-{node_name}", on_idle=iptables.compact)
    kit.parts = [
        RouteSync(factory, network),
        proxy,
        # after the proxy's first sync: our FORWARD jump must end up in front of the proxy's
        FirewallRunner(factory, firewall, node_name, start_after=proxy.wait_synced),
        AgentServer(api, node_name, rt, token=agent_token),
    ]
    # Run in reverse: every container of this node first, then our rules, then links and namespace.
    kit._teardown = [network.teardown, iptables.cleanup, firewall.cleanup, lambda: rt.close(remove=True)]
    return kit
