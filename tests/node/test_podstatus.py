"""podstatus.build_pod_status: what the agent builds is what the registry stores, so a resync of a
settled pod finds nothing to write."""

from __future__ import annotations

import pytest

from nbkube.api.meta import Obj
from nbkube.api.wirenorm import from_wire
from nbkube.node.podstatus import build_pod_status
from nbkube.node.runtime.base import ContainerStatus, PodRuntimeStatus

POD: Obj = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
}


def _runtime(state: str, ready: bool) -> PodRuntimeStatus:
    container = ContainerStatus(
        name="c",
        image="busybox",
        state=state,  # type: ignore[arg-type]
        ready=ready,
        started_at=100.0 if state != "waiting" else None,
        finished_at=105.0 if state == "terminated" else None,
        exit_code=0 if state == "terminated" else None,
        reason="ContainerCreating" if state == "waiting" else "",
        container_id="sim://c1",
    )
    return PodRuntimeStatus(
        uid="u1", namespace="default", name="p", sandbox_ready=True, pod_ip="10.1.0.5", containers=[container]
    )


@pytest.mark.parametrize(
    "rt",
    [
        None,
        _runtime("waiting", False),
        _runtime("running", False),
        _runtime("running", True),
        _runtime("terminated", False),
    ],
    ids=["no-runtime", "waiting", "running", "ready", "terminated"],
)
def test_built_status_is_already_in_stored_form(rt: PodRuntimeStatus | None) -> None:
    status = build_pod_status(POD, rt, host_ip="10.0.0.1", now=100.0, start_time=99.0)
    assert from_wire(status) == status  # no nulls the registry would drop


def test_a_rebuild_from_the_stored_status_is_equal() -> None:
    first = build_pod_status(POD, _runtime("running", True), host_ip="10.0.0.1", now=100.0, start_time=99.0)
    stored = {**POD, "status": from_wire(first)}
    again = build_pod_status(stored, _runtime("running", True), host_ip="10.0.0.1", now=130.0)
    assert again == stored["status"]  # same conditions' transition times, nothing to write
