"""Images without a registry: seed Docker from the host's static busybox, and pull without hanging.

Machines running nbkube have no registry (docs/architecture.md). This module
builds a tiny root filesystem in memory (the host's `/bin/busybox`, one symlink per applet, a
minimal /etc/passwd and /etc/group, /tmp) and imports it into the daemon as `busybox:latest`
(CMD ["sh"]) and `nbkube/pause:latest` (the pod's infra container, which only sleeps).

Who calls it: `nbkube images seed|list` (`nbkube.cli.cmd_images`), the Docker runtime
(`ensure_image` before creating a container, `ensure_images` once at start) and the test fixtures.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import threading
import time
from typing import Any

__all__ = [
    "BUSYBOX_IMAGE",
    "PAUSE_IMAGE",
    "ImagePullError",
    "build_busybox_rootfs",
    "ensure_image",
    "ensure_images",
    "list_images",
    "normalize_ref",
    "seed_busybox",
    "seed_pause",
]

BUSYBOX_IMAGE = "busybox:latest"
PAUSE_IMAGE = "nbkube/pause:latest"
HOST_BUSYBOX = "/bin/busybox"
# The pause container must outlive any pod; busybox `sleep` takes seconds as an int32.
PAUSE_CMD = ["sleep", "2147483647"]
PULL_TIMEOUT = 20.0

# Used when `busybox --list` cannot be run (the applets the demos and tests rely on).
_FALLBACK_APPLETS = [
    *("sh", "ash", "cat", "cp", "echo", "env", "false", "grep", "head", "hostname", "httpd", "id"),
    *("kill", "ln", "ls", "mkdir", "mount", "mv", "nc", "nslookup", "ping", "ps", "pwd", "rm"),
    *("rmdir", "sed", "sleep", "tail", "tee", "test", "touch", "true", "uname", "wc", "wget", "which"),
]


class ImagePullError(RuntimeError):
    """An image is absent and could not be pulled; the message is the daemon's own answer."""


def normalize_ref(ref: str) -> str:
    """`busybox` -> `busybox:latest`, as the daemon names it (digests and explicit tags kept)."""
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else f"{ref}:latest"


def _applets(busybox: str) -> list[str]:
    try:
        out = subprocess.run(
            [busybox, "--list"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return list(_FALLBACK_APPLETS)
    names = [line.strip() for line in out.splitlines() if line.strip() and "/" not in line]
    return names or list(_FALLBACK_APPLETS)


def build_busybox_rootfs(busybox: str = HOST_BUSYBOX) -> bytes:
    """A tar (bytes) of a minimal root filesystem around the static `busybox` binary."""
    if not os.path.isfile(busybox):
        raise FileNotFoundError(f"{busybox} not found: install the busybox-static package to seed images")
    buf = io.BytesIO()
    now = int(time.time())

    def add_dir(tar: tarfile.TarFile, path: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(path)
        info.type = tarfile.DIRTYPE
        info.mode = mode
        info.mtime = now
        tar.addfile(info)

    def add_file(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mode = mode
        info.mtime = now
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in (
            "bin",
            "etc",
            "root",
            "var",
            "var/www",
            "home",
            "proc",
            "sys",
            "dev",
            "usr",
            "usr/bin",
            "sbin",
        ):
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        with open(busybox, "rb") as f:
            add_file(tar, "bin/busybox", f.read(), 0o755)
        for applet in _applets(busybox):
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            link.mtime = now
            tar.addfile(link)
        add_file(
            tar,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        )
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_file(tar, "etc/hosts", b"127.0.0.1\tlocalhost\n")
    return buf.getvalue()


def _has_image(client: Any, ref: str) -> bool:
    import docker.errors  # type: ignore[import-untyped,unused-ignore]

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _import(client: Any, ref: str, rootfs: bytes, cmd: list[str]) -> str:
    repo, _, tag = normalize_ref(ref).rpartition(":")
    changes = [f"CMD {_json_list(cmd)}", "ENV PATH=/bin:/usr/bin:/sbin"]
    client.api.import_image_from_data(rootfs, repository=repo, tag=tag, changes=changes)
    return str(client.images.get(ref).id)


def _json_list(items: list[str]) -> str:
    import json

    return json.dumps(items)


_seed_lock = threading.Lock()


def seed_busybox(client: Any, *, busybox: str = HOST_BUSYBOX) -> str:
    """Import the host's busybox as `busybox:latest` unless Docker has it; the image id.

    Idempotent: an existing image (seeded or pulled) is left alone."""
    with _seed_lock:
        if _has_image(client, BUSYBOX_IMAGE):
            return str(client.images.get(BUSYBOX_IMAGE).id)
        return _import(client, BUSYBOX_IMAGE, build_busybox_rootfs(busybox), ["sh"])


def seed_pause(client: Any, *, busybox: str = HOST_BUSYBOX) -> str:
    """Import the same rootfs as `nbkube/pause:latest`, whose command only sleeps; the image id."""
    with _seed_lock:
        if _has_image(client, PAUSE_IMAGE):
            return str(client.images.get(PAUSE_IMAGE).id)
        return _import(client, PAUSE_IMAGE, build_busybox_rootfs(busybox), PAUSE_CMD)


def ensure_images(client: Any) -> dict[str, str]:
    """Seed both images; {ref: "imported" | "present"} in that order."""
    out: dict[str, str] = {}
    for ref, seed in ((BUSYBOX_IMAGE, seed_busybox), (PAUSE_IMAGE, seed_pause)):
        present = _has_image(client, ref)
        seed(client)
        out[ref] = "present" if present else "imported"
    return out


def ensure_image(client: Any, ref: str, *, timeout: float = PULL_TIMEOUT) -> str:
    """The id of image `ref`: local first (seeding busybox/pause from the host), then a pull.

    A failed pull raises ImagePullError with the daemon's message; a pull that takes longer than
    `timeout` seconds raises it too (the pull runs in a helper thread so the caller never hangs)."""
    import docker.errors

    ref = normalize_ref(ref)
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        raise ImagePullError(_daemon_message(exc)) from exc
    if ref == BUSYBOX_IMAGE and os.path.isfile(HOST_BUSYBOX):
        return seed_busybox(client)
    if ref == PAUSE_IMAGE:
        return seed_pause(client)
    result: dict[str, Any] = {}

    def pull() -> None:
        try:
            repo, _, tag = ref.rpartition(":") if "@" not in ref else (ref, "", None)
            result["image"] = client.images.pull(repo, tag=tag or None)
        except Exception as exc:  # reported to the caller below
            result["error"] = exc

    t = threading.Thread(target=pull, name=f"nbkube-pull-{ref}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise ImagePullError(f"pull of {ref} did not finish within {timeout:g} s (no registry reachable?)")
    if "error" in result:
        err: BaseException = result["error"]
        raise ImagePullError(_daemon_message(err)) from err
    return str(result["image"].id)


def _daemon_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def list_images(client: Any) -> list[dict[str, Any]]:
    """Every tagged image of the daemon: [{"ref", "id", "size", "created"}], sorted by ref."""
    rows = []
    for image in client.images.list():
        for tag in image.tags or ["<none>:<none>"]:
            rows.append(
                {
                    "ref": tag,
                    "id": image.short_id.split(":", 1)[-1],
                    "size": int(image.attrs.get("Size", 0)),
                    "created": str(image.attrs.get("Created", "")),
                }
            )
    return sorted(rows, key=lambda r: r["ref"])
