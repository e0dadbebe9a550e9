"""The process runtime: each container's command runs as a host process, like Nomad's raw_exec.

Who calls it: the node agent through the `Runtime` seam in the embedded, rootless mode
(`create_runtime("process", state_dir=..., clock=...)`, wired by `nbkube.node.kit`), the CLI's
`logs` and `exec` through `logs()` / `exec()`, and the tests. No root, no Docker, no images:

- images: `busybox` (any tag or registry prefix) is the host's busybox binary; the container's
  command (or the image's default `sh`) runs as a busybox applet when busybox has one, else as a
  program found on this host. Any other image needs an explicit `command` whose program exists
  here; otherwise the container waits with `ErrImagePull` and says why;
- network: the agent gives each pod its own loopback address (from the cluster's block of
  127.0.0.0/8, `nbkube.node.network.blocks`); the
  containers of a pod share it, and a server must bind it (`httpd -f -p $(POD_IP):8080`) rather
  than 0.0.0.0, which two pods would both want. Ports below 1024 need root: declared ones are
  refused up front, with a message saying so, when running unprivileged;
- volumes: emptyDir is a per-pod directory, hostPath the given path, configMap/secret files written
  from `resolve_volume`; each is exposed as env `NBKUBE_VOLUME_<NAME>` because `mountPath` cannot be
  honoured without root or mount namespaces (the container's status message says so);
- lifecycle: every container runs in its own session (process group), so stopping it signals the
  whole group (SIGTERM, then SIGKILL after the grace period capped to `stop_grace_cap`); output
  goes to a per-container log file. One reaper thread per runtime notices exits, restarts per
  `restartPolicy` with the kubelet's doubling back-off (scaled by `backoff_base`), and runs probes
  (`nbkube.node.probes`: startup, then readiness and liveness) on a small pool. Init containers run
  one after another, each to success, before the app containers start (their progress shows on
  the app containers: PodInitializing, Init:Error, Init:CrashLoopBackOff). `lifecycle` hooks run
  as the kubelet runs them: postStart after the start (a failure kills the container, which
  restarts per policy; probes wait for it), preStop before the SIGTERM, within the grace period;
- resources (`nbkube.node.runtime.podfields` says what is refused): `limits.memory` bounds each
  container process's address space (RLIMIT_AS: an allocation beyond it fails, as a cgroup limit
  would end the container); `limits.cpu` and `emptyDir.sizeLimit` are refused (no cgroups, no
  bounded folders), naming the field;
- securityContext (`nbkube.node.runtime.security`): runAsUser / runAsGroup / supplementalGroups /
  fsGroup switch the process's ids when the runtime runs as root; allowPrivilegeEscalation=false
  and capabilities.drop set no_new_privs; runAsNonRoot is checked against the uid it will run as;
  hostNetwork pods report the node's address as their IP (every process is in the host's network
  namespace). What it cannot do (privileged, added capabilities, a read-only root filesystem,
  seccomp/AppArmor/SELinux confinement, sysctls, another uid without root) is refused at
  `start_pod` with the field named, so the pod fails with that message instead of running laxer;
- ownership: each pod's pids (with their kernel start times) are kept in a JSON file, and every
  container process carries in its environment who started it (`OWNER_ENV`, `STATE_ENV`, and the
  kit's `identity`: the cluster's id and the node's name) and inherits `pass_fds` (the lock that
  keeps the cluster's address block taken). `close()` kills everything; a new runtime on the same
  `state_dir` (the node's agent restarted, or its whole process killed) adopts the pods the last one
  left running and kills only what it alone could own: processes of this `state_dir` whose runtime
  died and that no saved pod accounts for. It never touches another node's, another cluster's or
  another user's processes, whoever runs it (root included).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import parse_memory
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import BadRequest, NotFound
from nbkube.fileutil import replace_file
from nbkube.logutil import log_failure
from nbkube.node.probes import ProbeResult, ProbeTracker, run_probe
from nbkube.node.runtime import logtimes
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus, PodSandboxConfig, check_pod
from nbkube.node.runtime.dnsconf import dns_refusals
from nbkube.node.runtime.podfields import env_from, lifecycle_handler, refusals
from nbkube.node.runtime.security import container_context, identity, process_refusals
from nbkube.node.runtime.session import PopenSession, make_controlling_tty
from nbkube.node.runtime.usage import RawUsage, session_usage
from nbkube.node.runtime.volumes import (
    ClaimResolver,
    PodConfigError,
    VolumeResolver,
    claim_path,
    file_mode,
    host_path,
    pod_hostname,
    source_files,
    write_volume_files,
)

__all__ = ["ProcessRuntime", "find_busybox", "busybox_applets", "expand_vars", "volume_env_name"]

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0  # the kubelet's cap on the crash-loop back-off, before scaling
DEFAULT_GRACE = 30.0  # terminationGracePeriodSeconds when the pod gives none
FAST_READINESS = 0.1  # readiness probed this often until its first success
HOOK_TIMEOUT = 30.0  # a postStart hook still running after this long has failed
BUSYBOX_DEFAULT_CMD = ["sh"]  # the busybox image's CMD
_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
_SUPPORTED_VOLUMES = ("emptyDir", "hostPath", "configMap", "secret", "persistentVolumeClaim")

# what a container's JSON state keeps besides its pid (for adoption by a later runtime)
_SAVED_FIELDS = (
    "state",
    "reason",
    "message",
    "note",
    "ready",
    "restart_count",
    "crash_streak",
    "exit_code",
    "started_at",
    "finished_at",
    "last_terminated",
    "env",
    "cwd",
    "log_runs",
)
# every child any ProcessRuntime of this Python process started, by pid: a runtime that adopts
# them in the same process (a restarted node agent) still reaps them and learns their exit codes
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_PR_SET_NO_NEW_PRIVS = 38
# looked up before any fork: a child must not load libraries between fork and exec
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def closed_folder(path: str, uid: int, gids: set[int]) -> str:
    """The first folder on the way to `path` that `uid` (in `gids`) may not enter, or ""."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        folder = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(folder)
        except OSError:
            return folder
        if st.st_uid == uid:
            ok = bool(st.st_mode & 0o100)
        elif st.st_gid in gids:
            ok = bool(st.st_mode & 0o010)
        else:
            ok = bool(st.st_mode & 0o001)
        if not ok:
            return folder
    return ""


def _limit_memory(limit: int) -> None:
    """In the child before exec (resources.limits.memory): bound its address space."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _chain(fns: list[Any]) -> Any:
    def run() -> None:
        for fn in fns:
            fn()

    return run


def _no_new_privs() -> None:
    """In the child before exec (allowPrivilegeEscalation=false, capabilities.drop): setuid bits
    and file capabilities grant nothing from here on, as runc's no_new_privs."""
    if _prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


# ---------------------------------------------------------------------- small pure helpers


