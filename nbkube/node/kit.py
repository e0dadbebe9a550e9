"""Everything one node needs besides its agent: runtime, pod network, service proxy, routes.

Who calls it: `LocalCluster` (several nodes in one process) and `nbkube node join` (one node on a
machine of its own). The agent itself only knows the Runtime seam; which network and which proxy go
with which runtime is decided here, once:

- `docker` (root): a network namespace per node with a bridge and veths (`BridgeNetwork`), pods as
  Docker containers wired into it, and an iptables proxy in the node's namespace;
- `process` (embedded, rootless): each pod on its own loopback address, node N answering on one
  too, all from the cluster's own block of 127.0.0.0/8 (`nbkube.node.network.blocks`: node N on
  `node_ip(N)`, its pods in `pod_cidr(N)`), and one userspace proxy for all of the cluster's nodes
  (`HostProxy`), which answers ClusterIPs on the block's mirror of the service range. The block's
  lease goes to the runtime, whose pod processes inherit its lock and carry the cluster's id;
- `sim`: nothing real; addresses from 10.244.N.0/24 for show.

Routes between nodes follow the Node objects (InternalIP + podCIDR), so a node that joins from
another machine is routed to as soon as it registers.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.meta import Obj
from nbkube.client.events import record_event
from nbkube.client.informer import InformerFactory
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import BadRequest, NotFound
from nbkube.node.agentserver import AgentServer
from nbkube.node.claims import claim_resolver
from nbkube.node.firewall.base import FakeFirewall
from nbkube.node.firewall.notice import NotEnforcedNotice
from nbkube.node.firewall.runner import FirewallRunner
from nbkube.node.network.base import MAX_NODE_INDEX, NodeNetInfo, PodNetwork, node_addresses
from nbkube.node.network.blocks import BlockLease, LoopbackBlock
from nbkube.node.proxy.hostport_rules import host_port_listeners
from nbkube.node.proxy.rules import ServicePortRule
from nbkube.node.proxy.runner import ProxyRunner
from nbkube.node.proxy.userspace import UserspaceProxy
from nbkube.node.runtime import create_runtime
from nbkube.node.runtime.base import Runtime
from nbkube.procutil import describe, lock_holders

__all__ = ["NodeKit", "HostProxy", "build_node", "reap_other_nodes", "volume_resolver"]

log = logging.getLogger(__name__)


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
    """The embedded mode's one userspace proxy for all the nodes of a cluster on this host.

    ClusterIPs answer on their mirror in the cluster's block (10.96.x.y -> an address of
    `block.service_net`) and every node's NodePorts on that node's loopback address, which is
    where the article's "request to port 30001 on any node" lands without root. An address that
    cannot be opened (its port is taken) becomes one Warning event on the Service (on the Pod for a
    hostPort) naming it, while the proxy retries quietly; it is reported again only after it
    recovered and failed anew.
    """

    def __init__(self, factory: InformerFactory, block: LoopbackBlock, api: Any):
        self.block = block
        self.proxy = UserspaceProxy(address_map=block.service_address)
        self.node_ips: list[str] = []
        self.errors: dict[tuple[str, int], str] = {}
        self._api = api
        self.runner = ProxyRunner(factory, self._apply, name="userspace-proxy")
        # Pods' hostPorts are listeners too (on their node's address); they change with Pods, not
        # Services, so they are kept here and merged into every sync (under one lock: two informer
        # threads call in).
        self._pods = factory.informer("Pod")
        self._services = factory.informer("Service")
        self._lock = threading.Lock()
        self._rules: list[ServicePortRule] = []
        self._host_ports: dict[tuple[str, int], ServicePortRule] = {}
        self._host_port_errors: dict[tuple[str, int], str] = {}
        self.reported: dict[tuple[str, str, int], str] = {}  # (kind, ns/name, port) -> event message

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
        self._report(errors)

    def _report(self, errors: dict[tuple[str, int], str]) -> None:
        """One Warning event per (object, port) that newly cannot be served; forget recovered ones."""
        by_owner: dict[tuple[str, str, int], list[str]] = {}
        rules = {addr: rule for addr, rule in self.proxy.wanted().items() if addr in errors}
        for addr, rule in sorted(rules.items()):
            kind = "Pod" if rule.port_name.startswith("hostPort-") else "Service"
            by_owner.setdefault((kind, rule.service, addr[1]), []).append(errors[addr])
        for key in [k for k in self.reported if k not in by_owner]:
            del self.reported[key]
        for key, messages in by_owner.items():
            if key in self.reported:
                continue
            kind, name, port = key
            message = "; ".join(messages) + " (the proxy retries with back-off)"
            self.reported[key] = message
            informer = self._pods if kind == "Pod" else self._services
            obj = informer.get(name)
            if obj is not None:
                record_event(
                    self._api,
                    {**obj, "kind": kind, "apiVersion": "v1"},
                    "PortUnavailable",
                    f"port {port}: {message}",
                    type="Warning",
                    component="userspace-proxy",
                )

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
    # ClusterIP -> where this node's pods reach it, when not at the ClusterIP (Service env vars)
    service_host: Callable[[str], str] | None = None
    _teardown: list[Callable[[], None]] = field(default_factory=list)
    claim: int | None = None  # the lock file a Docker node holds while it runs (`claim_docker_node`)

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
        if self.claim is not None:  # last: the node's namespace and containers are settled
            os.close(self.claim)
            self.claim = None


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
    lease: BlockLease | None = None,
) -> NodeKit:
    """Create (but do not start) the runtime, network and proxy of node `index` (1..253).

    With `host_ip` a Docker node lives in the host's own namespace with that InternalIP (a real
    machine joining a cluster); without, it gets a namespace of its own on this host's `nbk0`.
    `agent_token` is the cluster's node agent credential (nbkube/security/agentauth.py), which the
    logs/exec endpoint of a docker or process node demands; simulated nodes serve none.
    A process node needs the cluster's address block `lease` (`network.blocks.claim_block`)."""
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
        if lease is None:
            raise BadRequest(
                f"node {node_name}: runtime process needs the cluster's loopback address block "
                "(nbkube.node.network.blocks.claim_block)"
            )
        node_ip, cidr = lease.block.node_ip(index), lease.block.pod_cidr(index)
        options.setdefault("clock", clock)
        options.setdefault("resolve_volume", volume_resolver(api))
        options.setdefault("resolve_claim", claim_resolver(api, node_name))
        options.setdefault("node_name", node_name)
        # every pod process holds the block's lock and carries the cluster's id and its node's name
        options.setdefault("pass_fds", (lease.fd,))
        options.setdefault("identity", lease.identity_env(node_name))
        rt = create_runtime("process", state_dir=os.path.join(state_dir, "process", node_name), **options)
        kit = NodeKit(node_name, rt, NodeNetInfo(node_ip, cidr, None))
        kit.service_host = lease.block.service_address
        # No per-pod isolation on loopback: say so on every policy that selects a pod here.
        kit.parts = [
            AgentServer(api, node_name, rt, token=str(agent_token)),
            NotEnforcedNotice(api, factory, node_name),
        ]
        kit._teardown.append(rt.close)
        return kit
    if runtime == "sim":
        node_ip, cidr = sim_node_addresses(index)
        rt = create_runtime("sim", **options)
        kit = NodeKit(node_name, rt, NodeNetInfo(node_ip, cidr, None))
        # Nothing to filter, but the same decisions a real node would enforce, for inspection;
        # inline (no thread per node): a scale study may simulate thousands of nodes.
        kit.parts = [FirewallRunner(factory, FakeFirewall(), node_name, threaded=False)]
        kit._teardown.append(rt.close)
        return kit
    raise BadRequest(f"unknown runtime {runtime!r} (expected docker, process or sim)")


