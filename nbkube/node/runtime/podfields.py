"""Which pod fields a runtime honours, and the refusal (a field error naming the runtime) for the rest.

Who calls it: the process and Docker runtimes at `start_pod`, before they accept a pod. A field the
API accepts but a runtime would quietly skip is worse than an error: a memory limit that is not a
limit, a preStop hook that never runs. So each runtime either honours a field or refuses the pod
here, naming the field, the runtime and why. Also here, because both runtimes read them the same
way: `env_from` (a container's `envFrom` sources) and `lifecycle_handler` (the one action of a
postStart/preStop hook).

What each runtime does with the fields checked here:

| field | process | docker |
|---|---|---|
| `resources.limits.memory` | RLIMIT_AS of the container's processes | the container's memory limit (no swap) |
| `resources.limits.cpu` | refused: host processes cannot be throttled without cgroups | `nano_cpus` |
| other `resources.limits` (ephemeral-storage, hugepages, extended) | refused | refused |
| `emptyDir.sizeLimit` | refused: nothing bounds a folder on the host's disk | the size of a `medium: Memory` tmpfs; refused on disk |
| `lifecycle.postStart/preStop` | exec, httpGet, tcpSocket, sleep | the same |
| `startupProbe`, `initContainers`, `envFrom` | honoured | honoured |
| init container `restartPolicy` (sidecars) | refused | refused |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj
from nbkube.node.runtime.security import containers_with_paths
from nbkube.node.runtime.volumes import PodConfigError

__all__ = ["refusals", "env_from", "lifecycle_handler", "LIFECYCLE_HANDLERS"]

LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")
_LIMITS = {"process": ("memory",), "docker": ("memory", "cpu")}
# what envFrom may export: upstream skips keys that are not valid variable names (with an event)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _m(obj: Any, key: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def refusals(pod: Obj, runtime: str) -> list[str]:
    """Every field of `pod` that runtime `runtime` ("process" | "docker") cannot honour, as
    `path: Forbidden: why` lines (empty: it honours them all)."""
    out: list[str] = []
    spec = _m(pod, "spec")
    allowed = _LIMITS.get(runtime, ())
    for path, c in containers_with_paths(pod):
        limits = _m(_m(c, "resources"), "limits")
        for name in sorted(limits):
            if name in allowed:
                continue
            if name == "cpu":
                why = "host processes share the CPU; a CPU limit needs cgroups (use runtime docker)"
            else:
                why = f"it enforces only {', '.join(f'{a} limits' for a in allowed)}"
            out.append(
                f"{path}.resources.limits.{name}: Forbidden: the {runtime} runtime cannot enforce it ({why})"
            )
        if path.startswith("spec.initContainers") and c.get("restartPolicy") is not None:
            out.append(
                f"{path}.restartPolicy: Forbidden: the {runtime} runtime does not run sidecar containers "
                "(init containers run to completion)"
            )
        if runtime == "process" and c.get("tty") is True:
            out.append(
                f"{path}.tty: Forbidden: the process runtime runs a container's main process on pipes, "
                "not a terminal (exec -t still gets one; use runtime docker for tty containers)"
            )
        for hook in ("postStart", "preStop"):
            handler = _m(c, "lifecycle").get(hook)
            if handler is None:
                continue
            kinds = [k for k in LIFECYCLE_HANDLERS if k in (handler if isinstance(handler, dict) else {})]
            if len(kinds) != 1:
                out.append(
                    f"{path}.lifecycle.{hook}: Forbidden: the {runtime} runtime runs exactly one of "
                    f"{', '.join(LIFECYCLE_HANDLERS)}"
                )
    for i, vol in enumerate(spec.get("volumes") or []):
        empty = _m(vol, "emptyDir") if isinstance(vol, dict) else {}
        if empty.get("sizeLimit") is None:
            continue
        if runtime == "docker" and empty.get("medium") == "Memory":
            continue  # the tmpfs gets that size
        why = (
            "only a medium: Memory emptyDir (a tmpfs of that size) can be bounded"
            if runtime == "docker"
            else "nothing bounds a folder on the host's disk"
        )
        out.append(
            f"spec.volumes[{i}].emptyDir.sizeLimit: Forbidden: the {runtime} runtime cannot enforce it ({why})"
        )
    return out


def env_from(
    pod: Obj, container: Obj, resolve: Callable[[Obj, Obj], dict[str, bytes] | None] | None
) -> dict[str, str]:
    """The variables a container's `envFrom` exports, in order (a later source wins), each key with
    its source's `prefix`. A missing ConfigMap or Secret that is not `optional` is a
    CreateContainerConfigError retried later (it may yet be created), as the kubelet does."""
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        kind = "configMap" if item.get("configMapRef") is not None else "secret"
        ref = item.get(f"{kind}Ref") or {}
        name = ref.get("name")
        volume = {"name": f"envfrom-{name}", kind: {"secretName" if kind == "secret" else "name": name}}
        data = resolve(pod, volume) if resolve is not None else None
        if data is None:
            if ref.get("optional"):
                continue
            why = "not found" if resolve is not None else "cannot be read (no resolver given)"
            raise PodConfigError("CreateContainerConfigError", f"envFrom: {kind} {name!r} {why}", retry=True)
        prefix = str(item.get("prefix") or "")
        for key in sorted(data):
            var = prefix + key
            if _ENV_NAME.match(var):
                env[var] = data[key].decode("utf-8", "replace")
    return env


def lifecycle_handler(container: Obj, hook: str) -> Obj | None:
    """The container's postStart/preStop handler (refusals() has checked it holds one action)."""
    handler = _m(container, "lifecycle").get(hook)
    return handler if isinstance(handler, dict) and handler else None
