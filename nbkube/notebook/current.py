"""Which cluster the `%nbkube` magics talk to: the kernel's own, never a store picked behind its back.

The clusters running in this kernel register themselves in `nbkube.cluster` (a LocalCluster when it
starts, a `connect()` handle when it is made); this module only reads that registry, so the cluster
wiring never imports the notebook layer. The current cluster is, in order:

1. what `set_current()` was given (a Registry used in-process, or a store URL), until `set_current(None)`;
2. the cluster chosen with `use(NAME)` (`%nbkube use NAME`), while it runs;
3. the newest running cluster of this kernel.

With none of these, `current_target()` is None and the magics answer with `NO_CLUSTER_HINT`
(unless the command names a store itself: `--store URL` or $NBKUBE_STORE).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NO_CLUSTER_HINT",
    "clear_current",
    "current_cluster",
    "current_target",
    "get_current",
    "running",
    "set_current",
    "use",
]

NO_CLUSTER_HINT = (
    "no cluster in this kernel: start one (cluster = nbkube.LocalCluster()) or attach "
    "(nbkube.connect(URL)), or give --store URL"
)

_explicit: Any = None  # a Registry or a store URL given to set_current()
_chosen: str | None = None  # the name given to use()


def running() -> dict[str, Any]:
    """The clusters running in this kernel, by name, oldest first."""
    from nbkube.cluster import running_clusters

    return running_clusters()


def set_current(api_or_store_url: Any) -> None:
    """Point the magics at this Registry (in-process) or store URL; None goes back to the kernel's clusters."""
    global _explicit
    _explicit = api_or_store_url


def clear_current(api_or_store_url: Any) -> None:
    """Forget what `set_current()` was given if it is this one."""
    global _explicit
    if _explicit is api_or_store_url:
        _explicit = None


def use(name: str) -> Any:
    """Make the running cluster `name` the current one; returns it. KeyError names the running ones."""
    global _chosen, _explicit
    clusters = running()
    if name not in clusters:
        known = ", ".join(clusters) or "none"
        raise KeyError(f"no cluster named {name!r} runs in this kernel (running: {known})")
    _chosen, _explicit = name, None
    return clusters[name]


def current_cluster() -> Any:
    """The running cluster object the magics follow (steps 2 and 3 above), or None."""
    clusters = running()
    if _chosen is not None and _chosen in clusters:
        return clusters[_chosen]
    if clusters:
        return list(clusters.values())[-1]
    return None


def current_target() -> Any:
    """What the magics talk to: a Registry or a store URL, or None when there is no cluster."""
    if _explicit is not None:
        return _explicit
    cluster = current_cluster()
    return cluster.api if cluster is not None else None


def get_current() -> Any:
    """`current_target()` (the name the magics and older notebooks use)."""
    return current_target()
