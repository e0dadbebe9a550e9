"""Pod volumes on the node's own filesystem, shared by the runtimes that run real processes.

Why one module: the Docker and process runtimes both turn a pod's `volumes` into host paths
(emptyDir, hostPath, configMap and secret files); they used to do it twice, and drifted (one
honoured `optional`, the other `defaultMode`). What a volume means is decided here once; what each
runtime does with the path (a bind mount, or a directory the process is told about) stays with it.
Docker nodes also get tmpfs emptyDirs (of `sizeLimit` bytes when given), nfs mounts and gitRepo
clones (`prepare_host_volumes`); `release_host_volumes` unmounts what was mounted when the pod
goes. `host_path` is every runtime's hostPath rule and `sub_path` the one for a volumeMount's
`subPath` (a single file, such as one ConfigMap key, or a folder).

Errors are `PodConfigError(reason, message)`: the reason goes to the container's waiting state
(`CreateContainerConfigError`, `VolumeUnsupported`) and the message names the volume.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.quantity import parse_memory

__all__ = [
    "ClaimResolver",
    "PodConfigError",
    "VolumeResolver",
    "UNSUPPORTED_VOLUMES",
    "file_mode",
    "claim_path",
    "host_path",
    "pod_hostname",
    "prepare_host_volumes",
    "sub_path",
    "release_host_volumes",
    "source_files",
    "volume_kind",
    "write_volume_files",
]

# Accepted by the API (the article lists them) but not served by any node here: reported, never ignored.
UNSUPPORTED_VOLUMES = ("awsElasticBlockStore", "iscsi", "glusterfs", "rbd")

# Resolves a configMap/secret volume of a pod to {file name: bytes}; None when the object is missing.
VolumeResolver = Callable[[Obj, Obj], "dict[str, bytes] | None"]
# Resolves a persistentVolumeClaim volume of a pod (pod, claim name) to the host folder of the bound
# volume; raises PodConfigError (retry=True while the claim is not bound yet).
ClaimResolver = Callable[[Obj, str], str]

DEFAULT_FILE_MODE = 0o644  # Kubernetes' defaultMode for configMap and secret volumes
_MOUNTED_KINDS = ("empty-dir", "nfs")  # the subfolders of a pod's volume folder that may hold mounts


class PodConfigError(Exception):
    """The pod cannot start (yet) for a reason in its spec or on the node: (reason, message).

    `retry`: worth trying again later (a ConfigMap may appear) rather than fixed only by the spec."""

    def __init__(self, reason: str, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry = retry


def volume_kind(vol: Obj) -> str:
    """The volume's source type (`emptyDir` when none is named, as the API defaults it)."""
    kinds = [k for k in vol if k != "name"]
    return kinds[0] if kinds else "emptyDir"


def file_mode(default_mode: Any) -> int:
    """A configMap/secret `defaultMode` (an int, or an octal string as YAML users write it) as a mode."""
    if default_mode in (None, ""):
        return DEFAULT_FILE_MODE
    with contextlib.suppress(ValueError, TypeError):
        if isinstance(default_mode, str) and default_mode.startswith("0"):
            return int(default_mode, 8)
        return int(default_mode)
    return DEFAULT_FILE_MODE


def source_files(pod: Obj, vol: Obj, resolve: VolumeResolver | None) -> dict[str, bytes]:
    """The files of a configMap/secret volume; an `optional` source that is missing gives none."""
    kind = volume_kind(vol)
    src = vol.get(kind) or {}
    data = resolve(pod, vol) if resolve is not None else None
    if data is not None:
        return data
    if src.get("optional"):
        return {}
    ref = src.get("name") or src.get("secretName") or ""
    raise PodConfigError(
        "CreateContainerConfigError", f"volume {vol.get('name')!r}: {kind} {ref!r} not found", retry=True
    )