MAX_SIM_NODES = 5000  # what one process simulates (the Kubernetes density SLO's node count)


def sim_node_addresses(index: int) -> tuple[str, str]:
    """(node_ip, pod_cidr) of simulated node `index`: the local plan's up to its last index, then
    a plan of its own (nothing is routed to a simulated node, so these only need to be distinct):
    node addresses from 100.64.0.0/10, pod CIDRs from 10.128.0.0/9 (clear of 10.96.0.0/12's
    Service addresses and of the local plan's 10.244.0.0/16)."""
    if not isinstance(index, int) or not 1 <= index <= MAX_SIM_NODES:
        raise ValueError(f"sim node index must be an integer in 1..{MAX_SIM_NODES}, got {index!r}")
    if index <= MAX_NODE_INDEX:
        return node_addresses(index)
    return f"100.{64 + index // 65536}.{index // 256 % 256}.{index % 256}", (
        f"10.{128 + index // 256}.{index % 256}.0/24"
    )


def reap_other_nodes(state_dir: str, keep: list[str]) -> int:
    """Stop the pods a cluster's earlier run left on process nodes it no longer has.

    Each node's runtime adopts (or reaps) only its own state directory, so the pods of a node that
    a restart with fewer nodes left out would otherwise run on, holding the cluster's block. A
    runtime on that node's directory adopts them and is closed at once. Returns the pods stopped."""
    root = os.path.join(state_dir, "process")
    stopped = 0
    for node in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if node in keep or not os.path.isdir(os.path.join(root, node, "pods")):
            continue
        rt = create_runtime("process", state_dir=os.path.join(root, node), node_name=node)
        count = len(rt.list_pods())
        rt.close()
        if count:
            log.info("stopped %d pod(s) left by node %s, which this cluster no longer runs", count, node)
        stopped += count
    return stopped


