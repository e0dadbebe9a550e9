"""The simulated runtime: pods without processes, moved through their states by a latency model.

Like kwok, this lets one machine host hundreds of nodes for scale studies and makes the fast test
suite independent of Docker. Node agents created with `runtime="sim"` use it. Nothing runs: a pod's
state is a pure function of the time since `start_pod` (read from the injected clock), the latency
model (fixed + seeded random jitter per stage) and its failure mode, so a FakeClock makes every
transition exact and reproducible.

Timeline of one container (t0 = start_pod):
  [t0, t0 + sandbox + pull + start + jitter)  waiting/ContainerCreating  (pod phase Pending)
  then                                        running, ready after `ready` (+ the readiness probe's
                                              initialDelaySeconds)

A pod whose restartPolicy is Never or OnFailure is a batch pod (a Job's): with no failure mode its
containers run `sim.nbkube.io/run-seconds` (default 1 s) and exit 0, so the pod Succeeds. A pod
with restartPolicy Always (the default) runs until it is stopped.

Failure modes, per pod by annotation `sim.nbkube.io/fail` or per image with `fail_images`:
  ErrImagePull       the pull fails: waiting ErrImagePull, then ImagePullBackOff; never runs
  CrashLoopBackOff   runs `sim.nbkube.io/run-seconds` (default 1 s), exits 1, restarts with backoff
  exit:N             runs `run-seconds`, exits with code N; restarted per the pod's restartPolicy
                     (`exit:3` on a Job's pod with restartPolicy Never makes it a failed pod)
  NotReady           runs but never becomes ready

Resource usage (for `kubectl top` and the autoscaler) is what the pod's annotations say, per running
container: `sim.nbkube.io/cpu` (a CPU quantity, default 1m) and `sim.nbkube.io/memory` (a byte
quantity, default 4Mi); `usage()` reports it as CPU seconds accumulated since the container started.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import QuantityError, parse_cpu, parse_memory
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import BadRequest
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus, PodSandboxConfig
from nbkube.node.runtime.usage import RawUsage

__all__ = ["LatencyModel", "SimRuntime", "FAIL_ANNOTATION", "RUN_SECONDS_ANNOTATION", "FAIL_MODES"]

FAIL_ANNOTATION = "sim.nbkube.io/fail"
RUN_SECONDS_ANNOTATION = "sim.nbkube.io/run-seconds"
CPU_ANNOTATION = "sim.nbkube.io/cpu"
MEMORY_ANNOTATION = "sim.nbkube.io/memory"
DEFAULT_CPU = "1m"
DEFAULT_MEMORY = "4Mi"
FAIL_MODES = ("ErrImagePull", "CrashLoopBackOff", "NotReady", "exit:N")

_PULL_BACKOFF_AFTER = 1.0  # ErrImagePull turns into ImagePullBackOff after this long
_MAX_CYCLES = 10_000  # bound on the crash-loop replay
# modes whose containers are not simply running once started: usage() replays their status
_REPLAYED_MODES = ("ErrImagePull", "exit")


@dataclass(frozen=True)
class LatencyModel:
    """Seconds each stage takes; every stage gets an extra uniform random [0, jitter) from `seed`."""

    sandbox: float = 0.02  # network namespace + pause container
    pull: float = 0.0  # image pull (an image already present costs nothing)
    start: float = 0.03  # create + start the containers
    ready: float = 0.0  # running -> ready (readiness probe), plus the probe's initialDelaySeconds
    jitter: float = 0.0
    restart_backoff: float = 1.0  # first crash-loop back-off, doubled per restart (Kubernetes: 10 s)
    max_backoff: float = 30.0  # cap of the crash-loop back-off (Kubernetes: 300 s)

    def __post_init__(self) -> None:
        for name in ("sandbox", "pull", "start", "ready", "jitter", "restart_backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"sim latency model: {name} must be a number >= 0, got {value!r}")


@dataclass
class _SimPod:
    uid: str
    namespace: str
    name: str
    pod_ip: str
    created_at: float
    running_at: float  # when the containers start running
    ready_delay: dict[str, float]
    mode: str
    run_seconds: float
    exit_code: int
    restart_policy: str
    containers: list[tuple[str, str]]  # (name, image)
    cpu_millicores: int = 1  # per running container
    memory_bytes: int = 4 * 1024 * 1024


def _parse_mode(mode: str, where: str) -> tuple[str, int]:
    if mode in ("", "ErrImagePull", "NotReady"):
        return mode, 0
    if mode == "CrashLoopBackOff":
        return "exit", 1
    if mode.startswith("exit:"):
        try:
            return "exit", int(mode[5:])
        except ValueError:
            pass
    raise BadRequest(f"{where}: unknown sim failure mode {mode!r} (known: {', '.join(FAIL_MODES)})")


class SimRuntime:
    """A Runtime (see base.py) that runs nothing. Thread-safe."""

    name = "sim"

    def __init__(
        self,
        *,
        clock: Clock = REAL_CLOCK,
        latency: LatencyModel | None = None,
        seed: int | None = 0,
        fail_images: dict[str, str] | None = None,
    ):
        self.clock = clock
        self.latency = latency or LatencyModel()
        self._rng = random.Random(seed)
        self.fail_images = dict(fail_images or {})
        for image, mode in self.fail_images.items():
            _parse_mode(mode, f"fail_images[{image!r}]")
        self._lock = threading.Lock()
        self._pods: dict[str, _SimPod] = {}
        self._seq = 0

    def _jitter(self) -> float:
        return self._rng.uniform(0.0, self.latency.jitter) if self.latency.jitter > 0 else 0.0

    def _mode_for(self, pod: Obj) -> tuple[str, int, float]:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        where = f"pod {meta.get('namespace', '')}/{meta.get('name', '')}"
        raw = str(annotations.get(FAIL_ANNOTATION) or "")
        if not raw:
            for c in (pod.get("spec") or {}).get("containers") or []:
                image = str(c.get("image") or "")
                if image in self.fail_images:
                    raw = self.fail_images[image]
                    break
        mode, code = _parse_mode(raw, f"{where}: annotation {FAIL_ANNOTATION}")
        run_seconds = 1.0
        if RUN_SECONDS_ANNOTATION in annotations:
            try:
                run_seconds = float(annotations[RUN_SECONDS_ANNOTATION])
            except (TypeError, ValueError):
                raise BadRequest(
                    f"{where}: annotation {RUN_SECONDS_ANNOTATION} must be a number of seconds"
                ) from None
        return mode, code, max(0.0, run_seconds)

    def start_pod(self, pod: Obj, sandbox: PodSandboxConfig) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            raise BadRequest("sim runtime: pod has no metadata.uid")
        spec = pod.get("spec") or {}
        with self._lock:
            if uid in self._pods:
                return
            mode, code, run_seconds = self._mode_for(pod)
            if mode == "" and spec.get("restartPolicy") in ("Never", "OnFailure"):
                mode, code = "exit", 0  # a batch pod runs to completion (see the module docstring)
            cpu, memory = _usage_for(pod)
            now = self.clock.now()
            lat = self.latency
            running_at = now + lat.sandbox + lat.pull + lat.start + self._jitter()
            containers = [
                (str(c.get("name", "")), str(c.get("image", ""))) for c in spec.get("containers") or []
            ]
            ready_delay = {}
            for c in spec.get("containers") or []:
                probe = c.get("readinessProbe") or {}
                ready_delay[str(c.get("name", ""))] = (
                    lat.ready + float(probe.get("initialDelaySeconds") or 0) + self._jitter()
                )
            self._pods[uid] = _SimPod(
                uid=uid,
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                pod_ip=sandbox.pod_ip,
                created_at=now,
                running_at=running_at,
                ready_delay=ready_delay,
                mode=mode,
                run_seconds=run_seconds,
                exit_code=code,
                restart_policy=str(spec.get("restartPolicy") or "Always"),
                containers=containers,
                cpu_millicores=cpu,
                memory_bytes=memory,
            )

    def release_sandbox(self, uid: str) -> bool:
        return True  # a simulated pod holds no address

    def stop_pod(self, uid: str) -> None:
        with self._lock:
            self._pods.pop(uid, None)

    def pod_status(self, uid: str) -> PodRuntimeStatus | None:
        with self._lock:
            rec = self._pods.get(uid)
        if rec is None:
            return None
        return self._status(rec, self.clock.now())

    def list_pods(self) -> list[PodRuntimeStatus]:
        with self._lock:
            recs = list(self._pods.values())
        now = self.clock.now()
        return [self._status(r, now) for r in recs]

    def usage(self) -> dict[str, dict[str, RawUsage]]:
        """uid -> container -> (CPU seconds since it started, memory), from the pod's annotations."""
        now = self.clock.now()
        with self._lock:
            recs = list(self._pods.values())
        out: dict[str, dict[str, RawUsage]] = {}
        for rec in recs:
            if rec.mode not in _REPLAYED_MODES and now >= rec.running_at:
                # the steady state of nearly every sim pod: every container running since
                # running_at. Said directly, without the status replay: at thousands of nodes this
                # is sampled for every pod each metrics period
                cpu = rec.cpu_millicores / 1000 * (now - rec.running_at)
                out[rec.uid] = {name: RawUsage(cpu, rec.memory_bytes) for name, _image in rec.containers}
                continue
            status = self._status(rec, now)
            out[rec.uid] = {
                c.name: RawUsage(rec.cpu_millicores / 1000 * max(0.0, now - (c.started_at or now)), rec.memory_bytes)
                for c in status.containers
                if c.state == "running"
            }
        return out

    def close(self) -> None:
        with self._lock:
            self._pods.clear()

    # -- the state function ------------------------------------------------------------------------

    def _status(self, rec: _SimPod, now: float) -> PodRuntimeStatus:
        statuses: list[ContainerStatus] = []
        nexts: list[float] = []
        for name, image in rec.containers:
            cs, nxt = self._container(rec, name, image, now)
            statuses.append(cs)
            if nxt is not None:
                nexts.append(nxt)
        return PodRuntimeStatus(
            uid=rec.uid,
            namespace=rec.namespace,
            name=rec.name,
            sandbox_ready=now >= rec.created_at + self.latency.sandbox,
            pod_ip=rec.pod_ip,
            containers=statuses,
            created_at=rec.created_at,
            next_check=min(nexts) if nexts else None,
        )

    def _container(
        self, rec: _SimPod, name: str, image: str, now: float
    ) -> tuple[ContainerStatus, float | None]:
        cid = f"sim://{rec.uid[:8]}-{name}"
        base: dict[str, Any] = {
            "name": name,
            "image": image,
            "image_id": f"sim://{image}",
            "container_id": cid,
        }
        if now < rec.running_at:
            return ContainerStatus(state="waiting", reason="ContainerCreating", **base), rec.running_at - now
        if rec.mode == "ErrImagePull":
            msg = f'sim: failed to pull image "{image}" (simulated failure)'
            if now < rec.running_at + _PULL_BACKOFF_AFTER:
                return (
                    ContainerStatus(state="waiting", reason="ErrImagePull", message=msg, **base),
                    rec.running_at + _PULL_BACKOFF_AFTER - now,
                )
            return ContainerStatus(state="waiting", reason="ImagePullBackOff", message=msg, **base), None
        ready_after = rec.ready_delay.get(name, self.latency.ready)
        if rec.mode != "exit":
            ready_at = rec.running_at + ready_after
            ready = rec.mode != "NotReady" and now >= ready_at
            nxt = ready_at - now if rec.mode != "NotReady" and not ready else None
            return ContainerStatus(state="running", ready=ready, started_at=rec.running_at, **base), nxt
        return self._exiting(rec, base, ready_after, now)

    def _exiting(
        self, rec: _SimPod, base: dict[str, Any], ready_after: float, now: float
    ) -> tuple[ContainerStatus, float | None]:
        """Replay run / exit / back-off cycles from `running_at` up to `now`."""
        lat = self.latency
        reason = "Completed" if rec.exit_code == 0 else "Error"
        restarts_on = rec.restart_policy == "Always" or (
            rec.restart_policy == "OnFailure" and rec.exit_code != 0
        )
        started = rec.running_at
        restarts = 0
        last: dict[str, Any] | None = None
        for _cycle in range(_MAX_CYCLES):
            ends = started + rec.run_seconds
            if now < ends:
                ready_at = started + ready_after
                ready = now >= ready_at
                nxt = min(ends, ready_at) - now if not ready else ends - now
                cs = ContainerStatus(
                    state="running",
                    ready=ready,
                    started_at=started,
                    restart_count=restarts,
                    last_terminated=last,
                    **base,
                )
                return cs, nxt
            term = {"exitCode": rec.exit_code, "reason": reason, "startedAt": started, "finishedAt": ends}
            if not restarts_on:
                cs = ContainerStatus(
                    state="terminated",
                    reason=reason,
                    exit_code=rec.exit_code,
                    started_at=started,
                    finished_at=ends,
                    restart_count=restarts,
                    last_terminated=last,
                    **base,
                )
                return cs, None
            backoff = min(lat.restart_backoff * (2**restarts), lat.max_backoff)
            if now < ends + backoff:
                cs = ContainerStatus(
                    state="waiting",
                    reason="CrashLoopBackOff",
                    message=f"back-off {backoff:g}s restarting failed container={base['name']}",
                    restart_count=restarts,
                    last_terminated=term,
                    **base,
                )
                return cs, ends + backoff - now
            started = ends + backoff
            restarts += 1
            last = term
        cs = ContainerStatus(
            state="waiting", reason="CrashLoopBackOff", restart_count=restarts, last_terminated=last, **base
        )
        return cs, None


def _usage_for(pod: Obj) -> tuple[int, int]:
    """(CPU millicores, memory bytes) per container from the pod's annotations (or the defaults)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    where = f"pod {(pod.get('metadata') or {}).get('namespace')}/{(pod.get('metadata') or {}).get('name')}"
    try:
        cpu = parse_cpu(annotations.get(CPU_ANNOTATION, DEFAULT_CPU))
    except QuantityError as exc:
        raise BadRequest(f"{where}: annotation {CPU_ANNOTATION}: {exc}") from None
    try:
        memory = parse_memory(annotations.get(MEMORY_ANNOTATION, DEFAULT_MEMORY))
    except QuantityError as exc:
        raise BadRequest(f"{where}: annotation {MEMORY_ANNOTATION}: {exc}") from None
    return cpu, memory
