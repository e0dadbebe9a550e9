"""Where a cluster's API server answers, recorded in the cluster's folder (`apiserver.json`).

`serve()` (nbkube/apiserver/__init__.py, which `nbkube up --api-port` calls) writes the file when it
starts on a registry that has a cluster folder, and removes it when it stops; code that only holds
the store (`nbkube --store ... tenant create`) reads it to put the server's URL into a kubeconfig.
A file left behind by a killed process names a process that no longer runs: `running_api_server`
then answers None, as for no file at all. The file is 0600 like everything in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os

from nbkube.security.private import write_private_file

__all__ = ["API_INFO_FILE", "forget_api_server", "record_api_server", "running_api_server"]

API_INFO_FILE = "apiserver.json"


def _path(folder: str) -> str:
    return os.path.join(folder, API_INFO_FILE)


def record_api_server(folder: str, url: str) -> str:
    """Record that this process serves the cluster's API at `url`; returns the file's path."""
    path = _path(folder)
    write_private_file(path, json.dumps({"url": url, "pid": os.getpid()}).encode())
    return path


def _read(folder: str) -> dict[str, object] | None:
    try:
        with open(_path(folder)) as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def running_api_server(folder: str) -> str | None:
    """The URL of the API server a live process records for this folder, else None."""
    info = _read(folder)
    if info is None:
        return None
    url, pid = info.get("url"), info.get("pid")
    if not isinstance(url, str) or not url.startswith("https://") or not isinstance(pid, int):
        return None
    return url if _alive(pid) else None


def forget_api_server(folder: str, url: str) -> None:
    """Remove the record when it still names `url` (another server may have replaced it since)."""
    info = _read(folder)
    if info is not None and info.get("url") == url:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_path(folder))