def write_volume_files(path: str, data: dict[str, bytes], mode: int, where: str) -> None:
    """Write `data` (file name -> bytes) under `path` with `mode`; no name may leave the folder."""
    os.makedirs(path, exist_ok=True)
    for fname, content in data.items():
        rel = os.path.normpath(fname)
        if rel.startswith("..") or os.path.isabs(rel):
            raise PodConfigError(
                "CreateContainerConfigError", f"{where}: file name {fname!r} leaves the volume"
            )
        target = os.path.join(path, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(content if isinstance(content, bytes) else str(content).encode())
        os.chmod(target, mode)


def pod_hostname(pod: Obj) -> tuple[str, str]:
    """(hostname, domain) as the kubelet gives a pod: `spec.hostname` or the pod's name (at most
    63 characters), and `SUBDOMAIN.NAMESPACE.svc.cluster.local` when `spec.subdomain` is set (a
    StatefulSet's pods: `db-1` in `db.default.svc.cluster.local`), else ""."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    hostname = str(spec.get("hostname") or meta.get("name") or "")[:63]
    sub = spec.get("subdomain")
    domain = f"{sub}.{meta.get('namespace') or 'default'}.svc.cluster.local" if sub else ""
    return hostname, domain


def claim_path(pod: Obj, vol: Obj, resolve: ClaimResolver | None, node_name: str) -> str:
    """The host folder of a persistentVolumeClaim volume (the folder of the volume bound to it)."""
    claim = str((vol.get("persistentVolumeClaim") or {}).get("claimName") or "")
    if resolve is None:
        raise PodConfigError(
            "VolumeUnsupported", f"volume {vol.get('name')!r}: node {node_name} has no claim resolver"
        )
    return resolve(pod, claim)


def prepare_host_volumes(
    pod: Obj,
    base: str,
    node_name: str,
    resolve: VolumeResolver | None,
    resolve_claim: ClaimResolver | None = None,
) -> dict[str, tuple[str, bool]]:
    """{volume name: (host path, read-only)} for a Docker pod whose volume folder is `base`."""
    out: dict[str, tuple[str, bool]] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        vname = str(vol.get("name") or "")
        kind = volume_kind(vol)
        src = vol.get(kind) or {}
        where = f"volume {vname!r}"
        if kind == "emptyDir":
            path = os.path.join(base, "empty-dir", vname)
            os.makedirs(path, exist_ok=True)
            if src.get("medium") == "Memory" and not os.path.ismount(path):
                options = "mode=1777"
                if src.get("sizeLimit") is not None:  # the tmpfs refuses writes beyond it
                    options += f",size={parse_memory(src['sizeLimit'])}"
                _mount(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], f"{where} (emptyDir Memory)")
            else:
                os.chmod(path, 0o777)  # as Kubernetes makes an emptyDir: any runAsUser may write
            fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
            if isinstance(fs_group, int) and not isinstance(fs_group, bool):
                os.chown(path, -1, fs_group)  # the pod's fsGroup owns its scratch space
            out[vname] = (path, False)
        elif kind == "hostPath":
            out[vname] = (host_path(src, where, node_name), False)
        elif kind == "persistentVolumeClaim":
            out[vname] = (claim_path(pod, vol, resolve_claim, node_name), bool(src.get("readOnly")))
        elif kind in ("configMap", "secret"):
            path = os.path.join(base, kind, vname)
            write_volume_files(
                path, source_files(pod, vol, resolve), file_mode(src.get("defaultMode")), where
            )
            out[vname] = (path, True)
        elif kind == "gitRepo":
            out[vname] = (_git_volume(os.path.join(base, "git-repo", vname), src, where), False)
        elif kind == "nfs":
            out[vname] = (
                _nfs_volume(os.path.join(base, "nfs", vname), src, where, node_name),
                bool(src.get("readOnly")),
            )
        else:
            raise PodConfigError(
                "VolumeUnsupported", f"{where}: volume type {kind!r} is not supported by node {node_name}"
            )
    return out


def release_host_volumes(base: str) -> None:
    """Unmount the tmpfs and nfs volumes under a pod's volume folder (before it is removed)."""
    for kind in _MOUNTED_KINDS:
        folder = os.path.join(base, kind)
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            if os.path.ismount(path):
                subprocess.run(["umount", "-l", path], capture_output=True, timeout=15)


_HOST_PATH_TYPES: dict[str, Callable[[int], bool]] = {
    "Directory": stat.S_ISDIR,
    "File": stat.S_ISREG,
    "Socket": stat.S_ISSOCK,
    "CharDevice": stat.S_ISCHR,
    "BlockDevice": stat.S_ISBLK,
}


def host_path(src: Obj, where: str, node_name: str) -> str:
    """The host path a hostPath volume names, made or checked as its `type` says (every runtime's
    rule: an absolute path; `DirectoryOrCreate`/`FileOrCreate` make it; `Directory`, `File`,
    `Socket`, `CharDevice`, `BlockDevice` must be one; no type: it must exist)."""
    path = str(src.get("path") or "")
    htype = str(src.get("type") or "")
    if not path or not os.path.isabs(path):
        raise PodConfigError(
            "CreateContainerConfigError", f"{where}: hostPath.path must be absolute, got {path!r}"
        )
    if htype == "DirectoryOrCreate":
        os.makedirs(path, exist_ok=True)
    elif htype == "FileOrCreate" and not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        open(path, "a").close()  # noqa: SIM115
    if not os.path.exists(path):
        raise PodConfigError(
            "CreateContainerConfigError", f"{where}: hostPath {path!r} does not exist on node {node_name}"
        )
    check = _HOST_PATH_TYPES.get(htype)
    if check is not None and not check(os.stat(path).st_mode):
        raise PodConfigError(
            "CreateContainerConfigError", f"{where}: hostPath {path!r} on node {node_name} is not a {htype}"
        )
    return path


def sub_path(volume_path: str, sub: str, where: str) -> str:
    """The host path of a volumeMount's `subPath` inside a volume: a file (one ConfigMap key) or a
    folder, made as a folder when missing (as the kubelet does); never outside the volume."""
    if os.path.isabs(sub) or ".." in sub.split("/"):
        raise PodConfigError(
            "CreateContainerConfigError",
            f"{where}: subPath {sub!r} must be a relative path inside the volume",
        )
    target = os.path.join(volume_path, sub)
    root = os.path.realpath(volume_path)
    real = os.path.realpath(target)
    if real != root and not real.startswith(root + os.sep):
        raise PodConfigError(
            "CreateContainerConfigError", f"{where}: subPath {sub!r} leads outside the volume"
        )
    if not os.path.lexists(target):
        os.makedirs(target, exist_ok=True)
    return real


def _nfs_volume(path: str, src: Obj, where: str, node_name: str) -> str:
    os.makedirs(path, exist_ok=True)
    if os.path.ismount(path):
        return path
    if not shutil.which("mount.nfs"):
        raise PodConfigError(
            "VolumeUnsupported", f"{where}: nfs is unsupported on node {node_name} (no mount.nfs)"
        )
    target = f"{src.get('server')}:{src.get('path')}"
    # soft, one try, no background retries: an unreachable server fails the pod's start, visibly
    opts = "soft,timeo=50,retrans=1,retry=0" + (",ro" if src.get("readOnly") else "")
    _mount(["mount", "-t", "nfs", "-o", opts, target, path], f"{where} (nfs {target})")
    return path


def _mount(argv: list[str], what: str) -> None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PodConfigError("CreateContainerConfigError", f"{what}: mount failed: {exc}") from exc
    if r.returncode != 0:
        raise PodConfigError("CreateContainerConfigError", f"{what}: mount failed: {r.stderr.strip()}")


def _git_volume(path: str, src: Obj, where: str) -> str:
    """Clone the repository (once) into the volume, as the article's `git` volume does."""
    repo = str(src.get("repository") or "")
    directory = str(src.get("directory") or "")
    if not repo or ".." in directory.split("/"):
        raise PodConfigError(
            "CreateContainerConfigError", f"{where}: gitRepo needs a repository and a safe directory"
        )
    name = directory or os.path.basename(repo.rstrip("/")).removesuffix(".git") or "repo"
    target = path if name == "." else os.path.join(path, name)
    if os.path.isdir(os.path.join(target, ".git")):
        return path
    os.makedirs(path, exist_ok=True)
    cmds = [["git", "clone", "--quiet", "--", repo, target]]
    if src.get("revision"):
        cmds.append(["git", "-C", target, "checkout", "--quiet", str(src["revision"])])
    for argv in cmds:
        try:
            r = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PodConfigError("CreateContainerConfigError", f"{where}: gitRepo {repo}: {exc}") from exc
        if r.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise PodConfigError("CreateContainerConfigError", f"{where}: gitRepo {repo}: {r.stderr.strip()}")
    return path
