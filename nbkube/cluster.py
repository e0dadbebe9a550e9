"""Wiring: a whole local cluster in one object (`LocalCluster`), or a handle on a running one (`connect`).

Who calls it: notebooks (`with nbkube.LocalCluster(nodes=3) as c: ...`), `nbkube up` (which runs
one in the foreground), and the integration tests. It picks the store, builds the Registry with
the default admission chain, starts a `ControlPlane` (scheduler + controllers behind leader
election) and N `NodeAgent`s named node-1..node-N, and stops all of it (and the private etcd it
may have launched) on `stop()` / leaving the `with` block.

Store choice (`store=`): "auto" launches a private etcd (on a unix socket in the cluster's folder,
no port, data in the folder) when an `etcd` binary exists, else falls back to a SQLite file there;
"sqlite" forces the file, "memory" an in-memory SQLite store, and any store URL (`sqlite:///...`,
`etcd://...`) attaches to that store. The cluster's folder is `~/.nbkube/clusters/<name>` unless
`data_dir` is given; `cluster.json` there records the store URL so that other processes can find
a running cluster (`nbkube --store ...`, `connect()`).

Safe on a shared machine: the cluster's folder is 0700 and its files 0600. The folder that holds
the store (a SQLite file's, a private etcd socket's; else the cluster's folder) also holds the keys
that encrypt Secrets at rest (`nbkube.security.encryption`) and the node agents' credential
(`nbkube.security.agentauth`), created at the first start; `cluster_folder_for(store_url)` is how
every other process (the CLI, `connect()`) finds them from the store URL alone.

A LocalCluster without a `name` gets a fresh one (`local-<random>`), so two in one kernel, or in
two kernels, never share a folder; that folder is removed on `stop()`. A named cluster's folder stays (its store outlives the process).

Running clusters: each LocalCluster (on start) and each `connect()` handle registers in this
module's registry (`running_clusters()`), which the notebook layer reads to point the `%nbkube`
magics at the kernel's cluster; this module never imports the notebook layer for it. Dashboards
and experiments on a cluster register stop callbacks (`on_stop`), so `stop()` ends them before the
store closes; an atexit hook stops every cluster still running when the process (a kernel) exits.
A process that never got there (a kernel killed, shut down without `stop()`) leaves its unnamed
cluster's folder behind: the next LocalCluster start removes the folders of unnamed clusters whose
owner (the pid and start time in `cluster.json`) is dead, after ending their etcd and pods.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbkube.client.eventsink import batch_events, stop_batching
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.components import ComponentProcess, build_agent, profile_to_json
from nbkube.controlplane.controllers.volumebinding import ensure_default_class
from nbkube.controlplane.dns.component import DNS_NAMESPACE, DNS_SERVICE, DNS_SERVICE_IP, ClusterDNS
from nbkube.controlplane.manager import ControlPlane
from nbkube.controlplane.profiles import Profile, get_profile
from nbkube.errors import BadRequest, NbkubeError, NotFound
from nbkube.gctune import tune_for_scale
from nbkube.node.agent import FAULT_ANNOTATION, FAULT_MODES, NodeAgent
from nbkube.node.agentpool import AgentPool
from nbkube.node.boundpods import node_informers
from nbkube.node.kit import MAX_SIM_NODES, HostProxy, NodeKit, reap_other_nodes
from nbkube.node.network.blocks import BlockLease, LoopbackBlock, claim_block
from nbkube.node.runtime import resolve_auto
from nbkube.node.runtime.base import Runtime
from nbkube.procutil import same_process, start_ticks
from nbkube.registry.applied import ApplyResult
from nbkube.security.agentauth import ensure_agent_token
from nbkube.security.private import make_private_dir, write_private_file
from nbkube.store.compactor import Compactor

if TYPE_CHECKING:
    import pandas

    from nbkube.registry.registry import Registry
    from nbkube.store.base import Store
    from nbkube.store.etcd_server import EtcdServer

__all__ = [
    "Cluster",
    "JoinedNode",
    "LocalCluster",
    "connect",
    "cluster_dir",
    "cluster_folder_for",
    "free_node_index",
    "make_registry",
    "registry_for_url",
    "running_clusters",
]

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def cluster_dir(name: str) -> str:
    """`~/.nbkube/clusters/<name>` (not created here)."""
    return os.path.join(os.path.expanduser("~"), ".nbkube", "clusters", name)


def _folder_of_url(store_url: str) -> str | None:
    """The folder a store lives in: a SQLite file's, a private etcd's socket's (None: no folder)."""
    for scheme in ("sqlite://", "etcd+unix://"):
        if store_url.startswith(scheme):
            path = store_url[len(scheme) :]
            return os.path.dirname(path) if path.startswith("/") else None
    return None


# -- the clusters running in this process ------------------------------------------------------------

_running: dict[str, Cluster] = {}  # name -> cluster, oldest first (dicts keep insertion order)
_running_lock = threading.Lock()
_atexit_hooked = False


def running_clusters() -> dict[str, Cluster]:
    """The clusters this process started or connected to and has not stopped, by name, oldest first."""
    with _running_lock:
        return dict(_running)


def _register(cluster: Cluster) -> None:
    global _atexit_hooked
    with _running_lock:
        other = _running.get(cluster.name)
        if other is not None and other is not cluster:
            raise BadRequest(
                f"a cluster named {cluster.name!r} already runs in this process: stop it first, "
                "or give another name (or none, for a fresh one)"
            )
        _running.pop(cluster.name, None)
        _running[cluster.name] = cluster  # the newest last
        if not _atexit_hooked:
            atexit.register(_stop_all_at_exit)
            _atexit_hooked = True


