"""The Docker runtime: real containers for a node agent, the way the kubelet drives a CRI.

Who calls it: `nbkube.node.agent.NodeAgent` through the `Runtime` seam (`create_runtime("docker",
node_name=..., network=..., resolve_volume=...)`), `nbkube down` (`remove_all`) and the tests.

A pod is one pause (infra) container, which owns the network namespace (wired into the node's
bridge by the `PodNetwork`, or on Docker's default bridge when no network is given) and the pod's
hostname, plus one app container per spec container, each joining it with
`network_mode=container:<pause>` so the pod's containers talk over localhost. Restarts
(restartPolicy, CrashLoopBackOff back-off), image pull back-off and probes are done here, not by
Docker's restart policy, so that status reads like a Kubernetes pod's.

Threads: a small pool does slow work (pulls, creates, starts, removals, probes); one status thread
lists our containers every `poll_interval` (a single API call), inspects those whose state changed
and schedules restarts and probes. Every container carries labels naming node, pod and container;
on construction the runtime adopts what it finds, so a restarted agent restarts no container.
Restart counts and back-off survive that too: they live in a small JSON file per pod.

securityContext is honoured field by field (`nbkube.node.runtime.security.docker_options`: user,
groups, privileged, capabilities, read-only root, no-new-privileges, seccomp, AppArmor, SELinux,
unmasked /proc); pod sysctls and hostIPC go on the pause container, hostPID on each app container.
hostNetwork puts the pause container in the node's own network namespace (Docker's `host`) and
skips the pod network's wiring and hostPort rules (the ports are the node's own then); a node that
lives in a namespace of its own (`BridgeNetwork` with a netns) refuses hostNetwork pods, since
Docker cannot join a container to an existing named namespace and the host's is not the node's.

Pod fields (`nbkube.node.runtime.podfields` lists what is refused): probes are the shared
`ProbeTracker`s (startup first, then readiness and liveness); `lifecycle` hooks run as the kubelet
runs them (postStart after the start, a failure kills the container; preStop before removal and
before a probe's kill, within the grace period); `envFrom` exports ConfigMaps and Secrets;
`limits.cpu`/`memory` become the container's CPU quota and memory limit; `emptyDir.sizeLimit` is
the size of a `medium: Memory` tmpfs; a volumeMount's `subPath` may name a single file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import parse_cpu, parse_memory
from nbkube.clock import REAL_CLOCK, Clock, parse_rfc3339
from nbkube.errors import BadRequest, NotFound
from nbkube.fileutil import replace_file
from nbkube.logutil import log_failure
from nbkube.node.netns import entered, setns
from nbkube.node.network.hostports import pod_host_ports
from nbkube.node.probes import ProbeResult, ProbeTracker, run_probe
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus, PodSandboxConfig, check_pod
from nbkube.node.runtime.dockerstreams import DockerAttach, DockerExec
from nbkube.node.runtime.images import PAUSE_IMAGE, ImagePullError, ensure_image, normalize_ref
from nbkube.node.runtime.podfields import env_from, lifecycle_handler, refusals
from nbkube.node.runtime.security import containers_with_paths, docker_options
from nbkube.node.runtime.usage import RawUsage
from nbkube.node.runtime.volumes import (
    UNSUPPORTED_VOLUMES,
    ClaimResolver,
    PodConfigError,
    VolumeResolver,
    pod_hostname,
    prepare_host_volumes,
    release_host_volumes,
    sub_path,
)

__all__ = ["DockerRuntime", "LABEL_NODE", "LABEL_POD_UID", "LABEL_CONTAINER", "UNSUPPORTED_VOLUMES"]

log = logging.getLogger(__name__)

LABEL_NODE = "io.nbkube.node"
LABEL_POD_UID = "io.nbkube.pod.uid"
LABEL_POD_NAME = "io.nbkube.pod.name"
LABEL_POD_NAMESPACE = "io.nbkube.pod.namespace"
LABEL_CONTAINER = "io.nbkube.container"  # "POD" on the pause container, as the kubelet names it
LABEL_POD_SPEC = "io.nbkube.pod.spec"  # the pod (without status) as JSON, on the pause container
LABEL_SANDBOX = "io.nbkube.sandbox"  # the PodSandboxConfig as JSON, on the pause container
PAUSE_NAME = "POD"

MAX_BACKOFF = 300.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts its back-off afresh
PULL_ERROR_SHOWN = 1.0
HOOK_TIMEOUT = 30.0  # a postStart hook still running after this long has failed
MAX_PRE_STOP = 30.0  # preStop hooks get the pod's grace period, at most this long
FAST_READINESS = 0.1  # seconds between readiness probes before a container's first success  # ErrImagePull turns into ImagePullBackOff after this long
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


@dataclass
class _Ctr:
    spec: Obj
    name: str
    image: str
    id: str = ""
    image_id: str = ""
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    crash_streak: int = 0
    last_terminated: dict[str, Any] | None = None
    retry_at: float | None = None  # when the next pull/start attempt is due
    failed_at: float = 0.0
    busy: bool = False  # a pool task works on it
    ready: bool = False
    probe_busy: bool = False
    hook_busy: bool = False  # postStart runs: no probe until it is done
    ever_ready: bool = False  # since the last start: until then readiness is probed fast
    readiness: ProbeTracker | None = None
    liveness: ProbeTracker | None = None
    startup: ProbeTracker | None = None
    kill_message: str = ""  # why we killed it (a probe, a hook), for its termination record


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    pod: Obj
    sandbox: PodSandboxConfig
    created_at: float
    containers: list[_Ctr]
    pause_id: str = ""
    pause_pid: int = 0
    pod_ip: str = ""
    sandbox_ready: bool = False
    setup_busy: bool = False
    init_done: bool = False  # every init container succeeded (or the app containers exist)
    init_running: bool = False
    setup_error: PodConfigError | None = None
    setup_retry_at: float | None = None
    stopped: bool = False
    sandbox_released: bool = False  # a finished pod's pause container stopped, its address freed
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def restart_policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")


class DockerRuntime:
    """Runs pods as Docker containers; see the module docstring."""

    name = "docker"

    def __init__(
        self,
        client: Any = None,
        *,
        node_name: str,
        network: Any = None,
        clock: Clock = REAL_CLOCK,
        backoff_base: float = 10.0,
        resolve_volume: VolumeResolver | None = None,
        resolve_claim: ClaimResolver | None = None,
        state_dir: str | None = None,
        poll_interval: float = 0.5,
        workers: int = 8,
        pull_timeout: float = 20.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        if not node_name or not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", node_name):
            raise BadRequest(f"docker runtime: node_name must be a non-empty name, got {node_name!r}")
        if backoff_base <= 0:
            raise BadRequest(f"docker runtime: backoff_base must be > 0, got {backoff_base!r}")
        if client is None:
            import docker  # type: ignore[import-untyped,unused-ignore]

            client = docker.from_env(timeout=60)
        self.client = client
        self.node_name = node_name
        self.network = network
        self.clock = clock
        self.backoff_base = float(backoff_base)
        self.resolve_volume = resolve_volume
        self.resolve_claim = resolve_claim
        self.state_dir = state_dir or os.path.join("/var/lib/nbkube/docker", node_name)
        self.poll_interval = poll_interval
        self.pull_timeout = pull_timeout
        # called (from the status thread) with a pod uid when its containers' state, readiness or
        # restart count changed, so the agent re-reads that pod at once instead of at its resync
        self.on_change = on_change
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"nbkube-docker-{node_name}")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        self._init_threads: list[threading.Thread] = []
        self._image_ids: dict[str, str] = {}
        os.makedirs(self.state_dir, exist_ok=True)
        self._adopt()
        self._thread = threading.Thread(
            target=self._status_loop, name=f"nbkube-docker-status-{node_name}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ the Runtime protocol

    def start_pod(self, pod: Obj, sandbox: PodSandboxConfig) -> None:
        uid, where = check_pod(pod, "docker")
        spec = pod.get("spec") or {}
        netns = getattr(self.network, "netns", None)
        if spec.get("hostNetwork") is True and netns:
            raise BadRequest(
                f"{where}: spec.hostNetwork: Forbidden: node {self.node_name} lives in network namespace "
                f"{netns}, which the docker runtime cannot put a container in"
            )
        for path, c in containers_with_paths(pod):
            if ((c.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess") is True:
                raise BadRequest(
                    f"{where}: {path}.securityContext.windowsOptions.hostProcess: Forbidden: "
                    "the docker runtime runs Linux containers"
                )
        refused = refusals(pod, "docker")
        if refused:
            raise BadRequest(f"{where}: " + "; ".join(refused))
        meta = pod.get("metadata") or {}
        containers = (pod.get("spec") or {}).get("containers") or []
        with self._lock:
            if self._closed:
                raise BadRequest("docker runtime is closed")
            if uid in self._pods:
                return
            clean = {k: v for k, v in pod.items() if k != "status"}
            p = _Pod(
                uid=uid,
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name") or ""),
                pod=clean,
                sandbox=sandbox,
                created_at=self.clock.now(),
                containers=[_Ctr(spec=c, name=str(c["name"]), image=str(c["image"])) for c in containers],
            )
            self._pods[uid] = p
            p.setup_busy = True
        self._pool.submit(self._guard, self._setup, p)

    def release_sandbox(self, uid: str) -> bool:
        """As the kubelet stops a finished pod's sandbox: its pause container is stopped (the
        network namespace goes with it) and its address given back to the node's network; the
        exited app containers stay, so the pod's status and logs do, until `stop_pod`. With
        Docker's own bridge (no node network) Docker owns the address: nothing is released."""
        import docker.errors

        with self._lock:
            p = self._pods.get(uid)
        if p is None or self.network is None:
            return False
        with p.lock:
            if p.sandbox_released:
                return True
            if p.stopped or not p.containers or any(c.state != "terminated" for c in p.containers):
                return False
            pause = p.pause_id
            p.sandbox_released = True
        if pause:
            try:
                self.client.api.stop(pause, timeout=1)
            except docker.errors.APIError as exc:
                log.info(
                    "docker runtime %s: stopping the sandbox of finished pod %s: %s", self.node_name, uid, exc
                )
        self.network.detach_pod(uid)
        return True

    def stop_pod(self, uid: str) -> None:
        with self._lock:
            p = self._pods.pop(uid, None)
        if p is None:
            return
        p.stopped = True
        if self._closed:  # no pool any more: remove in the caller's thread
            self._remove_pod(p)
        else:
            self._pool.submit(self._guard, self._remove_pod, p)

    def pod_status(self, uid: str) -> PodRuntimeStatus | None:
        with self._lock:
            p = self._pods.get(uid)
        return self._status_of(p) if p is not None else None

    def list_pods(self) -> list[PodRuntimeStatus]:
        with self._lock:
            pods = list(self._pods.values())
        return [self._status_of(p) for p in pods]

    def usage(self) -> dict[str, dict[str, RawUsage]]:
        """uid -> running container -> (CPU seconds, memory less page cache) from the engine's stats.

        One-shot stats (no second sample inside the engine): the reporter makes the rate."""
        import docker.errors

        with self._lock:
            pods = list(self._pods.values())
        out: dict[str, dict[str, RawUsage]] = {}
        for p in pods:
            found: dict[str, RawUsage] = {}
            for c in p.containers:
                if not c.id or c.state != "running":
                    continue
                try:
                    stats = self.client.api.stats(c.id, stream=False, one_shot=True)
                except (docker.errors.APIError, ValueError) as exc:
                    # removed between the copy and the call: the engine answers 404, or (a container
                    # going away mid-call) an empty body the SDK fails to parse as JSON
                    log.info("docker stats for %s/%s: %s", p.name, c.name, exc)
                    continue
                found[c.name] = _raw_usage(stats)
            out[p.uid] = found
        return out

    def close(self, remove: bool = False) -> None:
        """Stop the status thread and the pool; with `remove`, also every container of this node.

        Without `remove` the containers keep running, so a new runtime (a restarted agent) adopts them."""
        if self._closed:
            if remove:
                self.remove_all()
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for t in self._init_threads:
            t.join(timeout=5.0)  # they watch _stop and end within a second
        if remove:
            self.remove_all()

    # ------------------------------------------------------------------ extras: logs, exec, down

    def logs(
        self,
        uid: str,
        container: str,
        tail: int | None = None,
        follow: bool = False,
        *,
        since: float | None = None,
        timestamps: bool = False,
        previous: bool = False,
    ) -> str | Generator[str, None, None]:
        """The container's output (stdout and stderr); with `follow`, an iterator of chunks until it
        ends. `since` (epoch seconds) and `timestamps` are the engine's own; `previous` is the
        last run's output (the engine restarts the same container, so: its start to its end)."""
        c = self._container(uid, container)
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "tail": tail if tail is not None else "all"}
        kwargs["timestamps"] = timestamps
        if previous:
            last = self._last_terminated(uid, container)
            kwargs["since"] = max(float(last.get("startedAt") or 0), since or 0) or None
            kwargs["until"] = float(last["finishedAt"]) + 0.001
            follow = False  # a finished run has nothing more to say
        elif since is not None:
            kwargs["since"] = since
        if kwargs.get("since") is None:
            kwargs.pop("since", None)
        if follow:
            return _follow(c.logs(stream=True, follow=True, **kwargs))
        return str(c.logs(**kwargs).decode("utf-8", "replace"))

    # ------------------------------------------------------------------ streams: exec, attach, ports

    def exec_stream(self, uid: str, container: str, argv: list[str], *, stdin: bool, tty: bool) -> DockerExec:
        """An interactive exec through the engine's exec API (nbkube/node/runtime/dockerstreams.py)."""
        if not argv:
            raise BadRequest("exec: a command is required")
        c = self._running_container(uid, container)
        res = self.client.api.exec_create(c.id, list(argv), stdin=stdin, tty=tty, stdout=True, stderr=True)
        sock = self.client.api.exec_start(res["Id"], socket=True, tty=tty)
        return DockerExec(self.client.api, res["Id"], sock, tty)

    def attach(self, uid: str, container: str, *, stdin: bool, tty: bool = False) -> DockerAttach:
        """An attach to the container's main process through the engine."""
        c = self._running_container(uid, container)
        config = c.attrs.get("Config") or {}
        if stdin and not config.get("OpenStdin"):
            raise BadRequest(f"container {container} was not started with stdin: true; attach without -i")
        params = {"stdin": 1 if stdin else 0, "stdout": 1, "stderr": 1, "stream": 1}
        sock = self.client.api.attach_socket(c.id, params=params)
        return DockerAttach(
            self.client.api, c.id, sock, bool(config.get("Tty")), bool(config.get("StdinOnce"))
        )

    def connect_port(self, uid: str, port: int, timeout: float = 10.0) -> socket.socket:
        """A TCP connection to `port` inside the pod: made from its network namespace (entered by
        this thread only), to its loopback, as the kubelet forwards ports."""
        with self._lock:
            p = self._pods.get(uid)
        if p is None:
            raise NotFound(f"pod {uid} is not running on node {self.node_name}")
        try:
            if os.geteuid() == 0 and p.pause_pid:
                with entered(f"/proc/{p.pause_pid}/ns/net"):
                    return socket.create_connection(("127.0.0.1", port), timeout=timeout)
            return socket.create_connection((p.pod_ip, port), timeout=timeout)
        except OSError as exc:
            raise BadRequest(f"error forwarding port {port} to pod {p.name}: {exc.strerror or exc}") from None

    def _running_container(self, uid: str, container: str) -> Any:
        c = self._container(uid, container)
        if (c.attrs.get("State") or {}).get("Status") != "running":
            raise BadRequest(f"container {container} is not running")
        return c

    def _last_terminated(self, uid: str, container: str) -> dict[str, Any]:
        with self._lock:
            p = self._pods.get(uid)
        c = next((x for x in p.containers if x.name == container), None) if p else None
        if c is None or not c.last_terminated or not c.last_terminated.get("finishedAt"):
            raise BadRequest(
                f'previous terminated container "{container}" in pod "{p.name if p else uid}" not found'
            )
        return dict(c.last_terminated)

    def exec(self, uid: str, container: str, argv: list[str]) -> tuple[int, str]:
        """Run `argv` in the container; (exit code, combined output)."""
        if not argv:
            raise BadRequest("exec: a command is required")
        c = self._container(uid, container)
        res = c.exec_run(list(argv), stdout=True, stderr=True)
        return int(res.exit_code if res.exit_code is not None else -1), res.output.decode("utf-8", "replace")

    def remove_all(self) -> None:
        """Remove every container of this node (running or not), its pod networks and state (`down`)."""
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
        for p in pods:
            p.stopped = True
        for row in self._our_containers(extra={}):
            with contextlib.suppress(Exception):
                self.client.api.remove_container(row["Id"], force=True, v=True)
        uids = {p.uid for p in pods}
        pods_dir = os.path.join(self.state_dir, "pods")
        if os.path.isdir(pods_dir):
            uids |= set(os.listdir(pods_dir))
        for uid in uids:
            self._release_pod_resources(uid)

    # ------------------------------------------------------------------ status

    def _status_of(self, p: _Pod) -> PodRuntimeStatus:
        now = self.clock.now()
        with p.lock:
            out = []
            hints: list[float] = []
            for c in p.containers:
                reason, message = c.reason, c.message
                if (
                    c.state == "waiting"
                    and reason == "ErrImagePull"
                    and now - c.failed_at >= PULL_ERROR_SHOWN
                ):
                    reason = "ImagePullBackOff"
                    message = f"Back-off pulling image {c.image!r}: {c.message}"
                if c.state != "running" and c.state != "terminated":
                    hints.append(0.25 if c.retry_at is None else max(c.retry_at - now, 0.05))
                elif c.state == "running" and not c.ready:
                    hints.append(max(c.readiness.next_at - now, 0.05) if c.readiness is not None else 0.1)
                out.append(
                    ContainerStatus(
                        name=c.name,
                        image=c.image,
                        state=c.state,  # type: ignore[arg-type]
                        reason=reason if c.state != "running" else "",
                        message=message if c.state != "running" else "",
                        ready=c.ready and c.state == "running",
                        restart_count=c.restart_count,
                        exit_code=c.exit_code if c.state == "terminated" else None,
                        started_at=c.started_at,
                        finished_at=c.finished_at if c.state == "terminated" else None,
                        container_id=f"docker://{c.id}" if c.id else "",
                        image_id=c.image_id,
                        last_terminated=dict(c.last_terminated) if c.last_terminated else None,
                        started=c.state == "running" and (c.startup is None or c.startup.passing),
                    )
                )
            return PodRuntimeStatus(
                uid=p.uid,
                namespace=p.namespace,
                name=p.name,
                sandbox_ready=p.sandbox_ready,
                pod_ip=p.pod_ip,
                containers=out,
                created_at=p.created_at,
                next_check=min(hints) if hints else None,
            )

    # ------------------------------------------------------------------ pod setup

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a worker must never die silently; the status shows what is known
            log_failure(log, f"docker runtime {self.node_name}: {getattr(fn, '__name__', fn)}", exc)

    def _labels(self, p: _Pod, container: str) -> dict[str, str]:
        return {
            LABEL_NODE: self.node_name,
            LABEL_POD_UID: p.uid,
            LABEL_POD_NAME: p.name,
            LABEL_POD_NAMESPACE: p.namespace,
            LABEL_CONTAINER: container,
        }

    def _cname(self, p: _Pod, container: str) -> str:
        return f"nbk_{self.node_name}_{p.namespace}_{p.name}_{container}_{p.uid[:8]}"

    def _pod_dir(self, uid: str) -> str:
        return os.path.join(self.state_dir, "pods", uid)

    def _setup(self, p: _Pod) -> None:
        """Sandbox, volumes, then every container; retried by the status thread on config errors."""

        with p.lock:
            try:
                if p.stopped:
                    return
                try:
                    self._ensure_sandbox(p)
                except Exception as exc:  # whatever it is, the pod shows it (and is retried)
                    raise PodConfigError("CreatePodSandboxError", f"pod sandbox: {_msg(exc)}") from exc
                binds = self._prepare_volumes(p)
                p.setup_error = None
                p.setup_retry_at = None
            except PodConfigError as err:
                p.setup_error = err
                p.setup_retry_at = self.clock.now() + min(self.backoff_base, 5.0)
                for c in p.containers:
                    if not c.id:
                        c.state, c.reason, c.message = "waiting", err.reason, err.message
                return
            finally:
                p.setup_busy = False
            self._save_state(p)
            if not p.init_done and (p.pod.get("spec") or {}).get("initContainers"):
                if not p.init_running:
                    p.init_running = True
                    t = threading.Thread(
                        target=self._guard,
                        args=(self._run_init, p, binds),
                        name=f"nbkube-init-{p.name}",
                        daemon=True,
                    )
                    self._init_threads = [x for x in self._init_threads if x.is_alive()] + [t]
                    t.start()
                return
            self._start_app_containers(p, binds)

    def _start_app_containers(self, p: _Pod, binds: dict[str, tuple[str, bool]]) -> None:
        with p.lock:
            for c in p.containers:
                if not c.id and not c.busy:
                    c.busy = True
                    c.reason, c.message = "ContainerCreating", ""
                    self._pool.submit(self._guard, self._create_and_start, p, c, binds)

    def _run_init(self, p: _Pod, binds: dict[str, tuple[str, bool]]) -> None:
        """Run the pod's init containers in order, each to success, then start the app containers.

        A thread of its own (not the pool): an init container may run for long. Its progress shows
        on the app containers (waiting PodInitializing / Init:Error / Init:CrashLoopBackOff), as the
        runtime status has no separate init container list."""
        import docker.errors

        def show(state: str, reason: str, message: str, code: int | None = None) -> None:
            with p.lock:
                for c in p.containers:
                    c.state, c.reason, c.message, c.exit_code = state, reason, message, code

        try:
            for spec in (p.pod.get("spec") or {}).get("initContainers") or []:
                c = _Ctr(spec=spec, name=str(spec.get("name")), image=str(spec.get("image")))
                for _attempt in range(10_000):
                    if p.stopped or self._stop.is_set():
                        return
                    show("waiting", "PodInitializing", f"init container {c.name} running")
                    code, why = self._run_init_once(p, c, binds)
                    if code == 0:
                        break
                    if code is not None and p.restart_policy == "Never":
                        show("terminated", "Init:Error", f"init container {c.name} exited with {code}", code)
                        return
                    delay = self._backoff(c)
                    c.crash_streak += 1
                    reason = "Init:CrashLoopBackOff" if code is not None else "Init:" + why.partition(":")[0]
                    show("waiting", reason, f"init container {c.name}: {why}; back-off {delay:g}s")
                    if self._stop.wait(delay):
                        return
            with p.lock:
                p.init_done = True
                for c in p.containers:
                    c.reason, c.message = "ContainerCreating", ""
            self._start_app_containers(p, binds)
        except docker.errors.APIError as exc:
            show("waiting", "Init:RunContainerError", _msg(exc))
        finally:
            p.init_running = False

    def _run_init_once(self, p: _Pod, c: _Ctr, binds: dict[str, tuple[str, bool]]) -> tuple[int | None, str]:
        """(exit code, "") of one run, or (None, "Reason: message") when it could not run."""

        try:
            self._image(c.image)
        except ImagePullError as exc:
            return None, f"ErrImagePull: {exc}"
        try:
            kwargs = self._container_config(p, c, binds)
        except PodConfigError as err:
            return None, f"{err.reason}: {err.message}"
        kwargs["name"] = self._cname(p, f"init-{c.name}")
        kwargs["labels"][LABEL_CONTAINER] = f"init:{c.name}"
        cid = self._create(c.image, kwargs)
        self.client.api.start(cid)
        while not (p.stopped or self._stop.is_set()):
            try:
                return int(self.client.api.wait(cid, timeout=1)["StatusCode"]), ""
            except Exception as exc:  # the wait's read timeout: still running
                if "timed out" not in str(exc).lower() and "timeout" not in type(exc).__name__.lower():
                    raise
        return None, "Stopped: pod stopped"

    def _ensure_sandbox(self, p: _Pod) -> None:
        import docker.errors

        if p.pause_id:
            return
        self._image(PAUSE_IMAGE)
        name = self._cname(p, PAUSE_NAME)
        labels = {
            **self._labels(p, PAUSE_NAME),
            LABEL_POD_SPEC: json.dumps(p.pod, separators=(",", ":")),
            LABEL_SANDBOX: json.dumps(p.sandbox.__dict__),
        }
        spec = p.pod.get("spec") or {}
        host_network = spec.get("hostNetwork") is True
        hostname, domain = pod_hostname(p.pod)
        kwargs: dict[str, Any] = {
            "name": name,
            "hostname": hostname,
            "labels": labels,
            "network_mode": "host" if host_network else ("none" if self.network is not None else "bridge"),
            "ipc_mode": "host" if spec.get("hostIPC") is True else "shareable",
            "detach": True,
        }
        if domain:
            kwargs["domainname"] = domain  # the app containers share the sandbox's UTS namespace
        if host_network:
            kwargs.pop("hostname")  # Docker refuses a hostname with the host's network: it is the node's
            kwargs.pop("domainname", None)
        sysctls = {
            str(s.get("name")): str(s.get("value"))
            for s in (spec.get("securityContext") or {}).get("sysctls") or []
            if isinstance(s, dict)
        }
        if sysctls:
            kwargs["sysctls"] = sysctls  # namespaced ones, in the namespaces the pause container holds
        host_ports = [] if host_network else pod_host_ports(p.pod)
        if host_ports and self.network is None:
            # Docker's own bridge: the sandbox publishes them, as dockershim did
            kwargs["ports"] = {
                f"{m.container_port}/{m.protocol.lower()}": (m.host_ip, m.host_port)
                if m.host_ip
                else m.host_port
                for m in host_ports
            }
        cid = self._create(PAUSE_IMAGE, kwargs)
        try:
            self.client.api.start(cid)
            attrs = self.client.api.inspect_container(cid)
            p.pause_id = cid
            p.pause_pid = int(attrs["State"].get("Pid") or 0)
            p.pod_ip = p.sandbox.host_ip if host_network else self._attach(p, attrs)
            if host_ports and self.network is not None:
                self.network.set_host_ports(p.uid, host_ports)
        except Exception:  # no half-made sandbox stays behind: the next attempt starts afresh
            p.pause_id, p.pause_pid = "", 0
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.remove_container(cid, force=True)
            raise
        p.sandbox_ready = True

    def _image(self, ref: str) -> str:
        """The image id of `ref`, pulled or seeded if need be; remembered for this runtime's life."""
        ref = normalize_ref(ref)
        cached = self._image_ids.get(ref)
        if cached:
            return cached
        image_id = ensure_image(self.client, ref, timeout=self.pull_timeout)
        self._image_ids[ref] = image_id
        return image_id

    def _create(self, image: str, kwargs: dict[str, Any]) -> str:
        """Create a container (one API call, the SDK's high-level create adds an inspect); its id.

        A leftover of the same name (an earlier life of this node) is removed and the create retried;
        any other error forgets the cached image id, so a removed image is looked up again."""
        import docker.errors
        from docker.models.containers import _create_container_args  # type: ignore[import-untyped,unused-ignore]

        extra = kwargs.pop("host_config_extra", None)  # HostConfig fields the SDK has no argument for
        # Config fields the SDK sets only for attached runs (StdinOnce, for a detached container)
        config_extra = kwargs.pop("config_extra", None)
        args = _create_container_args({**kwargs, "image": image, "version": self.client.api._version})
        if extra:
            args["host_config"].update(extra)

        def create() -> str:
            api = self.client.api
            if not config_extra:
                return str(api.create_container(**args)["Id"])
            a = dict(args)
            name, platform = a.pop("name", None), a.pop("platform", None)
            a.pop("use_config_proxy", None)
            config = api.create_container_config(**a)
            config.update(config_extra)
            return str(api.create_container_from_config(config, name, platform)["Id"])

        try:
            return create()
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                self._image_ids.pop(normalize_ref(image), None)
                raise
        self.client.api.remove_container(kwargs["name"], force=True)
        return create()

    def _attach(self, p: _Pod, attrs: Obj) -> str:
        if self.network is not None:
            return str(self.network.attach_pod(p.uid, int(attrs["State"]["Pid"])))
        nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
        bridge: Obj = nets.get("bridge") or next(iter(nets.values()), {})
        return str(bridge.get("IPAddress") or "")

    # ------------------------------------------------------------------ volumes

    def _prepare_volumes(self, p: _Pod) -> dict[str, tuple[str, bool]]:
        """{volume name: (host path, read-only)}; raises PodConfigError naming what is wrong."""
        return prepare_host_volumes(
            p.pod, self._volume_dir(p.uid), self.node_name, self.resolve_volume, self.resolve_claim
        )

    def _volume_dir(self, uid: str) -> str:
        return os.path.join(self._pod_dir(uid), "volumes")

    # ------------------------------------------------------------------ containers

    def _create_and_start(self, p: _Pod, c: _Ctr, binds: dict[str, tuple[str, bool]]) -> None:
        import docker.errors

        try:
            try:
                c.image_id = self._image(c.image)
            except ImagePullError as exc:
                with p.lock:
                    c.state, c.reason, c.message = "waiting", "ErrImagePull", str(exc)
                    c.failed_at = self.clock.now()
                    c.retry_at = c.failed_at + self._backoff(c)
                    c.crash_streak += 1
                return
            try:
                kwargs = self._container_config(p, c, binds)
            except PodConfigError as err:
                with p.lock:
                    c.state, c.reason, c.message = "waiting", err.reason, err.message
                    c.retry_at = self.clock.now() + min(self.backoff_base, 5.0)
                return
            with p.lock:
                if p.stopped:
                    return
                try:
                    c.id = self._create(c.image, kwargs)
                except docker.errors.APIError as exc:
                    c.state, c.reason, c.message = "waiting", "CreateContainerError", _msg(exc)
                    c.retry_at = self.clock.now() + self._backoff(c)
                    c.crash_streak += 1
                    return
            self._start(p, c)
        finally:
            c.busy = False

    def _start(self, p: _Pod, c: _Ctr) -> None:
        """Start (or restart) c's container and record what Docker says about it."""
        import docker.errors

        try:
            self.client.api.start(c.id)
            attrs = self.client.api.inspect_container(c.id)
        except docker.errors.APIError as exc:
            with p.lock:
                c.state, c.reason, c.message = "waiting", "RunContainerError", _msg(exc)
                c.retry_at = self.clock.now() + self._backoff(c)
                c.crash_streak += 1
            return
        handler = lifecycle_handler(c.spec, "postStart")
        with p.lock:
            c.retry_at = None
            c.ready = False
            c.readiness = c.liveness = c.startup = None
            c.ever_ready = False
            self._observe(p, c, attrs)
            if handler is not None and c.state == "running":
                c.hook_busy = True
                self._pool.submit(self._guard, self._post_start, p, c, c.id, handler)
        self._wake.set()  # probes of a fresh container are due now, not at the next poll

    def _observe(self, p: _Pod, c: _Ctr, attrs: Obj) -> None:
        """Fold one inspect result into c (under p.lock): running, or an exit to handle."""
        st = attrs.get("State") or {}
        started = _ts(st.get("StartedAt"))
        if st.get("Running"):
            if c.state != "running":
                c.state, c.reason, c.message = "running", "", ""
                c.started_at = started
                self._arm_probes(c, self.clock.now(), ready=False)
            return
        if c.state == "terminated" or (c.state == "waiting" and c.retry_at is not None):
            return  # this exit is already handled
        code = int(st.get("ExitCode") or 0)
        reason = "OOMKilled" if st.get("OOMKilled") else ("Completed" if code == 0 else "Error")
        finished = _ts(st.get("FinishedAt")) or self.clock.now()
        c.started_at = started or c.started_at
        c.finished_at = finished
        c.ready = False
        term = {
            "exitCode": code,
            "reason": reason,
            "message": c.kill_message,
            "startedAt": c.started_at or finished,
            "finishedAt": finished,
        }
        c.kill_message = ""
        c.readiness = c.liveness = c.startup = None
        policy = p.restart_policy
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            if (c.started_at or finished) + BACKOFF_RESET_AFTER < finished:
                c.crash_streak = 0
            delay = self._backoff(c)
            c.crash_streak += 1
            c.last_terminated = term
            c.state, c.reason = "waiting", "CrashLoopBackOff"
            c.message = f"back-off {delay:g}s restarting failed container={c.name} pod={p.name}_{p.namespace}"
            c.exit_code = None
            c.retry_at = self.clock.now() + delay
        else:
            c.state, c.reason, c.exit_code, c.message = "terminated", reason, code, ""
            c.retry_at = None
        self._save_state(p)

    def _backoff(self, c: _Ctr) -> float:
        return float(min(self.backoff_base * (2 ** min(c.crash_streak, 30)), MAX_BACKOFF))

    def _retry(self, p: _Pod, c: _Ctr) -> None:
        """A due retry: pull/create again if there is no container yet, else restart it."""
        try:
            if not c.id:
                binds = self._prepare_volumes(p)
                c.busy = True  # _create_and_start clears it
                self._create_and_start(p, c, binds)
                return
            with p.lock:
                if p.stopped:
                    return
                c.restart_count += 1
                c.state, c.reason, c.message = "waiting", "ContainerCreating", ""
                c.retry_at = None
                self._save_state(p)
            self._start(p, c)
        except PodConfigError as err:
            with p.lock:
                c.state, c.reason, c.message = "waiting", err.reason, err.message
                c.retry_at = self.clock.now() + min(self.backoff_base, 5.0)
        finally:
            c.busy = False

    def _container_config(self, p: _Pod, c: _Ctr, binds: dict[str, tuple[str, bool]]) -> dict[str, Any]:
        spec = c.spec
        env = self._env(p, spec)
        command = [_expand(str(a), env) for a in spec.get("command") or []]
        args = [_expand(str(a), env) for a in spec.get("args") or []]
        kwargs: dict[str, Any] = {
            "name": self._cname(p, c.name),
            "labels": self._labels(p, c.name),
            "environment": env,
            "network_mode": f"container:{p.pause_id}",
            "ipc_mode": f"container:{p.pause_id}",
            "detach": True,
        }
        pod_spec = p.pod.get("spec") or {}
        if pod_spec.get("hostPID") is True:
            kwargs["pid_mode"] = "host"
        elif pod_spec.get("shareProcessNamespace"):
            kwargs["pid_mode"] = f"container:{p.pause_id}"
        if pod_spec.get("hostIPC") is True:
            kwargs["ipc_mode"] = "host"
        kwargs.update(self._security_options(p, c))
        if command:
            kwargs["entrypoint"] = command
            kwargs["command"] = args
        elif args:
            kwargs["command"] = args
        if spec.get("workingDir"):
            kwargs["working_dir"] = str(spec["workingDir"])
        # stdin: an open stdin for `kubectl attach -i` (closed after the first attach with stdinOnce)
        if spec.get("stdin") is True:
            kwargs["stdin_open"] = True
            if spec.get("stdinOnce") is True:
                kwargs["config_extra"] = {"StdinOnce": True}
        if spec.get("tty") is True:
            kwargs["tty"] = True
        limits = (spec.get("resources") or {}).get("limits") or {}
        if limits.get("cpu") is not None:
            kwargs["nano_cpus"] = parse_cpu(limits["cpu"]) * 1_000_000
        if limits.get("memory") is not None:
            kwargs["mem_limit"] = parse_memory(limits["memory"])
            kwargs["memswap_limit"] = kwargs["mem_limit"]  # no swap, so the limit means OOM as in Kubernetes
        mounts: list[str] = []
        for m in spec.get("volumeMounts") or []:
            vname = str(m.get("name") or "")
            if vname not in binds:
                raise PodConfigError(
                    "CreateContainerConfigError",
                    f"container {c.name}: volumeMount of unknown volume {vname!r}",
                )
            host, ro = binds[vname]
            if m.get("subPath"):  # a folder, or one file (a single ConfigMap key) mounted alone
                host = sub_path(host, str(m["subPath"]), f"container {c.name}: volumeMount {vname!r}")
            mounts.append(f"{host}:{m.get('mountPath')}:{'ro' if ro or m.get('readOnly') else 'rw'}")
        resolv = self._resolv_conf(p)
        if resolv:
            mounts.append(f"{resolv}:/etc/resolv.conf:ro")
        if mounts:
            kwargs["volumes"] = mounts
        return kwargs

    def _resolv_conf(self, p: _Pod) -> str:
        """The pod's resolv.conf written into its folder (dnsconf.py made it), or "" for none."""
        text = p.sandbox.resolv_conf
        if not text:
            return ""
        path = os.path.join(self._pod_dir(p.uid), "resolv.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        replace_file(path, text, 0o644)  # one container's worker may write it while another reads it
        return path

    def _security_options(self, p: _Pod, c: _Ctr) -> dict[str, Any]:
        """The container's securityContext as create options; PodConfigError when it cannot hold
        (runAsNonRoot and an image that runs as root, an unreadable seccomp profile)."""
        index = next(
            (path for path, spec in containers_with_paths(p.pod) if spec is c.spec),
            f"container {c.name}",
        )
        image_user = ""
        sc = {
            **((p.pod.get("spec") or {}).get("securityContext") or {}),
            **(c.spec.get("securityContext") or {}),
        }
        if sc.get("runAsNonRoot") is True or ("runAsGroup" in sc and "runAsUser" not in sc):
            try:
                config = (self.client.api.inspect_image(self._image(c.image)) or {}).get("Config") or {}
            except Exception as exc:  # the daemon's answer is the container's waiting message
                raise PodConfigError(
                    "CreateContainerConfigError",
                    f"image {c.image}: cannot read its user: {_msg(exc)}",
                    retry=True,
                ) from exc
            image_user = str(config.get("User") or "")
        try:
            return docker_options(p.pod, c.spec, f"{index}.securityContext", image_user)
        except ValueError as exc:
            raise PodConfigError("CreateContainerConfigError", str(exc)) from exc

    def _env(self, p: _Pod, spec: Obj) -> dict[str, str]:
        fields = {
            "metadata.name": p.name,
            "metadata.namespace": p.namespace,
            "metadata.uid": p.uid,
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": str((p.pod.get("spec") or {}).get("serviceAccountName") or "default"),
            "status.podIP": p.pod_ip,
            "status.hostIP": p.sandbox.host_ip,
            # single-stack: the lists hold the one address (upstream joins them with commas)
            "status.podIPs": p.pod_ip,
            "status.hostIPs": p.sandbox.host_ip,
        }
        # Service variables under envFrom under `env`, as the kubelet layers them
        env: dict[str, str] = {**p.sandbox.service_env, **env_from(p.pod, spec, self.resolve_volume)}
        for e in spec.get("env") or []:
            name = str(e.get("name") or "")
            if "value" in e or not e.get("valueFrom"):
                env[name] = _expand(str(e.get("value") or ""), env)
                continue
            src = e["valueFrom"]
            if "fieldRef" in src:
                path = str((src["fieldRef"] or {}).get("fieldPath") or "")
                if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
                    which, _, key = path.partition("['")
                    env[name] = str(
                        ((p.pod.get("metadata") or {}).get(which.split(".")[1]) or {}).get(key[:-2], "")
                    )
                elif path in fields:
                    env[name] = fields[path]
                else:
                    raise PodConfigError(
                        "CreateContainerConfigError", f"env {name}: unsupported fieldRef {path!r}"
                    )
            elif "configMapKeyRef" in src or "secretKeyRef" in src:
                kind = "configMap" if "configMapKeyRef" in src else "secret"
                ref = src.get(f"{kind}KeyRef") or {}
                vol = {
                    "name": f"env-{name}",
                    kind: {"secretName" if kind == "secret" else "name": ref.get("name")},
                }
                data = self.resolve_volume(p.pod, vol) if self.resolve_volume is not None else None
                key = str(ref.get("key") or "")
                if data is None or key not in data:
                    if ref.get("optional"):
                        continue
                    raise PodConfigError(
                        "CreateContainerConfigError",
                        f"env {name}: key {key!r} of {kind} {ref.get('name')!r} not found",
                    )
                env[name] = data[key].decode("utf-8", "replace")
            else:
                raise PodConfigError(
                    "CreateContainerConfigError", f"env {name}: unsupported valueFrom {sorted(src)}"
                )
        return env

    def _container(self, uid: str, name: str) -> Any:
        import docker.errors

        with self._lock:
            p = self._pods.get(uid)
        if p is None:
            raise NotFound(f"pod {uid} is not running on node {self.node_name}")
        for c in p.containers:
            if c.name == name:
                if not c.id:
                    raise BadRequest(
                        f"container {name} of pod {p.name} has not been created yet ({c.reason})"
                    )
                try:
                    return self.client.containers.get(c.id)
                except docker.errors.NotFound as exc:
                    raise NotFound(f"container {name} of pod {p.name} is gone") from exc
        raise NotFound(
            f"pod {p.name} has no container {name!r} (has: {', '.join(c.name for c in p.containers)})"
        )

    # ------------------------------------------------------------------ removal

    def _remove_pod(self, p: _Pod) -> None:
        with p.lock:  # waits for a setup in progress
            running = [c for c in p.containers if c.id and c.state == "running"]
        self._pre_stop(p, running)
        for row in self._our_containers(extra={LABEL_POD_UID: p.uid}):
            if row["Labels"].get(LABEL_CONTAINER) != PAUSE_NAME:
                with contextlib.suppress(Exception):
                    self.client.api.remove_container(row["Id"], force=True, v=True)
        for row in self._our_containers(extra={LABEL_POD_UID: p.uid}):
            with contextlib.suppress(Exception):
                self.client.api.remove_container(row["Id"], force=True, v=True)
        self._release_pod_resources(p.uid)

    def _release_pod_resources(self, uid: str) -> None:
        if self.network is not None:
            try:
                self.network.detach_pod(uid)
            except Exception as exc:
                log.warning("docker runtime %s: detach of pod %s failed: %s", self.node_name, uid, exc)
        release_host_volumes(self._volume_dir(uid))
        shutil.rmtree(self._pod_dir(uid), ignore_errors=True)

    def _our_containers(self, extra: dict[str, str]) -> list[Obj]:
        labels = [f"{LABEL_NODE}={self.node_name}", *(f"{k}={v}" for k, v in extra.items())]
        rows: list[Obj] = self.client.api.containers(all=True, filters={"label": labels})
        return rows

    # ------------------------------------------------------------------ persistence and adoption

    def _save_state(self, p: _Pod) -> None:
        d = self._pod_dir(p.uid)
        os.makedirs(d, exist_ok=True)
        data = {
            c.name: {
                "restartCount": c.restart_count,
                "crashStreak": c.crash_streak,
                "lastTerminated": c.last_terminated,
            }
            for c in p.containers
        }
        replace_file(os.path.join(d, "state.json"), json.dumps(data), 0o600)

    def _adopt(self) -> None:
        """Rebuild pods from the containers carrying our node label; restart nothing."""
        rows = self._our_containers(extra={})
        by_pod: dict[str, list[Obj]] = {}
        for row in rows:
            by_pod.setdefault(row["Labels"].get(LABEL_POD_UID, ""), []).append(row)
        for uid, members in by_pod.items():
            pause = next((r for r in members if r["Labels"].get(LABEL_CONTAINER) == PAUSE_NAME), None)
            try:
                if pause is None or pause["State"] != "running":
                    raise ValueError("no running pause container")
                self._adopt_pod(uid, pause, members)
            except Exception as exc:  # an unusable sandbox: remove it; the agent starts the pod afresh
                log.info("docker runtime %s: not adopting pod %s (%s); removing it", self.node_name, uid, exc)
                for r in members:
                    with contextlib.suppress(Exception):
                        self.client.api.remove_container(r["Id"], force=True, v=True)
                self._release_pod_resources(uid)

    def _adopt_pod(self, uid: str, pause: Obj, members: list[Obj]) -> None:
        labels = pause["Labels"]
        pod = json.loads(labels[LABEL_POD_SPEC])
        sandbox = PodSandboxConfig(**json.loads(labels[LABEL_SANDBOX]))
        attrs = self.client.api.inspect_container(pause["Id"])
        meta = pod.get("metadata") or {}
        p = _Pod(
            uid=uid,
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name") or ""),
            pod=pod,
            sandbox=sandbox,
            created_at=_ts(attrs.get("Created")) or self.clock.now(),
            containers=[
                _Ctr(spec=c, name=str(c["name"]), image=str(c["image"])) for c in pod["spec"]["containers"]
            ],
            pause_id=pause["Id"],
            pause_pid=int(attrs["State"].get("Pid") or 0),
            sandbox_ready=True,
        )
        host_network = (pod.get("spec") or {}).get("hostNetwork") is True
        p.pod_ip = sandbox.host_ip if host_network else self._attach(p, attrs)
        saved: Obj = {}
        with (
            contextlib.suppress(OSError, ValueError),
            open(os.path.join(self._pod_dir(uid), "state.json")) as f,
        ):
            saved = json.load(f)
        ids = {r["Labels"].get(LABEL_CONTAINER): r["Id"] for r in members}
        missing = False
        for c in p.containers:
            s = saved.get(c.name) or {}
            c.restart_count = int(s.get("restartCount", 0))
            c.crash_streak = int(s.get("crashStreak", 0))
            c.last_terminated = s.get("lastTerminated")
            c.id = ids.get(c.name, "")
            if not c.id:
                missing = True
                continue
            cattrs = self.client.api.inspect_container(c.id)
            c.image_id = str(cattrs.get("Image") or "")
            self._observe(p, c, cattrs)
            probe = c.spec.get("readinessProbe") or c.spec.get("startupProbe")
            if c.state == "running" and probe and self._probe(p, c, probe):
                # probed once now, so that an agent restart does not flap the pod's Ready condition
                self._arm_probes(c, c.started_at or self.clock.now(), ready=True)
        p.init_done = any(c.id for c in p.containers)
        with self._lock:
            self._pods[uid] = p
        if missing:
            p.setup_busy = True
            self._pool.submit(self._guard, self._setup, p)

    # ------------------------------------------------------------------ the status thread

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            soon = False
            try:
                soon = self._tick()
            except Exception as exc:  # the daemon restarting, a full disk: one line each
                log_failure(log, f"docker runtime {self.node_name}: status pass", exc)
            self._wake.wait(FAST_READINESS / 2 if soon else self.poll_interval)
            self._wake.clear()

    def _tick(self) -> bool:
        """One pass over our pods; True when a container awaits its first readiness success."""
        import docker.errors

        soon = False
        rows = {r["Id"]: r for r in self._our_containers(extra={})}
        now = self.clock.now()
        with self._lock:
            pods = list(self._pods.values())
        for p in pods:
            if p.stopped:
                continue
            if p.setup_error is not None and not p.setup_busy and (p.setup_retry_at or 0) <= now:
                p.setup_busy = True
                self._pool.submit(self._guard, self._setup, p)
                continue
            for c in p.containers:
                if c.busy:
                    continue
                if c.state == "running" and c.id:
                    row = rows.get(c.id)
                    if row is None or row.get("State") != "running":
                        try:
                            attrs = self.client.api.inspect_container(c.id)
                        except docker.errors.NotFound:
                            attrs = {"State": {"Running": False, "ExitCode": 137}}
                            c.id = ""  # removed behind our back: create it again
                        with p.lock:
                            self._observe(p, c, attrs)
                    else:
                        self._schedule_probes(p, c, now)
                        soon = soon or (not c.ever_ready and c.readiness is not None)
                elif c.state == "waiting" and c.retry_at is not None and c.retry_at <= now:
                    c.busy = True
                    self._pool.submit(self._guard, self._retry, p, c)
        self._notify_changes(pods)
        return soon

    def _notify_changes(self, pods: list[_Pod]) -> None:
        if self.on_change is None:
            return
        seen: dict[str, tuple[Any, ...]] = {}
        for p in pods:
            with p.lock:
                sig = (p.pod_ip, *((c.state, c.reason, c.ready, c.restart_count) for c in p.containers))
            seen[p.uid] = sig
            if self._seen.get(p.uid) != sig:
                try:
                    self.on_change(p.uid)
                except Exception:
                    log.exception("docker runtime %s: on_change(%s) failed", self.node_name, p.uid)
        self._seen = seen

    # ------------------------------------------------------------------ probes

    def _arm_probes(self, c: _Ctr, started: float, *, ready: bool) -> None:
        """Fresh probe trackers for a run that began at `started` (`ready`: seen ready already)."""
        readiness, liveness = c.spec.get("readinessProbe"), c.spec.get("livenessProbe")
        startup = c.spec.get("startupProbe")
        c.ready = ready or not (readiness or startup)
        c.ever_ready = ready
        c.readiness = c.liveness = c.startup = None
        if startup and not ready:
            c.startup = ProbeTracker(startup, "startup", started, first_success_period=FAST_READINESS)
        if readiness:
            c.readiness = ProbeTracker(readiness, "readiness", started, first_success_period=FAST_READINESS)
            c.readiness.passing = c.readiness.ever_succeeded = ready
        if liveness:
            c.liveness = ProbeTracker(liveness, "liveness", started)

    def _schedule_probes(self, p: _Pod, c: _Ctr, now: float) -> None:
        if c.probe_busy or c.hook_busy:
            return
        if c.startup is not None and not c.startup.passing:  # nothing else until it has started
            due = [c.startup] if c.startup.due(now) else []
        else:
            due = [t for t in (c.readiness, c.liveness) if t is not None and t.due(now)]
        if due:
            c.probe_busy = True
            self._pool.submit(self._guard, self._run_probes, p, c, c.id, due)

    def _run_probes(self, p: _Pod, c: _Ctr, cid: str, due: list[ProbeTracker]) -> None:
        try:
            for tracker in due:
                result = self._probe_result(p, c, tracker.probe)
                with p.lock:
                    if p.stopped or c.id != cid or c.state != "running":
                        return  # the container this probe was for is gone
                    verdict = tracker.record(result, self.clock.now())
                    if tracker.kind == "readiness":
                        c.ready = verdict
                        c.ever_ready = c.ever_ready or verdict
                        continue
                    if tracker.kind == "startup":
                        if verdict:
                            if c.readiness is None:
                                c.ready = c.ever_ready = True
                            continue
                        if tracker.failures < tracker.failure_threshold:
                            continue
                        c.kill_message = f"Startup probe failed: {tracker.last_message}; container restarted"
                    elif verdict:
                        continue
                    else:
                        c.kill_message = f"Liveness probe failed: {tracker.last_message}; container restarted"
                # the status thread sees the exit and restarts per policy
                log.info(
                    "pod %s/%s container %s failed its %s probe; killing it",
                    p.namespace,
                    p.name,
                    c.name,
                    tracker.kind,
                )
                self._pre_stop(p, [c])
                with contextlib.suppress(Exception):
                    self.client.api.kill(cid)
                return
        finally:
            c.probe_busy = False
            self._wake.set()

    def _handler_result(self, p: _Pod, c: _Ctr, handler: Obj, timeout: float) -> ProbeResult:
        """One lifecycle hook action (exec, httpGet, tcpSocket, sleep), bounded by `timeout`."""
        if "sleep" in handler:
            seconds = float((handler.get("sleep") or {}).get("seconds") or 0)
            self._stop.wait(max(0.0, min(seconds, timeout)))
            return ProbeResult(True)
        return self._probe_result(p, c, {**handler, "timeoutSeconds": max(timeout, 0.001)})

    def _post_start(self, p: _Pod, c: _Ctr, cid: str, handler: Obj) -> None:
        """The postStart hook; a failure kills the container (which restarts per policy), as the kubelet does."""
        try:
            result = self._handler_result(p, c, handler, HOOK_TIMEOUT)
            with p.lock:
                if result.ok or p.stopped or c.id != cid or c.state != "running":
                    return
                c.kill_message = f"PostStartHookError: {result.message}"
            log.info(
                "pod %s/%s container %s: postStart hook failed: %s",
                p.namespace,
                p.name,
                c.name,
                result.message,
            )
            with contextlib.suppress(Exception):
                self.client.api.kill(cid)
        finally:
            c.hook_busy = False
            self._wake.set()

    def _pre_stop(self, p: _Pod, containers: list[_Ctr]) -> None:
        """Run the preStop hooks of `containers` (in parallel), together bounded by the grace period."""
        grace = (p.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        timeout = min(float(grace) if isinstance(grace, int | float) else 30.0, MAX_PRE_STOP)
        threads = []
        for c in containers:
            handler = lifecycle_handler(c.spec, "preStop")
            if handler is None or not c.id:
                continue
            t = threading.Thread(
                target=self._handler_result, args=(p, c, handler, timeout), name="nbkube-prestop", daemon=True
            )
            t.start()
            threads.append(t)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _probe(self, p: _Pod, c: _Ctr, probe: Obj) -> bool:
        return self._probe_result(p, c, probe).ok

    def _probe_result(self, p: _Pod, c: _Ctr, probe: Obj) -> ProbeResult:
        """One check of `probe` (the shared `nbkube.node.probes.run_probe`) against pod `p`."""
        timeout = float(probe.get("timeoutSeconds") or 1)
        host = p.pod_ip or "127.0.0.1"
        ports = list(c.spec.get("ports") or [])
        results: list[ProbeResult] = []

        def check() -> bool:
            result = run_probe(
                probe, host=host, ports=ports, exec_fn=lambda argv, t: self._exec_bounded(c, argv, t)
            )
            results.append(result)
            return result.ok

        if "exec" in probe:
            check()
        else:
            self._in_pod_netns(p, check, timeout)
        return results[0] if results else ProbeResult(False, f"no answer within {timeout:g}s")

    def _exec_bounded(self, c: _Ctr, argv: list[str], timeout: float) -> tuple[int, str]:
        """`exec` for a probe: a command still running after `timeout` counts as a failure."""
        out: list[tuple[int, str]] = []

        def run() -> None:
            with contextlib.suppress(Exception):
                res = self.client.api.exec_create(c.id, argv)
                output = self.client.api.exec_start(res["Id"])
                code = self.client.api.exec_inspect(res["Id"]).get("ExitCode")
                out.append(
                    (int(code if code is not None else -1), bytes(output or b"").decode("utf-8", "replace"))
                )

        t = threading.Thread(target=run, name="nbkube-probe-exec", daemon=True)
        t.start()
        t.join(timeout + 1.0)  # + the API round trips
        return out[0] if out else (-1, f"command timed out after {timeout:g}s")

    def _in_pod_netns(self, p: _Pod, check: Callable[[], bool], timeout: float) -> bool:
        """Run `check` from inside the pod's network namespace (as its own containers see it).

        Pod IPs on a node bridge may not be routed from where this process runs; setns(2) affects
        only the calling thread, so a short-lived thread enters the pod's netns and ends after."""
        if self.network is None or os.geteuid() != 0 or not p.pause_pid:
            return check()
        result: list[bool] = []

        def run() -> None:
            try:
                fd = os.open(f"/proc/{p.pause_pid}/ns/net", os.O_RDONLY)
                try:
                    setns(fd)  # for good: this thread ends after the check
                finally:
                    os.close(fd)
                result.append(check())
            except Exception:
                return

        t = threading.Thread(target=run, name="nbkube-probe-netns", daemon=True)
        t.start()
        t.join(timeout + 1.0)
        return bool(result and result[0])


# ---------------------------------------------------------------------- helpers


def _follow(stream: Any) -> Generator[str, None, None]:
    """Decoded chunks of a followed log stream; closing the iterator closes the HTTP stream."""
    try:
        for chunk in stream:
            yield chunk.decode("utf-8", "replace")
    finally:
        with contextlib.suppress(Exception):
            stream.close()


def _msg(exc: BaseException) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def _ts(value: Any) -> float | None:
    if not value or str(value).startswith("0001-"):
        return None
    text = str(value)
    # Docker gives nanoseconds; rfc3339 parsing wants at most microseconds
    m = re.match(r"^(.*?\.\d{1,6})\d*(Z|[+-]\d\d:\d\d)$", text)
    if m:
        text = m.group(1) + m.group(2)
    try:
        return float(parse_rfc3339(text))
    except Exception:
        return None


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names replaced, unknown left as written, $$ -> $."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def _raw_usage(stats: dict[str, Any]) -> RawUsage:
    """A container's cumulative CPU and working-set memory from the engine's stats answer.

    Working set as the kubelet computes it: usage less inactive page cache (cgroup v2 names it
    `inactive_file`, v1 `total_inactive_file`)."""
    cpu_ns = int(((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0)
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    inactive = int(detail.get("inactive_file", detail.get("total_inactive_file", 0)) or 0)
    used = int(mem.get("usage") or 0)
    return RawUsage(cpu_ns / 1e9, max(0, used - inactive))