def find_busybox(explicit: str | None = None) -> str | None:
    """The host's busybox binary (`busybox-static` package), or None."""
    for candidate in (explicit, shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_APPLETS: dict[str, frozenset[str]] = {}


def busybox_applets(busybox: str) -> frozenset[str]:
    """The applets `busybox --list` names (cached per binary)."""
    if busybox not in _APPLETS:
        try:
            out = subprocess.run(
                [busybox, "--list"], capture_output=True, text=True, timeout=5, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        _APPLETS[busybox] = frozenset(line.strip() for line in out.splitlines() if line.strip())
    return _APPLETS[busybox]


def is_busybox_image(image: str) -> bool:
    """`busybox`, `busybox:1.36`, `docker.io/library/busybox@sha256:...` and the like."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    repo = name.rsplit("/", 1)[0] if "/" in name else ""
    base = last.split(":", 1)[0]
    return base == "busybox" and repo in ("", "library", "docker.io/library", "index.docker.io/library")


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names replaced, unknown left as written, `$$` -> `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def volume_env_name(volume: str) -> str:
    """`NBKUBE_VOLUME_<NAME>`: the env var that tells a container where its volume is."""
    return "NBKUBE_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, kernel start time in clock ticks) of `pid`; the start time tells a pid from its reuse."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: fields count from the last ')'
    fields = data[data.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _proc_start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


OWNER_ENV = "NBKUBE_RUNTIME_OWNER"
STATE_ENV = "NBKUBE_RUNTIME_STATE"
_OWNER = f"{os.getpid()}:{_proc_start_ticks(os.getpid())}"


def reap_orphans(state_dir: str, keep: Iterable[int] = ()) -> int:
    """Kill this state directory's container processes that nobody owns any more.

    They were started by a runtime on `state_dir` whose process died (a killed kernel or `nbkube
    up`) and are not among `keep` (the pids this runtime adopted from its saved pods), so no pod
    accounts for them: a crash between a start and the state file's write. Only processes whose
    environment names `state_dir` are candidates, so another node's orphans (which its own runtime
    adopts) and other clusters' processes are never touched. Returns how many groups were killed."""
    keep = set(keep)
    wanted = f"{STATE_ENV}={state_dir}".encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        if wanted not in items:
            continue  # not a container of this state directory
        try:
            if os.getpgid(pid) != pid:
                continue  # a child of a container: killing its group's leader takes it too
        except OSError:
            continue
        prefix = f"{OWNER_ENV}=".encode()
        owner = next((i[len(prefix) :].decode() for i in items if i.startswith(prefix)), "")
        owner_pid, _, owner_ticks = owner.partition(":")
        if owner_pid.isdigit() and str(_proc_start_ticks(int(owner_pid))) == owner_ticks:
            continue  # its runtime is alive (one being replaced in this very process)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
            killed += 1
    if killed:
        log.warning(
            "process runtime %s: killed %d container process group(s) that no saved pod accounts for",
            state_dir,
            killed,
        )
    return killed


def _exited(pid: int) -> bool:
    """Whether child `pid` has exited, without reaping it (so its process group stays ours)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _prepend(first: str, chunks: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from chunks


def _close_quietly(f: IO[bytes] | None) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            f.close()


def _exit_code(returncode: int) -> int:
    # a signal shows as 128 + signal number, as in a container's exit code
    return 128 - returncode if returncode < 0 else returncode


# ---------------------------------------------------------------------- per-pod state


class _Proc:
    """A container's main process: our child, or one adopted from an earlier runtime on this state_dir.

    Its pid is also its process group (each container starts a session), and its kernel start time
    tells it apart from a later process that reuses the pid."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None, ticks: int | None = None):
        self.pid = pid
        self.popen = popen
        self.ticks = ticks if ticks is not None else _proc_start_ticks(pid)

    @property
    def adopted(self) -> bool:
        return self.popen is None

    def exited(self) -> bool:
        if self.popen is not None:
            return _exited(self.pid)
        stat = _proc_stat(self.pid)  # not our child: init reaps it, we can only look
        return stat is None or stat[1] != self.ticks or stat[0] in ("Z", "X")

    def reap(self, timeout: float) -> int | None:
        """The exit code once it has ended (None when unknown: an adopted process)."""
        if self.popen is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        if self.popen.returncode is not None:
            _CHILDREN.pop(self.pid, None)
        return _exit_code(self.popen.returncode) if self.popen.returncode is not None else None

    def signal_group(self, sig: int) -> None:
        # an adopted pid that is no longer the same process must not be signalled
        if self.popen is None and _proc_start_ticks(self.pid) != self.ticks:
            return
        _killpg(self.pid, sig)


@dataclass
class _Ctr:
    spec: Obj
    name: str
    image: str
    state: str = "waiting"
    reason: str = "ContainerCreating"
    message: str = ""
    note: str = ""  # shown while running (volumeMounts that cannot be honoured)
    ready: bool = False
    restart_count: int = 0
    crash_streak: int = 0
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    last_terminated: dict[str, Any] | None = None
    retry_at: float | None = None  # when the next start is due
    proc: _Proc | None = None
    stopping: bool = False  # a kill is in progress: the reaper keeps its hands off
    kill_reason: str = ""  # why we killed it (liveness), for the termination record
    kill_message: str = ""
    probe_busy: bool = False
    hook_busy: bool = False  # postStart runs: no probe until it is done
    readiness: ProbeTracker | None = None
    liveness: ProbeTracker | None = None
    startup: ProbeTracker | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    stdin: IO[bytes] | None = None  # the main process's stdin, kept open when spec.stdin is true
    log_runs: list[int] = field(default_factory=list)  # where the last two runs began in the log
    log_seen: int = 0  # the log's size when the reaper last noted its growth


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    pod: Obj
    sandbox: PodSandboxConfig
    created_at: float
    containers: list[_Ctr]
    dir: str
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> host path
    volume_error: PodConfigError | None = None
    stopped: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock)
    init: list[_Ctr] = field(default_factory=list)  # init containers, in order
    init_done: bool = True

    @property
    def spec(self) -> Obj:
        return self.pod.get("spec") or {}

    @property
    def restart_policy(self) -> str:
        return str(self.spec.get("restartPolicy") or "Always")

    @property
    def pod_ip(self) -> str:
        """hostNetwork: the node's own address (the process is in the host's namespace anyway)."""
        if self.spec.get("hostNetwork") is True and self.sandbox.host_ip:
            return self.sandbox.host_ip
        return self.sandbox.pod_ip

    @property
    def grace(self) -> float:
        value = self.spec.get("terminationGracePeriodSeconds")
        return float(value) if isinstance(value, int | float) and value >= 0 else DEFAULT_GRACE


