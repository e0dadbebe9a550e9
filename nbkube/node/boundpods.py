"""The pods a node side keeps in its informer: the bound ones, as a kubelet watches only the pods
bound to it (field selector `spec.nodeName`).

Why: nothing on a node acts on a pod no node holds yet (no agent runs it, it has no address for a
proxy or a firewall, no hostPort). A process of simulated nodes beside a busy control plane would
otherwise decode, cache and index every pending pod the controllers create, a third of the pod
events of a big rollout. The raw check looks for the `"nodeName"` key in the stored JSON, which a
pending pod does not have (null and absent fields are not stored), so those are not even decoded;
whether the key holds a name is still decided on the decoded pod.

For a node side in a process of its own (the sim-nodes process, a joined node). Agents in the
cluster's own process keep every pod instead: their informer shares each decoded pod with the
control plane's informers, and a filter's work per event would only let it fall behind them.
"""

from __future__ import annotations

from typing import Any

from nbkube.api.meta import Obj
from nbkube.client.informer import InformerFactory, WatchFilter, filters_watches

__all__ = ["BOUND_PODS", "node_informers"]


def _bound(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _may_be_bound(value: bytes) -> bool:
    return b'"nodeName"' in value


BOUND_PODS = WatchFilter("bound pods", keep=_bound, raw=_may_be_bound)


def node_informers(api: Any) -> InformerFactory:
    """The informer factory of a node side: bound pods only over the in-process registry, which
    filters its watches; a REST client's informers keep every pod (its API has no such filter
    here), which costs memory, not correctness."""
    return InformerFactory(api, filters={"Pod": BOUND_PODS} if filters_watches(api) else None)
