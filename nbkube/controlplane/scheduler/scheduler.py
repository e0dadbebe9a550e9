"""The Scheduler: binds pending pods to nodes, one compare-and-swap write per pod.

Why it exists: pods are created without a node; something must pick one for each, as
kube-scheduler does. The control plane (manager.py / LocalCluster) builds one `Scheduler(api,
factory)` and calls start()/stop(). It
- watches Pods, Nodes and Services through shared informers and keeps the framework's `Snapshot`
  current from their events (never relisting per pod);
- queues every pod with no `spec.nodeName` whose `schedulerName` is ours (a WorkQueue: deduped,
  one worker, so decisions are serial and each sees the previous ones);
- "assumes" the chosen pod on its node at once, so the next decision sees it before the informer
  does, and binds it by writing the pod with `spec.nodeName` set, conditioned on the
  resourceVersion it read (a Conflict re-reads and retries, or gives up if someone else bound it;
  a failed bind undoes the assume). As in kube-scheduler, binds run on binder threads
  (`binders`, default 2) while the scheduling thread decides the next pod: the write and its
  "Scheduled" Event are most of a pod's cost, and their SQLite/etcd I/O overlaps the next
  decision. `async_bind=False` binds inline instead. A binder writes the binds already waiting
  (up to 64) with one registry `update_many`: one store transaction, still one CAS write per pod;
- for a pod that fits nowhere, sets `PodScheduled=False` (reason Unschedulable, the per-node
  message; written only when it changes), records a FailedScheduling event, and parks the pod
  until the cluster changes (node added or changed, a bound pod deleted or finished), with a
  periodic retry (5 s doubling to 30 s) in case a change was missed.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj, key_of
from nbkube.client.events import record_event
from nbkube.client.workqueue import WorkQueue
from nbkube.clock import REAL_CLOCK, Clock, rfc3339
from nbkube.controlplane.scheduler.framework import TERMINAL_PHASES, Framework, PodInfo, Result, Snapshot
from nbkube.errors import Conflict, NotFound
from nbkube.logutil import log_failure
from nbkube.registry.binding import with_pod_scheduled

if TYPE_CHECKING:
    from nbkube.client.informer import InformerFactory
    from nbkube.registry.registry import Registry

__all__ = ["Scheduler", "SchedulerStats"]

log = logging.getLogger(__name__)

_BIND_ATTEMPTS = 3
_BIND_BATCH = 64  # binds a binder thread writes in one update_many
_IDLE_POLL = 0.25  # how often an idle worker looks at the stop flag


def _has_claims(pod: Obj) -> bool:
    """The pod names PersistentVolumeClaims: its bind is preceded by the volume binder's writes."""
    return any("persistentVolumeClaim" in v for v in (pod.get("spec") or {}).get("volumes") or ())


@dataclass
class SchedulerStats:
    scheduled: int = 0
    unschedulable: int = 0
    conflicts: int = 0
    errors: int = 0


def _scheduled_condition(pod: Obj) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "PodScheduled":
            return dict(cond)
    return None


