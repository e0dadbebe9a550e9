"""Helpers for the RBAC tests: a user, object builders, and an authorizer over a real Registry whose
`apply`/`remove` return only once the authorizer's cache has taken the change in."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from nbkube.api.meta import Obj, key_of
from nbkube.apiserver.rbac import RBAC_KINDS, RBACAuthorizer, RequestAttributes
from nbkube.client.informer import InformerFactory
from nbkube.errors import AlreadyExists
from nbkube.registry.registry import Registry

G = "rbac.authorization.k8s.io"
V1 = f"{G}/v1"


@dataclass(frozen=True)
class User:
    """The shape authentication's UserInfo has."""

    name: str
    groups: tuple[str, ...] = ("system:authenticated",)
    uid: str = ""
    extra: tuple[Any, ...] = ()


def rule(verbs: str, groups: str, resources: str, names: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs.split(), "apiGroups": groups.split(",") if groups else [""]}
    out["resources"] = resources.split()
    if names:
        out["resourceNames"] = names.split()
    return out


def role(name: str, namespace: str, *rules: dict[str, Any]) -> Obj:
    kind = "Role" if namespace else "ClusterRole"
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": V1, "kind": kind, "metadata": meta, "rules": list(rules)}


def subject(kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    out = {"kind": kind, "name": name}
    if kind != "ServiceAccount":
        out["apiGroup"] = G
    if namespace:
        out["namespace"] = namespace
    return out


def binding(name: str, namespace: str, role_kind: str, role_name: str, *subjects: dict[str, Any]) -> Obj:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": V1,
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": G, "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def can(
    authz: RBACAuthorizer,
    user: User,
    verb: str,
    resource: str,
    namespace: str = "",
    *,
    group: str = "",
    sub: str = "",
    name: str = "",
) -> bool:
    attrs = RequestAttributes(user, verb, group, resource, sub, name, namespace)
    return authz.authorize(attrs).allowed


class Cluster:
    """A registry plus an RBACAuthorizer on a shared InformerFactory, with write-then-wait helpers."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.factory = InformerFactory(registry)
        self.authz = RBACAuthorizer(registry, informers=self.factory)
        self._cond = threading.Condition()
        self._seen: dict[tuple[str, str], str] = {}  # (kind, key) -> rv ("" once deleted)
        for kind in RBAC_KINDS:
            # registered after the authorizer's handler, so called after it for the same change
            self.factory.informer(kind).add_handler(self._mark, lambda _o, new: self._mark(new), self._gone)

    def _mark(self, obj: Obj) -> None:
        with self._cond:
            self._seen[(obj["kind"], key_of(obj))] = obj["metadata"]["resourceVersion"]
            self._cond.notify_all()

    def _gone(self, obj: Obj) -> None:
        with self._cond:
            self._seen[(obj["kind"], key_of(obj))] = ""
            self._cond.notify_all()

    def wait_for_version(self, obj: Obj, rv: str) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: self._seen.get((obj["kind"], key_of(obj))) == rv, timeout=10)
        assert ok, f"the authorizer never saw {obj['kind']} {key_of(obj)} at {rv or 'deletion'}"

    def start(self) -> Cluster:
        self.factory.start_all()
        assert self.authz.wait_synced(10)
        return self

    def stop(self) -> None:
        self.factory.stop_all()

    def apply(self, *objs: Obj) -> list[Obj]:
        out = []
        for obj in objs:
            namespace = obj["metadata"].get("namespace")
            if namespace:
                with contextlib.suppress(AlreadyExists):
                    self.registry.create(
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                    )
            created = self.registry.create(obj)
            self.wait_for_version(created, created["metadata"]["resourceVersion"])
            out.append(created)
        return out

    def update(self, obj: Obj) -> Obj:
        updated = self.registry.update(obj)
        self.wait_for_version(updated, updated["metadata"]["resourceVersion"])
        return updated

    def remove(self, obj: Obj) -> None:
        meta = obj["metadata"]
        self.registry.delete(obj["kind"], meta["name"], meta.get("namespace", ""))
        self.wait_for_version(obj, "")
