"""RBAC decision time with 1,000 bindings: the indexed authorizer against a naive scan, same run.

Why: the API server asks the authorizer once per request, so a decision must stay far below a
request's own cost; the target is <= 50 us per decision with 1,000 bindings.
In one process, on an in-memory SQLite registry:
  1. the default roles, 50 namespaces each with a Role, and 1,000 bindings: 600 RoleBindings (half
     to the namespace's Role, half to the ClusterRoles edit/view), 400 ClusterRoleBindings to 20
     small ClusterRoles; subjects are users, groups and service accounts;
  2. an RBACAuthorizer lists and watches them (its informers), and N decisions over a mix of bound
     and unbound users, namespaces, verbs and resources (allowed and denied) are timed;
  3. baselines on the same requests: a naive authorizer that scans every binding for each request
     (the same rule matching, no index), and the floor of a plain set-membership check of the user.
The two authorizers must agree on every decision.

Usage: python benchmarks/rbac.py [--decisions 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from common import Row

from nbkube.apiserver.rbac import MASTERS, RBACAuthorizer, RequestAttributes, ResourceRule
from nbkube.apiserver.rbac_defaults import ensure_default_roles
from nbkube.registry.registry import Registry
from nbkube.store import open_store

G = "rbac.authorization.k8s.io"
V1 = f"{G}/v1"
NAMESPACES = 50
ROLE_BINDINGS = 600
CLUSTER_ROLE_BINDINGS = 400
CLUSTER_ROLES = 20
TARGET_US = 50.0
RESOURCES = [
    ("", "pods"),
    ("", "services"),
    ("", "configmaps"),
    ("", "secrets"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("", "nodes"),
]
VERBS = ["get", "list", "watch", "create", "update", "delete"]


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]


def _subject(rng: random.Random, ns: str) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.5:
        return {"kind": "User", "apiGroup": G, "name": f"user-{rng.randrange(2000)}"}
    if pick < 0.8:
        return {"kind": "Group", "apiGroup": G, "name": f"group-{rng.randrange(200)}"}
    return {"kind": "ServiceAccount", "name": f"sa-{rng.randrange(20)}", "namespace": ns}


def populate(registry: Registry, rng: random.Random) -> list[dict[str, Any]]:
    """The objects of step 1, created in the registry; returns every binding."""
    ensure_default_roles(registry)
    for i in range(NAMESPACES):
        ns = f"ns-{i}"
        registry.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        rules = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "configmaps"]}]
        registry.create(
            {
                "apiVersion": V1,
                "kind": "Role",
                "metadata": {"name": "reader", "namespace": ns},
                "rules": rules,
            }
        )
    for i in range(CLUSTER_ROLES):
        group, resource = RESOURCES[i % len(RESOURCES)]
        rule = {"verbs": rng.sample(VERBS, 2), "apiGroups": [group], "resources": [resource]}
        registry.create(
            {"apiVersion": V1, "kind": "ClusterRole", "metadata": {"name": f"cr-{i}"}, "rules": [rule]}
        )
    bindings = []
    for i in range(ROLE_BINDINGS):
        ns = f"ns-{i % NAMESPACES}"
        ref = (
            {"apiGroup": G, "kind": "Role", "name": "reader"}
            if i % 2
            else {"apiGroup": G, "kind": "ClusterRole", "name": rng.choice(["edit", "view"])}
        )
        subjects = [_subject(rng, ns) for _ in range(rng.randint(1, 3))]
        obj = {"apiVersion": V1, "kind": "RoleBinding", "metadata": {"name": f"rb-{i}", "namespace": ns}}
        bindings.append(registry.create({**obj, "roleRef": ref, "subjects": subjects}))
    for i in range(CLUSTER_ROLE_BINDINGS):
        ref = {"apiGroup": G, "kind": "ClusterRole", "name": f"cr-{rng.randrange(CLUSTER_ROLES)}"}
        subjects = [_subject(rng, f"ns-{rng.randrange(NAMESPACES)}") for _ in range(rng.randint(1, 3))]
        obj = {"apiVersion": V1, "kind": "ClusterRoleBinding", "metadata": {"name": f"crb-{i}"}}
        bindings.append(registry.create({**obj, "roleRef": ref, "subjects": subjects}))
    return bindings


class NaiveAuthorizer:
    """The baseline: every request scans every binding (the same rule matching, no index)."""

    def __init__(self, registry: Registry):
        roles: dict[tuple[str, str, str], list[ResourceRule]] = {}
        for kind in ("Role", "ClusterRole"):
            for obj in registry.list(kind)[0]:
                ns = obj["metadata"].get("namespace", "") if kind == "Role" else ""
                roles[(kind, ns, obj["metadata"]["name"])] = [
                    ResourceRule(
                        tuple(r.get("verbs", ())),
                        tuple(r.get("apiGroups", ())),
                        tuple(r.get("resources", ())),
                        tuple(r.get("resourceNames", ())),
                    )
                    for r in obj.get("rules") or []
                    if not r.get("nonResourceURLs")
                ]
        self.roles = roles
        self.bindings = registry.list("ClusterRoleBinding")[0] + registry.list("RoleBinding")[0]

    @staticmethod
    def _applies(subject: dict[str, Any], user: User, ns: str) -> bool:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User":
            return name == user.name
        if kind == "Group":
            return name in user.groups
        sa_ns = subject.get("namespace") or ns
        return user.name == f"system:serviceaccount:{sa_ns}:{name}"

    def allowed(self, a: RequestAttributes) -> bool:
        user = a.user
        if MASTERS in user.groups:
            return True
        for b in self.bindings:
            ns = b["metadata"].get("namespace", "") if b["kind"] == "RoleBinding" else ""
            if ns and ns != a.namespace:
                continue
            if not any(self._applies(s, user, ns) for s in b.get("subjects") or []):  # type: ignore[arg-type]
                continue
            ref = b["roleRef"]
            rules = self.roles.get((ref["kind"], ns if ref["kind"] == "Role" else "", ref["name"]), [])
            if any(r.allows(a.verb, a.api_group, a.resource, a.subresource, a.name) for r in rules):
                return True
        return False


def requests(rng: random.Random, n: int) -> list[RequestAttributes]:
    out = []
    for _ in range(n):
        pick = rng.random()
        ns = f"ns-{rng.randrange(NAMESPACES)}" if rng.random() < 0.9 else ""
        if pick < 0.45:
            user = User(
                f"user-{rng.randrange(2000)}", ("system:authenticated", f"group-{rng.randrange(200)}")
            )
        elif pick < 0.75:
            user = User(f"nobody-{rng.randrange(500)}", ("system:authenticated",))
        else:
            sa_ns = ns or f"ns-{rng.randrange(NAMESPACES)}"
            name = f"system:serviceaccount:{sa_ns}:sa-{rng.randrange(20)}"
            user = User(
                name, ("system:serviceaccounts", f"system:serviceaccounts:{sa_ns}", "system:authenticated")
            )
        group, resource = rng.choice(RESOURCES)
        out.append(
            RequestAttributes(
                user, rng.choice(VERBS), group, resource, namespace="" if resource == "nodes" else ns
            )
        )
    return out


def _time(fn: Any, reqs: list[RequestAttributes]) -> tuple[float, list[bool]]:
    t0 = time.perf_counter()
    results = [fn(a) for a in reqs]
    return (time.perf_counter() - t0) / len(reqs) * 1e6, results


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    registry = Registry(open_store("sqlite://:memory:"))
    t0 = time.perf_counter()
    bindings = populate(registry, rng)
    setup = time.perf_counter() - t0
    authz = RBACAuthorizer(registry)
    authz.start()
    try:
        t0 = time.perf_counter()
        if not authz.wait_synced(60):
            raise RuntimeError("the authorizer's informers did not sync within 60 s")
        # handlers run after the informer cache is filled: wait for the last binding's subjects
        last = bindings[-1]
        probe = User(str(last["subjects"][0]["name"]), ())
        deadline = time.monotonic() + 30
        while not authz.rules_for(probe, "")[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        sync = time.perf_counter() - t0
        naive = NaiveAuthorizer(registry)
        reqs = requests(rng, args.decisions)
        fast = lambda a: authz.authorize(a).allowed  # noqa: E731
        fast_us, fast_res = _time(fast, reqs)
        naive_us, naive_res = _time(naive.allowed, reqs)
        members = {b["subjects"][0]["name"] for b in bindings}
        floor_us, _ = _time(lambda a: a.user.name in members, reqs)
        fast_us, fast_res = _time(fast, reqs)  # again, warm
    finally:
        authz.stop()
        registry.close()
    mismatches = sum(1 for x, y in zip(fast_res, naive_res, strict=True) if x != y)
    if mismatches:
        raise RuntimeError(f"{mismatches} decisions differ from the naive scan")
    return {"fast_us": fast_us, "naive_us": naive_us, "floor_us": floor_us, "fast_res": fast_res,
            "bindings": bindings, "setup": setup, "sync": sync, "mismatches": mismatches}  # fmt: skip


def rows(quick: bool = False) -> list[Row]:
    args = argparse.Namespace(decisions=2000 if quick else 20000, seed=1)
    m = measure(args)
    n = len(m["bindings"])
    return [Row(f"RBAC decision, {n:,} bindings", m["fast_us"], "us", "naive scan of every binding",
                m["naive_us"], "same-run", samples=args.decisions,
                note=f"set membership of the user (floor) {m['floor_us']:.2f} us")]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decisions", type=int, default=20000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    m = measure(args)
    fast_us, naive_us, floor_us, fast_res = m["fast_us"], m["naive_us"], m["floor_us"], m["fast_res"]
    bindings, setup, sync, mismatches = m["bindings"], m["setup"], m["sync"], m["mismatches"]
    allowed = sum(fast_res)
    print(
        f"{len(bindings)} bindings ({ROLE_BINDINGS} RoleBindings, {CLUSTER_ROLE_BINDINGS} ClusterRoleBindings), "
        f"{args.decisions} decisions ({allowed} allowed); setup {setup:.1f}s, informer sync {sync:.2f}s"
    )
    print(f"{'authorizer':<38} {'us/decision':>12} {'ratio':>8}")
    print(f"{'RBACAuthorizer (indexed)':<38} {fast_us:>12.2f} {1.0:>8.2f}")
    print(f"{'naive scan of every binding':<38} {naive_us:>12.2f} {naive_us / fast_us:>8.1f}")
    print(f"{'set membership of the user (floor)':<38} {floor_us:>12.2f} {floor_us / fast_us:>8.3f}")
    verdict = "met" if fast_us <= TARGET_US else "MISSED"
    print(
        f"target <= {TARGET_US:.0f} us/decision: {verdict}; decisions differing from the naive scan: {mismatches}"
    )
    return 0 if mismatches == 0 and fast_us <= TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