def _unregister(cluster: Cluster) -> None:
    with _running_lock:
        if _running.get(cluster.name) is cluster:
            del _running[cluster.name]


def _stop_all_at_exit() -> None:
    """A kernel (any process) exiting stops what its clusters started: processes, etcd, folders."""
    for cluster in reversed(list(running_clusters().values())):
        try:
            cluster.close()
        except Exception:  # one cluster's failure must not keep the others running
            log.warning("stopping cluster %s at exit failed", cluster.name, exc_info=True)


# Third-party packages a runtime imports when its first node is built, imported meanwhile in a thread
# while the store starts (a private etcd's launch is mostly waiting): `docker` (with requests and
# urllib3) is about a tenth of a second of a restart. Only packages no other start-up step imports,
# so the two threads never import one module graph from both ends.
_RUNTIME_PREFETCH: dict[str, list[str]] = {"docker": ["docker"]}


def _prefetch(modules: list[str]) -> threading.Thread:
    """Import `modules` in a thread (started; join it before they are used). A module that fails to
    import here is left to its real import, which raises the same error where it is used: this only
    moves the work earlier, it never decides whether a feature runs."""

    def run() -> None:
        for name in modules:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="nbkube-prefetch", daemon=True)
    thread.start()
    return thread


def _auto_name(prefix: str) -> str:
    """`<prefix>-<6 hex digits>`, not running here and without a folder in ~/.nbkube/clusters."""
    while True:
        name = f"{prefix}-{secrets.token_hex(3)}"
        if name not in _running and not os.path.exists(cluster_dir(name)):
            return name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner_alive(info: dict[str, Any]) -> bool:
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if isinstance(info.get("pidTicks"), int):
        return same_process(pid, info["pidTicks"])
    return _pid_alive(pid)  # written before start times were recorded


def clean_stale_folders(root: str | None = None) -> list[str]:
    """Remove the folders of unnamed clusters (`local-*`) whose owner process is dead, after ending
    what they may have left running (their private etcd, process-runtime pods); the removed folders.

    Those clusters would have removed their folder on `stop()`; their owner died first (a killed
    kernel, one shut down without stopping it). A folder without a readable `cluster.json` may be a
    cluster still starting: it stays."""
    from nbkube.node.kit import reap_other_nodes
    from nbkube.node.runtime.process import reap_orphans
    from nbkube.store.etcd_server import end_leftover

    root = root or os.path.join(os.path.expanduser("~"), ".nbkube", "clusters")
    removed: list[str] = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return removed
    for name in names:
        folder = os.path.join(root, name)
        if not name.startswith("local-") or name in _running:
            continue
        try:
            with open(os.path.join(folder, "cluster.json")) as fh:
                info = json.load(fh)
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or _owner_alive(info):
            continue
        try:
            end_leftover(folder)
            reap_other_nodes(folder, [])
            process_root = os.path.join(folder, "process")
            for node in os.listdir(process_root) if os.path.isdir(process_root) else []:
                reap_orphans(os.path.join(process_root, node))
        except (NbkubeError, OSError) as exc:
            log.warning("cannot clean folder %s of dead cluster %s: %s", folder, name, exc)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed folder %s of cluster %s, whose process %s died", folder, name, info.get("pid"))
        removed.append(folder)
    return removed


def cluster_folder_for(store_url: str) -> str | None:
    """The folder with the keys and credentials of the cluster whose store is `store_url`.

    The folder the store lives in (a SQLite file, a private etcd's socket); for an etcd on a port,
    the cluster folder under ~/.nbkube/clusters whose cluster.json records that URL. None when there
    is none (an in-memory store, an etcd no cluster of this user runs): Secrets are then stored
    unencrypted, as kube-apiserver stores them without an encryption configuration."""
    folder = _folder_of_url(store_url)
    if folder is not None:
        return folder
    root = os.path.join(os.path.expanduser("~"), ".nbkube", "clusters")
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name, "cluster.json")
            try:
                with open(path) as fh:
                    if json.load(fh).get("store") == store_url:
                        return os.path.join(root, name)
            except (OSError, ValueError, AttributeError):
                continue  # another user's, half-written or not ours to read: not this cluster
    return None


def make_registry(
    store: Store, *, clock: Clock = REAL_CLOCK, folder: str | None = None, pod_security: Any = None
) -> Registry:
    """A Registry over `store` with the default admission chain.

    `pod_security`: the cluster-wide Pod Security defaults (`parse_pod_security`: "baseline", or
    "enforce=baseline,warn=restricted"); None keeps upstream's default, privileged.

    With `folder` (the cluster's, see `cluster_folder_for`), Secrets are encrypted with the keys
    there (created at the first start) and the registry names the folder as its `credentials_dir`."""
    from nbkube.registry.admission_chain import default_admission_plugins
    from nbkube.registry.registry import Registry
    from nbkube.security.encryption import ensure_config, transformers_for

    plugins = default_admission_plugins(pod_security=pod_security)
    if folder is None:
        return Registry(store, admission=plugins, clock=clock)
    transformers = transformers_for(ensure_config(folder))
    return Registry(store, admission=plugins, clock=clock, transformers=transformers, credentials_dir=folder)


def registry_for_url(store_url: str, *, clock: Clock = REAL_CLOCK, pod_security: Any = None) -> Registry:
    """`make_registry` over the store at `store_url`, with that cluster's keys when it has a folder."""
    from nbkube.store import open_store

    store = open_store(store_url)
    try:
        return make_registry(
            store, clock=clock, folder=cluster_folder_for(store_url), pod_security=pod_security
        )
    except BaseException:
        store.close()
        raise


