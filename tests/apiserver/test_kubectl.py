"""End to end with the real kubectl (v1.32) against a served LocalCluster(nodes=2, runtime="sim").

Every kubectl call is bounded by a subprocess timeout; waits for controllers are bounded polls.
The manifests are the article's, from examples/.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import EXAMPLES, KUBECTL, Kubectl, served_sim

pytestmark = [pytest.mark.slow, pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")]

RC = "nginx-rc.yaml"
SVC = "nginx-service.yaml"


@pytest.fixture
def kc(tmp_path: Any) -> Iterator[Kubectl]:
    with served_sim(tmp_path) as (kubeconfig, home):
        yield Kubectl(kubeconfig, home)


def _pods(kc: Kubectl) -> list[str]:
    return kc.ok("get", "pods", "-o", "name").split()


def _wait_pods(kc: Kubectl, count: int) -> list[str]:
    pods: list[str] = []
    for _ in range(60):  # bounded: the sim controllers settle in well under this
        pods = _pods(kc)
        if len(pods) == count:
            return pods
        time.sleep(0.5)
    return pods


def test_apply_get_scale_label_delete(kc: Kubectl) -> None:
    out = kc.ok("apply", "-f", RC, "-f", SVC)
    assert "replicationcontroller/nginx-test-controller created" in out
    assert "service/nginx-http-service created" in out
    again = kc.ok("apply", "-f", RC, "-f", SVC)
    assert "replicationcontroller/nginx-test-controller unchanged" in again
    assert "service/nginx-http-service unchanged" in again

    assert len(_wait_pods(kc, 5)) == 5
    wide = kc.ok("get", "rc,svc,pods", "-o", "wide")
    assert "replicationcontroller/nginx-test-controller" in wide and "service/nginx-http-service" in wide
    assert "8000:30001/TCP" in wide and "pod/nginx-test-controller-" in wide
    header = next(
        line for line in wide.splitlines() if line.startswith("NAME") and "READY" in line and "STATUS" in line
    )
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert "node-1" in wide or "node-2" in wide

    name = _pods(kc)[0].split("/")[1]
    pod_yaml = kc.ok("get", "pod", name, "-o", "yaml")
    assert "kind: Pod" in pod_yaml and f"name: {name}" in pod_yaml and "resourceVersion:" in pod_yaml

    assert "replicationcontroller/nginx-test-controller scaled" in kc.ok(
        "scale", "rc", "nginx-test-controller", "--replicas", "3"
    )
    assert len(_wait_pods(kc, 3)) == 3
    assert kc.ok("get", "rc", "nginx-test-controller", "-o", "jsonpath={.spec.replicas}") == "3"

    assert "labeled" in kc.ok("label", "rc", "nginx-test-controller", "tier=web")
    assert "tier=web" in kc.ok("get", "rc", "--show-labels")
    assert len(kc.ok("get", "pods", "-l", "app=nginx", "-o", "name").split()) == 3

    out = kc.ok("delete", "-f", RC, "-f", SVC, timeout=60)
    assert 'replicationcontroller "nginx-test-controller" deleted' in out
    assert 'service "nginx-http-service" deleted' in out
    assert "nginx-http-service" not in kc.ok("get", "svc")


def test_apply_changed_manifest_is_configured(kc: Kubectl, tmp_path: Any) -> None:
    kc.ok("apply", "-f", SVC)
    with open(os.path.join(EXAMPLES, SVC)) as f:
        changed = f.read().replace("port: 8000", "port: 8080")
    (tmp_path / "svc.yaml").write_text(changed)
    out = kc.ok("apply", "-f", str(tmp_path / "svc.yaml"))
    assert "service/nginx-http-service configured" in out
    assert "8080:30001/TCP" in kc.ok("get", "svc", "nginx-http-service")


def test_errors(kc: Kubectl) -> None:
    proc = kc("get", "pod", "x")
    assert proc.returncode == 1
    assert 'Error from server (NotFound): pods "x" not found' in proc.stderr
    typo = "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec:\n  containerz: []\n"
    proc = kc("apply", "-f", "-", stdin=typo)
    assert proc.returncode == 1 and "strict decoding error" in proc.stderr and "containerz" in proc.stderr
    invalid = "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\nspec:\n  containers: [{name: c}]\n"
    proc = kc("create", "-f", "-", stdin=invalid)
    assert proc.returncode == 1
    assert 'The Pod "t" is invalid' in proc.stderr and "spec.containers[0].image" in proc.stderr


def test_create_and_watch(kc: Kubectl) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: w1}\nspec:\n  containers: [{name: c, image: nginx}]\n"
    assert "pod/w1 created" in kc.ok("create", "-f", "-", stdin=pod)
    try:
        proc = kc("get", "pods", "-w", "--request-timeout=3s", timeout=20)
        out = proc.stdout
    except subprocess.TimeoutExpired as e:  # the subprocess bound, should --request-timeout not end it
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    assert "w1" in out and "NAME" in out
    assert "pod/w1" in kc.ok("get", "pods", "-A", "-o", "name")
    assert "NAMESPACE" in kc.ok("get", "pods", "-A")
    assert 'pod "w1" deleted' in kc.ok("delete", "pod", "w1", timeout=60)


def test_typed_create_commands_send_protobuf(kc: Kubectl) -> None:
    assert "namespace/team created" in kc.ok("create", "namespace", "team")
    assert "configmap/cm1 created" in kc.ok("create", "configmap", "cm1", "--from-literal=a=b", "-n", "team")
    assert "secret/s1 created" in kc.ok(
        "create", "secret", "generic", "s1", "--from-literal=pw=hunter2", "-n", "team"
    )
    assert kc.ok("get", "secret", "s1", "-n", "team", "-o", "jsonpath={.data.pw}") == "aHVudGVyMg=="
    out = kc.ok("get", "cm,secrets", "-n", "team")
    assert "configmap/cm1" in out and "secret/s1" in out


def test_drain_evicts_through_the_policy_group_and_cordons(kc: Kubectl) -> None:
    kc.ok("apply", "-f", RC)
    _wait_pods(kc, 5)
    nodes = kc.ok("get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}").split()
    victim = nodes[0]
    before = sorted(_pods(kc))
    # a server-side dry run (protobuf Evictions with DeleteOptions.dryRun) evicts and cordons nothing
    dry = kc.ok("drain", victim, "--ignore-daemonsets", "--dry-run=server", "--timeout=30s", timeout=60)
    assert "(server dry run)" in dry
    assert sorted(_pods(kc)) == before and "SchedulingDisabled" not in kc.ok("get", "node", victim)
    out = kc.ok("drain", victim, "--ignore-daemonsets", "--timeout=30s", timeout=60)
    assert f"node/{victim} drained" in out and "evicted" in out
    assert "SchedulingDisabled" in kc.ok("get", "node", victim)
    for _ in range(60):  # bounded: the RC replaces the evicted pods on the other node
        placed = kc.ok("get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}").split()
        if len(placed) == 5 and victim not in placed:
            break
        time.sleep(0.5)
    assert len(placed) == 5 and victim not in placed
    assert f"node/{victim} uncordoned" in kc.ok("uncordon", victim)


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "nginx:1"}]
"""