class Scheduler:
    """Schedules the pods naming `name` as their scheduler; start()/stop() own its threads only
    (the informers belong to the factory's owner, which starts and stops them)."""

    def __init__(
        self,
        api: Registry,
        factory: InformerFactory,
        *,
        clock: Clock = REAL_CLOCK,
        name: str = "default-scheduler",
        framework: Framework | None = None,
        retry_initial: float = 5.0,
        retry_max: float = 30.0,
        async_bind: bool = True,
        binders: int = 2,
    ):
        self.api = api
        self.factory = factory
        self.clock = clock
        self.name = name
        self.framework = framework if framework is not None else Framework()
        self.snapshot = Snapshot()
        self.queue = WorkQueue(clock=clock)
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.stats = SchedulerStats()
        self._lock = threading.Lock()  # guards _parked, _attempts, _changes
        self._parked: set[str] = set()  # unschedulable pods waiting for a cluster change
        self._attempts: dict[str, int] = {}
        self._changes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.async_bind = async_bind
        self.binders = max(1, binders)
        self._binder_threads: list[threading.Thread] = []
        self._bind_queue: queue.SimpleQueue[tuple[str, Obj, str] | None] = queue.SimpleQueue()
        self._binding = 0  # binds handed to the binder and not finished
        self._progress = threading.Condition()
        self.pods = factory.informer("Pod")
        self.nodes = factory.informer("Node")
        self.services = factory.informer("Service")
        self.nodes.add_handler(self._on_node, lambda _old, new: self._on_node(new), self._on_node_delete)
        self.services.add_handler(
            self.snapshot.set_service,
            lambda _old, new: self.snapshot.set_service(new),
            self.snapshot.remove_service,
        )
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.volume_binding = self._volume_plugin(factory)

    def _volume_plugin(self, factory: InformerFactory) -> Any:
        """The VolumeBinding filter reads claims, volumes and classes; a change to them may make
        a parked pod schedulable."""
        # imported here: the plugin reads the binder's rules (controllers/volumebinding.py), which
        # import the node-affinity plugin, whose package imports this module
        from nbkube.controlplane.scheduler.plugins.volume_binding import VolumeBinding

        informers = [factory.informer(k) for k in ("PersistentVolumeClaim", "PersistentVolume", "StorageClass")]
        for inf in informers:
            inf.add_handler(lambda _o: self._cluster_changed(), lambda _o, _n: self._cluster_changed(), None)
        claims, volumes, classes = informers
        plugin = VolumeBinding(claims, volumes, classes, api=self.api)
        if all(f.name != plugin.name for f in self.framework.filters):
            self.framework.filters.append(plugin)
            self.framework.dynamic_filters.append(plugin)
        return plugin

    # -- informer handlers (run on informer threads; only bookkeeping and enqueueing) -----------

    def responsible_for(self, pod: Obj) -> bool:
        """An unbound, live pod that names this scheduler (or none: "default-scheduler")."""
        spec = pod.get("spec") or {}
        if spec.get("nodeName"):
            return False
        if (spec.get("schedulerName") or "default-scheduler") != self.name:
            return False
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return False
        return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES

    def _count(self, what: str) -> None:
        # binder threads and the scheduling thread both count: `+=` alone could lose updates
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def _cluster_changed(self) -> None:
        with self._lock:
            self._changes += 1
            parked, self._parked = self._parked, set()
        for key in parked:
            self.queue.add(key)

    def _on_node(self, node: Obj) -> None:
        if self.snapshot.set_node(node):
            self._cluster_changed()

    def _on_node_delete(self, node: Obj) -> None:
        self.snapshot.remove_node(str((node.get("metadata") or {}).get("name") or ""))

    def _on_pod_add(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.snapshot.set_pod(pod)
        elif self.responsible_for(pod):
            self.queue.add(key_of(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if (new.get("spec") or {}).get("nodeName"):
            if self.snapshot.set_pod(new):
                self._cluster_changed()  # it finished: its resources are free
            return
        if not self.responsible_for(new):
            return
        key = key_of(new)
        relevant = old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("labels") != (
            new.get("metadata") or {}
        ).get("labels")
        with self._lock:
            if key in self._parked and not relevant:
                return  # e.g. our own PodScheduled=False status write: nothing new to try
            self._parked.discard(key)
        self.queue.add(key)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = key_of(pod)
        with self._lock:
            self._parked.discard(key)
            self._attempts.pop(key, None)
        if self.snapshot.remove_pod(key):
            self._cluster_changed()

    # -- the scheduling loop --------------------------------------------------------------------

    def _wait_synced(self) -> bool:
        while not self._stop.is_set():
            if all(inf.wait_synced(0.05) for inf in (self.nodes, self.pods, self.services)):
                return True
        return False

    def _run(self) -> None:
        # Decisions made before the caches are full could over-commit nodes: wait, as upstream does.
        if not self._wait_synced():
            return
        while not self._stop.is_set():
            key = self.queue.get(_IDLE_POLL)
            if key is None:
                continue
            try:
                self.schedule_key(key)
            except Exception as exc:
                self._count("errors")
                log_failure(log, f"{self.name}: scheduling", exc, detail=key)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)
                with self._progress:
                    self._progress.notify_all()

    def schedule_key(self, key: str) -> Result | None:
        """One scheduling attempt for the pod `key` (the worker's body; tests call it directly)."""
        pod = self.pods.get(key)
        if pod is None or not self.responsible_for(pod) or self.snapshot.is_accounted(key):
            return None  # gone, bound (maybe by our earlier bind the informer has not shown yet)
        with self._lock:
            self._parked.discard(key)
            changes_before = self._changes
        info = PodInfo(pod)
        with self.snapshot.lock:
            result = self.framework.schedule_one(info, self.snapshot)
            if result.node_name is not None:
                self.snapshot.assume(info, result.node_name)
        if result.node_name is None:
            self._unschedulable(pod, key, result, changes_before)
            return result
        if self._binder_threads:
            # Bind on the binder thread, as kube-scheduler's binding cycle does, so the next
            # decision overlaps this write's I/O; the assume above already accounts the pod.
            with self._lock:
                self._binding += 1
            self._bind_queue.put((key, pod, result.node_name))
        else:
            self._bind_cycle(key, pod, result.node_name)
        return result

    def _bind_cycle(self, key: str, pod: Obj, node_name: str) -> bool:
        """Bind, then the bookkeeping and the Scheduled event; undo the assume on failure."""
        try:
            self.volume_binding.pre_bind(self.api, pod, node_name)
            bound = self._bind(pod, node_name)
        except Exception as exc:
            self.snapshot.forget(key)
            self._count("errors")
            log_failure(log, f"{self.name}: binding", exc, detail=f"{key} to {node_name}")
            self.queue.add_rate_limited(key)
            return False
        if bound is None:
            self.snapshot.forget(key)
            return False
        self._bound(key, pod, bound, node_name)
        return True

    def _bound(self, key: str, pod: Obj, bound: Obj, node_name: str) -> None:
        """What follows a successful bind: bookkeeping, the Scheduled event, PodScheduled."""
        self.queue.forget(key)
        with self._lock:
            self._attempts.pop(key, None)
        self._count("scheduled")
        meta = pod.get("metadata") or {}
        record_event(
            self.api,
            bound,
            "Scheduled",
            f"Successfully assigned {meta.get('namespace', 'default')}/{meta.get('name')} to {node_name}",
            component=self.name,
            clock=self.clock,
        )
        self._mark_scheduled(bound)

    def _run_binder(self) -> None:
        bind_queue = self._bind_queue
        # Ends only at stop()'s sentinel, which comes after the scheduling thread has finished, so
        # no assumed pod is left without its bind (or its forget).
        while True:
            item = bind_queue.get()
            if item is None:
                return
            items, last = [item], False
            while len(items) < _BIND_BATCH:  # what is already waiting goes in the same batch
                try:
                    more = bind_queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                items.append(more)
            try:
                if self._stop.is_set():
                    for key, _pod, _node in items:
                        self.snapshot.forget(key)  # stopping: the pod stays pending for the next run
                else:
                    self._bind_batch(items)
            finally:
                with self._lock:
                    self._binding -= len(items)
                with self._progress:
                    self._progress.notify_all()
            if last:
                return

    def _bind_batch(self, items: list[tuple[str, Obj, str]]) -> None:
        """Bind several pods with one registry update_many (one store transaction; each bind its
        own compare-and-swap). A pod with claims to bind first, a conflict, or an API without
        update_many takes the one-pod path (`_bind_cycle`), which re-reads and retries."""
        update_many = getattr(self.api, "update_many", None)
        claimed: list[tuple[str, Obj, str]] = []
        simple: list[tuple[str, Obj, str]] = []
        for item in items:
            (claimed if _has_claims(item[1]) else simple).append(item)
        if len(simple) < 2 or not callable(update_many) or len({k for k, _p, _n in simple}) != len(simple):
            for key, pod, node_name in items:
                self._bind_cycle(key, pod, node_name)
            return
        for key, pod, node_name in claimed:
            self._bind_cycle(key, pod, node_name)
        wanted = [{**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}} for _k, pod, node in simple]
        try:
            results = list(update_many(wanted))
        except Exception as exc:  # the store is unavailable: as one failed bind each
            log_failure(log, f"{self.name}: binding", exc, detail=f"{len(simple)} pods")
            for key, _pod, _node in simple:
                self.snapshot.forget(key)
                self._count("errors")
                self.queue.add_rate_limited(key)
            return
        for (key, pod, node_name), result in zip(simple, results, strict=True):
            if isinstance(result, Conflict):
                self._count("conflicts")
                self._bind_cycle(key, pod, node_name)  # re-reads, then binds or gives up
            elif isinstance(result, NotFound):
                self.snapshot.forget(key)
            elif isinstance(result, Exception):
                self.snapshot.forget(key)
                self._count("errors")
                log_failure(log, f"{self.name}: binding", result, detail=f"{key} to {node_name}")
                self.queue.add_rate_limited(key)
            else:
                self._bound(key, pod, result, node_name)

    def _bind(self, pod: Obj, node_name: str) -> Obj | None:
        """The one CAS write; None if the pod vanished or was bound by someone else meanwhile."""
        meta = pod.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace") or "default")
        current = pod
        for attempt in range(_BIND_ATTEMPTS):
            # The registry copies before writing, so sharing the cached pod's inner dicts is safe.
            wanted = {**current, "spec": {**(current.get("spec") or {}), "nodeName": node_name}}
            try:
                return self.api.update(wanted)
            except NotFound:
                return None
            except Conflict:
                self._count("conflicts")
                try:
                    current = self.api.get("Pod", name, namespace)
                except NotFound:
                    return None
                if not self.responsible_for(current):
                    return None  # bound elsewhere, deleted or finished: nothing left to do
                if attempt == _BIND_ATTEMPTS - 1:
                    raise
        return None

    def _mark_scheduled(self, bound: Obj) -> None:
        # Only pods we once declared unschedulable carry a stale PodScheduled=False; fix it.
        cond = _scheduled_condition(bound)
        if cond is None or cond.get("status") == "True":
            return
        status = with_pod_scheduled(bound.get("status") or {}, rfc3339(self.clock.now()))
        try:
            self.api.update_status({**bound, "status": status})
        except (Conflict, NotFound):
            log.debug("PodScheduled=True for %s lost a race; the node agent reports status", key_of(bound))

    def _unschedulable(self, pod: Obj, key: str, result: Result, changes_before: int) -> None:
        message = result.message
        with self._lock:
            attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
            self._parked.add(key)
            missed_change = self._changes != changes_before
        self._count("unschedulable")
        if missed_change:
            self.queue.add(key)  # something changed while we decided: try again now
        delay = min(self.retry_initial * 2 ** (attempts - 1), self.retry_max)
        self.queue.add_after(key, delay)
        self._set_unschedulable(pod, message)
        record_event(
            self.api, pod, "FailedScheduling", message, type="Warning", component=self.name, clock=self.clock
        )

    def _set_unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod.get("metadata") or {}
        current = pod
        for _attempt in range(_BIND_ATTEMPTS):
            old = _scheduled_condition(current)
            if (
                old is not None
                and old.get("status") == "False"
                and old.get("reason") == "Unschedulable"
                and old.get("message") == message
            ):
                return
            status = copy.deepcopy(current.get("status") or {})
            status.setdefault("phase", "Pending")
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": (old or {}).get("lastTransitionTime")
                if (old or {}).get("status") == "False"
                else rfc3339(self.clock.now()),
            }
            status["conditions"] = [
                c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"
            ] + [cond]
            try:
                self.api.update_status({**current, "status": status})
                return
            except NotFound:
                return
            except Conflict:
                try:
                    current = self.api.get(
                        "Pod", str(meta.get("name")), str(meta.get("namespace") or "default")
                    )
                except NotFound:
                    return
                if not self.responsible_for(current):
                    return

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the informers it uses (if the factory has not yet) and the scheduling thread."""
        if self._thread is not None:
            return
        if self.queue.shutting_down:
            self.queue = WorkQueue(clock=self.clock)
            # pending pods are rediscovered from the cache
            for pod in self.pods.list():
                self._on_pod_add(pod)
        self._stop.clear()
        for inf in (self.nodes, self.pods, self.services):
            inf.start()
        if self.async_bind:
            self._bind_queue = queue.SimpleQueue()
            for i in range(self.binders):
                b = threading.Thread(target=self._run_binder, name=f"binder-{self.name}-{i}", daemon=True)
                b.start()
                self._binder_threads.append(b)
        self._thread = threading.Thread(target=self._run, name=f"scheduler-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the scheduling thread (the informers belong to the factory's owner)."""
        self._stop.set()
        self.queue.shutdown()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        binders, self._binder_threads = self._binder_threads, []
        for _ in binders:
            self._bind_queue.put(None)
        for b in binders:
            if b is not threading.current_thread():
                b.join(timeout=5.0)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or being bound (parked pods do not count); for tests."""
        deadline = time.monotonic() + timeout  # real time: a FakeClock would never run out
        with self._progress:
            while len(self.queue) > 0 or self._binding > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.1))
        return True