class Cluster:
    """A handle on a cluster's API: apply manifests, read events, inject node faults by annotation.

    `name` is how `%nbkube use NAME` picks it among the clusters of one kernel; `connect()` registers
    the handle as running until `close()`."""

    def __init__(self, api: Registry, store_url: str, *, name: str | None = None):
        self.api = api
        self.store_url = store_url
        self.name = name if name is not None else _auto_name("connect")
        self._stop_callbacks: list[Callable[[], None]] = []
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected"
        return f"Cluster(name={self.name!r}, store={self.store_url!r}, {state})"

    @property
    def running(self) -> bool:
        """False once stopped (LocalCluster) or closed (a `connect()` handle)."""
        return not self._closed

    def on_stop(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when this cluster stops, before its store closes (dashboards, experiments
        register their own stop here). Returns a function that takes the registration back."""
        self._stop_callbacks.append(callback)

        def cancel() -> None:
            with contextlib.suppress(ValueError):
                self._stop_callbacks.remove(callback)

        return cancel

    def _run_stop_callbacks(self) -> None:
        # newest first: a view made last may lean on one made before it
        while self._stop_callbacks:
            callback = self._stop_callbacks.pop()
            try:
                callback()
            except Exception:  # the cluster must still stop; the log has the details
                log.warning("a stop callback of cluster %s failed", self.name, exc_info=True)

    def apply(self, manifest: str) -> ApplyResult:
        """`kubectl apply -f`: a file path, "-" for stdin, or YAML/JSON text. Returns (object, action)
        pairs as an ApplyResult, a list that shows as a small table in a notebook."""
        from nbkube.api.serialization import load_file, load_manifests

        if "\n" not in manifest and (manifest == "-" or os.path.exists(manifest)):
            objs = load_file(manifest)
        elif "\n" not in manifest and manifest.endswith((".yaml", ".yml", ".json")):
            raise BadRequest(f"{manifest}: no such file")
        else:
            objs = load_manifests(manifest, "<text>")
        return ApplyResult(self.api.apply(objs))

    def events_df(self, namespace: str = "") -> pandas.DataFrame:
        """The event log as a DataFrame (time, namespace, kind, name, reason, message, ...)."""
        from nbkube.client.events import events_dataframe

        return events_dataframe(self.api, namespace)

    # -- notebook face -----------------------------------------------------------------------------
    # The views, the dashboard and the experiments live in layers above this one; they are loaded by
    # name so that `import nbkube.cluster` stays light and the layer contract holds.

    def _views(self) -> Any:
        return importlib.import_module("nbkube.notebook.views").ClusterViews(self.api)

    @property
    def pods(self) -> Any:
        """Every pod, as a table in a notebook; `.df` is a DataFrame."""
        return self._views().pods

    @property
    def nodes(self) -> Any:
        """Every Node object (`.df`); the agents running in this process are `agents`."""
        return self._views().nodes

    @property
    def services(self) -> Any:
        return self._views().services

    @property
    def events(self) -> Any:
        """The event log (`.df` is the DataFrame every timeline is drawn from)."""
        return self._views().events

    @property
    def experiments(self) -> Any:
        """Timed failover and rollout experiments on this cluster (progress bars in a notebook)."""
        if "ipykernel" in sys.modules:
            return importlib.import_module("nbkube.notebook.experiments_view").experiments_for(self)
        return importlib.import_module("nbkube.experiments").Experiments(self)

    @property
    def tenants(self) -> Any:
        """Tenants of this cluster (nbkube/client/tenants.py): `cluster.tenants.create("alice")`
        makes alice's fenced namespace and, while an API server serves the cluster
        (`nbkube.apiserver.serve(cluster)`), her kubeconfig; `.list()`, `.delete(name)`. The result
        renders as a table of what was made."""
        from nbkube.client.tenants import Tenants

        return Tenants(self.api)

    def dashboard(self, **kwargs: Any) -> Any:
        """The live dashboard widget: nodes as columns, pods as chips, scale / cordon / drain / kill."""
        return importlib.import_module("nbkube.notebook.dashboard").dashboard_for(self, **kwargs)

    def _repr_html_(self) -> str:
        html = importlib.import_module("nbkube.notebook.html")
        if not self.running:
            return str(html.stopped_card(repr(self)))
        return str(
            html.cluster_card(
                repr(self), self.api.list("Node")[0], self.api.list("Pod")[0], f"store: {self.store_url}"
            )
        )

    def kill_node(self, name: str, mode: str = "power-off") -> None:
        """Fault injection through the Node annotation `nbkube.io/fault`, which the node's agent
        obeys wherever it runs. `mode` "none" lifts the fault."""
        if mode not in (*FAULT_MODES, "none"):
            raise BadRequest(f"unknown fault mode {mode!r} (known: {', '.join(FAULT_MODES)}, none)")
        self.api.get("Node", name)  # NotFound with the node's name
        value: str | None = None if mode == "none" else mode
        self.api.patch("Node", name, "", {"metadata": {"annotations": {FAULT_ANNOTATION: value}}})

    def close(self) -> None:
        """Stop what runs on this handle (dashboards, experiments) and close its registry; again: no-op."""
        self._run_stop_callbacks()
        if self._closed:
            return
        self._closed = True
        _unregister(self)
        self.api.close()
        self.api.store.close()


class JoinedNode:
    """One node agent of this machine serving a cluster whose store is elsewhere (`nbkube node join`).

    The control plane runs wherever the cluster was started; this machine only adds a node: its
    runtime, pod network and proxy (the same kit LocalCluster builds), registered against the
    shared store. `stop()` removes everything it made here."""

    def __init__(
        self,
        api: Registry,
        name: str,
        *,
        runtime: str = "auto",
        profile: Profile | str = "fast",
        node_ip: str | None = None,
        state_dir: str | None = None,
        index: int | None = None,
        clock: Clock = REAL_CLOCK,
        network: str = "auto",
        metrics_kubeconfig: str | None = None,
    ):
        """`metrics_kubeconfig`: the API server's kubeconfig, through which this node reports its
        pods' CPU and memory (`kubectl top`, the HPA). Without it they go to this process's own
        metrics store, which only an API server in this process would serve."""

        if network not in ("auto", "host", "netns"):
            raise BadRequest(f"network must be host, netns or auto, got {network!r}")

        if not _NAME_RE.match(name):
            raise BadRequest(f"node name {name!r} must be lowercase letters, digits and '-'")
        self.api = api
        self.name = name
        self.runtime_name = resolve_auto() if runtime == "auto" else runtime
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.state_dir = state_dir or os.path.join(os.path.expanduser("~"), ".nbkube", "nodes", name)
        self.index = index if index is not None else free_node_index(api, name)
        self.factory = node_informers(api)
        # A real machine (an address of its own given) puts its pods in the host's namespace;
        # without one, the node gets a namespace on this host, as in a local multi-node cluster.
        self.network = ("host" if node_ip else "netns") if network == "auto" else network
        if self.network == "host" and not node_ip:
            raise BadRequest("network host needs --node-ip: the address other nodes reach this machine at")
        # a process node takes a loopback block of its own on this host, as a LocalCluster does
        self.lease = claim_block(self.state_dir) if self.runtime_name == "process" else None
        metrics_api: Any = None
        if metrics_kubeconfig:
            from nbkube.client.kubeconfig import load_kubeconfig
            from nbkube.client.rest import RestClient

            metrics_api = RestClient(load_kubeconfig(metrics_kubeconfig))
        else:
            log.info(
                "node %s: resource metrics stay in this process (it reaches the cluster through the "
                "store); give the API server's kubeconfig to report them to kubectl top and the HPA",
                name,
            )
        self.kit, self.agent = build_agent(
            api,
            self.runtime_name,
            name,
            self.index,
            factory=self.factory,
            pool=None,
            state_dir=self.state_dir,
            profile=self.profile,
            clock=clock,
            host_ip=node_ip if self.network == "host" and self.runtime_name == "docker" else None,
            # the cluster's agent credential when this machine holds the cluster's folder, so that
            # its CLI reaches this node too; else one of this node's own
            agent_token=None
            if self.runtime_name == "sim"
            else ensure_agent_token(getattr(api, "credentials_dir", None) or self.state_dir),
            lease=self.lease,
            cluster_dns=_joined_cluster_dns(api, self.runtime_name),
            address=node_ip,
            metrics_api=metrics_api,
        )
        self.host_proxy = HostProxy(self.factory, self.lease.block, api) if self.lease is not None else None
        if self.host_proxy is not None:
            self.host_proxy.node_ips.append(node_ip or self.kit.node_ip)

    def start(self) -> JoinedNode:
        self.factory.start_all()
        self.agent.start()
        self.kit.start()
        if self.host_proxy is not None:
            self.host_proxy.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.agent.stop()
        if self.host_proxy is not None:
            with contextlib.suppress(Exception):
                self.host_proxy.stop()
        self.kit.stop(remove=True)
        self.factory.stop_all()
        if self.lease is not None:
            self.lease.close()


def _joined_cluster_dns(api: Registry, runtime: str) -> list[str]:
    """The cluster DNS a joining Docker node gives its pods: kube-dns's ClusterIP when the cluster
    serves one (as a kubelet's --cluster-dns), reached through the node's own proxy; none else."""
    if runtime != "docker":
        return []
    try:
        svc = api.get("Service", DNS_SERVICE, DNS_NAMESPACE)
    except NotFound:
        return []
    ip = str((svc.get("spec") or {}).get("clusterIP") or "")
    return [ip] if ip and ip != "None" else []


def free_node_index(api: Registry, name: str) -> int:
    """The node's number in the address plan: its own if it joined before, else the lowest free one."""
    used: dict[int, str] = {}
    for node in api.list("Node")[0]:
        match = re.fullmatch(
            r"(?:10|127)\.2\d\d\.(\d+)\.0/24", str((node.get("spec") or {}).get("podCIDR") or "")
        )
        if match:
            used[int(match.group(1))] = str(node["metadata"]["name"])
    for index, owner in used.items():
        if owner == name:
            return index
    for index in range(1, 254):
        if index not in used:
            return index
    raise BadRequest("no free node number left in 10.244.0.0/16 (253 nodes)")


def connect(store_url: str, *, name: str | None = None, clock: Clock = REAL_CLOCK) -> Cluster:
    """Attach to a running cluster's store (e.g. the URL `nbkube up` printed) without running anything.

    The handle counts as running in this process (the `%nbkube` magics follow it) until `close()`."""
    if name is not None and not _NAME_RE.match(name):
        raise BadRequest(f"cluster name {name!r} must be lowercase letters, digits and '-'")
    cluster = Cluster(registry_for_url(store_url, clock=clock), store_url, name=name)
    try:
        _register(cluster)
    except BaseException:
        cluster.api.close()
        cluster.api.store.close()
        raise
    return cluster


def _check_separable(runtime: str, store: str, clock: Clock, options: dict[str, Any]) -> None:
    """Refuse, naming the field, what separate_processes cannot honour."""
    if runtime != "sim":
        raise BadRequest(
            f"separate_processes: runtime must be sim (got {runtime!r}): only simulated nodes run in a "
            "process of their own; real nodes join with `nbkube node join`"
        )
    if store in ("memory", "sqlite://:memory:"):
        raise BadRequest(
            f"separate_processes: store {store} lives in this process only; use auto, sqlite or a "
            "shareable store URL (sqlite:///abs/path.db, etcd+unix://...)"
        )
    if clock is not REAL_CLOCK:
        raise BadRequest(
            "separate_processes: clock must be the real clock (a test clock cannot cross processes)"
        )
    try:
        json.dumps(options)
    except (TypeError, ValueError) as err:
        raise BadRequest(f"separate_processes: runtime_options must be plain JSON values ({err})") from err


def _pod_security_text(value: str | dict[str, str] | None) -> str:
    """The Pod Security defaults as `nbkube up --pod-security` spells them (for a child's command line)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return ",".join(f"{mode}={level}" for mode, level in value.items())


def _pod_security_config(value: Any) -> Any:
    """The parsed Pod Security defaults (a bad level fails here, before anything starts)."""
    if value is None:
        return None
    from nbkube.registry.admission_podsecurity import parse_pod_security

    return parse_pod_security(value)


# Simulated nodes cost no processes and share one AgentPool: one process holds the Kubernetes
# density SLO's 5,000. Real nodes each take a number in the local address plan (10.244.N.0/24).
_NODE_LIMITS = {"sim": MAX_SIM_NODES}
_DEFAULT_NODE_LIMIT = 250


def node_limit(runtime: str) -> int:
    """How many nodes one LocalCluster may run with `runtime`."""
    return _NODE_LIMITS.get(runtime, _DEFAULT_NODE_LIMIT)


class LocalCluster(Cluster):
    """A whole cluster in this process: store, control plane and `nodes` node agents (see the module).

    `name`: None (the default) makes a fresh `local-<random>` whose folder goes away on `stop()`;
    a name keeps its folder (`~/.nbkube/clusters/NAME`, or `data_dir`) across runs, and only one
    process may run it at a time."""

    def __init__(
        self,
        nodes: int = 3,
        runtime: str = "sim",
        store: str = "auto",
        profile: str | Profile = "fast",
        data_dir: str | None = None,
        clock: Clock = REAL_CLOCK,
        *,
        name: str | None = None,
        runtime_options: dict[str, Any] | None = None,
        capacity: dict[str, str] | None = None,
        start: bool = True,
        leader_elect: bool = True,
        fresh: bool = False,
        pod_security: str | dict[str, str] | None = None,
        separate_processes: bool = False,
    ):
        """`pod_security`: the cluster-wide Pod Security level(s) for namespaces without labels,
        "baseline" (enforce) or "enforce=baseline,warn=restricted"; default privileged, as upstream.
        It binds this cluster's registry (and its API server): other processes writing the same
        store directly (`nbkube --store ...`) apply their own defaults; namespace labels hold everywhere.

        `separate_processes`: run the scheduler and the sim nodes each in a child process of its
        own (nbkube/components.py: a second core for a big sim cluster), the controllers here.
        Sim nodes only, on a store other processes can open (a SQLite file or etcd, not memory),
        on the real clock; `agents` is then empty here, and nodes fail by annotation (kill_node)."""
        limit = node_limit(runtime)
        if not isinstance(nodes, int) or isinstance(nodes, bool) or not 0 <= nodes <= limit:
            raise BadRequest(
                f"nodes must be a whole number from 0 to {limit} (runtime {runtime}), got {nodes!r}"
            )
        if name is not None and not _NAME_RE.match(name):
            raise BadRequest(f"cluster name {name!r} must be lowercase letters, digits and '-'")
        self.name = name if name is not None else _auto_name("local")
        # an unnamed cluster in its own fresh folder leaves nothing behind; a named one, or a folder
        # the caller chose, keeps its data
        self._remove_dir_on_stop = name is None and not data_dir
        self._stop_callbacks = []
        self._closed = False
        self.num_nodes = nodes
        self.runtime_name = runtime
        self.store_spec = store
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.data_dir = os.path.abspath(data_dir) if data_dir else cluster_dir(self.name)
        self.key_dir = self.data_dir  # where the keys and the agent credential are: see _open_store
        self._agent_token: str | None = None
        self.clock = clock
        self.runtime_options = dict(runtime_options or {})
        self.capacity = capacity
        self.leader_elect = leader_elect
        self.fresh = fresh  # take an empty or foreign store for this folder (see store/clusterid.py)
        self.cluster_id = ""
        self.pod_security = _pod_security_config(pod_security)
        self._pod_security_text = _pod_security_text(pod_security)
        if separate_processes:
            _check_separable(runtime, store, clock, self.runtime_options)
        self.separate_processes = bool(separate_processes)
        self.components: dict[str, ComponentProcess] = {}  # child processes, by part
        self.etcd: EtcdServer | None = None
        self.store_kind = ""
        self._compactor: Compactor | None = None
        self.control_plane: ControlPlane | None = None
        self.agents: dict[str, NodeAgent] = {}  # the node agents running in this process
        self.runtimes: dict[str, Runtime] = {}
        self.kits: dict[str, NodeKit] = {}  # each node's runtime, network and proxy
        self._node_index: dict[str, int] = {}  # node name -> its number in the address plan
        self.host_proxy: HostProxy | None = None  # the embedded mode's userspace proxy
        self.lease: BlockLease | None = None  # the embedded mode's loopback block, while running
        self.dns: ClusterDNS | None = None  # cluster DNS for Docker nodes, on the host bridge
        self.address_block: LoopbackBlock | None = None  # ... and the block it had (kept after stop)
        self._store: Store | None = None
        self.agent_pool: AgentPool | None = None  # the threads of every sim node of this process
        self._lock = threading.Lock()
        self._running = False
        if start:
            self.start()

    @property
    def running(self) -> bool:
        return self._running

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return (
            f"LocalCluster(name={self.name!r}, nodes={self.num_nodes}, runtime={self.runtime_name!r}, "
            f"store={self.describe_store()!r}, profile={self.profile.name!r}, {state})"
        )

    def describe_store(self) -> str:
        if not getattr(self, "store_url", ""):
            return f"{self.store_spec} (not opened)"
        if self.store_kind == "etcd-private":
            return f"{self.store_url} (private etcd, data in {os.path.join(self.data_dir, 'etcd')})"
        return self.store_url

    # -- store -------------------------------------------------------------------------------------

    def _open_store(self) -> Store:
        from nbkube.store import open_store

        spec = self.store_spec
        if spec == "auto":
            from nbkube.store.etcd_server import etcd_available, launch_etcd

            if etcd_available():
                make_private_dir(self.data_dir)
                # on a socket in the 0700 folder: no other user can connect to it
                self.etcd = launch_etcd(os.path.join(self.data_dir, "etcd"), socket_dir=self.data_dir)
                self.store_url = self.etcd.url
                self.store_kind = "etcd-private"
                return self._check_cluster_id(open_store(self.etcd.url))
            log.info("no etcd binary: cluster %s uses a SQLite file", self.name)
            spec = "sqlite"
        if spec == "sqlite":
            make_private_dir(self.data_dir)
            self.store_url = "sqlite://" + os.path.join(self.data_dir, "store.db")
            self.store_kind = "sqlite"
        elif spec == "memory":
            self.store_url = "sqlite://:memory:"
            self.store_kind = "memory"
        else:
            self.store_url = spec
            self.store_kind = "etcd" if spec.startswith(("etcd://", "etcd+unix://")) else "sqlite"
            self.key_dir = _folder_of_url(spec) or self.data_dir
        return self._check_cluster_id(open_store(self.store_url))

    def _check_cluster_id(self, store: Store) -> Store:
        """Refuse a store that is not this folder's cluster's (store/clusterid.py says why)."""
        from nbkube.store.clusterid import check_folder_store

        if self.store_kind != "memory":
            try:
                self.cluster_id = check_folder_store(
                    store, self.data_dir, self.store_url, self.store_kind, fresh=self.fresh
                )
            except BaseException:
                store.close()
                raise
        return store

    def _check_not_running_elsewhere(self) -> None:
        """A named cluster runs in one process at a time: say so now, not when its etcd fails to start."""
        try:
            with open(os.path.join(self.data_dir, "cluster.json")) as fh:
                info = json.load(fh)
            pid = int(info.get("pid") or 0)
        except (OSError, ValueError, AttributeError, TypeError):
            return
        if pid and pid != os.getpid() and _owner_alive(info):
            raise BadRequest(
                f"cluster {self.name!r} already runs in process {pid} (folder {self.data_dir}): "
                "give another name (or none, for a fresh one)"
            )

    def _write_info(self) -> None:
        if self.store_kind == "memory":
            return
        with contextlib.suppress(OSError):
            make_private_dir(self.data_dir)
            info = {
                "name": self.name,
                "store": self.store_url,
                "storeKind": self.store_kind,
                "clusterID": self.cluster_id,
                "pid": os.getpid(),
                "pidTicks": start_ticks(os.getpid()),  # a pid alone may be reused by then
                "nodes": sorted(self.node_names()),
                "components": {part: p.pid for part, p in self.components.items()},
            }
            write_private_file(os.path.join(self.data_dir, "cluster.json"), json.dumps(info).encode())

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Open the store, start the control plane and the node agents; wait until nodes are Ready."""
        with self._lock:
            if self._running:
                return self
            self.agents, self.runtimes, self.kits, self._node_index = {}, {}, {}, {}
            if self.runtime_name == "auto":
                self.runtime_name = resolve_auto()
            self._check_not_running_elsewhere()
            clean_stale_folders()
            _register(self)
            try:
                prefetch = _prefetch(_RUNTIME_PREFETCH.get(self.runtime_name, []))
                self._store = self._open_store()
                prefetch.join()
                if self.store_kind == "memory":
                    # nothing resumes from a memory store's history: keep it short (real time, not
                    # the cluster's clock: this is about memory, not about what the cluster does)
                    self._compactor = Compactor(self._store)
                    self._compactor.start()
                # nothing is at rest in a memory store: no keys to make for it
                keys = None if self.store_kind == "memory" else self.key_dir
                self.api = make_registry(
                    self._store, clock=self.clock, folder=keys, pod_security=self.pod_security
                )
                self.api.ensure_system_namespaces()
                if self.runtime_name != "sim":  # simulated nodes serve no logs or exec
                    self._agent_token = ensure_agent_token(self.key_dir)
                    self.api.credentials_dir = self.key_dir
                # the default StorageClass: local-path folders under the cluster's folder
                ensure_default_class(self.api, os.path.join(self.data_dir, "local-path"))
                from nbkube.client.informer import InformerFactory

                # The agents of one process share one pod informer (one watch, not N). It keeps
                # every pod, not only bound ones (node_informers): here it shares each decoded pod
                # with the control plane's informers (shared watches), and a filter's extra work per
                # event let it fall behind the shared decoder, which then decoded a copy of every
                # pod for it (at 150,000 pods: 0.5 GB more and the node side far slower).
                self._agent_factory = InformerFactory(self.api)
                if self.runtime_name == "sim":
                    if not self.separate_processes:
                        self.agent_pool = AgentPool(clock=self.clock)
                    # thousands of pods a second: their Events go in batches (client/eventsink.py)
                    batch_events(self.api)
                    tune_for_scale()  # a heap of cached objects: see gctune.py
                if self.runtime_name == "process":
                    self.lease = claim_block(self.data_dir)
                    self.address_block = self.lease.block
                    self.host_proxy = HostProxy(self._agent_factory, self.lease.block, self.api)
                if not self.separate_processes:
                    for i in range(1, self.num_nodes + 1):
                        self.add_node(f"node-{i}", _start=False)
                if self.runtime_name == "process":  # pods of nodes this start has no more
                    reap_other_nodes(self.data_dir, list(self.agents))
                if self.cluster_dns_ips():  # after the nodes: their setup makes the host bridge
                    from nbkube.node.network.base import HOST_IP

                    self.dns = ClusterDNS(self.api, HOST_IP)
                    self.dns.start()
                self._agent_factory.start_all()
                if self.agent_pool is not None:
                    self.agent_pool.start()
                for name, agent in self.agents.items():
                    agent.start()
                    self.kits[name].start()
                if self.host_proxy is not None:
                    self.host_proxy.start()
                if self.separate_processes and self.num_nodes:
                    self._start_component("sim-nodes", ["--count", str(self.num_nodes)] + self._node_args())
                # The control plane comes after the agents have renewed their Leases (agent.start
                # does it before returning): on a restart over a live store, a node lifecycle
                # controller that ran first would find every Lease stale from the downtime and
                # evict the pods the agents are about to adopt.
                self.control_plane = self._new_control_plane()
                self.control_plane.start()
                if self.separate_processes:
                    self._start_component("scheduler", [])
                self._running = True
                self._closed = False
                self._write_info()
            except BaseException:
                self._teardown()
                self._forget()
                raise
        self.wait_ready(timeout)
        return self

    def _new_control_plane(self) -> ControlPlane:
        return ControlPlane(
            self.api,
            profile=self.profile,
            clock=self.clock,
            leader_elect=self.leader_elect,
            scheduler=not self.separate_processes,
        )

    def _node_args(self) -> list[str]:
        args = ["--state-dir", self.data_dir]
        if self.capacity:
            args += ["--capacity-json", json.dumps(self.capacity)]
        if self.runtime_options:
            args += ["--options-json", json.dumps(self.runtime_options)]
        return args

    def _start_component(self, part: str, args: list[str]) -> None:
        """Start one child (`nbkube component PART`) on this cluster's store; wait for it to run."""
        argv = [sys.executable, "-m", "nbkube.cli", "--store", self.store_url, "component", part]
        argv += ["--profile-json", profile_to_json(self.profile)]
        if self._pod_security_text:
            argv += ["--pod-security", self._pod_security_text]
        process = ComponentProcess(part, argv + args, os.path.join(self.data_dir, f"{part}.log"))
        self.components[part] = process
        process.start()

    def node_names(self) -> list[str]:
        """The nodes this cluster runs: its agents here, or its sim-nodes process's."""
        if self.separate_processes:
            return [f"node-{i}" for i in range(1, self.num_nodes + 1)]
        return list(self.agents)

    def add_node(self, name: str, *, _start: bool = True) -> NodeAgent:
        """One more simulated (or real-runtime) node agent in this process."""
        if self.separate_processes:
            raise BadRequest(
                "add_node: this cluster's nodes run in its sim-nodes process (separate_processes), "
                "fixed at start; start it with more nodes"
            )
        if name in self.agents:
            raise BadRequest(f"node {name} already exists in this cluster")
        return self._add_node_at(name, len(self._node_index) + 1, start=_start)

    def _add_node_at(self, name: str, index: int, *, start: bool) -> NodeAgent:
        self._node_index[name] = index
        kit, agent = build_agent(
            self.api,
            self.runtime_name,
            name,
            index,
            factory=self._agent_factory,
            pool=self.agent_pool,
            state_dir=self.data_dir,
            profile=self.profile,
            clock=self.clock,
            capacity=self.capacity,
            options=self.runtime_options,
            agent_token=self._agent_token,
            lease=self.lease,
            cluster_dns=self.cluster_dns_ips(),
        )
        self.kits[name] = kit
        self.runtimes[name] = kit.runtime
        self.agents[name] = agent
        if self.host_proxy is not None:
            self.host_proxy.node_ips.append(kit.node_ip)
        if start:
            self._agent_factory.informer("Pod").start()
            agent.start()
            kit.start()
        return agent

    def cluster_dns_ips(self) -> list[str]:
        """The DNS server pods with dnsPolicy ClusterFirst get: kube-dns's ClusterIP on Docker
        nodes (the DNS server runs on the host bridge they reach); none elsewhere (process pods
        read the host's resolv.conf, simulated pods resolve nothing)."""
        return [DNS_SERVICE_IP] if self.runtime_name == "docker" else []

    # -- reaching services from this machine -------------------------------------------------------

    def node_addresses(self) -> dict[str, str]:
        """Each node's InternalIP, where its NodePorts answer (from this machine too)."""
        return {name: kit.node_ip for name, kit in self.kits.items()}

    def service_address(
        self, name: str, port: int | None = None, namespace: str = "default"
    ) -> tuple[str, int]:
        """(host, port) on this machine that reaches the Service's ClusterIP:port.

        In the embedded mode that is the ClusterIP's loopback mirror; with Docker nodes the host
        routes to no ClusterIP, so the first node's NodePort stands in (any node would do)."""
        svc = self.api.get("Service", name, namespace)
        ports = (svc.get("spec") or {}).get("ports") or []
        chosen = next((p for p in ports if port is None or p.get("port") == port), None)
        if chosen is None:
            raise NotFound(f'service "{name}" has no port {port}')
        if self.runtime_name == "process" and self.address_block is not None:
            cluster_ip = str(svc["spec"].get("clusterIP", ""))
            return self.address_block.service_address(cluster_ip), int(chosen["port"])
        if chosen.get("nodePort") and self.kits:
            return next(iter(self.kits.values())).node_ip, int(chosen["nodePort"])
        return str(svc["spec"].get("clusterIP", "")), int(chosen["port"])

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block (bounded) until every node is Ready and the control plane leads (or stands by)."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [n for n in self.node_names() if not self._node_ready(n)]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise NbkubeError(f"nodes not Ready after {timeout:g}s: {', '.join(missing)}")
            time.sleep(0.02)

    def _node_ready(self, name: str) -> bool:
        try:
            node = self.api.get("Node", name)
        except NotFound:
            return False
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )

    def kill_node(self, name: str, mode: str = "power-off") -> None:
        """Fail a node of this cluster now (its agent runs here), or by annotation if it runs elsewhere."""
        agent = self.agents.get(name)
        if agent is None:
            super().kill_node(name, mode)
            return
        if mode == "none":
            agent.recover()
        else:
            agent.fail(mode)

    def restart_node(self, name: str, timeout: float = 30.0) -> NodeAgent:
        """Restart one node's agent as a kubelet restart would: its pods keep running and are adopted.

        The old agent and runtime stop without removing anything; a new runtime, network handle and
        proxy for the same node find what exists (containers, addresses, rules) and carry on."""
        old_agent, old_kit = self.agents.get(name), self.kits.get(name)
        if old_agent is None or old_kit is None:
            raise NotFound(f'node "{name}" does not run in this cluster')
        # The node stays alive through the swap, as a host whose kubelet restarts: its Lease is
        # renewed from before the old agent stops (stopping joins pod workers that may be inside a
        # runtime call for seconds) until the new agent has renewed it itself, so a short grace
        # period (the fast profile's 2 s) does not evict the pods about to be adopted.
        swapped = threading.Event()

        def keep_lease() -> None:
            while not swapped.wait(0.5):
                try:
                    old_agent.renew_lease()
                except NbkubeError as exc:
                    log.info("node %s: lease renewal during restart: %s", name, exc)

        beat = threading.Thread(target=keep_lease, name=f"restart-{name}-lease", daemon=True)
        beat.start()
        try:
            old_agent.stop()
            old_kit.stop(remove=False)
            index = self._node_index[name]
            del self.agents[name], self.kits[name], self.runtimes[name]
            if self.host_proxy is not None and old_kit.node_ip in self.host_proxy.node_ips:
                self.host_proxy.node_ips.remove(old_kit.node_ip)
            agent = self._add_node_at(name, index, start=True)
        finally:
            swapped.set()
            beat.join()
        self.wait_ready(timeout)
        return agent

    def restart_control_plane(self) -> None:
        """Stop the control plane (releasing its lease) and start a fresh one on the same store."""
        if self.control_plane is not None:
            self.control_plane.stop()
        self.control_plane = self._new_control_plane()
        self.control_plane.start()

    def stop(self) -> None:
        """Stop the dashboards and experiments on this cluster, then its agents (and their pods),
        control plane, store and private etcd; an unnamed cluster's folder is removed. Calling it
        again does nothing."""
        self._run_stop_callbacks()
        with self._lock:
            if not self._running:
                return
            self._teardown()
            self._forget()

    def _forget(self) -> None:
        """No longer running: out of the registry; an unnamed cluster's folder goes."""
        self._closed = True
        _unregister(self)
        if self._remove_dir_on_stop and os.path.isdir(self.data_dir):
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _teardown(self) -> None:
        if self.dns is not None:
            with contextlib.suppress(Exception):
                self.dns.stop()
            self.dns = None
        for part in ("scheduler", "sim-nodes"):  # the scheduler first: nothing new lands on a stopping node
            process = self.components.pop(part, None)
            if process is not None:
                process.stop()
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                agent.stop()
        if self.agent_pool is not None:
            self.agent_pool.stop()
            self.agent_pool = None
        if self.host_proxy is not None:
            with contextlib.suppress(Exception):
                self.host_proxy.stop()
            self.host_proxy = None
        for kit in self.kits.values():
            kit.stop(remove=True)  # containers, processes, rules, links: nothing of ours stays
        if self.lease is not None:  # after the pods: nothing of ours holds the block any more
            self.lease.close()
            self.lease = None
        factory = getattr(self, "_agent_factory", None)
        if factory is not None:
            factory.stop_all()
        if self.control_plane is not None:
            with contextlib.suppress(Exception):
                self.control_plane.stop()
        api = getattr(self, "api", None)
        if api is not None:
            with contextlib.suppress(Exception):
                stop_batching(api)  # queued Events are written before the store closes
            with contextlib.suppress(Exception):
                api.close()
        compactor, self._compactor = getattr(self, "_compactor", None), None
        if compactor is not None:
            compactor.stop()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
        if self.etcd is not None:
            with contextlib.suppress(Exception):
                self.etcd.stop()
            self.etcd = None
        self._running = False

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
