"""Service variables and DNS on the process runtime (no root): a pod gets `WEB_SERVICE_HOST/PORT`
pointing at the address it reaches the Service at (the ClusterIP's loopback mirror), and a pod that
asks for what only its own resolv.conf could give fails with the field and the runtime named."""

from __future__ import annotations

from typing import Any

import pytest
from nbk_clustertest import httpd_pod, pod_ready, wait_until

from nbkube.cluster import LocalCluster

pytestmark = pytest.mark.slow


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"]}], **spec},
    }


def test_service_variables_reach_the_service_on_the_process_runtime(tmp_path: Any) -> None:
    with LocalCluster(nodes=1, runtime="process", store="sqlite", data_dir=str(tmp_path), name="pdns") as c:
        # not 8080, which other embedded-mode tests' httpd pods use: a wildcard listener of another
        # cluster on this host would answer in its place
        web = httpd_pod("web-1", "node-1", 8097)
        web["metadata"]["labels"] = {"app": "web"}
        c.api.create(web)
        c.api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                      "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8000, "targetPort": 8097}]}})  # fmt: skip
        c.api.create(_pod("client", {}))
        c.api.create(_pod("nolinks", {"enableServiceLinks": False}))
        for name in ("web-1", "client", "nolinks"):
            wait_until(lambda name=name: pod_ready(c.api.get("Pod", name, "default")), 30, f"{name} ready")
        svc = c.api.get("Service", "web", "default")
        assert c.address_block is not None
        mirror = c.address_block.service_address(svc["spec"]["clusterIP"])
        client = c.api.get("Pod", "client", "default")
        rt = c.runtimes["node-1"]
        script = "echo $WEB_SERVICE_HOST $WEB_SERVICE_PORT $WEB_SERVICE_PORT_HTTP $WEB_PORT_8000_TCP"
        code, out = rt.exec(client["metadata"]["uid"], "c", ["sh", "-c", script])  # type: ignore[attr-defined]
        assert code == 0 and out.split() == [mirror, "8000", "8000", f"tcp://{mirror}:8000"], out
        fetch = "wget -qO- http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/"

        def fetched() -> str:  # the proxy may program the Service a moment after the pod is ready
            code, out = rt.exec(client["metadata"]["uid"], "c", ["sh", "-c", fetch])  # type: ignore[attr-defined]
            return out.strip() if code == 0 else ""

        assert wait_until(fetched, 20, "the Service through its variables") == "web-1"
        nolinks = c.api.get("Pod", "nolinks", "default")
        code, out = rt.exec(nolinks["metadata"]["uid"], "c", ["sh", "-c", "echo x${WEB_SERVICE_HOST}x"])  # type: ignore[attr-defined]
        assert out.strip() == "xx", out
        # said once for the node (a Warning Event, as the kubelet's MissingClusterDNS), not per pod
        said = [e for e in c.api.list("Event", "default")[0] if e.get("reason") == "MissingClusterDNS"]
        assert len(said) == 1 and "host processes use the host's resolver" in said[0]["message"], said


def test_dns_policy_none_is_refused_with_the_runtime_named(tmp_path: Any) -> None:
    with LocalCluster(nodes=1, runtime="process", store="sqlite", data_dir=str(tmp_path), name="pdns2") as c:
        c.api.create(_pod("custom", {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.1"]}}))

        def failed() -> Any:
            status = c.api.get("Pod", "custom", "default").get("status") or {}
            return status.get("phase") == "Failed" and status

        status = wait_until(failed, 20, "the pod to fail")
        assert "spec.dnsPolicy: Forbidden: the process runtime cannot honour None" in status["message"]
        assert "spec.dnsConfig: Forbidden: the process runtime" in status["message"]