def _replicasets(kc: Kubectl) -> dict[str, int]:
    out = kc.ok("get", "rs", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas} {end}")
    return {name: int(n) for name, n in (pair.split("=") for pair in out.split())}


def _wait_rs(kc: Kubectl, want: Any) -> dict[str, int]:
    rss: dict[str, int] = {}
    for _ in range(60):  # bounded: the sim controllers settle in well under this
        rss = _replicasets(kc)
        if want(rss):
            return rss
        time.sleep(0.5)
    return rss


def test_rollout_undo_reuses_the_old_revisions_replicaset(kc: Kubectl) -> None:
    """kubectl sends back the old ReplicaSet's template as `kubectl get` shows it (with
    `creationTimestamp: null`): the Deployment must scale that ReplicaSet up again, not make a third."""
    kc.ok("apply", "-f", "-", stdin=DEPLOYMENT)
    first = _wait_rs(kc, lambda rss: len(rss) == 1 and sum(rss.values()) == 2)
    assert len(first) == 1
    (old_name,) = first
    kc.ok("set", "image", "deploy/web", "c=nginx:2")
    second = _wait_rs(kc, lambda rss: len(rss) == 2 and rss.get(old_name) == 0)
    assert len(second) == 2 and second[old_name] == 0, second
    assert "rolled back" in kc.ok("rollout", "undo", "deploy/web")
    third = _wait_rs(kc, lambda rss: rss.get(old_name) == 2)
    assert set(third) == set(second) and third[old_name] == 2, third
    assert (
        kc.ok("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}") == "nginx:1"
    )
