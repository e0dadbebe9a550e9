"""pods/NAME/eviction over HTTP against a PodDisruptionBudget: the 429 Status as kube-apiserver
sends it (reason TooManyRequests, a DisruptionBudget cause naming the budget), a dry run that spends
nothing, and the eviction the budget allows (201, the budget spent and the pod recorded)."""

from __future__ import annotations

from typing import Any

from nbk_apitest import call, pod

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

PODS = "/api/v1/namespaces/default/pods"
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"


def _eviction(name: str, dry_run: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    if dry_run:
        body["deleteOptions"] = {"dryRun": ["All"]}
    return body


def _running(registry: Registry, name: str) -> None:
    obj = registry.create({**pod(name, app="web"), "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}}})
    obj["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    registry.update_status(obj)


def _budget(registry: Registry, allowed: int) -> None:
    obj = registry.get("PodDisruptionBudget", "web-pdb", "default")
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "disruptionsAllowed": allowed,
        "currentHealthy": 2,
        "desiredHealthy": 2 - allowed,
        "expectedPods": 2,
    }
    registry.update_status(obj)


def test_eviction_honours_the_budget(server: ApiServer, registry: Registry) -> None:
    for name in ("a", "b"):
        _running(registry, name)
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web-pdb"},
              "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}  # fmt: skip
    code, created, _ = call(server, "POST", PDBS, budget)
    assert code == 201, created
    # not yet seen by the disruption controller: still being processed
    code, body, _ = call(server, "POST", f"{PODS}/a/eviction", _eviction("a"))
    assert code == 429 and body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["message"] == "The disruption budget web-pdb is still being processed by the server."

    _budget(registry, 0)
    code, body, _ = call(server, "POST", f"{PODS}/a/eviction", _eviction("a"))
    assert code == 429
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == 429
    assert body["message"].startswith("Cannot evict pod as it would violate the pod's disruption budget.")
    assert body["details"]["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}
    ]
    assert call(server, "GET", f"{PODS}/a")[0] == 200

    _budget(registry, 1)
    code, body, _ = call(server, "POST", f"{PODS}/a/eviction", _eviction("a", dry_run=True))
    assert code == 201 and call(server, "GET", f"{PODS}/a")[0] == 200
    assert registry.get("PodDisruptionBudget", "web-pdb", "default")["status"]["disruptionsAllowed"] == 1
    code, body, _ = call(server, "POST", f"{PODS}/a/eviction", _eviction("a"))
    assert code == 201 and body["status"] == "Success"
    assert call(server, "GET", f"{PODS}/a")[0] == 404
    status = registry.get("PodDisruptionBudget", "web-pdb", "default")["status"]
    assert status["disruptionsAllowed"] == 0 and list(status["disruptedPods"]) == ["a"]
    code, body, _ = call(server, "POST", f"{PODS}/b/eviction", _eviction("b"))
    assert code == 429 and "web-pdb" in body["message"]
