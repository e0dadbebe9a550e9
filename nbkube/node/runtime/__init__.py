"""Container runtimes for the node agent, picked by name: `create_runtime("sim" | "docker" | "process" | "auto")`.

Who calls it: `nbkube.cluster.LocalCluster`, `nbkube up` and `nbkube node join`, which know a
runtime only by the name the user typed. Backends are registered as "module:factory" strings and
imported on first use, so a missing optional dependency (the docker SDK) only matters to whoever
asks for that backend, and backends written later (docker, process) plug in with one line here
or one `register_runtime` call.

`auto` = docker when a Docker daemon answers and we are root, else process (docs/architecture.md). A backend
whose module fails to import is a broken install: the import error propagates, never a quiet
switch to another backend.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

from nbkube.errors import BadRequest
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus, PodSandboxConfig, Runtime

__all__ = [
    "ContainerStatus",
    "PodRuntimeStatus",
    "PodSandboxConfig",
    "Runtime",
    "available_runtimes",
    "create_runtime",
    "register_runtime",
    "resolve_auto",
]

log = logging.getLogger(__name__)

RuntimeFactory = Callable[..., Runtime]

# name -> "module:callable" (imported lazily) or a callable
_BACKENDS: dict[str, str | RuntimeFactory] = {
    "sim": "nbkube.node.runtime.sim:SimRuntime",
    "docker": "nbkube.node.runtime.docker:DockerRuntime",
    "process": "nbkube.node.runtime.process:ProcessRuntime",
}


def register_runtime(name: str, factory: str | RuntimeFactory) -> None:
    """Add (or replace) a backend: `factory(**options) -> Runtime`, or its "module:attr" path."""
    if not name or name == "auto":
        raise BadRequest(f"runtime name {name!r} is reserved or empty")
    _BACKENDS[name] = factory


def _load(name: str) -> RuntimeFactory:
    target = _BACKENDS.get(name)
    if target is None:
        raise BadRequest(f"unknown runtime {name!r} (known: {', '.join(sorted([*_BACKENDS, 'auto']))})")
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    factory: RuntimeFactory = getattr(module, attr)
    return factory


def available_runtimes() -> list[str]:
    """The registered backends' names (does not probe daemons)."""
    return list(_BACKENDS)


def _docker_usable() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]

        client = docker.from_env(timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


def resolve_auto() -> str:
    """The backend `auto` stands for on this machine."""
    return "docker" if _docker_usable() else "process"


def create_runtime(name: str = "sim", **options: Any) -> Runtime:
    """A runtime instance of backend `name`; `options` go to its constructor (e.g. clock=, seed=)."""
    if name == "auto":
        name = resolve_auto()
    factory = _load(name)
    return factory(**options)
