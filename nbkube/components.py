"""Parts of a cluster in processes of their own: the scheduler and the simulated nodes.

Why: one Python process runs on one core at a time (one interpreter lock). Upstream's control
plane is several processes (kube-scheduler, kube-controller-manager, and kwok for simulated nodes)
that meet only through the API and its store; on a machine with a second core, a cluster whose
scheduler, controllers and thousands of simulated nodes share one process leaves that core idle
while each waits for the others. `LocalCluster(separate_processes=True)` (`nbkube up
--separate-processes`) runs the scheduler and the sim node pool each in a child process over the
cluster's own store (a SQLite file or its private etcd, both in the cluster's 0700 folder: the
children are the cluster owner's, as `nbkube node join --store` is); the controllers stay in the
cluster's process.

Here: `build_agent` (one node's kit and agent, shared with LocalCluster's in-process nodes),
`SimNodePool` (the node side of a child), `serve` (a child's life: start, say "ready", run until
its parent closes stdin or sends SIGTERM, stop) and `ComponentProcess` (the parent's handle: start
and wait for "ready", restart with back-off when the child dies, stop). The children are the
`nbkube component` commands (nbkube/cli/cmd_component.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.manager import SCHEDULER_LEASE, ControlPlane
from nbkube.controlplane.profiles import Profile
from nbkube.errors import BadRequest, NbkubeError
from nbkube.node.agent import NodeAgent
from nbkube.node.agentpool import AgentPool
from nbkube.node.boundpods import node_informers
from nbkube.node.kit import NodeKit, build_node
from nbkube.procutil import stop_on_signals

if TYPE_CHECKING:
    from nbkube.client.informer import InformerFactory
    from nbkube.node.network.blocks import BlockLease
    from nbkube.registry.registry import Registry

__all__ = [
    "READY_LINE",
    "SIM_RELIST_INTERVAL",
    "SIM_STATUS_REPORT_INTERVAL",
    "ComponentProcess",
    "SimNodePool",
    "build_agent",
    "profile_from_json",
    "profile_to_json",
    "serve",
    "start_scheduler",
]

log = logging.getLogger(__name__)

# sim nodes rewrite their Node status this often when it did not change (their Lease is renewed
# every heartbeat regardless); the kubelet's nodeStatusReportFrequency is 5 minutes
SIM_STATUS_REPORT_INTERVAL = 60.0
# ... and resync all their pods this often, as the kubelet's syncFrequency (1 min): a simulated pod
# changes only on a pod event or on its runtime's own timer, so the relist only repairs a lost
# event; at a hundred thousand pods every relisted pod is a sync the pool's workers make, work
# that grows with the pods (docs/architecture.md, "Many simulated nodes in one process")
SIM_RELIST_INTERVAL = 60.0

READY_LINE = "ready"  # what a child prints on stdout once it runs (then nothing more there)


def build_agent(
    api: Registry,
    runtime: str,
    name: str,
    index: int,
    *,
    factory: InformerFactory,
    pool: AgentPool | None,
    state_dir: str,
    profile: Profile,
    clock: Clock = REAL_CLOCK,
    capacity: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
    agent_token: str | None = None,
    lease: BlockLease | None = None,
    cluster_dns: list[str] | None = None,
    host_ip: str | None = None,
    address: str | None = None,
    metrics_api: Any = None,
) -> tuple[NodeKit, NodeAgent]:
    """One node's kit (runtime, network, proxy) and its agent, not started. Pooled agents (sim
    nodes) take the pool's slower Node status and relist periods (see above). `host_ip`: see
    build_node; `address`: the InternalIP the agent reports, when not its kit's (a joined machine's
    own address); `metrics_api`: where the agent reports its pods' usage (NodeAgent)."""
    options = dict(options or {})
    if runtime == "sim":
        options.setdefault("clock", clock)
        options.setdefault("seed", index)
    kit = build_node(
        runtime,
        name,
        index,
        api=api,
        factory=factory,
        state_dir=state_dir,
        clock=clock,
        options=options,
        host_ip=host_ip,
        agent_token=agent_token,
        lease=lease,
    )
    agent = NodeAgent(
        api,
        name,
        kit.runtime,
        profile=profile,
        clock=clock,
        capacity=capacity,
        factory=factory,
        pod_cidr=kit.pod_cidr,
        address=address or kit.node_ip,
        service_host=kit.service_host,
        cluster_dns=list(cluster_dns or []),
        metrics_api=metrics_api,
        pool=pool,
        status_report_interval=SIM_STATUS_REPORT_INTERVAL if pool is not None else None,
        relist_interval=SIM_RELIST_INTERVAL if pool is not None else None,
    )
    return kit, agent


class SimNodePool:
    """Simulated nodes `node-FIRST` .. `node-(FIRST+COUNT-1)` on one AgentPool, with one pod
    informer between them: the node side of `nbkube component sim-nodes`."""

    def __init__(
        self,
        api: Registry,
        first: int,
        count: int,
        *,
        profile: Profile,
        state_dir: str,
        capacity: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ):
        if count < 1 or first < 1:
            raise BadRequest(f"sim-nodes: --first and --count must be at least 1, got {first} and {count}")
        self.factory = node_informers(api)
        self.pool = AgentPool(clock=REAL_CLOCK)
        self.kits: dict[str, NodeKit] = {}
        self.agents: dict[str, NodeAgent] = {}
        for index in range(first, first + count):
            name = f"node-{index}"
            kit, agent = build_agent(
                api,
                "sim",
                name,
                index,
                factory=self.factory,
                pool=self.pool,
                state_dir=state_dir,
                profile=profile,
                capacity=capacity,
                options=options,
            )
            self.kits[name], self.agents[name] = kit, agent

    def start(self) -> None:
        """Start the informer, the pool and every agent (each renews its Lease before returning)."""
        self.factory.start_all()
        self.pool.start()
        for name, agent in self.agents.items():
            agent.start()
            self.kits[name].start()

    def stop(self) -> None:
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                agent.stop()
        self.pool.stop()
        for kit in self.kits.values():
            kit.stop(remove=True)
        self.factory.stop_all()


