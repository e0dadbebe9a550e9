"""The ServiceAccounts controller: every namespace has a ServiceAccount named `default`.

As upstream's serviceaccounts-controller: Pods run as `default` unless they name another
ServiceAccount (`api/defaults.py`), so each live namespace gets one, made when the namespace
appears and made again when someone deletes it. A namespace that is terminating or gone gets none
(the registry would refuse it anyway). Handlers only enqueue namespace names; `reconcile` looks
at the caches and creates what is missing. The control-plane manager starts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbkube.api.defaults import DEFAULT_SERVICE_ACCOUNT
from nbkube.api.meta import Obj
from nbkube.client.controller import Controller
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.errors import AlreadyExists, Forbidden, NotFound

if TYPE_CHECKING:
    from nbkube.client.informer import Informer, InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["ServiceAccountsController", "default_service_account"]


def default_service_account(namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
    }


def _terminating(ns: Obj) -> bool:
    meta = ns.get("metadata") or {}
    return (ns.get("status") or {}).get("phase") == "Terminating" or bool(meta.get("deletionTimestamp"))


class ServiceAccountsController(Controller):
    name = "serviceaccount"

    def __init__(
        self, api: Registry, factory: InformerFactory, *, clock: Clock = REAL_CLOCK, workers: int = 1
    ):
        super().__init__(api, factory, clock=clock, workers=workers)
        self.namespaces: Informer = factory.informer("Namespace")
        self.accounts: Informer = factory.informer("ServiceAccount")
        self.namespaces.add_handler(on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new))
        self.accounts.add_handler(on_delete=self._account_deleted)

    def _account_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") == DEFAULT_SERVICE_ACCOUNT and meta.get("namespace"):
            self.queue.add(str(meta["namespace"]))

    def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or _terminating(ns):
            return
        if self.accounts.get(f"{key}/{DEFAULT_SERVICE_ACCOUNT}") is not None:
            return
        try:
            self.api.create(default_service_account(key))
        except AlreadyExists:
            return  # the cache lagged behind a create: nothing to do
        except (NotFound, Forbidden) as exc:
            # the namespace went away or began terminating after the cache saw it
            self.log.info("namespace %s: no default ServiceAccount: %s", key, exc)
            return
        self.log.info("namespace %s: created ServiceAccount %s", key, DEFAULT_SERVICE_ACCOUNT)
