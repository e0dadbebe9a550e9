"""LocalCluster.start brings the node agents up (Node registered, Lease renewed) before the control
plane: a control plane restarted over a live store must never see the downtime's stale Leases
first, or its node lifecycle controller evicts the pods the agents are about to adopt. Simulated
nodes, an in-memory store: the order is checked at the moment the control plane starts."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.clock import FakeClock, parse_rfc3339
from nbkube.cluster import LocalCluster
from nbkube.controlplane.manager import ControlPlane


def test_agents_renew_their_leases_before_the_control_plane_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real_start = ControlPlane.start

    def start(self: ControlPlane) -> None:
        leases = self.api.list("Lease", "kube-node-lease")[0]
        seen["leases"] = {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}
        seen["nodes"] = sorted(n["metadata"]["name"] for n in self.api.list("Node")[0])
        seen["now"] = self.clock.now()
        real_start(self)

    monkeypatch.setattr(ControlPlane, "start", start)
    clock = FakeClock()  # stands still: a Lease renewed by this start carries exactly its time
    with LocalCluster(nodes=2, runtime="sim", store="memory", clock=clock) as cluster:
        assert cluster.control_plane is not None and cluster.running
    assert seen["nodes"] == ["node-1", "node-2"]
    assert sorted(seen["leases"]) == ["node-1", "node-2"]
    assert all(parse_rfc3339(renewed) == seen["now"] for renewed in seen["leases"].values())
