"""The cluster gate remembers allowed requests, yet every change of a role or binding counts at once:
a revoked permission is refused on the next request of a kept-alive client."""

from __future__ import annotations

import time

from nbk_apitest import call
from nbk_rbactest import Cluster, binding, role, rule, subject

from nbkube.apiserver import ApiServer
from nbkube.registry.registry import Registry

PATH = "/api/v1/namespaces/default/configmaps"


def _status_within(server: ApiServer, want: int, seconds: float = 5.0) -> int:
    """The status of GET PATH as alice, polled until it is `want` (the informers apply changes)."""
    deadline = time.monotonic() + seconds
    while True:
        code = call(server, "GET", PATH, user="alice", groups=())[0]
        if code == want or time.monotonic() > deadline:
            return code
        time.sleep(0.02)


def test_allowed_requests_are_remembered_until_roles_or_bindings_change(
    server: ApiServer, registry: Registry
) -> None:
    authorizer = server.gate.authorizer  # type: ignore[attr-defined]
    assert _status_within(server, 403) == 403
    registry.create(role("cm-reader", "default", rule("list", "", "configmaps")))
    registry.create(binding("alice-reads", "default", "Role", "cm-reader", subject("User", "alice")))
    assert _status_within(server, 200) == 200
    generation = authorizer.generation
    assert call(server, "GET", PATH, user="alice", groups=())[0] == 200
    assert authorizer.allowed_at(("alice", ("system:authenticated",), "GET", PATH, None, None, False))

    # a change of the role alone (the binding stays) takes the permission away at once
    r = registry.get("Role", "cm-reader", "default")
    r["rules"] = [rule("get", "", "configmaps")]
    registry.update(r)
    assert _status_within(server, 403) == 403
    assert authorizer.generation > generation
    assert call(server, "GET", PATH, user="alice", groups=())[0] == 403  # and stays refused


def test_a_remembered_decision_is_for_its_user_and_groups_only(server: ApiServer, registry: Registry) -> None:
    registry.create(role("cm-reader", "default", rule("list", "", "configmaps")))
    registry.create(binding("readers", "default", "Role", "cm-reader", subject("Group", "readers")))
    deadline = time.monotonic() + 5
    while call(server, "GET", PATH, user="alice", groups=("readers",))[0] != 200:
        assert time.monotonic() < deadline, "the binding never took effect"
        time.sleep(0.02)
    assert call(server, "GET", PATH, user="alice", groups=())[0] == 403
    assert call(server, "GET", PATH, user="bob", groups=("readers",))[0] == 200


def test_the_authorizer_forgets_decisions_of_an_older_generation(registry: Registry) -> None:
    cluster = Cluster(registry).start()
    try:
        authz = cluster.authz
        before = authz.generation
        authz.remember_allowed("key", before)
        assert authz.allowed_at("key")
        cluster.apply(role("r", "bob", rule("get", "", "pods")))
        assert authz.generation > before
        assert not authz.allowed_at("key")
        authz.remember_allowed("key", before)  # decided before the change: stale from the start
        assert not authz.allowed_at("key")
    finally:
        cluster.stop()
