"""The control plane as one object: informers, scheduler and every controller, behind leader election.

Who calls it: `nbkube.cluster.LocalCluster` and `nbkube up` (and tests). `ControlPlane(api,
profile=...)` does nothing until `start()`; then a `LeaderElector` competes for the Lease
`kube-system/nbkube-controller-manager`. Only while this instance holds it does it run anything:
on winning it builds a fresh informer factory, the scheduler and one instance of every controller
class found in `CONTROLLER_MODULES`, waits for the caches to sync (acting on a half-filled cache
is how controllers create extra pods), then starts their workers. On losing the lease (or
`stop()`) it stops them all. So two control planes on one store (two notebooks, or a notebook and
`nbkube up`) never both act: the second is a hot standby that takes over when the first stops or
dies (after the lease lapses).

Controller modules are imported by name (a module that fails to import fails the start: a control
plane quietly missing a controller would be worse). Every `Controller`
subclass defined in such a module is run; a constructor that takes `profile` gets the profile.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol

from nbkube.client.controller import Controller
from nbkube.client.informer import InformerFactory
from nbkube.client.leaderelection import LeaderElector
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.controlplane.profiles import Profile, get_profile
from nbkube.procutil import identity_dead, process_identity

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["ControlPlane", "CONTROLLER_MODULES", "SCHEDULER_MODULE", "LEADER_LEASE", "SCHEDULER_LEASE"]

log = logging.getLogger(__name__)

LEADER_LEASE = "nbkube-controller-manager"
SCHEDULER_LEASE = "nbkube-scheduler"  # a scheduler running apart from the controllers elects on its own
LEADER_NAMESPACE = "kube-system"
SCHEDULER_MODULE = "nbkube.controlplane.scheduler.scheduler"
CONTROLLER_MODULES: list[str] = [
    "nbkube.controlplane.controllers.replication",
    "nbkube.controlplane.controllers.deployment",
    "nbkube.controlplane.controllers.daemonset",
    "nbkube.controlplane.controllers.disruption",
    "nbkube.controlplane.controllers.job",
    "nbkube.controlplane.controllers.cronjob",
    "nbkube.controlplane.controllers.endpoints",
    "nbkube.controlplane.controllers.endpointslice",
    "nbkube.controlplane.controllers.nodelifecycle",
    "nbkube.controlplane.controllers.namespace",
    "nbkube.controlplane.controllers.gc",
    "nbkube.controlplane.controllers.quota",
    "nbkube.controlplane.controllers.serviceaccounts",
    "nbkube.controlplane.controllers.statefulset",
    "nbkube.controlplane.controllers.volumebinding",
    "nbkube.controlplane.controllers.hpa",
]
_SYNC_TIMEOUT = 30.0


class _Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def _import(name: str) -> Any:
    """A component module; one that fails to import is a broken install, which must not start
    a control plane quietly missing a controller."""
    return importlib.import_module(name)


def controller_classes(modules: list[str] | None = None) -> list[type[Controller]]:
    """Every concrete Controller subclass defined in the (importable) controller modules."""
    out: list[type[Controller]] = []
    for name in CONTROLLER_MODULES if modules is None else modules:
        module = _import(name)
        if module is None:
            continue
        for _attr, cls in sorted(vars(module).items()):
            if (
                inspect.isclass(cls)
                and issubclass(cls, Controller)
                and cls is not Controller
                and cls.__module__ == module.__name__
                and not cls.__name__.startswith("_")
                and not inspect.isabstract(cls)
            ):
                out.append(cls)
    return out


def _build(cls: Any, api: Registry, factory: InformerFactory, clock: Clock, profile: Profile) -> Any:
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if "clock" in params:
        kwargs["clock"] = clock
    if "profile" in params:
        kwargs["profile"] = profile
    return cls(api, factory, **kwargs)


class ControlPlane:
    def __init__(
        self,
        api: Registry,
        *,
        profile: Profile | str = "fast",
        clock: Clock = REAL_CLOCK,
        identity: str | None = None,
        leader_elect: bool = True,
        controllers: list[str] | None = None,
        scheduler: bool = True,
        lease: str = LEADER_LEASE,
    ):
        """`controllers` and `scheduler` choose what this instance runs (all by default); `lease`
        is the Lease it competes for. Parts that run in processes of their own (a scheduler apart
        from the controllers, as kube-scheduler and kube-controller-manager) each elect on a lease
        of their own, or the one would stand by while the other leads."""
        self.api = api
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.clock = clock
        # pid and start time in the identity: a restart on this machine sees its killed predecessor
        # is gone and takes the Lease at once (procutil.identity_dead)
        self.identity = identity or process_identity()
        self.leader_elect = leader_elect
        self.controller_modules = list(CONTROLLER_MODULES if controllers is None else controllers)
        self.run_scheduler = scheduler
        self.lease = lease
        self.factory: InformerFactory | None = None
        self.components: dict[str, _Component] = {}
        self._elector: LeaderElector | None = None
        self._lock = threading.RLock()
        self._leading = False
        self._started = False

    def __repr__(self) -> str:
        role = "leader" if self._leading else ("standby" if self._started else "stopped")
        return f"ControlPlane(identity={self.identity!r}, profile={self.profile.name!r}, {role})"

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        """Begin competing for leadership (or, with leader_elect=False, run everything now)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        if not self.leader_elect:
            self._on_started()
            return
        self._elector = LeaderElector(
            self.api,
            self.lease,
            self.identity,
            namespace=LEADER_NAMESPACE,
            lease_duration=self.profile.leader_lease_duration,
            renew_interval=self.profile.leader_renew_interval,
            renew_deadline=self.profile.leader_renew_deadline,
            clock=self.clock,
            holder_dead=identity_dead,
        )
        self._elector.run(self._on_started, self._on_stopped)

    def stop(self) -> None:
        """Stop every component and give up the lease (a standby takes over at once)."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        if self._elector is not None:
            self._elector.stop(release=True)
            self._elector = None
        self._on_stopped()

    def crash(self) -> None:
        """Stop without releasing the lease, as a killed process would: a standby waits for it to lapse."""
        with self._lock:
            self._started = False
        if self._elector is not None:
            self._elector.stop(release=False)
            self._elector = None
        self._on_stopped()

    # -- leadership callbacks ----------------------------------------------------------------------

    def _on_started(self) -> None:
        with self._lock:
            if self._leading or not self._started:
                return
            log.info("control plane %s: leading; starting controllers", self.identity)
            factory = InformerFactory(self.api)
            components: dict[str, _Component] = {}
            if self.run_scheduler:
                module = _import(SCHEDULER_MODULE)
                if module is not None and hasattr(module, "Scheduler"):
                    components["scheduler"] = _build(
                        module.Scheduler, self.api, factory, self.clock, self.profile
                    )
            for cls in controller_classes(self.controller_modules):
                try:
                    components[getattr(cls, "name", cls.__name__) or cls.__name__] = _build(
                        cls, self.api, factory, self.clock, self.profile
                    )
                except Exception:
                    log.exception("control plane: cannot build %s; skipped", cls.__name__)
            factory.start_all()
            if not factory.wait_all_synced(_SYNC_TIMEOUT):
                log.warning("control plane: informers not synced after %ss; starting anyway", _SYNC_TIMEOUT)
            for name, comp in components.items():
                try:
                    comp.start()
                except Exception:
                    log.exception("control plane: %s failed to start", name)
            self.factory = factory
            self.components = components
            self._leading = True

    def _on_stopped(self) -> None:
        with self._lock:
            if not self._leading:
                return
            log.info("control plane %s: stopping controllers", self.identity)
            for name, comp in reversed(list(self.components.items())):
                try:
                    comp.stop()
                except Exception:
                    log.exception("control plane: %s failed to stop", name)
            if self.factory is not None:
                self.factory.stop_all()
            self.components = {}
            self.factory = None
            self._leading = False

    def wait_leading(self, timeout: float = 10.0) -> bool:
        """Block (real time, bounded) until this instance leads and its controllers run."""
        done = threading.Event()
        deadline = REAL_CLOCK.monotonic() + timeout
        while not self._leading:
            if REAL_CLOCK.monotonic() >= deadline:
                return False
            done.wait(0.01)
        return True
