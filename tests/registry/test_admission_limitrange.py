"""LimitRange admission: Container defaults fill pods on create; min/max/ratio refuse with clear text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nbkube.errors import Forbidden, NotFound
from nbkube.registry.admission_chain import default_admission_plugins
from nbkube.registry.registry import Registry
from nbkube.store import open_store


@pytest.fixture
def api() -> Iterator[Registry]:
    reg = Registry(open_store("sqlite://:memory:"), admission=default_admission_plugins())
    yield reg
    reg.close()


def limit_range(name: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name},
        "spec": {"limits": list(items)},
    }


def pod(name: str, *resources: dict[str, Any]) -> dict[str, Any]:
    containers = []
    for i, res in enumerate(resources or ({},)):
        c: dict[str, Any] = {"name": f"c{i}", "image": "busybox"}
        if res:
            c["resources"] = res
        containers.append(c)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}}


def test_container_defaults_fill_missing_requests_and_limits(api: Registry) -> None:
    api.create(
        limit_range(
            "defaults",
            {
                "type": "Container",
                "default": {"cpu": "500m", "memory": "128Mi"},
                "defaultRequest": {"cpu": "100m"},
            },
        )
    )
    created = api.create(pod("p", {}, {"requests": {"cpu": "200m"}, "limits": {"memory": "64Mi"}}))
    c0, c1 = created["spec"]["containers"]
    assert c0["resources"] == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},  # defaultRequest falls back to default
    }
    assert c1["resources"]["requests"] == {"cpu": "200m", "memory": "64Mi"}  # its own limit
    assert c1["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
    assert api.get("Pod", "p")["spec"]["containers"][0]["resources"] == c0["resources"]


def test_defaults_then_quota_sees_them(api: Registry) -> None:
    api.create(limit_range("defaults", {"type": "Container", "defaultRequest": {"cpu": "250m"}}))
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "q"},
            "spec": {"hard": {"requests.cpu": "500m"}},
        }
    )
    api.create(pod("a"))
    api.create(pod("b"))
    with pytest.raises(Forbidden, match="requested: requests.cpu=250m, used: requests.cpu=500m"):
        api.create(pod("c"))


def test_max_and_min_refused_with_clear_messages(api: Registry) -> None:
    api.create(limit_range("bounds", {"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "32Mi"}}))
    with pytest.raises(Forbidden) as exc:
        api.create(pod("big", {"limits": {"cpu": "2"}, "requests": {"memory": "16Mi"}}))
    msg = str(exc.value)
    assert msg.startswith('pods "big" is forbidden: ')
    assert 'minimum memory usage per Container is 32Mi, but request is 16Mi (container "c0")' in msg
    assert 'maximum cpu usage per Container is 1, but limit is 2 (container "c0")' in msg
    with pytest.raises(NotFound):
        api.get("Pod", "big")
    # the default limit (= max) makes a pod without resources fit the max; min still wants a request
    with pytest.raises(
        Forbidden, match="minimum memory usage per Container is 32Mi, but no request is specified"
    ):
        api.create(pod("bare"))
    ok = api.create(pod("ok", {"requests": {"memory": "64Mi"}}))
    assert ok["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1"}


def test_pod_type_and_ratio(api: Registry) -> None:
    api.create(
        limit_range(
            "pod-and-ratio",
            {"type": "Pod", "max": {"cpu": "1"}},
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
        )
    )
    with pytest.raises(Forbidden, match=r"maximum cpu usage per Pod is 1, but limit is 1200m \(pod\)"):
        api.create(pod("sum", {"limits": {"cpu": "600m"}}, {"limits": {"cpu": "600m"}}))
    with pytest.raises(
        Forbidden, match="cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
    ):
        api.create(pod("ratio", {"limits": {"cpu": "400m"}, "requests": {"cpu": "100m"}}))
    api.create(pod("fits", {"limits": {"cpu": "400m"}, "requests": {"cpu": "200m"}}))


def test_no_limit_range_leaves_pod_alone(api: Registry) -> None:
    created = api.create(pod("plain"))
    assert (
        "resources" not in created["spec"]["containers"][0]
        or not created["spec"]["containers"][0]["resources"]
    )


def test_reapplied_pod_manifest_keeps_defaults_and_is_unchanged(api: Registry) -> None:
    api.create(limit_range("defaults", {"type": "Container", "default": {"cpu": "500m"}}))
    created, action = api.apply([pod("p")])[0]
    assert action == "created"
    assert created["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m"}
    again, action = api.apply([pod("p")])[0]
    assert action == "unchanged"
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
