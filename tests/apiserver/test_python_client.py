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
