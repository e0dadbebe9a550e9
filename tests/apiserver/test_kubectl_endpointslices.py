"""EndpointSlices through the real kubectl against a served LocalCluster(nodes=2, runtime="sim"):
the controller's slices list with kubectl's columns, select by service name, and read as YAML."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from nbk_apitest import KUBECTL, Kubectl, served_sim

pytestmark = [pytest.mark.slow, pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")]


@pytest.fixture
def kc(tmp_path: Any) -> Iterator[Kubectl]:
    with served_sim(tmp_path) as (kubeconfig, home):
        yield Kubectl(kubeconfig, home)


def test_get_endpointslices(kc: Kubectl) -> None:
    kc.ok("apply", "-f", "nginx-rc.yaml", "-f", "nginx-service.yaml")
    selector = "kubernetes.io/service-name=nginx-http-service"
    ips = ""
    for _ in range(60):  # bounded: sim pods get ready in well under this
        ips = kc.ok("get", "endpointslices", "-l", selector, "-o", "jsonpath={.items[*].endpoints[*].addresses[0]}")
        if len(ips.split()) == 5:
            break
        time.sleep(0.5)
    assert len(ips.split()) == 5, ips
    table = kc.ok("get", "endpointslices")
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    row = next(r for r in rows if r.startswith("nginx-http-service-"))
    assert row.split()[1:3] == ["IPv4", "80"] and "+ 2 more..." in row
    managed = kc.ok("get", "endpointslices", "-l", selector, "-o",
                    "jsonpath={.items[0].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by}")  # fmt: skip
    assert managed == "endpointslice-controller.k8s.io"
    yaml = kc.ok("get", "endpointslices", "-l", selector, "-o", "yaml")
    assert "addressType: IPv4" in yaml and "ready: true" in yaml and "kind: Service" in yaml
