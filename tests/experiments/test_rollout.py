from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from nbkube.cluster import LocalCluster
from nbkube.errors import BadRequest
from nbkube.experiments import rollout
from nbkube.experiments.rollout import rollout_summary

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "busybox:1"}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
"""


def _final_images(df) -> set[str]:  # type: ignore[no-untyped-def]
    pods = df[df["source"] == "pod"].groupby("pod").last()
    return set(pods[(pods["gone"] == False) & (pods["deleting"] == False)]["image"])  # noqa: E712


@pytest.mark.slow
def test_rc_rolling_update_under_load(demo_cluster: LocalCluster) -> None:
    result = rollout(demo_cluster, "web-test-controller", "busybox:2", "web-http-service", update_period=0.1)
    summary = result.summary.set_index("metric")["value"]
    assert summary["time to complete"] > 0
    assert summary["min ready during rollout"] >= 5  # maxUnavailable 0
    assert summary["max pods scheduled during rollout"] <= 6  # maxSurge 1
    assert summary["pods created"] == 5 and summary["requests failed"] == 0
    assert _final_images(result.df) == {"busybox:2"}
    assert {"RollingUpdate"} <= set(result.df["reason"])
    assert rollout_summary(result.df.copy()).equals(result.summary)
    assert isinstance(result.plot(), Figure)
    rc = demo_cluster.api.get("ReplicationController", "web-test-controller", "default")
    assert rc["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:2"


@pytest.mark.slow
def test_deployment_rollout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with LocalCluster(nodes=2, store="memory", data_dir=str(tmp_path)) as c:
        c.apply(DEPLOYMENT)
        result = rollout(c, "deploy/api", "busybox:2", "api", timeout=30, warmup=0.2)
        summary = result.summary.set_index("metric")["value"]
        assert summary["replicas"] == 3 and summary["pods created"] == 3
        assert _final_images(result.df) == {"busybox:2"}
        assert "ScalingReplicaSet" in set(result.df["reason"])
        # revisions differ by image and template hash
        assert result.df[result.df["source"] == "pod"]["revision"].nunique() == 2


def test_rollout_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with LocalCluster(nodes=1, store="memory", data_dir=str(tmp_path)) as c:
        c.apply(DEPLOYMENT)
        with pytest.raises(BadRequest, match="no ReplicationController or Deployment named nope"):
            rollout(c, "nope", "busybox:2")
        with pytest.raises(BadRequest, match="no container named 'x'"):
            rollout(c, "deploy/api", "busybox:2", container="x")
        with pytest.raises(BadRequest, match="image"):
            rollout(c, "deploy/api", "")
        d = c.api.get("Deployment", "api", "default")
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
