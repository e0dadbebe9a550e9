"""The kubectl-style columns of `nbkube get` (pure functions of the objects and of "now")."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.api.printers import format_table, human_duration, resource_ref, table_rows

NOW = 1_700_000_000.0
CREATED = "2023-11-14T22:11:40Z"  # NOW - 100 s


def _obj(kind: str, name: str, **rest: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": CREATED},
        **rest,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (400 * 86400, "400d"),
        (3 * 365 * 86400 + 86400, "3y1d"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_resource_ref_uses_group_for_apps_kinds() -> None:
    assert (
        resource_ref({"kind": "ReplicationController", "metadata": {"name": "a"}})
        == "replicationcontroller/a"
    )
    assert resource_ref({"kind": "Deployment", "metadata": {"name": "w"}}) == "deployment.apps/w"


def test_pod_rows_ready_status_restarts_and_wide() -> None:
    pod = _obj(
        "Pod",
        "p",
        spec={"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
        status={
            "phase": "Running",
            "podIP": "10.244.1.5",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 1,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    )
    headers, rows = table_rows("po", [pod], wide=True, now=NOW)
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert rows == [["p", "1/2", "CrashLoopBackOff", "3", "100s", "10.244.1.5", "node-1"]]


def test_terminating_pod() -> None:
    pod = _obj("Pod", "p", spec={"containers": [{"name": "a"}]}, status={"phase": "Running"})
    pod["metadata"]["deletionTimestamp"] = CREATED
    assert table_rows("Pod", [pod], now=NOW)[1][0][2] == "Terminating"


def test_service_ports_column() -> None:
    svc = _obj(
        "Service",
        "s",
        spec={
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "ports": [{"port": 8000, "nodePort": 30001, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        },
    )
    headers, rows = table_rows("svc", [svc], now=NOW)
    assert headers == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows == [["s", "NodePort", "10.96.0.10", "<none>", "8000:30001/TCP,53/UDP", "100s"]]


def test_node_status_shows_cordon() -> None:
    node = _obj(
        "Node",
        "n1",
        spec={"unschedulable": True},
        status={
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "nbkube-0.1"},
        },
    )
    node["metadata"]["labels"] = {"node-role.kubernetes.io/worker": ""}
    headers, rows = table_rows("no", [node], now=NOW)
    assert headers == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows == [["n1", "Ready,SchedulingDisabled", "worker", "100s", "nbkube-0.1"]]
    node["status"]["conditions"][0]["status"] = "Unknown"
    assert table_rows("no", [node], now=NOW)[1][0][1] == "NotReady,SchedulingDisabled"


def test_deployment_and_rc_rows() -> None:
    dep = _obj(
        "Deployment",
        "d",
        spec={"replicas": 3},
        status={"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    )
    assert table_rows("deploy", [dep], now=NOW) == (
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        [["d", "2/3", "3", "2", "100s"]],
    )
    rc = _obj("ReplicationController", "r", spec={"replicas": 5}, status={"replicas": 5, "readyReplicas": 4})
    assert table_rows("rc", [rc], now=NOW)[1] == [["r", "5", "5", "4", "100s"]]


def test_endpoints_quota_and_generic_rows() -> None:
    ep = _obj(
        "Endpoints",
        "e",
        subsets=[{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 80}]}],
    )
    assert table_rows("ep", [ep], now=NOW)[1] == [
        ["e", "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 2 more...", "100s"]
    ]
    quota = _obj(
        "ResourceQuota",
        "q",
        spec={"hard": {"pods": "10"}},
        status={"hard": {"pods": "10", "limits.cpu": "2"}, "used": {"pods": "3"}},
    )
    assert table_rows("quota", [quota], now=NOW)[1] == [["q", "100s", "pods: 3/10", "limits.cpu: 0/2"]]
    lr = _obj("LimitRange", "l")
    assert table_rows("limits", [lr], now=NOW) == (["NAME", "AGE"], [["l", "100s"]])


def test_events_table_and_namespace_column() -> None:
    ev = _obj(
        "Event",
        "e1",
        involvedObject={"kind": "Pod", "name": "p"},
        reason="Scheduled",
        message="assigned p to n1",
        type="Normal",
        lastTimestamp=CREATED,
    )
    headers, rows = table_rows("ev", [ev], now=NOW, show_namespace=True)
    assert headers == ["NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows == [["default", "100s", "Normal", "Scheduled", "pod/p", "assigned p to n1"]]


def test_format_table_aligns_without_trailing_spaces() -> None:
    text = format_table(["NAME", "AGE"], [["a-long-name", "1s"], ["b", "10m"]])
    assert text.splitlines() == ["NAME          AGE", "a-long-name   1s", "b             10m"]
