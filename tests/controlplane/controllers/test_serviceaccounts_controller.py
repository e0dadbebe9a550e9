"""The ServiceAccounts controller: a `default` ServiceAccount in every live namespace, made again
when deleted, none in a terminating one; and the control-plane manager runs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nbk_workload_helpers import started, wait_for

from nbkube.client.informer import InformerFactory
from nbkube.controlplane.controllers.serviceaccounts import ServiceAccountsController
from nbkube.controlplane.manager import controller_classes
from nbkube.errors import NotFound
from nbkube.registry.registry import Registry


def _ns(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _default_sa(api: Registry, namespace: str) -> dict[str, object] | None:
    try:
        return api.get("ServiceAccount", "default", namespace)
    except NotFound:
        return None


@pytest.fixture
def controller(api: Registry, factory: InformerFactory) -> Iterator[ServiceAccountsController]:
    api.create(_ns("existing"))  # there before the controller starts
    c = ServiceAccountsController(api, factory)
    with started(factory, c):
        yield c


def test_every_namespace_gets_a_default_service_account(
    api: Registry, controller: ServiceAccountsController
) -> None:
    wait_for(lambda: _default_sa(api, "existing"), what="default SA in a namespace made before start")
    api.create(_ns("team-a"))
    sa = wait_for(lambda: _default_sa(api, "team-a"), what="default SA in a new namespace")
    assert isinstance(sa, dict) and sa["metadata"]["namespace"] == "team-a"
    assert [o["metadata"]["name"] for o in api.list("ServiceAccount", "team-a")[0]] == ["default"]


def test_deleted_default_is_made_again(api: Registry, controller: ServiceAccountsController) -> None:
    first = wait_for(lambda: _default_sa(api, "existing"), what="default SA")
    assert isinstance(first, dict)
    api.delete("ServiceAccount", "default", "existing")
    again = wait_for(
        lambda: (sa := _default_sa(api, "existing")) and sa["metadata"]["uid"] != first["metadata"]["uid"],
        what="a new default SA",
    )
    assert again


def test_other_service_accounts_are_left_alone(api: Registry, controller: ServiceAccountsController) -> None:
    wait_for(lambda: _default_sa(api, "existing"), what="default SA")
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": "existing"},
        }
    )
    api.delete("ServiceAccount", "builder", "existing")
    # reconcile of "existing" by a later namespace event sees the default there and writes nothing
    controller.reconcile("existing")
    assert [o["metadata"]["name"] for o in api.list("ServiceAccount", "existing")[0]] == ["default"]


def test_terminating_or_missing_namespace_gets_none(api: Registry, factory: InformerFactory) -> None:
    api.create({**_ns("leaving"), "status": {"phase": "Terminating"}})
    c = ServiceAccountsController(api, factory)
    factory.start_all()
    assert factory.wait_all_synced(5)
    c.reconcile("leaving")
    c.reconcile("never-existed")
    assert api.list("ServiceAccount")[0] == []


def test_manager_runs_it() -> None:
    assert ServiceAccountsController in controller_classes()
