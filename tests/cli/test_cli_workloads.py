"""`nbkube scale`, `nbkube rollout ...` and `nbkube rolling-update`, in-process, against controllers
running in threads over the same SQLite store file (as `nbkube up` in another terminal would)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbk_clitest import Run

sys.path.insert(0, str(Path(__file__).parent.parent / "controlplane" / "controllers"))

from nbk_workload_helpers import FakeKubelet, active_pods, rc_manifest, wait_for  # noqa: E402

from nbkube.api.serialization import dump_yaml  # noqa: E402
from nbkube.client.informer import InformerFactory  # noqa: E402
from nbkube.controlplane.controllers.deployment import DeploymentController  # noqa: E402
from nbkube.controlplane.controllers.gc import GarbageCollector  # noqa: E402
from nbkube.controlplane.controllers.replication import (  # noqa: E402
    ReplicaSetController,
    ReplicationManager,
    is_ready,
)
from nbkube.registry.registry import Registry  # noqa: E402
from nbkube.store import open_store  # noqa: E402


@pytest.fixture
def plane(store_url: str) -> Iterator[Registry]:
    api = Registry(open_store(store_url))
    factory = InformerFactory(api)
    ctls = [
        ReplicationManager(api, factory),
        ReplicaSetController(api, factory),
        DeploymentController(api, factory),
        GarbageCollector(api, factory, dependent_kinds=("Pod", "ReplicaSet")),
    ]
    kubelet = FakeKubelet(api)
    factory.start_all()
    assert factory.wait_all_synced(5)
    for c in ctls:
        c.start()
    kubelet.start()
    yield api
    kubelet.stop()
    for c in ctls:
        c.stop()
    factory.stop_all()
    api.close()


def deployment_yaml(image: str) -> str:
    return dump_yaml(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        }
    )


def ready_pods(api: Registry, image: str, n: int, selector: str) -> bool:
    pods = active_pods(api, selector=selector)
    return len(pods) == n and all(is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in pods)


def test_scale_and_rolling_update(nbkube: Run, plane: Registry, tmp_path: Path) -> None:
    plane.create(rc_manifest(replicas=2))
    wait_for(lambda: ready_pods(plane, "nginx:1.7.9", 2, "app=nginx"))
    r = nbkube("scale", "rc/nginx", "--replicas", "3")
    assert r.code == 0 and r.out.strip() == "replicationcontroller/nginx scaled"
    wait_for(lambda: ready_pods(plane, "nginx:1.7.9", 3, "app=nginx"))
    r = nbkube("rolling-update", "nginx", "--image", "nginx:1.9.1", "--update-period", "0", "--timeout", "30")
    assert r.code == 0, r.err
    assert "Scaled up nginx-" in r.out and r.out.strip().endswith(
        "replicationcontroller/nginx rolling updated"
    )
    wait_for(lambda: ready_pods(plane, "nginx:1.9.1", 3, "app=nginx"))
    # -f form, keeping the new name
    new = rc_manifest(name="nginx-v3", replicas=3, image="nginx:3")
    (tmp_path / "v3.yaml").write_text(dump_yaml(new))
    r = nbkube(
        "rolling-update", "nginx", "-f", str(tmp_path / "v3.yaml"), "--update-period", "0", "--timeout", "30"
    )
    assert r.code == 0, r.err
    assert r.out.strip().endswith('replicationcontroller/nginx rolling updated to "nginx-v3"')
    wait_for(lambda: ready_pods(plane, "nginx:3", 3, "app=nginx"))


def test_scale_errors(nbkube: Run, plane: Registry) -> None:
    r = nbkube("scale", "pod/x", "--replicas", "1")
    assert r.code == 1 and "supported kinds are" in r.err
    r = nbkube("scale", "rc/none", "--replicas", "1")
    assert r.code == 1 and "not found" in r.err
    r = nbkube("scale", "rc/x", "--replicas", "-1")
    assert r.code == 2
    r = nbkube("rolling-update", "nginx")
    assert r.code == 2


def test_rollout_verbs(nbkube: Run, plane: Registry, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(deployment_yaml("nginx:1"))
    assert nbkube("apply", "-f", str(manifest)).code == 0
    r = nbkube("rollout", "status", "deploy/web", "--timeout", "20")
    assert r.code == 0 and r.out.strip().endswith('deployment "web" successfully rolled out')
    manifest.write_text(deployment_yaml("nginx:2"))
    assert nbkube("apply", "-f", str(manifest)).code == 0
    r = nbkube("rollout", "status", "deployment", "web", "--timeout", "20")
    assert r.code == 0, r.err
    wait_for(lambda: ready_pods(plane, "nginx:2", 2, "app=web"))
    r = nbkube("rollout", "history", "deploy/web")
    assert r.code == 0 and [line.split()[0] for line in r.out.splitlines()[2:]] == ["1", "2"]
    r = nbkube("rollout", "undo", "deploy/web")
    assert r.code == 0 and r.out.strip() == "deployment.apps/web rolled back to revision 1"
    assert nbkube("rollout", "status", "deploy/web", "--timeout", "20").code == 0
    wait_for(lambda: ready_pods(plane, "nginx:1", 2, "app=web"))
    assert nbkube("rollout", "pause", "deploy/web").out.strip() == "deployment.apps/web paused"
    r = nbkube("rollout", "pause", "deploy/web")
    assert r.code == 1 and "already paused" in r.err
    assert nbkube("rollout", "resume", "deploy/web").out.strip() == "deployment.apps/web resumed"
    r = nbkube("rollout", "undo", "deploy/web", "--to-revision", "9")
    assert r.code == 1 and "revision 9" in r.err
    r = nbkube("rollout", "status", "rc/web")
    assert r.code == 1 and "supported kinds are deployment" in r.err
