"""The official `kubernetes` Python client against the served registry."""

from __future__ import annotations

from typing import Any

import pytest

from nbkube.apiserver import ApiServer

kubernetes = pytest.importorskip("kubernetes")


@pytest.fixture
def core(server: ApiServer, kubeconfig: str) -> Any:
    api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    yield kubernetes.client.CoreV1Api(api_client)
    api_client.close()


def _pod(name: str) -> Any:
    c = kubernetes.client
    return c.V1Pod(
        metadata=c.V1ObjectMeta(name=name, labels={"app": "py"}),
        spec=c.V1PodSpec(containers=[c.V1Container(name="c", image="nginx")]),
    )


def test_pod_crud(core: Any) -> None:
    created = core.create_namespaced_pod("default", _pod("py1"))
    assert created.metadata.uid and created.metadata.resource_version
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["py1"]
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector="app=py").items] == [
        "py1"
    ]
    assert core.read_namespaced_pod("py1", "default").spec.containers[0].image == "nginx"
    patched = core.patch_namespaced_pod("py1", "default", {"metadata": {"labels": {"tier": "web"}}})
    assert patched.metadata.labels == {"app": "py", "tier": "web"}
    core.delete_namespaced_pod("py1", "default")
    with pytest.raises(kubernetes.client.ApiException) as info:
        core.read_namespaced_pod("py1", "default")
    assert info.value.status == 404


def test_paged_list(core: Any) -> None:
    for i in range(3):
        core.create_namespaced_pod("default", _pod(f"page{i}"))
    first = core.list_namespaced_pod("default", limit=2)
    assert [p.metadata.name for p in first.items] == ["page0", "page1"]
    assert first.metadata.remaining_item_count == 1 and first.metadata._continue
    rest = core.list_namespaced_pod("default", limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["page2"] and rest.metadata._continue is None


def test_watch_receives_added(core: Any) -> None:
    core.create_namespaced_pod("default", _pod("w1"))
    w = kubernetes.watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_pod, "default", timeout_seconds=2):
        seen.append((event["type"], event["object"].metadata.name))
        break
    w.stop()
    assert seen == [("ADDED", "w1")]


def test_version(server: ApiServer, kubeconfig: str) -> None:
    api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    try:
        assert kubernetes.client.VersionApi(api_client).get_code().git_version.startswith("v1.32")
        assert kubernetes.client.AppsV1Api(api_client).list_deployment_for_all_namespaces().items == []
    finally:
        api_client.close()


@pytest.fixture
def cluster_client(tmp_path: Any) -> Any:
    from nbkube.apiserver import serve
    from nbkube.cluster import LocalCluster

    with LocalCluster(nodes=2, runtime="sim", store="sqlite", data_dir=str(tmp_path / "cluster")) as cluster:
        srv = serve(cluster)
        api_client = kubernetes.config.new_client_from_config(
            config_file=srv.write_kubeconfig(str(tmp_path / "kubeconfig"))
        )
        try:
            yield api_client
        finally:
            api_client.close()
            srv.stop()


def test_typed_models_parse_what_the_server_returns(cluster_client: Any) -> None:
    """The client's typed (validating) models accept created, deleted and listed objects."""
    core = kubernetes.client.CoreV1Api(cluster_client)
    c = kubernetes.client
    pod = core.create_namespaced_pod("default", _pod("typed"))
    assert isinstance(pod, c.V1Pod) and pod.status.phase == "Pending" and pod.status.qos_class == "BestEffort"
    svc = core.create_namespaced_service(
        "default",
        c.V1Service(
            metadata=c.V1ObjectMeta(name="typed"),
            spec=c.V1ServiceSpec(selector={"app": "py"}, ports=[c.V1ServicePort(port=80)]),
        ),
    )
    assert isinstance(svc, c.V1Service) and svc.status.load_balancer is not None and svc.spec.cluster_ip
    deleted = core.delete_namespaced_service("typed", "default")
    assert isinstance(deleted, c.V1Service) and deleted.metadata.uid == svc.metadata.uid
    nodes = core.list_node().items
    assert sorted(n.metadata.name for n in nodes) == ["node-1", "node-2"]
    for node in nodes:
        info = node.status.node_info
        assert info.boot_id and info.machine_id and info.system_uuid and info.kernel_version
        assert info.os_image and info.operating_system == "linux" and info.kubelet_version
    deleted_pod = core.delete_namespaced_pod("typed", "default")
    assert isinstance(deleted_pod, c.V1Pod) and deleted_pod.metadata.name == "typed"
    status = core.delete_namespaced_config_map(
        core.create_namespaced_config_map(
            "default", c.V1ConfigMap(metadata=c.V1ObjectMeta(name="cm"), data={"a": "b"})
        ).metadata.name,
        "default",
    )
    # this client declares the answer as a plain `object` for ConfigMaps: a Status, as upstream
    assert status["kind"] == "Status" and status["status"] == "Success"
