"""A pod's securityContext as each runtime can honour it, or the field error saying it cannot.

Pod Security admission (`nbkube.registry.admission_podsecurity`) decides what a namespace allows;
this module makes what is allowed really happen. The Docker runtime turns every field into
container options (`docker_options`: user, group_add, privileged, cap_add/cap_drop, read_only,
security_opt for no-new-privileges, seccomp, AppArmor and SELinux, empty masked paths for an
unmasked /proc; sysctls and
the host namespaces go on the pause container). The process runtime runs host processes, so it
can switch user and group when it runs as root and set no_new_privs, and refuses what it cannot
do (`process_refusals`), naming the field and the runtime, e.g.
`spec.containers[0].securityContext.privileged: Forbidden: the process runtime cannot run
privileged containers`. A refusal is a `BadRequest` from `start_pod`, which the node agent turns
into a Failed pod with a Warning event; never a field silently dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from nbkube.api.meta import Obj

__all__ = [
    "Identity",
    "SECCOMP_ROOT",
    "container_context",
    "containers_with_paths",
    "docker_options",
    "identity",
    "non_root_problem",
    "process_refusals",
]

# where a `Localhost` seccomp profile is looked up, as the kubelet's --seccomp root
SECCOMP_ROOT = "/var/lib/kubelet/seccomp"
# pod-level fields a container inherits unless it sets its own
_INHERITED = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seccompProfile",
    "appArmorProfile",
    "seLinuxOptions",
)


def _m(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def containers_with_paths(pod: Obj) -> list[tuple[str, Obj]]:
    """(`spec.containers[0]`-style path, container) for init and app containers."""
    spec = _m(pod, "spec")
    out = []
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                out.append((f"spec.{key}[{i}]", c))
    return out


def container_context(pod: Obj, container: Obj) -> dict[str, Any]:
    """The container's effective securityContext: its own fields over the pod's inherited ones."""
    pod_sc = _m(_m(pod, "spec"), "securityContext")
    merged = {k: pod_sc[k] for k in _INHERITED if k in pod_sc}
    merged.update(_m(container, "securityContext"))
    return merged


@dataclass(frozen=True)
class Identity:
    """Who a container's process runs as: uid, gid and supplementary groups (None: unchanged)."""

    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)


def identity(pod: Obj, container: Obj) -> Identity:
    sc = container_context(pod, container)
    pod_sc = _m(_m(pod, "spec"), "securityContext")
    groups = [g for g in pod_sc.get("supplementalGroups") or [] if isinstance(g, int)]
    if isinstance(pod_sc.get("fsGroup"), int) and pod_sc["fsGroup"] not in groups:
        groups.append(pod_sc["fsGroup"])
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    return Identity(uid if isinstance(uid, int) else None, gid if isinstance(gid, int) else None, groups)


def non_root_problem(pod: Obj, container: Obj, uid: int | None) -> str:
    """Why runAsNonRoot=true cannot hold when the container runs as `uid` ("" when it holds);
    the kubelet's words."""
    sc = container_context(pod, container)
    if sc.get("runAsNonRoot") is not True:
        return ""
    if sc.get("runAsUser") == 0:
        return "container's runAsUser breaks non-root policy"
    if uid == 0:
        return "container has runAsNonRoot and image will run as root"
    return ""


# --- the process runtime ---------------------------------------------------------------------------


def process_refusals(pod: Obj, *, euid: int, egid: int) -> list[str]:
    """Every securityContext field the process runtime, running as `euid`, cannot honour."""
    out: list[str] = []
    spec = _m(pod, "spec")
    pod_sc = _m(spec, "securityContext")
    root = euid == 0
    why_root = f"the process runtime runs as uid {euid} and can switch users only as root"
    sp = "spec.securityContext"
    if pod_sc.get("sysctls"):
        out.append(
            f"{sp}.sysctls: Forbidden: the process runtime cannot set sysctls (its pods share the host's kernel namespaces)"
        )
    if not root and pod_sc.get("supplementalGroups"):
        out.append(f"{sp}.supplementalGroups: Forbidden: {why_root}")
    if not root and pod_sc.get("fsGroup") is not None:
        out.append(f"{sp}.fsGroup: Forbidden: {why_root}")
    for path, c in containers_with_paths(pod):
        sc = container_context(pod, c)
        where = f"{path}.securityContext"
        who = identity(pod, c)
        if not root and who.uid is not None and who.uid != euid:
            out.append(f"{where}.runAsUser: Forbidden: {why_root} (asked for {who.uid})")
        if not root and who.gid is not None and who.gid != egid:
            out.append(f"{where}.runAsGroup: Forbidden: {why_root} (asked for group {who.gid})")
        run_uid = who.uid if who.uid is not None else euid
        problem = non_root_problem(pod, c, run_uid)
        if problem:
            out.append(
                f"{where}.runAsNonRoot: Forbidden: {problem} (the process runtime would run it as uid {run_uid})"
            )
        if sc.get("privileged") is True:
            out.append(f"{where}.privileged: Forbidden: the process runtime cannot run privileged containers")
        caps = _m(sc, "capabilities")
        if caps.get("add"):
            out.append(f"{where}.capabilities.add: Forbidden: the process runtime cannot add capabilities")
        if caps.get("drop") and run_uid == 0:
            out.append(
                f"{where}.capabilities.drop: Forbidden: the process runtime cannot drop capabilities of a "
                "process running as root (set runAsUser to a non-zero uid: such a process has none)"
            )
        if sc.get("readOnlyRootFilesystem") is True:
            out.append(
                f"{where}.readOnlyRootFilesystem: Forbidden: the process runtime cannot make the root "
                "filesystem read-only (its processes share the host's)"
            )
        if sc.get("procMount") not in (None, "", "Default", "Unmasked"):
            out.append(f"{where}.procMount: Forbidden: unknown procMount for the process runtime")
        for key in ("seccompProfile", "appArmorProfile"):
            kind = _m(sc, key).get("type")
            if kind not in (None, "Unconfined"):
                out.append(
                    f"{where}.{key}.type: Forbidden: the process runtime cannot apply {key} {kind!r} "
                    '(its processes run unconfined; only "Unconfined" is honoured)'
                )
        if sc.get("seLinuxOptions"):
            out.append(f"{where}.seLinuxOptions: Forbidden: the process runtime cannot apply SELinux labels")
        if _m(sc, "windowsOptions").get("hostProcess") is True:
            out.append(
                f"{where}.windowsOptions.hostProcess: Forbidden: the process runtime runs Linux processes"
            )
    return out


