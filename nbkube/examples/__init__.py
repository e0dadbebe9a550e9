"""The manifests that ship with nbkube: the article's, verbatim, and `rootless/` adapted to port 8080.

They live inside the package (declared as package data in pyproject.toml) so that `nbkube demo`,
the notebooks and the tests find them wherever nbkube is installed, whatever the working directory:
`nbkube.examples.path("rootless/web-rc.yaml")` is a file path that `cluster.apply`, `nbkube apply -f`
and `kubectl apply -f` all take; `names()` lists them.
"""

from __future__ import annotations

import atexit
import contextlib
import pathlib
from importlib import resources

from nbkube.errors import NotFound

__all__ = ["path", "names", "folder"]

# Only a zipped install has no real files: then each one is extracted once, for the process's life.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def _root() -> resources.abc.Traversable:
    return resources.files(__name__)


def _real(res: resources.abc.Traversable) -> pathlib.Path:
    if isinstance(res, pathlib.Path):
        return res
    return pathlib.Path(_extracted.enter_context(resources.as_file(res)))


def names() -> list[str]:
    """Every shipped manifest, as the relative names `path()` takes (e.g. "rootless/web-rc.yaml")."""
    found: list[str] = []

    def walk(node: resources.abc.Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir() and not child.name.startswith("__"):
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith((".yaml", ".yml")):
                found.append(prefix + child.name)

    walk(_root(), "")
    return sorted(found)


def path(name: str) -> str:
    """The file path of one shipped manifest, e.g. `path("rootless/web-rc.yaml")`."""
    parts = [p for p in name.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise NotFound(f"example {name!r}: not a manifest name (known: {', '.join(names())})")
    res = _root().joinpath(*parts)
    if not res.is_file():
        raise NotFound(f"example {name!r}: no such manifest in nbkube.examples (known: {', '.join(names())})")
    return str(_real(res))


def folder(name: str = "") -> str:
    """The folder holding the shipped manifests (or its subfolder `name`, e.g. "rootless"), for
    `nbkube apply -f DIR`."""
    res = _root().joinpath(*[p for p in name.split("/") if p]) if name else _root()
    if not res.is_dir():
        raise NotFound(f"examples folder {name!r}: no such folder in nbkube.examples")
    return str(_real(res))
