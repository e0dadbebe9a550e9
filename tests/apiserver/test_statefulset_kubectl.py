"""A StatefulSet through the real kubectl on a served cluster: process nodes and Docker nodes.

What issue's "Done when" asks of StatefulSets: pods `db-0..db-2` start in order (each created
only after the previous one is Running and Ready), each has its own hostname (`$HOSTNAME` for
processes; the container's `hostname` and domainname on Docker), each gets its own claim, bound
to a local-path volume (a folder under the cluster's folder, on the pod's node), and what a pod
writes there is still there after `kubectl delete pod db-1` brings a new db-1. Then scale-down
removes the highest ordinals and keeps their claims.

One cluster per runtime for the module; every kubectl call has a subprocess timeout and every
wait is a bounded poll. The Docker half needs root and a Docker engine (run under flock).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl
from nbk_clustertest import wait_until

from nbkube.apiserver import ApiServer, serve
from nbkube.clock import parse_rfc3339
from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        # the process runtime gives the volume's folder in $NBKUBE_VOLUME_DATA, Docker mounts it at /data
        command: ["sh", "-c", "D=${NBKUBE_VOLUME_DATA:-/data}; echo $HOSTNAME >> $D/starts; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe:
          exec: {command: ["sh", "-c", "test -s ${NBKUBE_VOLUME_DATA:-/data}/starts"]}
          periodSeconds: 1
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
"""

DATA = "${NBKUBE_VOLUME_DATA:-/data}"


def _state(env: Env) -> str:
    """What to show when a wait times out: the set's status and each pod's revision and phase."""
    sts = env.get("sts", "db")
    pods = [
        (p["metadata"]["name"], p["metadata"]["labels"].get("controller-revision-hash"), p["status"].get("phase"),
         [c["status"] for c in p["status"].get("conditions", []) if c["type"] == "Ready"])
        for p in env.get("pods", "-l", "app=db")["items"]
    ]  # fmt: skip
    return f"status={sts.get('status')} pods={pods}"


def _wait(env: Env, cond: Any, timeout: float, what: str) -> None:
    try:
        wait_until(cond, timeout, what, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_state(env)}") from None


class Env:
    def __init__(self, cluster: LocalCluster, server: ApiServer, kubectl: Kubectl, runtime: str):
        self.cluster, self.server, self.kubectl, self.runtime = cluster, server, kubectl, runtime

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl.ok("get", *args, "-o", "json"))

    def sh(self, pod: str, script: str) -> str:
        return self.kubectl.ok("exec", pod, "--", "sh", "-c", script).strip()


def _start(runtime: str, folder: str) -> Iterator[Env]:
    assert KUBECTL is not None, "kubectl is not installed: these tests need the real kubectl"
    with LocalCluster(
        nodes=2, runtime=runtime, store="sqlite", data_dir=folder + "/c", name=f"sts{runtime[:2]}"
    ) as c:
        srv = serve(c)
        try:
            home = os.path.join(folder, "home")
            os.mkdir(home)
            env = Env(c, srv, Kubectl(srv.write_kubeconfig(folder + "/kubeconfig"), home), runtime)
            env.kubectl.ok("apply", "-f", "-", stdin=MANIFEST)
            wait_until(
                lambda: (env.get("sts", "db").get("status") or {}).get("readyReplicas") == 3,
                120 if runtime == "docker" else 60,
                "statefulset db 3/3 ready",
                interval=0.5,
            )
            yield env
        finally:
            srv.stop()


