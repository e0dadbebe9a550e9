"""The scheduler's plugins, one module each, and the default lists the Framework runs.

Order matters for filters: the first refusing plugin gives a node's reason, as upstream (so a
cordoned node reports "unschedulable" rather than "Insufficient cpu").
"""

from __future__ import annotations

from nbkube.controlplane.scheduler.framework import FilterPlugin, ScorePlugin
from nbkube.controlplane.scheduler.plugins.least_allocated import LeastAllocated
from nbkube.controlplane.scheduler.plugins.node_affinity import NodeAffinity
from nbkube.controlplane.scheduler.plugins.node_ports import NodePorts
from nbkube.controlplane.scheduler.plugins.node_ready import NodeReadySchedulable
from nbkube.controlplane.scheduler.plugins.resources import NodeResourcesFit
from nbkube.controlplane.scheduler.plugins.selector_spread import SelectorSpread
from nbkube.controlplane.scheduler.plugins.taint_toleration import TaintToleration

__all__ = [
    "default_filters",
    "default_scores",
    "LeastAllocated",
    "NodeAffinity",
    "NodePorts",
    "NodeReadySchedulable",
    "NodeResourcesFit",
    "SelectorSpread",
    "TaintToleration",
]


def default_filters() -> list[FilterPlugin]:
    return [NodeReadySchedulable(), NodeAffinity(), TaintToleration(), NodeResourcesFit(), NodePorts()]


def default_scores() -> list[ScorePlugin]:
    return [LeastAllocated(weight=1), SelectorSpread(weight=2)]