class ProcessRuntime:
    """Runs pods as host processes; see the module docstring. Thread-safe."""

    name = "process"

    def __init__(
        self,
        state_dir: str,
        *,
        clock: Clock = REAL_CLOCK,
        busybox: str | None = None,
        backoff_base: float = 10.0,
        unprivileged: bool | None = None,
        resolve_volume: VolumeResolver | None = None,
        resolve_claim: ClaimResolver | None = None,
        node_name: str = "",
        poll_interval: float = 0.05,
        stop_grace_cap: float = 3.0,
        probe_workers: int = 4,
        pass_fds: Iterable[int] = (),
        identity: Mapping[str, str] | None = None,
    ) -> None:
        if not state_dir:
            raise BadRequest("process runtime: state_dir is required")
        if backoff_base <= 0:
            raise BadRequest(f"process runtime: backoff_base must be > 0, got {backoff_base!r}")
        if poll_interval <= 0 or stop_grace_cap < 0:
            raise BadRequest("process runtime: poll_interval must be > 0 and stop_grace_cap >= 0")
        self.state_dir = os.path.abspath(state_dir)
        self.clock = clock
        self.busybox = find_busybox(busybox)
        if busybox and self.busybox != busybox:
            raise BadRequest(f"process runtime: busybox {busybox!r} is not an executable file")
        self.backoff_base = float(backoff_base)
        self.max_backoff = MAX_BACKOFF * self.backoff_base / 10.0
        self.unprivileged = os.geteuid() != 0 if unprivileged is None else bool(unprivileged)
        self.resolve_volume = resolve_volume
        self.resolve_claim = resolve_claim
        self.node_name = node_name
        self.poll_interval = float(poll_interval)
        self.stop_grace_cap = float(stop_grace_cap)
        self.pass_fds = tuple(pass_fds)  # inherited by every container process (the block's lock)
        self.identity = dict(identity or {})  # in every container's environment (cluster, node)
        self._pods: dict[str, _Pod] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._closed = False
        os.makedirs(self._pods_dir, exist_ok=True)
        self.adopted, self.killed_leftovers = self._adopt()
        self.reaped_orphans = reap_orphans(self.state_dir, keep=self._pids())
        self._pool = ThreadPoolExecutor(max_workers=probe_workers, thread_name_prefix="nbkube-process-probe")
        self._thread = threading.Thread(target=self._reaper, name="nbkube-process-reaper", daemon=True)
        self._thread.start()

    def _pids(self) -> set[int]:
        return {
            c.proc.pid for p in self._pods.values() for c in [*p.init, *p.containers] if c.proc is not None
        }

    @property
    def _pods_dir(self) -> str:
        return os.path.join(self.state_dir, "pods")

    # ------------------------------------------------------------------ the Runtime protocol

    def start_pod(self, pod: Obj, sandbox: PodSandboxConfig) -> None:
        uid, where = check_pod(pod, "process")
        refused = process_refusals(pod, euid=os.geteuid(), egid=os.getegid()) + refusals(pod, "process")
        refused += dns_refusals(pod)
        if refused:
            raise BadRequest(f"{where}: " + "; ".join(refused))
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or []
        with self._lock:
            if self._closed:
                raise BadRequest("process runtime is closed")
            if uid in self._pods:
                return
            now = self.clock.now()
            p = _Pod(
                uid=uid,
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name") or ""),
                pod={k: v for k, v in pod.items() if k != "status"},
                sandbox=sandbox,
                created_at=now,
                containers=[
                    _Ctr(spec=c, name=str(c["name"]), image=str(c["image"]), retry_at=now) for c in containers
                ],
                dir=os.path.join(self._pods_dir, uid),
                init=[
                    _Ctr(spec=c, name=str(c["name"]), image=str(c["image"]))
                    for c in spec.get("initContainers") or []
                ],
            )
            if p.init:
                p.init_done = False
                p.init[0].retry_at = now
                for c in p.containers:
                    c.retry_at, c.reason = None, "PodInitializing"
            self._pods[uid] = p
        with p.lock:
            self._save_state(p)
        self._wake.set()

    def release_sandbox(self, uid: str) -> bool:
        # a pod's loopback address is held by its processes only, and they have all exited
        return True

    def stop_pod(self, uid: str) -> None:
        with self._lock:
            p = self._pods.pop(uid, None)
        if p is None:
            return
        self._kill_pod(p)
        shutil.rmtree(p.dir, ignore_errors=True)

    def pod_status(self, uid: str) -> PodRuntimeStatus | None:
        with self._lock:
            p = self._pods.get(uid)
        return self._status_of(p) if p is not None else None

    def list_pods(self) -> list[PodRuntimeStatus]:
        with self._lock:
            pods = list(self._pods.values())
        return [self._status_of(p) for p in pods]

    def usage(self) -> dict[str, dict[str, RawUsage]]:
        """uid -> running container -> (CPU seconds, resident bytes) of its process session (/proc)."""
        with self._lock:
            pods = list(self._pods.values())
        sessions = session_usage()
        out: dict[str, dict[str, RawUsage]] = {}
        for p in pods:
            found: dict[str, RawUsage] = {}
            for c in p.containers:
                proc = c.proc
                if proc is not None and c.state == "running" and proc.pid in sessions:
                    found[c.name] = sessions[proc.pid]
            out[p.uid] = found
        return out

    def close(self, remove: bool = True) -> None:
        """Stop the reaper and the probe pool and, with `remove` (the default), every pod: no
        process of ours survives. `remove=False` leaves the pods running with their state files, for
        a new runtime on the same state_dir to adopt (a node agent's restart)."""
        with self._lock:
            self._closed = True
            pods = list(self._pods.values())
            self._pods.clear()
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if not remove:
            self._pool.shutdown(wait=True, cancel_futures=True)
            for p in pods:
                with p.lock:
                    p.stopped = True  # to this runtime; the processes go on
                    self._save_state(p)
            return
        for p in pods:
            p.stopped = True
        # all pods at once: SIGTERM everywhere, then one shared grace period
        threads = [threading.Thread(target=self._kill_pod, args=(p,), daemon=True) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=self.stop_grace_cap + 5.0)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for p in pods:
            shutil.rmtree(p.dir, ignore_errors=True)

    # ------------------------------------------------------------------ extras: logs, exec

    def log_path(self, uid: str, container: str) -> str:
        p, c = self._find(uid, container)
        return os.path.join(p.dir, "logs", f"{c.name}.log")

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
    ) -> str | Iterator[str]:
        """The container's output (stdout and stderr, every run); with `follow`, an iterator of
        chunks that ends when the container is no longer running (or the pod stops). `previous`:
        the run before the current one. `since` and `timestamps` use the times the reaper noted
        the log growing (nbkube/node/runtime/logtimes.py)."""
        path = self.log_path(uid, container)
        data, start = b"", 0
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            if previous:
                p, c = self._find(uid, container)
                with p.lock:
                    runs = list(c.log_runs)
                if len(runs) < 2:
                    raise BadRequest(
                        f'previous terminated container "{container}" in pod "{p.name}" not found'
                    )
                f.seek(runs[0])
                data, start = f.read(runs[1] - runs[0]), runs[0]
                follow = False  # a finished run has nothing more to say
            else:
                data = f.read()
        end = start + len(data)
        lines = logtimes.timed_lines(data, start, logtimes.load(path), time.time())
        if since is not None:
            lines = [(t, line) for t, line in lines if t >= since]
        if tail is not None:
            if tail < 0:
                raise BadRequest(f"logs: tail must be >= 0, got {tail}")
            lines = lines[len(lines) - tail :] if tail else []
        text = logtimes.render(lines, since=None, timestamps=timestamps)
        if not follow:
            return text
        chunks = self._follow(uid, container, path, end)
        return logtimes.stamp_stream(chunks, text) if timestamps else _prepend(text, chunks)

    def _follow(self, uid: str, container: str, path: str, offset: int) -> Iterator[str]:
        while True:
            chunk = b""
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if chunk:
                offset += len(chunk)
                yield chunk.decode("utf-8", "replace")
                continue
            with self._lock:
                p = self._pods.get(uid)
            c = next((x for x in p.containers if x.name == container), None) if p else None
            if p is None or c is None or p.stopped or c.state != "running":
                return
            time.sleep(0.1)

    def exec(self, uid: str, container: str, argv: list[str], timeout: float = 60.0) -> tuple[int, str]:
        """Run `argv` with the container's environment and working directory; (exit code, output)."""
        if not argv:
            raise BadRequest("exec: a command is required")
        p, c = self._find(uid, container)
        with p.lock:
            env, cwd = dict(c.env), c.cwd
        if not cwd:
            raise BadRequest(f"exec: container {container} of pod {p.name} has not started")
        return self._run(p, c, list(argv), env, cwd, timeout)

    def _run(
        self, p: _Pod, c: _Ctr, argv: list[str], env: dict[str, str], cwd: str, timeout: float
    ) -> tuple[int, str]:
        try:
            resolved = self._resolve(c.image, argv, env)
        except PodConfigError as err:
            return 126, err.message
        try:
            proc = subprocess.Popen(
                resolved,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._identity_options(p, c, None),  # exec and probes run as the container does
            )
        except OSError as exc:
            return 126, f"exec {argv[0]}: {exc.strerror or exc}"
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return 137, out.decode("utf-8", "replace") + f"\nexec timed out after {timeout:g}s"
        _killpg(proc.pid, signal.SIGKILL)  # what it left in the background dies with it
        return _exit_code(proc.returncode), out.decode("utf-8", "replace")

    # ------------------------------------------------------------------ streams: exec, attach, ports

    def exec_stream(
        self, uid: str, container: str, argv: list[str], *, stdin: bool, tty: bool
    ) -> PopenSession:
        """An interactive exec (nbkube/node/runtime/session.py): `argv` with the container's
        environment, working directory and user, on pipes or (`tty`) a pseudo-terminal."""
        if not argv:
            raise BadRequest("exec: a command is required")
        p, c = self._running(uid, container)
        with p.lock:
            env, cwd = dict(c.env), c.cwd
        try:
            resolved = self._resolve(c.image, argv, env)
        except PodConfigError as err:
            raise BadRequest(err.message) from None
        opts = self._identity_options(p, c, None)
        master: int | None = None
        if tty:
            master, slave = os.openpty()
            env.setdefault("TERM", "xterm")
            inner = opts.get("preexec_fn")

            def preexec() -> None:
                make_controlling_tty()
                if inner is not None:
                    inner()

            opts["preexec_fn"] = preexec
            streams: dict[str, Any] = {"stdin": slave, "stdout": slave, "stderr": slave}
        else:
            streams = {
                "stdin": subprocess.PIPE if stdin else subprocess.DEVNULL,
                "stdout": subprocess.PIPE,
                "stderr": subprocess.PIPE,
            }
        try:
            proc = subprocess.Popen(resolved, cwd=cwd, env=env, start_new_session=True, **streams, **opts)
        except OSError as exc:
            if master is not None:
                os.close(master)
            raise BadRequest(f"exec {argv[0]}: {exc.strerror or exc}") from None
        finally:
            if tty:
                os.close(slave)
        return PopenSession(proc, master)

    def attach(self, uid: str, container: str, *, stdin: bool, tty: bool = False) -> ProcessAttach:
        """An attach to the container's main process: its output from now on (the log's end), and
        with `stdin` its standard input, which needs `stdin: true` in the container's spec."""
        p, c = self._running(uid, container)
        if tty:
            raise BadRequest(
                f"container {container} of pod {p.name}: the process runtime starts containers on "
                "pipes, not a terminal: attach without -t"
            )
        if stdin and c.spec.get("stdin") is not True:
            raise BadRequest(
                f"container {container} of pod {p.name} was not started with stdin: true; "
                "attach without -i, or set spec.containers[].stdin"
            )
        with p.lock:
            if stdin and c.stdin is None:
                raise BadRequest(
                    f"container {container} of pod {p.name}: its standard input is closed "
                    "(stdinOnce, or the process was adopted from an earlier runtime)"
                )
            proc = c.proc
        return ProcessAttach(self, p, c, proc, self.log_path(uid, container), stdin=stdin)

    def connect_port(self, uid: str, port: int, timeout: float = 10.0) -> socket.socket:
        """A TCP connection to `port` at the pod's address (its loopback address on this host)."""
        with self._lock:
            p = self._pods.get(uid)
        if p is None:
            raise NotFound(f"pod {uid} is not running on this node")
        try:
            return socket.create_connection((p.pod_ip, port), timeout=timeout)
        except OSError as exc:
            raise BadRequest(
                f"error forwarding port {port} to pod {p.name}: connect to {p.pod_ip}:{port}: "
                f"{exc.strerror or exc}"
            ) from None

    def _running(self, uid: str, container: str) -> tuple[_Pod, _Ctr]:
        p, c = self._find(uid, container)
        with p.lock:
            if c.state != "running" or c.proc is None or not c.cwd:
                raise BadRequest(f"container {container} of pod {p.name} is not running")
        return p, c

    def _find(self, uid: str, container: str) -> tuple[_Pod, _Ctr]:
        with self._lock:
            p = self._pods.get(uid)
        if p is None:
            raise NotFound(f"pod {uid} is not running on this node")
        for c in [*p.containers, *p.init]:
            if c.name == container:
                return p, c
        raise NotFound(f"pod {p.name} has no container {container!r}")

    # ------------------------------------------------------------------ status

    def _status_of(self, p: _Pod) -> PodRuntimeStatus:
        now = self.clock.now()
        statuses: list[ContainerStatus] = []
        nexts: list[float] = []
        with p.lock:
            for c in p.containers:
                pid = c.proc.pid if c.proc is not None and c.state == "running" else None
                statuses.append(
                    ContainerStatus(
                        name=c.name,
                        image=c.image,
                        state=c.state,  # type: ignore[arg-type]
                        reason=c.reason if c.state != "running" else "",
                        message=c.message if c.state != "running" else c.note,
                        ready=c.ready and c.state == "running",
                        restart_count=c.restart_count,
                        exit_code=c.exit_code if c.state == "terminated" else None,
                        started_at=c.started_at,
                        finished_at=c.finished_at if c.state == "terminated" else None,
                        container_id=f"process://{pid}" if pid else "",
                        image_id=f"process://{self.busybox}"
                        if is_busybox_image(c.image) and self.busybox
                        else "",
                        last_terminated=dict(c.last_terminated) if c.last_terminated else None,
                        started=c.state == "running" and (c.startup is None or c.startup.passing),
                    )
                )
                if c.state == "waiting" and c.retry_at is not None:
                    nexts.append(c.retry_at)
                elif c.state == "running" and c.readiness is not None and not c.ready:
                    nexts.append(c.readiness.next_at)
            for ic in p.init if not p.init_done else []:
                if ic.state == "waiting" and ic.retry_at is not None:
                    nexts.append(ic.retry_at)
                elif ic.state == "running":
                    nexts.append(now + 0.2)  # its end lets the app containers start: look again soon
        return PodRuntimeStatus(
            uid=p.uid,
            namespace=p.namespace,
            name=p.name,
            sandbox_ready=True,
            pod_ip=p.pod_ip,
            containers=statuses,
            created_at=p.created_at,
            next_check=max(0.0, min(nexts) - now) if nexts else None,
        )

    # ------------------------------------------------------------------ the reaper thread

    def _reaper(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:
                log_failure(log, "process runtime: reaper pass", exc)
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            pods = list(self._pods.values())
        for p in pods:
            if self._stop.is_set():
                return
            with p.lock:
                if p.stopped:
                    continue
                now = self.clock.now()
                if not p.init_done:
                    self._tick_init(p, now)
                    continue
                for c in p.containers:
                    if c.stopping:
                        continue
                    if c.state == "running" and c.proc is not None:
                        # when the log grew, for `logs --timestamps/--since` (logtimes.py)
                        c.log_seen = logtimes.note_growth(
                            os.path.join(p.dir, "logs", f"{c.name}.log"), c.log_seen, time.time()
                        )
                        if c.proc.exited():
                            c.log_seen = logtimes.note_growth(  # its last words, written as it ended
                                os.path.join(p.dir, "logs", f"{c.name}.log"), c.log_seen, time.time()
                            )
                            self._on_exit(p, c)
                        else:
                            self._schedule_probes(p, c, now)
                    elif c.state == "waiting" and c.retry_at is not None and c.retry_at <= now:
                        self._start(p, c)

    def _tick_init(self, p: _Pod, now: float) -> None:
        """Run the pod's init containers one after another, each to success (under p.lock); then
        let the app containers start."""
        for ic in p.init:
            if ic.state == "terminated" and ic.exit_code == 0:
                continue
            if ic.stopping:
                return
            if ic.state == "running" and ic.proc is not None:
                if ic.proc.exited():
                    self._on_init_exit(p, ic)
            elif ic.state == "waiting" and ic.retry_at is not None and ic.retry_at <= now:
                self._start(p, ic)
                if ic.state == "running":
                    self._show_init(p, "waiting", "PodInitializing", f"init container {ic.name} running")
                else:
                    self._show_init(
                        p, "waiting", f"Init:{ic.reason}", f"init container {ic.name}: {ic.message}"
                    )
            return  # one at a time, in order
        p.init_done = True
        for c in p.containers:
            c.state, c.reason, c.message, c.exit_code, c.retry_at = (
                "waiting",
                "ContainerCreating",
                "",
                None,
                now,
            )
        self._save_state(p)
        self._wake.set()

    def _show_init(self, p: _Pod, state: str, reason: str, message: str, code: int | None = None) -> None:
        """Init progress on the app containers, as the runtime status has no init container list."""
        for c in p.containers:
            c.state, c.reason, c.message, c.exit_code, c.retry_at = state, reason, message, code, None
            if state == "terminated":
                c.finished_at = self.clock.now()

    def _on_init_exit(self, p: _Pod, ic: _Ctr) -> None:
        """Record the end of init container `ic` (under p.lock): the next one, a retry, or a failed pod."""
        assert ic.proc is not None
        ic.proc.signal_group(signal.SIGKILL)
        reaped = ic.proc.reap(1.0)
        ic.proc = None
        now = self.clock.now()
        code = 255 if reaped is None else reaped
        ic.finished_at = now
        if code == 0:
            ic.state, ic.reason, ic.exit_code, ic.message, ic.retry_at = (
                "terminated",
                "Completed",
                0,
                "",
                None,
            )
            following = next((x for x in p.init if not (x.state == "terminated" and x.exit_code == 0)), None)
            if following is not None:
                following.retry_at = now
        elif p.restart_policy == "Never":
            ic.state, ic.reason, ic.exit_code, ic.retry_at = "terminated", "Error", code, None
            self._show_init(
                p, "terminated", "Init:Error", f"init container {ic.name} exited with {code}", code
            )
        else:
            delay = min(self.backoff_base * (2 ** min(ic.crash_streak, 30)), self.max_backoff)
            ic.crash_streak += 1
            ic.last_terminated = {
                "exitCode": code,
                "reason": "Error",
                "startedAt": ic.started_at or now,
                "finishedAt": now,
            }
            ic.state, ic.reason, ic.retry_at = "waiting", "CrashLoopBackOff", now + delay
            self._show_init(
                p,
                "waiting",
                "Init:CrashLoopBackOff",
                f"init container {ic.name} exited with {code}; back-off {delay:g}s",
            )
        self._save_state(p)
        self._wake.set()

    def _on_exit(self, p: _Pod, c: _Ctr) -> None:
        """Record the end of `c`'s run (under p.lock) and decide on its restart."""
        assert c.proc is not None
        c.proc.signal_group(signal.SIGKILL)  # the container is over: so is all it started
        _close_quietly(c.stdin)
        c.stdin = None
        reaped = c.proc.reap(1.0)
        c.proc = None
        now = self.clock.now()
        code = 255 if reaped is None else reaped
        reason = c.kill_reason or ("Completed" if code == 0 else "Error")
        message = c.kill_message
        if reaped is None and not message:
            message = "exit code unknown: the process was adopted from an earlier runtime"
        c.kill_reason = c.kill_message = ""
        started = c.started_at or now
        if now - started >= 60 * self.backoff_base:  # ran long enough: back-off starts afresh
            c.crash_streak = 0
        c.ready = False
        c.readiness = c.liveness = c.startup = None
        restart = p.restart_policy == "Always" or (p.restart_policy == "OnFailure" and code != 0)
        if restart:
            c.last_terminated = {
                "exitCode": code,
                "reason": reason,
                "message": message,
                "startedAt": started,
                "finishedAt": now,
            }
            delay = min(self.backoff_base * (2 ** min(c.crash_streak, 30)), self.max_backoff)
            c.crash_streak += 1
            c.state, c.reason, c.exit_code = "waiting", "CrashLoopBackOff", None
            c.message = (
                message + "; " if message else ""
            ) + f"back-off {delay:g}s restarting failed container={c.name} pod={p.name}_{p.namespace}"
            c.retry_at = now + delay
            c.finished_at = now
        else:
            c.state, c.reason, c.exit_code, c.message = "terminated", reason, code, message
            c.finished_at = now
            c.retry_at = None
        self._save_state(p)

    # ------------------------------------------------------------------ starting a container

    def _start(self, p: _Pod, c: _Ctr) -> None:
        """Start (or restart) `c` now; under p.lock, in the reaper thread. Errors become its status."""
        c.retry_at = None
        try:
            argv, env, cwd, note = self._prepare(p, c)
        except PodConfigError as err:
            c.state, c.reason, c.message = "waiting", err.reason, err.message
            c.retry_at = self.clock.now() + min(5.0, self.backoff_base) if err.retry else None
            return
        log_dir = os.path.join(p.dir, "logs")
        os.makedirs(log_dir, exist_ok=True)
        with open(os.path.join(log_dir, f"{c.name}.log"), "ab") as logf:
            if note and c.restart_count == 0 and c.last_terminated is None:
                logf.write(f"[nbkube] {note}\n".encode())
                logf.flush()
            logf.seek(0, os.SEEK_END)
            c.log_runs = [*c.log_runs[-1:], logf.tell()]  # for `kubectl logs --previous`
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    # `stdin: true`: a pipe this runtime holds open for `kubectl attach` to feed
                    stdin=subprocess.PIPE if c.spec.get("stdin") is True else subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop kills all it starts
                    close_fds=True,
                    **self._identity_options(p, c, cwd),
                    pass_fds=self.pass_fds,
                )
            except OSError as exc:
                now = self.clock.now()
                c.state, c.reason = "waiting", "RunContainerError"
                c.message = f"cannot start {argv[0]}: {exc.strerror or exc}"
                c.retry_at = now + min(self.backoff_base * (2 ** min(c.crash_streak, 30)), self.max_backoff)
                c.crash_streak += 1
                return
        if c.last_terminated is not None or c.started_at is not None:
            c.restart_count += 1
        now = self.clock.now()
        c.proc = _Proc(proc.pid, proc)
        c.stdin = proc.stdin
        c.env, c.cwd, c.note = env, cwd, note
        c.state, c.reason, c.message, c.exit_code = "running", "", "", None
        c.started_at, c.finished_at = now, None
        _CHILDREN[proc.pid] = proc
        self._arm_probes(c, now, ready=False)
        self._save_state(p)
        handler = None if any(c is x for x in p.init) else lifecycle_handler(c.spec, "postStart")
        if handler is not None:
            c.hook_busy = True
            try:
                self._pool.submit(self._post_start, p, c, c.proc, handler)
            except RuntimeError:  # the pool is shutting down with the runtime
                c.hook_busy = False

    def _run_handler(self, p: _Pod, c: _Ctr, handler: Obj, timeout: float) -> ProbeResult:
        """One lifecycle hook action (exec, httpGet, tcpSocket, sleep), bounded by `timeout`."""
        if "sleep" in handler:
            seconds = float((handler.get("sleep") or {}).get("seconds") or 0)
            self._stop.wait(max(0.0, min(seconds, timeout)))
            return ProbeResult(True)
        with p.lock:
            env, cwd = dict(c.env), c.cwd

        def exec_fn(argv: list[str], limit: float) -> tuple[int, str]:
            return self._run(p, c, argv, env, cwd, limit)

        try:
            return run_probe(
                {**handler, "timeoutSeconds": max(timeout, 0.001)},
                host=p.pod_ip or "127.0.0.1",
                ports=list(c.spec.get("ports") or []),
                exec_fn=exec_fn,
            )
        except Exception as exc:  # a hook's bug must not take the reaper with it
            return ProbeResult(False, f"hook error: {exc}")

    def _post_start(self, p: _Pod, c: _Ctr, proc: _Proc | None, handler: Obj) -> None:
        """The postStart hook; a failure kills the container (which restarts per policy), as the kubelet does."""
        try:
            result = self._run_handler(p, c, handler, HOOK_TIMEOUT)
            with p.lock:
                if result.ok or p.stopped or c.proc is not proc or c.state != "running" or proc is None:
                    return
                c.stopping = True
                c.kill_reason = "Error"
                c.kill_message = f"PostStartHookError: {result.message}"
            log.info(
                "pod %s/%s container %s: postStart hook failed: %s",
                p.namespace,
                p.name,
                c.name,
                result.message,
            )
            self._terminate([proc], min(p.grace, self.stop_grace_cap))
            with p.lock:
                c.stopping = False
                if not p.stopped and c.proc is proc:
                    self._on_exit(p, c)
        finally:
            c.hook_busy = False
            self._wake.set()

    def _pre_stop(self, p: _Pod, targets: list[tuple[_Ctr, _Proc]], timeout: float) -> None:
        """Run the preStop hooks of `targets` (in parallel), together bounded by `timeout`."""
        threads = []
        for c, proc in targets:
            handler = lifecycle_handler(c.spec, "preStop")
            if handler is None or proc.exited():
                continue
            t = threading.Thread(
                target=self._run_handler, args=(p, c, handler, timeout), name="nbkube-prestop", daemon=True
            )
            t.start()
            threads.append(t)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _check_reachable(self, p: _Pod, c: _Ctr) -> None:
        """A container switched to another uid must be able to reach the pod's own volumes (a
        root-owned state dir under /root is not): say so, rather than fail on its first write."""
        who = identity(p.pod, c.spec)
        if os.geteuid() != 0 or who.uid in (None, 0):
            return
        gids = {*(who.groups or ()), who.gid if who.gid is not None else os.getegid()}
        # a claim's folder lies under the cluster's (private) folder: checked like the pod's own
        claims = {str(v.get("name")) for v in p.spec.get("volumes") or [] if v.get("persistentVolumeClaim")}
        for vname, path in p.volumes.items():
            if not path.startswith(p.dir + os.sep) and vname not in claims:
                continue  # hostPath: the host's permissions apply, as they would in a container
            blocker = closed_folder(path, who.uid, gids)
            if blocker:
                raise PodConfigError(
                    "CreateContainerConfigError",
                    f"container {c.name}: volume {vname} cannot be reached by uid {who.uid}: folder "
                    f"{blocker} is closed to it (give the node a state dir others may traverse)",
                )

    @staticmethod
    def _scratch(p: _Pod) -> str:
        """The pod's temporary folder (shared by its containers, as a pod's emptyDir would be)."""
        path = os.path.join(p.dir, "tmp")
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o1777)  # like /tmp: whichever runAsUser a container has may write
        return path

    def _identity_options(self, p: _Pod, c: _Ctr, cwd: str | None) -> dict[str, Any]:
        """Popen options that make the process run as the container's securityContext says.

        Switching ids needs root (start_pod refused it otherwise); the container's own working
        folder then belongs to the new uid, so $HOME is writable as under a container runtime."""
        opts: dict[str, Any] = {}
        sc = container_context(p.pod, c.spec)
        preexec: list[Any] = []
        if sc.get("allowPrivilegeEscalation") is False or (sc.get("capabilities") or {}).get("drop"):
            preexec.append(_no_new_privs)
        memory = ((c.spec.get("resources") or {}).get("limits") or {}).get("memory")
        if memory is not None:
            limit = parse_memory(memory)
            preexec.append(lambda: _limit_memory(limit))
        if preexec:
            opts["preexec_fn"] = _chain(preexec)
        if os.geteuid() != 0:
            return opts
        who = identity(p.pod, c.spec)
        if who.uid is None and who.gid is None and not who.groups:
            return opts
        if who.uid is not None:
            opts["user"] = who.uid
        if who.gid is not None:
            opts["group"] = who.gid
        opts["extra_groups"] = list(who.groups)  # never the agent's own supplementary groups
        if cwd is not None and cwd == os.path.join(p.dir, "containers", c.name):
            os.chown(cwd, -1 if who.uid is None else who.uid, -1 if who.gid is None else who.gid)
        return opts

    def _arm_probes(self, c: _Ctr, started: float, *, ready: bool) -> None:
        """Fresh probe trackers for a run that began at `started` (`ready`: as adopted)."""
        readiness, liveness = c.spec.get("readinessProbe"), c.spec.get("livenessProbe")
        startup = c.spec.get("startupProbe")
        c.ready = ready or not (readiness or startup)
        c.readiness = c.liveness = c.startup = None
        if startup and not ready:  # an adopted ready container has started
            c.startup = ProbeTracker(startup, "startup", started, first_success_period=FAST_READINESS)
        if readiness:
            c.readiness = ProbeTracker(readiness, "readiness", started, first_success_period=FAST_READINESS)
            c.readiness.passing = c.readiness.ever_succeeded = c.ready
        if liveness:
            c.liveness = ProbeTracker(liveness, "liveness", started)

    def _prepare(self, p: _Pod, c: _Ctr) -> tuple[list[str], dict[str, str], str, str]:
        """(argv, env, cwd, note) for `c`, or a PodConfigError saying why it cannot run here."""
        self._check_ports(c)
        if not p.volumes and p.volume_error is None:
            self._prepare_volumes(p)
        if p.volume_error is not None:
            raise p.volume_error
        self._check_reachable(p, c)
        declared = self._env(p, c.spec)
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME": pod_hostname(p.pod)[0],
        }
        for vname, path in p.volumes.items():
            env[volume_env_name(vname)] = path
        env.update(declared)
        # who started it, so a later runtime can find it if this process dies without stopping it
        # (after the declared env: a container cannot pass itself off as another's)
        env.update({OWNER_ENV: _OWNER, STATE_ENV: self.state_dir, **self.identity})
        # as the kubelet: $(VAR) refers to the container's declared env only
        command = [expand_vars(str(a), declared) for a in c.spec.get("command") or []]
        args = [expand_vars(str(a), declared) for a in c.spec.get("args") or []]
        busybox_image = is_busybox_image(c.image)
        if command:
            argv = command + args  # command replaces the entrypoint, args the cmd
        elif busybox_image:
            argv = args or list(BUSYBOX_DEFAULT_CMD)  # busybox has no entrypoint
        else:
            raise PodConfigError(
                "ErrImagePull",
                f"image {c.image} cannot run on the process runtime: only busybox, "
                "or an explicit command available on this host",
            )
        resolved = self._resolve(c.image, argv, env)
        cwd = str(c.spec.get("workingDir") or "")
        if not cwd or not os.path.isdir(cwd):
            cwd = os.path.join(p.dir, "containers", c.name)
            os.makedirs(cwd, exist_ok=True)
        env.setdefault("HOME", cwd)
        # a pod's scratch files (TMPDIR, as a container's own /tmp) live in its folder under the
        # node's state dir, i.e. the cluster's folder, and go when the pod goes, not in the host's /tmp
        env.setdefault("TMPDIR", self._scratch(p))
        note = ""
        mounts = c.spec.get("volumeMounts") or []
        if mounts:
            where = ", ".join(
                f"{m.get('mountPath')} -> ${volume_env_name(str(m.get('name')))}" for m in mounts
            )
            note = (
                "volumeMounts are not mounted (the process runtime has no root or mount namespace); "
                f"each volume's directory is in an env var instead: {where}"
            )
            for m in mounts:
                if str(m.get("name")) not in p.volumes:
                    raise PodConfigError(
                        "CreateContainerConfigError",
                        f"container {c.name}: volumeMount of unknown volume {m.get('name')!r}",
                    )
        return resolved, env, cwd, note

    def _resolve(self, image: str, argv: list[str], env: dict[str, str]) -> list[str]:
        """argv as run on this host: a busybox applet, or a program found on PATH."""
        program = argv[0]
        if is_busybox_image(image):
            if self.busybox is None:
                raise PodConfigError(
                    "ErrImagePull",
                    f"image {image}: no busybox binary on this host (install the busybox-static package)",
                )
            applet = os.path.basename(program)
            if applet in busybox_applets(self.busybox):
                return [self.busybox, applet, *argv[1:]]
        found = program if os.sep in program and os.access(program, os.X_OK) else None
        if found is None and os.sep not in program:
            found = shutil.which(program, path=env.get("PATH"))
        if found is None:
            what = "a busybox applet or a program" if is_busybox_image(image) else "a program"
            raise PodConfigError(
                "CreateContainerError",
                f"image {image}: {program!r} is not {what} on this host (the process runtime runs host programs)",
            )
        return [found, *argv[1:]]

    def _check_ports(self, c: _Ctr) -> None:
        if not self.unprivileged:
            return
        for port in c.spec.get("ports") or []:
            number = port.get("containerPort")
            if isinstance(number, int) and 0 < number < 1024:
                raise PodConfigError(
                    "CreateContainerConfigError",
                    f"port {number} needs root: the process runtime runs as an unprivileged user; "
                    "use 8080 (or another port >= 1024)",
                )

    def _env(self, p: _Pod, spec: Obj) -> dict[str, str]:
        """The container's declared env, in order, with $(VAR) expansion and the downward API."""
        meta = p.pod.get("metadata") or {}
        fields = {
            "metadata.name": p.name,
            "metadata.namespace": p.namespace,
            "metadata.uid": p.uid,
            "spec.nodeName": p.sandbox.node_name or self.node_name,
            "spec.serviceAccountName": str(p.spec.get("serviceAccountName") or "default"),
            "status.podIP": p.pod_ip,
            "status.hostIP": p.sandbox.host_ip,
            # single-stack: the lists hold the one address (upstream joins them with commas)
            "status.podIPs": p.sandbox.pod_ip,
            "status.hostIPs": p.sandbox.host_ip,
        }
        # Service variables under envFrom under `env`, as the kubelet layers them
        env: dict[str, str] = {**p.sandbox.service_env, **env_from(p.pod, spec, self.resolve_volume)}
        for e in spec.get("env") or []:
            name = str(e.get("name") or "")
            src = e.get("valueFrom")
            if not src:
                env[name] = expand_vars(str(e.get("value") or ""), env)
                continue
            if "fieldRef" in src:
                path = str((src["fieldRef"] or {}).get("fieldPath") or "")
                m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
                if m:
                    env[name] = str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
                elif path in fields:
                    env[name] = fields[path]
                else:
                    raise PodConfigError(
                        "CreateContainerConfigError", f"env {name}: unsupported fieldRef {path!r}"
                    )
            elif "configMapKeyRef" in src or "secretKeyRef" in src:
                kind = "configMap" if "configMapKeyRef" in src else "secret"
                ref = src.get(f"{kind}KeyRef") or {}
                key = str(ref.get("key") or "")
                volume = {
                    "name": f"env-{name}",
                    kind: {"secretName" if kind == "secret" else "name": ref.get("name")},
                }
                data = self.resolve_volume(p.pod, volume) if self.resolve_volume is not None else None
                if data is None or key not in data:
                    if ref.get("optional"):
                        continue
                    why = (
                        "not found"
                        if self.resolve_volume is not None
                        else "cannot be read (no resolver given)"
                    )
                    raise PodConfigError(
                        "CreateContainerConfigError",
                        f"env {name}: key {key!r} of {kind} {ref.get('name')!r} {why}",
                        retry=True,
                    )
                env[name] = data[key].decode("utf-8", "replace")
            else:
                raise PodConfigError(
                    "CreateContainerConfigError", f"env {name}: unsupported valueFrom {sorted(src)}"
                )
        return env

    def _prepare_volumes(self, p: _Pod) -> None:
        """Make each volume's directory once per pod (shared by its containers); errors stick."""
        vols: dict[str, str] = {}
        for v in p.spec.get("volumes") or []:
            vname = str(v.get("name") or "")
            kinds = [k for k in v if k != "name"]
            try:
                if "emptyDir" in v:
                    path = os.path.join(p.dir, "volumes", vname)
                    os.makedirs(path, exist_ok=True)
                    os.chmod(path, 0o777)  # as Kubernetes makes an emptyDir: any runAsUser may write
                    fs_group = (p.spec.get("securityContext") or {}).get("fsGroup")
                    if isinstance(fs_group, int) and os.geteuid() == 0:
                        os.chown(path, -1, fs_group)
                elif "hostPath" in v:
                    path = host_path(
                        v.get("hostPath") or {}, f"volume {vname!r}", self.node_name or "this node"
                    )
                elif "persistentVolumeClaim" in v:
                    path = claim_path(p.pod, v, self.resolve_claim, self.node_name or "this node")
                elif "configMap" in v or "secret" in v:
                    source = v.get("configMap") or v.get("secret") or {}
                    path = os.path.join(p.dir, "volumes", vname)
                    write_volume_files(
                        path,
                        source_files(p.pod, v, self.resolve_volume),
                        file_mode(source.get("defaultMode")),
                        f"volume {vname!r}",
                    )
                else:
                    raise PodConfigError(
                        "CreateContainerConfigError",
                        f"volume {vname}: type {', '.join(kinds) or '(none)'} is not supported by the process "
                        f"runtime (supported: {', '.join(_SUPPORTED_VOLUMES)})",
                    )
            except PodConfigError as err:
                if not err.retry:
                    p.volume_error = err
                raise
            except OSError as exc:
                raise PodConfigError(
                    "CreateContainerConfigError", f"volume {vname}: {exc}", retry=True
                ) from exc
            vols[vname] = path
        p.volumes = vols

    # ------------------------------------------------------------------ probes

    def _schedule_probes(self, p: _Pod, c: _Ctr, now: float) -> None:
        if c.probe_busy or c.hook_busy:
            return
        if c.startup is not None and not c.startup.passing:  # nothing else until it has started
            due = [c.startup] if c.startup.due(now) else []
        else:
            due = [t for t in (c.readiness, c.liveness) if t is not None and t.due(now)]
        if due and c.proc is not None:
            c.probe_busy = True
            try:
                self._pool.submit(self._run_probes, p, c, c.proc, due)
            except RuntimeError:  # the pool is shutting down with the runtime
                c.probe_busy = False

    def _run_probes(self, p: _Pod, c: _Ctr, proc: _Proc, due: list[ProbeTracker]) -> None:
        try:
            for tracker in due:
                with p.lock:
                    env, cwd = dict(c.env), c.cwd

                def exec_fn(
                    argv: list[str], timeout: float, env: dict[str, str] = env, cwd: str = cwd
                ) -> tuple[int, str]:
                    return self._run(p, c, argv, env, cwd, timeout)

                try:
                    result = run_probe(
                        tracker.probe,
                        host=p.pod_ip or "127.0.0.1",
                        ports=list(c.spec.get("ports") or []),
                        exec_fn=exec_fn,
                    )
                except Exception as exc:  # a probe bug must not stop the others
                    result = ProbeResult(False, f"probe error: {exc}")
                with p.lock:
                    if p.stopped or c.proc is not proc or c.state != "running":
                        return  # the container this probe was for is gone
                    verdict = tracker.record(result, self.clock.now())
                    if tracker.kind == "startup":
                        if verdict:
                            if c.readiness is None and not c.ready:
                                c.ready = True
                                self._save_state(p)
                            continue
                        if tracker.failures < tracker.failure_threshold:
                            continue
                        c.stopping = True
                        c.kill_reason = "Unhealthy"
                        c.kill_message = f"Startup probe failed: {tracker.last_message}; container restarted"
                    elif tracker.kind == "readiness":
                        if c.ready != verdict:
                            c.ready = verdict
                            self._save_state(p)  # an adopting runtime keeps it, with no Ready flap
                        continue
                    elif verdict:
                        continue
                    else:
                        c.stopping = True
                        c.kill_reason = "Unhealthy"
                        c.kill_message = f"Liveness probe failed: {tracker.last_message}; container restarted"
                log.info(
                    "pod %s/%s container %s failed its %s probe; killing it",
                    p.namespace,
                    p.name,
                    c.name,
                    tracker.kind,
                )
                grace = min(p.grace, self.stop_grace_cap)
                deadline = time.monotonic() + grace
                self._pre_stop(p, [(c, proc)], grace)
                self._terminate([proc], max(0.0, deadline - time.monotonic()))
                with p.lock:
                    c.stopping = False
                    if not p.stopped and c.proc is proc:
                        self._on_exit(p, c)
                return
        finally:
            c.probe_busy = False
            self._wake.set()

    # ------------------------------------------------------------------ stopping, state, leftovers

    def _kill_pod(self, p: _Pod) -> None:
        with p.lock:
            p.stopped = True
            running = [(c, c.proc) for c in p.containers if c.proc is not None]
            procs = [c.proc for c in [*p.init, *p.containers] if c.proc is not None]
            for c in [*p.init, *p.containers]:
                c.stopping = True
        grace = min(p.grace, self.stop_grace_cap)
        deadline = time.monotonic() + grace
        self._pre_stop(p, running, grace)  # the hooks' time comes out of the grace period
        self._terminate(procs, max(0.0, deadline - time.monotonic()))
        with p.lock:
            for c in [*p.init, *p.containers]:
                c.proc = None
                c.ready = False
                _close_quietly(c.stdin)
                c.stdin = None

    def _terminate(self, procs: list[_Proc], grace: float) -> None:
        """SIGTERM each process group, SIGKILL whatever is left after `grace`, reap the leaders."""
        for proc in procs:
            proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        pending = list(procs)
        while pending and time.monotonic() < deadline:
            pending = [proc for proc in pending if not proc.exited()]
            if pending:
                time.sleep(0.02)
        for proc in procs:
            # also the group's members that ignored SIGTERM after their leader went
            proc.signal_group(signal.SIGKILL)
            proc.reap(2.0)
        for proc in procs:
            if proc.adopted:  # not our child: wait (bounded) until init has reaped it
                end = time.monotonic() + 2.0
                while not proc.exited() and time.monotonic() < end:
                    time.sleep(0.02)

    def _save_state(self, p: _Pod) -> None:
        """The pod, its sandbox and each container's pid (with its start time) and counters, so that
        a later runtime on this state_dir adopts what this one started (or at least kills it)."""
        containers: dict[str, Any] = {}
        init: dict[str, Any] = {}
        for group, records in ((p.containers, containers), (p.init, init)):
            for c in group:
                records[c.name] = {
                    "pid": c.proc.pid if c.proc is not None else None,
                    "ticks": c.proc.ticks if c.proc is not None else None,
                    **{k: getattr(c, k) for k in _SAVED_FIELDS},
                }
        state = {
            "uid": p.uid,
            "namespace": p.namespace,
            "name": p.name,
            "pod": p.pod,
            "sandbox": dataclasses.asdict(p.sandbox),
            "created_at": p.created_at,
            "volumes": p.volumes,
            "containers": containers,
            "init": init,
            "init_done": p.init_done,
        }
        try:
            os.makedirs(p.dir, exist_ok=True)
            replace_file(os.path.join(p.dir, "state.json"), json.dumps(state), 0o600)
        except (OSError, TypeError, ValueError) as exc:  # a full disk: one line per 30 s, not per change
            log_failure(log, "process runtime: saving pod state", exc, detail=f"pod {p.namespace}/{p.name}")

    def _adopt(self) -> tuple[int, int]:
        """Take over the pods a previous runtime on this state_dir left (a restarted agent, a
        crashed kernel): live processes keep running under this runtime; what cannot be adopted
        is killed. Returns (adopted pods, killed process groups)."""
        adopted = killed = 0
        now = self.clock.now()
        for uid in sorted(os.listdir(self._pods_dir)):
            pod_dir = os.path.join(self._pods_dir, uid)
            try:
                with open(os.path.join(pod_dir, "state.json"), encoding="utf-8") as f:
                    state = json.load(f)
                p = self._restore(uid, pod_dir, state, now)
            except Exception as exc:  # unreadable or foreign: nothing of it may survive
                log.warning("process runtime: cannot adopt pod dir %s (%s); killing what it ran", uid, exc)
                killed += self._kill_recorded(pod_dir)
                shutil.rmtree(pod_dir, ignore_errors=True)
                continue
            self._pods[uid] = p
            self._save_state(p)
            adopted += 1
        if adopted or killed:
            log.info("process runtime: adopted %d pod(s), killed %d stray process group(s)", adopted, killed)
        return adopted, killed

    def _restore(self, uid: str, pod_dir: str, state: Obj, now: float) -> _Pod:
        pod = state["pod"]
        p = _Pod(
            uid=uid,
            namespace=str(state.get("namespace") or "default"),
            name=str(state.get("name") or ""),
            pod=pod,
            sandbox=PodSandboxConfig(**state["sandbox"]),
            created_at=float(state.get("created_at") or now),
            containers=[],
            dir=pod_dir,
            volumes=dict(state.get("volumes") or {}),
        )
        saved = state.get("containers") or {}
        for spec in (pod.get("spec") or {}).get("containers") or []:
            c = _Ctr(spec=spec, name=str(spec["name"]), image=str(spec["image"]), retry_at=now)
            rec = saved.get(c.name) or {}
            for k in _SAVED_FIELDS:
                if k in rec:
                    setattr(c, k, rec[k])
            pid, ticks = rec.get("pid"), rec.get("ticks")
            alive = isinstance(pid, int) and ticks is not None and _proc_start_ticks(pid) == ticks
            if c.state == "running" and alive:
                assert isinstance(pid, int)
                popen = _CHILDREN.get(pid)  # a runtime of this same process started it: still our child
                c.proc = _Proc(pid, popen if popen is not None and popen.returncode is None else None, ticks)
                c.retry_at = None
                self._arm_probes(c, float(c.started_at or now), ready=c.ready)
            elif c.state == "running":  # it ended while nobody watched: its exit code is lost
                if p.restart_policy == "Never":
                    c.state, c.reason, c.exit_code, c.finished_at = "terminated", "Error", 255, now
                    c.message = "the process ended while no runtime watched it (exit code unknown)"
                    c.retry_at = None
                else:
                    c.state, c.reason, c.message = "waiting", "ContainerCreating", ""
            elif c.state == "terminated":
                c.retry_at = None
            p.containers.append(c)
        if not p.containers:
            raise ValueError("the saved pod has no containers")
        p.init_done = bool(state.get("init_done", True))
        saved_init = state.get("init") or {}
        for spec in (pod.get("spec") or {}).get("initContainers") or []:
            ic = _Ctr(spec=spec, name=str(spec["name"]), image=str(spec["image"]))
            rec = saved_init.get(ic.name) or {}
            for k in _SAVED_FIELDS:
                if k in rec:
                    setattr(ic, k, rec[k])
            pid, ticks = rec.get("pid"), rec.get("ticks")
            if not p.init_done and ic.state == "running":
                if isinstance(pid, int) and ticks is not None and _proc_start_ticks(pid) == ticks:
                    popen = _CHILDREN.get(pid)
                    ic.proc = _Proc(
                        pid, popen if popen is not None and popen.returncode is None else None, ticks
                    )
                else:  # it ended while nobody watched: run it again
                    ic.state, ic.reason, ic.retry_at = "waiting", "ContainerCreating", now
            elif not p.init_done and ic.state == "waiting":
                ic.retry_at = now
            p.init.append(ic)
        return p

    def _kill_recorded(self, pod_dir: str) -> int:
        killed = 0
        try:
            with open(os.path.join(pod_dir, "state.json"), encoding="utf-8") as f:
                state = json.load(f)
            records = [*(state.get("containers") or {}).values(), *(state.get("init") or {}).values()]
        except (OSError, ValueError, AttributeError):
            return 0
        for rec in records:
            pid, ticks = (rec or {}).get("pid"), (rec or {}).get("ticks")
            if isinstance(pid, int) and ticks is not None and _proc_start_ticks(pid) == ticks:
                _killpg(pid, signal.SIGKILL)
                killed += 1
        return killed


