"""A node resolves a pod's persistentVolumeClaim volume to its bound volume's folder (claims.py),
and the runtimes' shared volume code mounts it; hostnames and domains as the kubelet gives them."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from nbk_teststore import make_store  # noqa: E402

from nbkube.node.claims import LOCAL_PATH_PROVISIONER, claim_resolver  # noqa: E402
from nbkube.node.runtime.volumes import PodConfigError, pod_hostname, prepare_host_volumes  # noqa: E402
from nbkube.registry.registry import Registry  # noqa: E402


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(make_store())
    yield reg
    reg.close()


def _claim(api: Registry, name: str = "data", bound_to: str | None = None) -> None:
    c = api.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
        }
    )
    if bound_to:
        c = api.patch("PersistentVolumeClaim", name, "default", {"spec": {"volumeName": bound_to}})
        api.update_status({**c, "status": {"phase": "Bound"}})


def _volume(api: Registry, name: str, path: str, node: str = "n1", ours: bool = True) -> None:
    meta: dict[str, Any] = {"name": name}
    if ours:
        meta["annotations"] = {"pv.kubernetes.io/provisioned-by": LOCAL_PATH_PROVISIONER}
    api.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": meta,
            "spec": {
                "capacity": {"storage": "1Mi"},
                "accessModes": ["ReadWriteOnce"],
                "local": {"path": path},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                                ]
                            }
                        ]
                    }
                },
            },
        }
    )


POD = {
    "metadata": {"name": "db-1", "namespace": "default"},
    "spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
}


def test_unbound_claim_waits_then_resolves_to_the_volume_folder(api: Registry, tmp_path: Path) -> None:
    resolve = claim_resolver(api, "n1")
    with pytest.raises(PodConfigError) as info:
        resolve(POD, "data")
    assert info.value.retry and "not found" in info.value.message
    _claim(api)
    with pytest.raises(PodConfigError) as info:
        resolve(POD, "data")
    assert info.value.retry and "not bound yet" in info.value.message
    folder = tmp_path / "local-path" / "n1" / "pv1"
    _volume(api, "pv1", str(folder))
    api.delete("PersistentVolumeClaim", "data", "default")
    _claim(api, bound_to="pv1")
    assert resolve(POD, "data") == str(folder)
    assert folder.is_dir()  # a local-path folder is made by the node when missing
    binds = prepare_host_volumes(POD, str(tmp_path / "pod"), "n1", None, resolve)
    assert binds == {"data": (str(folder), False)}


def test_volume_of_another_node_or_missing_folder_is_refused(api: Registry, tmp_path: Path) -> None:
    _volume(api, "pv1", str(tmp_path / "x"), node="n2")
    _claim(api, bound_to="pv1")
    with pytest.raises(PodConfigError) as info:
        claim_resolver(api, "n1")(POD, "data")
    assert "not on node n1" in info.value.message
    _volume(api, "pv2", str(tmp_path / "absent"), ours=False)
    _claim(api, "other", bound_to="pv2")
    with pytest.raises(PodConfigError) as info:
        claim_resolver(api, "n1")(POD, "other")
    assert "does not exist on node n1" in info.value.message
    assert not os.path.exists(tmp_path / "absent")  # a user's local volume is never made up


def test_no_resolver_is_a_clear_refusal(tmp_path: Path) -> None:
    with pytest.raises(PodConfigError) as info:
        prepare_host_volumes(POD, str(tmp_path), "n1", None, None)
    assert info.value.reason == "VolumeUnsupported"


def test_pod_hostname_and_domain() -> None:
    assert pod_hostname({"metadata": {"name": "web-x", "namespace": "ns"}, "spec": {}}) == ("web-x", "")
    pod = {"metadata": {"name": "db-1", "namespace": "prod"}, "spec": {"hostname": "db-1", "subdomain": "db"}}
    assert pod_hostname(pod) == ("db-1", "db.prod.svc.cluster.local")
    assert pod_hostname({"metadata": {"name": "a" * 80}, "spec": {}})[0] == "a" * 63


@pytest.mark.skipif(os.geteuid() != 0, reason="switching uid needs root")
def test_process_pod_whose_uid_cannot_reach_its_claim_folder_is_told(tmp_path: Path) -> None:
    import time

    from nbkube.node.runtime.base import PodSandboxConfig
    from nbkube.node.runtime.process import ProcessRuntime, find_busybox, volume_env_name

    assert find_busybox() is not None, "the process runtime needs the host's busybox"
    closed = tmp_path / "closed" / "pv1"  # pytest's tmp_path is closed to other uids
    closed.mkdir(parents=True)
    opened = tempfile_dir()
    runtime = ProcessRuntime(
        str(opened / "state"), backoff_base=0.1, stop_grace_cap=1.0,
        resolve_claim=lambda pod, name: str(closed if name == "far" else opened / "pv2"),
    )  # fmt: skip
    (opened / "pv2").mkdir()
    (opened / "pv2").chmod(0o777)
    sandbox = PodSandboxConfig(
        node_name="n1", pod_ip="127.244.1.2", pod_cidr="127.244.1.0/24", host_ip="127.240.0.2"
    )

    def claim_pod(uid: str, claim: str) -> dict[str, Any]:
        return {
            "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": {
                "restartPolicy": "Never",
                "hostname": uid, "subdomain": "db",
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
                "containers": [{"name": "c", "image": "busybox", "securityContext": {"runAsUser": 65534},
                                "command": ["sh", "-c", f'echo "$HOSTNAME" > ${volume_env_name("data")}/who']}],
            },
        }  # fmt: skip

    def settled(uid: str) -> Any:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            st = runtime.pod_status(uid)
            if st is not None and st.containers[0].reason not in ("ContainerCreating", None, ""):
                return st
            if st is not None and st.containers[0].state == "terminated":
                return st
            time.sleep(0.02)
        raise AssertionError(f"pod {uid} did not settle")

    try:
        runtime.start_pod(claim_pod("db-0", "far"), sandbox)
        st = settled("db-0")
        assert st.containers[0].reason == "CreateContainerConfigError"
        assert "volume data cannot be reached by uid 65534" in st.containers[0].message
        runtime.start_pod(claim_pod("db-1", "near"), sandbox)
        settled("db-1")
        deadline = time.monotonic() + 8
        while not (opened / "pv2" / "who").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (opened / "pv2" / "who").read_text().strip() == "db-1"  # written as uid 65534, $HOSTNAME set
    finally:
        runtime.close()
        shutil.rmtree(opened, ignore_errors=True)


def tempfile_dir() -> Path:
    """A folder any uid may traverse (pytest's tmp_path is closed to others)."""
    path = Path(tempfile.mkdtemp(prefix="nbk-claims-"))
    path.chmod(0o711)
    return path