@pytest.fixture(scope="module", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if request.param == "docker":
        request.getfixturevalue(
            "docker_client"
        )  # skips (or fails under NBKUBE_REQUIRE_DOCKER) with the reason
    yield from _start(request.param, str(tmp_path_factory.mktemp(f"sts-{request.param}")))


def _ready_at(pod: dict[str, Any]) -> float:
    for c in pod["status"]["conditions"]:
        if c["type"] == "Ready" and c["status"] == "True":
            return parse_rfc3339(c["lastTransitionTime"])
    raise AssertionError(f"{pod['metadata']['name']} is not Ready")


def test_pods_start_in_order_with_their_hostnames(env: Env) -> None:
    pods = {p["metadata"]["name"]: p for p in env.get("pods", "-l", "app=db")["items"]}
    assert sorted(pods) == ["db-0", "db-1", "db-2"]
    for prev, nxt in (("db-0", "db-1"), ("db-1", "db-2")):
        # OrderedReady: the next pod was created only once the previous one was Ready (RFC 3339 seconds)
        assert parse_rfc3339(pods[nxt]["metadata"]["creationTimestamp"]) >= int(_ready_at(pods[prev])), (
            prev,
            nxt,
        )
    for name, pod in pods.items():
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "db"
        assert env.sh(name, "echo $HOSTNAME") == name
        if env.runtime == "docker":
            assert env.sh(name, "hostname") == name
            assert env.sh(name, "cat /proc/sys/kernel/domainname") == "db.default.svc.cluster.local"
    assert len({p["spec"]["nodeName"] for p in pods.values()}) >= 1
    table = env.kubectl.ok("get", "sts", "db")
    assert table.split()[:4] == ["NAME", "READY", "AGE", "db"] and "3/3" in table


def test_each_pod_has_its_claim_on_a_local_path_volume(env: Env) -> None:
    classes = env.kubectl.ok("get", "storageclass")
    assert (
        "local-path (default)" in classes
        and "nbkube.io/local-path" in classes
        and "WaitForFirstConsumer" in classes
    )
    claims = {c["metadata"]["name"]: c for c in env.get("pvc")["items"]}
    assert sorted(claims) == ["data-db-0", "data-db-1", "data-db-2"]
    pods = {p["metadata"]["name"]: p for p in env.get("pods", "-l", "app=db")["items"]}
    for i in range(3):
        claim = claims[f"data-db-{i}"]
        assert claim["status"]["phase"] == "Bound" and claim["spec"]["storageClassName"] == "local-path"
        pv = env.get("pv", claim["spec"]["volumeName"])
        node = pods[f"db-{i}"]["spec"]["nodeName"]
        assert pv["spec"]["local"]["path"] == os.path.join(
            env.cluster.data_dir, "local-path", node, pv["metadata"]["name"]
        )
        assert os.path.isfile(os.path.join(pv["spec"]["local"]["path"], "starts"))
    pvc_table = env.kubectl.ok("get", "pvc", "data-db-0").splitlines()
    assert pvc_table[0].split()[:5] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS"]
    assert pvc_table[1].split()[1] == "Bound" and "RWO" in pvc_table[1] and "local-path" in pvc_table[1]
    pv_table = env.kubectl.ok("get", "pv")
    assert "default/data-db-1" in pv_table and "Delete" in pv_table and "Bound" in pv_table


def test_data_survives_pod_delete(env: Env) -> None:
    env.sh("db-1", f"echo kept-by-db-1 > {DATA}/note")
    old_uid = env.get("pod", "db-1")["metadata"]["uid"]
    env.kubectl.ok("delete", "pod", "db-1", "--wait=false")

    def replaced() -> bool:
        proc = env.kubectl("get", "pod", "db-1", "-o", "json")
        if proc.returncode != 0:
            return False
        pod = json.loads(proc.stdout)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        return pod["metadata"]["uid"] != old_uid and ready

    wait_until(replaced, 90, "a new db-1 Ready", interval=0.5)
    assert env.sh("db-1", f"cat {DATA}/note") == "kept-by-db-1"
    assert env.sh("db-1", f"cat {DATA}/starts").split() == ["db-1", "db-1"]  # one line per start
    assert env.sh("db-1", "echo $HOSTNAME") == "db-1"


def test_rollout_status_and_scale_down_keeps_claims(env: Env) -> None:
    out = env.kubectl.ok("rollout", "status", "sts/db", "--timeout=60s", timeout=70)
    assert "roll out complete" in out or "partitioned roll out complete" in out
    env.kubectl.ok("scale", "sts", "db", "--replicas=1")
    _wait(
        env,
        lambda: [p["metadata"]["name"] for p in env.get("pods", "-l", "app=db")["items"]] == ["db-0"],
        90,
        "scale down to db-0",
    )
    events = env.get("events", "--field-selector", "involvedObject.name=db,reason=SuccessfulDelete")["items"]
    deleted = [
        e["message"].split()[2] for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
    ]
    assert deleted[-2:] == ["db-2", "db-1"]
    assert len(env.get("pvc")["items"]) == 3  # Retain: the claims of db-1 and db-2 stay


def test_rolling_update_history_and_undo(env: Env) -> None:
    env.kubectl.ok("scale", "sts", "db", "--replicas=2")
    env.kubectl.ok("set", "env", "sts/db", "WAVE=2")
    _wait(
        env,
        lambda: (
            (st := env.get("sts", "db")["status"]).get("updatedReplicas") == 2
            and st.get("readyReplicas") == 2
            and st["currentRevision"] == st["updateRevision"]
        ),
        120,
        "update to WAVE=2",
    )
    assert env.sh("db-1", "echo $WAVE") == "2"
    history = env.kubectl.ok("rollout", "history", "sts/db")
    assert "REVISION" in history and "1" in history and "2" in history
    env.kubectl.ok("rollout", "undo", "sts/db")
    _wait(
        env,
        lambda: (
            (st := env.get("sts", "db")["status"]).get("readyReplicas") == 2
            and st["currentRevision"] == st["updateRevision"]
            and all("WAVE" not in json.dumps(p["spec"]) for p in env.get("pods", "-l", "app=db")["items"])
        ),
        120,
        "undo to the first revision",
    )
    assert env.sh("db-0", "echo ${WAVE:-none}") == "none"