class ProcessAttach:
    """`kubectl attach` to a container's main process (a StreamSession, see
    nbkube/node/runtime/session.py): what it writes to its log from now on, as stdout (the log
    holds stdout and stderr together), and writes to the stdin pipe the runtime holds open.
    `stdinOnce` closes that pipe when this first attach ends, as the kubelet does."""

    def __init__(self, rt: ProcessRuntime, p: _Pod, c: _Ctr, proc: _Proc | None, path: str, *, stdin: bool):
        self.rt, self.p, self.c, self.proc, self.path = rt, p, c, proc, path
        self.stdin = stdin
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self._detached = threading.Event()

    def write(self, data: bytes) -> None:
        if not self.stdin:
            return
        with self.p.lock:
            f = self.c.stdin if self.c.proc is self.proc else None
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.write(data)
                    f.flush()

    def close_stdin(self) -> None:
        if not self.stdin or self.c.spec.get("stdinOnce") is not True:
            return
        with self.p.lock:
            if self.c.proc is self.proc:
                _close_quietly(self.c.stdin)
                self.c.stdin = None

    def resize(self, width: int, height: int) -> None:
        """No terminal: the process runtime starts containers on pipes."""

    def kill(self) -> None:
        self._detached.set()

    def run(self, emit: Callable[[int, bytes], None]) -> int | None:
        try:
            over = False
            while not self._detached.is_set():
                chunk = b""
                with contextlib.suppress(FileNotFoundError), open(self.path, "rb") as f:
                    f.seek(self.offset)
                    chunk = f.read(256 * 1024)
                if chunk:
                    self.offset += len(chunk)
                    emit(1, chunk)
                    continue
                if over:  # read once more after the end was seen: its last words are in the log
                    return None
                with self.p.lock:
                    over = self.p.stopped or self.c.proc is not self.proc or self.c.state != "running"
                if not over:
                    self._detached.wait(0.05)
            return None
        finally:
            self.close_stdin()