# --- the Docker runtime ----------------------------------------------------------------------------


def _seccomp_option(profile: dict[str, Any], where: str) -> str | None:
    kind = profile.get("type")
    if kind == "Unconfined":
        return "seccomp=unconfined"
    if kind == "Localhost":
        name = str(profile.get("localhostProfile") or "")
        path = os.path.normpath(os.path.join(SECCOMP_ROOT, name))
        if not path.startswith(SECCOMP_ROOT + os.sep):
            raise ValueError(f"{where}.seccompProfile.localhostProfile: {name!r} leaves {SECCOMP_ROOT}")
        try:
            with open(path, encoding="utf-8") as f:
                return "seccomp=" + f.read()
        except OSError as exc:
            raise ValueError(f"{where}.seccompProfile: cannot read {path}: {exc.strerror or exc}") from exc
    return None  # RuntimeDefault (or unset): Docker's default profile


def docker_options(pod: Obj, container: Obj, where: str, image_user: str = "") -> dict[str, Any]:
    """Container-create options for `container`'s securityContext (ValueError names a bad field).

    `image_user` is the image's configured user (`Config.User`), needed for runAsNonRoot and for a
    runAsGroup without a runAsUser."""
    sc = container_context(pod, container)
    who = identity(pod, container)
    opts: dict[str, Any] = {}
    user = who.uid if who.uid is not None else None
    base_user = image_user.split(":", 1)[0] if image_user else ""
    if who.uid is None and sc.get("runAsNonRoot") is True:
        if base_user in ("", "0", "root"):
            raise ValueError(f"{where}.runAsNonRoot: container has runAsNonRoot and image will run as root")
        if not base_user.isdigit():
            raise ValueError(
                f"{where}.runAsNonRoot: container has runAsNonRoot and image has non-numeric user "
                f"({base_user}), cannot verify user is non-root"
            )
    problem = non_root_problem(pod, container, who.uid)
    if problem:
        raise ValueError(f"{where}.runAsNonRoot: {problem}")
    if user is not None or who.gid is not None:
        name = str(user) if user is not None else (base_user or "0")
        opts["user"] = name if who.gid is None else f"{name}:{who.gid}"
    if who.groups:
        opts["group_add"] = [str(g) for g in who.groups]
    if sc.get("privileged") is True:
        opts["privileged"] = True
    caps = _m(sc, "capabilities")
    if caps.get("add"):
        opts["cap_add"] = [str(x) for x in caps["add"]]
    if caps.get("drop"):
        opts["cap_drop"] = [str(x) for x in caps["drop"]]
    if sc.get("readOnlyRootFilesystem") is True:
        opts["read_only"] = True
    security: list[str] = []
    if sc.get("allowPrivilegeEscalation") is False:
        security.append("no-new-privileges:true")
    seccomp = _seccomp_option(_m(sc, "seccompProfile"), where)
    if seccomp:
        security.append(seccomp)
    armor = _m(sc, "appArmorProfile")
    annotation = _m(_m(pod, "metadata"), "annotations").get(
        f"container.apparmor.security.beta.kubernetes.io/{container.get('name')}"
    )
    if armor.get("type") == "Unconfined" or annotation == "unconfined":
        security.append("apparmor=unconfined")
    elif armor.get("type") == "Localhost" or str(annotation or "").startswith("localhost/"):
        name = armor.get("localhostProfile") or str(annotation).partition("/")[2]
        security.append(f"apparmor={name}")
    for key, value in _m(sc, "seLinuxOptions").items():
        if value:
            security.append(f"label={key}:{value}")
    if sc.get("procMount") == "Unmasked":
        # what `docker run --security-opt systempaths=unconfined` sends (the CLI's own option)
        opts["host_config_extra"] = {"MaskedPaths": [], "ReadonlyPaths": []}
    if security:
        opts["security_opt"] = security
    if _m(sc, "windowsOptions").get("hostProcess") is True:
        raise ValueError(f"{where}.windowsOptions.hostProcess: the docker runtime runs Linux containers")
    return opts