CLAIM_DIR = "/run/nbkube"  # Docker nodes need root: a root-only folder


def claim_docker_node(node_name: str, folder: str = CLAIM_DIR) -> int:
    """Hold `docker-node-<name>.lock` (flock) for as long as this process runs the Docker node, or
    refuse naming the process that does.

    Why: a Docker node's network namespace (`nbk-<name>`) and its containers' labels are named by
    the node alone, machine-wide, so a second cluster running a node of the same name would rebuild
    the first one's namespace and adopt or remove its containers. The kernel drops the lock when
    its holder dies, even by SIGKILL, so a restarted `nbkube up` takes it back at once."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"docker-node-{node_name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holders = [pid for pid, held in lock_holders(folder).items() if held == path]
        who = describe(holders[0]) if holders else "another process"
        raise BadRequest(
            f"Docker node {node_name} already runs on this machine, in {who}: Docker nodes are named "
            f"machine-wide (network namespace nbk-{node_name}); stop that cluster first"
        ) from None
    return fd


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
    if os.geteuid() != 0:
        raise BadRequest(
            "runtime docker needs root (network namespaces, veths and iptables); use runtime process"
        )
    claim = claim_docker_node(node_name)
    try:
        kit = _docker_kit(
            node_name,
            index,
            api=api,
            factory=factory,
            state_dir=state_dir,
            clock=clock,
            options=options,
            host_ip=host_ip,
            agent_token=agent_token,
        )
    except BaseException:
        os.close(claim)
        raise
    kit.claim = claim
    return kit


def _docker_kit(
    node_name: str,
    index: int,
    *,
    api: Any,
    factory: InformerFactory,
    state_dir: str,
    clock: Clock,
    options: dict[str, Any],
    host_ip: str | None,
    agent_token: str,
) -> NodeKit:
    from nbkube.node.firewall.iptables import IptablesFirewall
    from nbkube.node.network import make_network
    from nbkube.node.network.host import HostNetwork
    from nbkube.node.proxy.iptables import IptablesProxy
    from nbkube.node.runtime.images import ensure_images

    network: PodNetwork
    if host_ip:
        network = HostNetwork(node_name, index, os.path.join(state_dir, "net"), host_ip)
    else:
        network = make_network("bridge", node_name, index, os.path.join(state_dir, "net"))
    net = network.setup_node()
    options.setdefault("clock", clock)
    options.setdefault("resolve_volume", volume_resolver(api))
    options.setdefault("resolve_claim", claim_resolver(api, node_name))
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
