"""The Runtime seam: what a node agent asks of a container runtime, and what it hears back.

The node agent (`nbkube.node.agent`) is the only caller. It decides *which* pods should run on its
node (those bound to it in the registry) and hands each to the runtime with `start_pod`; it reads
back `pod_status` / `list_pods` to report pod status, and calls `stop_pod` for pods that are gone.
Backends: `sim` (no processes, a latency model, like kwok) now; `docker` (a pause container holds
the pod sandbox, app containers join its network namespace) and `process` (host processes) later.
The shapes follow the CRI: a pod = one sandbox (its network identity) + containers, each container
with a state (waiting/running/terminated), a reason, a restart count and an exit code.

Contract every backend keeps:
- `start_pod` is idempotent (a second call for a known uid changes nothing) and does not block on
  slow work (image pulls, container starts): progress shows in later `pod_status` calls;
- restarts under the pod's `restartPolicy` are the runtime's business (as the kubelet's sync loop
  is), visible as `restart_count` and `last_terminated`;
- `next_check` in a status is a hint: seconds until the runtime expects the status to change, so
  the agent re-reads it then instead of polling blindly (None: nothing scheduled; the agent still
  resyncs every heartbeat to catch unexpected changes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from nbkube.api.meta import Obj
from nbkube.clock import rfc3339
from nbkube.errors import BadRequest
from nbkube.node.probes import validate_probe

__all__ = [
    "check_pod",
    "ContainerState",
    "ContainerStatus",
    "PodSandboxConfig",
    "PodRuntimeStatus",
    "Runtime",
]

ContainerState = Literal["waiting", "running", "terminated"]


@dataclass
class ContainerStatus:
    name: str
    image: str
    state: ContainerState
    reason: str = (
        ""  # waiting: ContainerCreating, ErrImagePull, CrashLoopBackOff...; terminated: Completed/Error
    )
    message: str = ""
    ready: bool = False
    restart_count: int = 0
    exit_code: int | None = None  # terminated only
    started_at: float | None = None
    finished_at: float | None = None
    container_id: str = ""
    image_id: str = ""
    # the previous run's end, for crash loops: {"exitCode", "reason", "startedAt", "finishedAt"} (epoch floats)
    last_terminated: dict[str, Any] | None = None
    # whether its startupProbe has passed (None: as good as running, the container has none)
    started: bool | None = None

    def to_wire(self) -> Obj:
        """This status as one entry of a Pod's `status.containerStatuses`."""
        state: Obj
        if self.state == "waiting":
            state = {"waiting": _drop_empty({"reason": self.reason, "message": self.message})}
        elif self.state == "running":
            state = {"running": {"startedAt": rfc3339(self.started_at or 0.0)}}
        else:
            state = {
                "terminated": _drop_empty(
                    {
                        "exitCode": self.exit_code if self.exit_code is not None else 0,
                        "reason": self.reason,
                        "message": self.message,
                        "startedAt": rfc3339(self.started_at) if self.started_at is not None else "",
                        "finishedAt": rfc3339(self.finished_at) if self.finished_at is not None else "",
                    }
                )
            }
        out: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "started": self.started if self.started is not None else self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {},
        }
        if self.container_id:
            out["containerID"] = self.container_id
        if self.last_terminated:
            lt = self.last_terminated
            out["lastState"] = {
                "terminated": {
                    "exitCode": int(lt.get("exitCode", 0)),
                    "reason": str(lt.get("reason", "")),
                    "startedAt": rfc3339(float(lt.get("startedAt", 0.0))),
                    "finishedAt": rfc3339(float(lt.get("finishedAt", 0.0))),
                }
            }
        return out


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v != "" and v is not None}


@dataclass(frozen=True)
class PodSandboxConfig:
    """Where the agent places a pod: its node, and the IP the agent's IPAM chose from the pod CIDR.

    A runtime with its own addressing (the process runtime's loopback addresses) may report a
    different `pod_ip` in its status; the agent reports what the runtime says."""

    node_name: str
    pod_ip: str
    pod_cidr: str
    host_ip: str
    # the Service variables (`serviceenv.service_env`) as of the pod's start, under its own env
    service_env: dict[str, str] = field(default_factory=dict)
    # the pod's resolv.conf (`dnsconf.pod_resolv_conf`) rendered; "" when the agent has no DNS
    # settings (a runtime then leaves the container's own)
    resolv_conf: str = ""


@dataclass
class PodRuntimeStatus:
    uid: str
    namespace: str
    name: str
    sandbox_ready: bool
    pod_ip: str
    containers: list[ContainerStatus] = field(default_factory=list)
    created_at: float = 0.0  # when start_pod accepted it
    next_check: float | None = None  # see the module docstring

    @property
    def all_running(self) -> bool:
        return bool(self.containers) and all(c.state == "running" for c in self.containers)

    @property
    def all_ready(self) -> bool:
        return bool(self.containers) and all(c.ready for c in self.containers)


@runtime_checkable
class Runtime(Protocol):
    name: str

    def start_pod(self, pod: Obj, sandbox: PodSandboxConfig) -> None:
        """Begin running `pod` (sandbox + its containers). Idempotent per pod uid; non-blocking."""
        ...

    def stop_pod(self, uid: str) -> None:
        """Kill the pod's containers and remove its sandbox. Unknown uids are ignored."""
        ...

    def pod_status(self, uid: str) -> PodRuntimeStatus | None:
        """The pod's current status, or None if this runtime does not know the uid."""
        ...

    def release_sandbox(self, uid: str) -> bool:
        """The pod has finished (every container exited for good): whether its address is free for
        another pod now. Its status and logs stay readable until `stop_pod`."""
        ...

    def list_pods(self) -> list[PodRuntimeStatus]:
        """Every pod this runtime holds (also those whose API object is gone: the agent stops them)."""
        ...

    def close(self) -> None:
        """Stop every pod and release what the runtime holds (threads, connections)."""
        ...


def check_pod(pod: Obj, runtime: str) -> tuple[str, str]:
    """What every runtime checks before it accepts a pod: (uid, "pod ns/name" for messages).

    A uid that can serve as a file and label name, at least one container, each with a name and
    an image, and probes of a shape the runtime can run. Raises BadRequest naming the field."""
    meta = pod.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    if not uid or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", uid):
        raise BadRequest(f"{runtime} runtime: pod metadata.uid must be a plain name, got {uid!r}")
    where = f"pod {meta.get('namespace') or 'default'}/{meta.get('name')}"
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        raise BadRequest(f"{where}: spec.containers must not be empty")
    for i, c in enumerate(containers):
        if not c.get("name") or not c.get("image"):
            raise BadRequest(f"{where}: spec.containers[{i}] needs a name and an image")
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if c.get(kind) is not None:
                validate_probe(c[kind], f"{where}: spec.containers[{i}].{kind}")
    return uid, where
