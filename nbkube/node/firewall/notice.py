"""Says, on the NetworkPolicy itself, that a node of the process runtime cannot enforce it.

The embedded mode (no root) runs pods as host processes on loopback addresses: nothing can filter
traffic between them per pod. Rather than ignore a policy silently, each such node records one
Warning event (reason `NetworkPolicyNotEnforced`) on every policy that isolates a pod running on
it, so `nbkube describe netpol` and the notebook's event views show it. Wired by
`nbkube.node.kit` for the process runtime.
"""

from __future__ import annotations

import threading
from typing import Any

from nbkube.api.meta import Obj
from nbkube.api.selectors import selector_from_label_selector
from nbkube.client.events import record_event
from nbkube.client.informer import InformerFactory

__all__ = ["NOT_ENFORCED", "NotEnforcedNotice", "policies_selecting_node"]

NOT_ENFORCED = "NetworkPolicyNotEnforced"


def policies_selecting_node(pods: list[Obj], policies: list[Obj], node_name: str) -> list[Obj]:
    """The policies that select at least one pod on `node_name`. Pure."""
    local: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == node_name:
            meta = pod.get("metadata") or {}
            local.setdefault(str(meta.get("namespace") or "default"), []).append(meta.get("labels") or {})
    out = []
    for policy in policies:
        labels = local.get(str(policy["metadata"].get("namespace") or "default"), [])
        selector = selector_from_label_selector((policy.get("spec") or {}).get("podSelector") or {})
        if any(selector.matches(lbls) for lbls in labels):
            out.append(policy)
    return out


class NotEnforcedNotice:
    """One Warning event per (policy, this node), when the policy first selects a pod here."""

    def __init__(self, api: Any, factory: InformerFactory, node_name: str) -> None:
        self._api = api
        self._pods = factory.informer("Pod")
        self._policies = factory.informer("NetworkPolicy")
        self.node_name = node_name
        self._lock = threading.Lock()
        self.reported: set[str] = set()  # policy uids already warned about

    def start(self) -> None:
        for informer in (self._pods, self._policies):
            informer.add_handler(on_add=self._check, on_update=self._check, on_delete=self._check)
            informer.start()

    def stop(self) -> None:
        pass  # handlers only; the informers belong to the factory

    def _check(self, *_objs: object) -> None:
        policies = self._policies.list()
        if not policies:
            return
        with self._lock:
            for policy in policies_selecting_node(self._pods.list(), policies, self.node_name):
                uid = str(policy["metadata"].get("uid") or policy["metadata"]["name"])
                if uid in self.reported:
                    continue
                self.reported.add(uid)
                record_event(
                    self._api,
                    policy,
                    NOT_ENFORCED,
                    f"not enforced on node {self.node_name}: the process runtime has no network isolation"
                    " (pods are host processes on loopback addresses); use runtime docker to enforce it",
                    type="Warning",
                    component=f"kubelet, {self.node_name}",
                )