def start_scheduler(api: Registry, profile: Profile) -> ControlPlane:
    """The scheduler alone, electing on a Lease of its own (kube-scheduler's role)."""
    plane = ControlPlane(api, profile=profile, controllers=[], scheduler=True, lease=SCHEDULER_LEASE)
    plane.start()
    return plane


def profile_to_json(profile: Profile) -> str:
    return json.dumps(dataclasses.asdict(profile), sort_keys=True)


def profile_from_json(text: str) -> Profile:
    """The Profile a parent passed (`--profile-json`); a bad one is refused naming the field."""
    try:
        fields = json.loads(text)
    except ValueError as err:
        raise BadRequest(f"--profile-json is not JSON: {err}") from err
    known = {f.name for f in dataclasses.fields(Profile)}
    if not isinstance(fields, dict) or not set(fields) <= known or "name" not in fields:
        raise BadRequest(f"--profile-json must be an object with name and fields among {sorted(known)}")
    return Profile(**fields)


def serve(start: Callable[[], Callable[[], None]], *, out: Any = None) -> None:
    """A child's life: `start()` (which returns its stop), then the ready line on stdout, then run
    until stdin closes (the parent stopped us, or died) or SIGTERM/SIGINT; then stop.

    Reading stdin is how a child outlives no parent: a parent killed outright closes the pipe."""
    out = out or sys.stdout
    stop = start()
    done = threading.Event()

    def wait_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.read()
        done.set()

    with stop_on_signals(done):
        threading.Thread(target=wait_stdin, name="component-stdin", daemon=True).start()
        print(READY_LINE, file=out, flush=True)
        if out is sys.stdout:
            sys.stdout = sys.stderr  # nobody reads the pipe after the ready line: anything else is log
        try:
            done.wait()
        finally:
            stop()


class ComponentProcess:
    """The parent's handle on one child (`argv`): start it and wait for its ready line, restart it
    with back-off when it dies on its own, stop it. Its stderr (its log) goes to `log_path`."""

    RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

    def __init__(self, name: str, argv: list[str], log_path: str, *, ready_timeout: float = 60.0):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self.restarts = 0
        self._proc: subprocess.Popen[str] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> ComponentProcess:
        """Spawn the child and wait (bounded) for its ready line; a child that fails to get there is
        refused with its exit code and the end of its log."""
        self._stopping.clear()
        with self._lock:
            self._proc = self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"component-{self.name}", daemon=True)
        self._watcher.start()
        return self

    def _spawn(self) -> subprocess.Popen[str]:
        with open(self.log_path, "ab") as log_file:
            os.chmod(self.log_path, 0o600)
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                start_new_session=True,  # a Ctrl-C in the parent's terminal is the parent's to handle
            )
        line: list[str] = []
        reader = threading.Thread(
            target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
        )
        reader.start()
        reader.join(self.ready_timeout)
        timed_out = reader.is_alive()
        if not timed_out and line[0].strip() == READY_LINE:
            return proc
        with contextlib.suppress(OSError):
            proc.kill()
        code = proc.wait()
        if timed_out:
            why = f"not ready after {self.ready_timeout:g}s"
        elif line[0]:
            why = f"said {line[0].strip()!r} instead of {READY_LINE!r} (exit code {code})"
        else:
            why = f"exited with code {code}"
        raise NbkubeError(f"{self.name} process {why}; its log {self.log_path} ends: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                tail = fh.read().strip().splitlines()[-lines:]
        except OSError as err:
            return f"(unreadable: {err.strerror})"
        return " | ".join(tail) or "(empty)"

    def _watch(self) -> None:
        """Restart the child whenever it exits without being asked to, waiting longer each time."""
        failures = 0
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            delay = self.RESTART_BACKOFF[min(failures, len(self.RESTART_BACKOFF) - 1)]
            log.warning(
                "%s process %d exited with code %s (log: %s); restarting in %gs",
                self.name,
                proc.pid,
                code,
                self.log_path,
                delay,
            )
            if self._stopping.wait(delay):
                return
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._proc = self._spawn()
                self.restarts += 1
                failures = 0
            except (NbkubeError, OSError) as err:
                failures += 1
                log.warning("%s process: restart failed: %s", self.name, err)

    def stop(self, timeout: float = 15.0) -> None:
        """Close the child's stdin (it stops itself), then SIGTERM, then SIGKILL, each bounded."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            deadline = time.monotonic() + timeout
            for signal_child in (None, proc.terminate, proc.kill):
                if signal_child is not None:
                    with contextlib.suppress(OSError):
                        signal_child()
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()) if signal_child is None else 5.0)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if proc.stdout:
                proc.stdout.close()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout)
            self._watcher = None
