"""network layer of nbkube: pod networks behind the `PodNetwork` seam (see base.py).

`make_network` picks a backend by name, as the runtimes are picked, for the node agent and
LocalCluster: "bridge" (root, netns per node), "loopback" (embedded), "none" (sim).
"""

from __future__ import annotations

import os

from nbkube.node.network.base import NetworkError, NodeNetInfo, NoNetwork, PodNetwork

__all__ = ["NetworkError", "NodeNetInfo", "NoNetwork", "PodNetwork", "make_network"]


def make_network(kind: str, node_name: str, index: int, state_dir: str | os.PathLike[str] = "") -> PodNetwork:
    """The pod network `kind` for node number `index` (1..253) called `node_name`."""
    if kind == "bridge":
        from nbkube.node.network.bridge import BridgeNetwork

        if not state_dir:
            raise ValueError("the bridge network needs a state_dir to keep pod addresses across restarts")
        return BridgeNetwork(node_name, index, state_dir)
    if kind == "loopback":
        from nbkube.node.network.loopback import LoopbackNetwork

        return LoopbackNetwork(index)
    if kind == "none":
        return NoNetwork(index)
    raise ValueError(f"unknown network kind {kind!r}; expected 'bridge', 'loopback' or 'none'")
