"""One set of threads for many node agents in one process (simulated nodes at scale).

Why: a `NodeAgent` on its own runs a heartbeat thread, a relist thread and pod-sync workers, and
its pod handler is called for every pod event of the shared informer. That is right for one real
node per process, and wrong for thousands of simulated ones (kwok's case): thousands of threads
fighting over the GIL, and every pod event handed to every agent. Agents created with a pool run
no thread of their own:

- pod events reach only the agents of the pod's old and new `spec.nodeName` (one handler on the
  informer, a dict lookup per event);
- pod syncs of every agent share one WorkQueue and `workers` threads (keys carry the node name);
  the keys of the agents' relists wait in a lane of their own and join the queue only while it
  runs short, so a new pod's first sync never queues behind every node's periodic relist (at
  150,000 pods those ask more syncs than the workers make);
- heartbeats have a queue and threads of their own, so a backlog of pod syncs never delays a Lease
  renewal into the node-monitor grace period; and a beat there is only the Lease (the fault check
  reads the Node from the shared informer, the renewals of the agents due together are one store
  transaction): the rest of a heartbeat (Node status when due, metrics, relist, four times the
  Lease's cost) goes to a chores queue with a thread of its own, at most one chore queued per
  agent. Under a load that leaves the beat threads a small share of the one GIL, Leases that had
  to wait behind status writes and metrics came a minute late and nodes flapped NotReady;
- one ticker thread queues each agent's heartbeat and relist when due, spread over the interval so
  that N nodes do not all beat at once; an agent's next beat is due one interval after its last one
  finished (as kubelet's lease loop waits its interval after each renewal), so a pool that falls
  behind beats each node a little less often instead of queueing beats faster than it writes
  them: a backlog that grew without bound made renewals minutes late and nodes flap NotReady;
- pod status writes are batched: a pod worker takes up to `STATUS_BATCH` queued pods at once, syncs
  each (the agent holds its status write back, see `NodeAgent._report`), then writes all their
  statuses through the registry's `update_many` (one store transaction; each write still its own
  compare-and-swap that fails on its own, retried as a lone write's conflict is) and only then
  lets the queue hand those pods out again; the update that is such a write coming back through
  the informer is not synced (it holds only what the agent wrote, and a pooled pod's next change
  is timed by its runtime): a third of the syncs per pod;
- a pod's first status is written once it settled: when the runtime says the pod's state changes
  again within `status_settle` seconds of its start (a sim pod's ContainerCreating, 50 ms by
  default), the agent writes the state after that instead of both, as kwok's stages go straight
  to Running. One status write, one informer update to every controller, fewer per pod; a pod whose
  start takes longer still shows its waiting state.
"""

from __future__ import annotations

import heapq
import logging
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbkube.api.meta import Obj
from nbkube.client.workqueue import WorkQueue
from nbkube.clock import REAL_CLOCK, Clock
from nbkube.logutil import log_failure

if TYPE_CHECKING:
    from nbkube.client.informer import Informer
    from nbkube.node.agent import NodeAgent

__all__ = ["AgentPool", "AgentQueue", "PendingStatus", "STATUS_SETTLE", "STATUS_BATCH"]

log = logging.getLogger(__name__)

_SEP = "\0"
STATUS_SETTLE = 0.1  # seconds: a first pod status due to change sooner waits for that change
_TICK_IDLE = 1.0  # the ticker's longest sleep with nothing due (a new agent wakes it early)
_BEAT_BATCH = 64  # agents whose Leases one store transaction renews
STATUS_BATCH = 64  # pods one pod worker syncs before writing their statuses together


@dataclass
class PendingStatus:
    """A pod status write an agent held back for the pool to make with others."""

    agent: NodeAgent
    key: str
    pod: Obj  # the cached pod the status was computed from (its resourceVersion is the CAS)
    old: Obj  # its status then
    new: Obj  # the status to write
    rt: Any  # the runtime status (the agent's events after the write read it)


class AgentQueue:
    """What one agent sees of the pool's pod queue: its own keys, prefixed with its node name."""

    def __init__(self, queue: WorkQueue, node_name: str, resync: Callable[[list[str]], None]):
        self._q = queue
        self._prefix = f"{node_name}{_SEP}"
        self._resync = resync

    def add(self, key: str) -> None:
        self._q.add(self._prefix + key)

    def add_resync(self, keys: Iterable[str]) -> None:
        """Keys a relist re-examines: synced when the pool's workers have nothing fresher to do."""
        self._resync([self._prefix + key for key in keys])

    def add_after(self, key: str, seconds: float) -> None:
        self._q.add_after(self._prefix + key, seconds)

    def add_rate_limited(self, key: str) -> None:
        self._q.add_rate_limited(self._prefix + key)

    def forget(self, key: str) -> None:
        self._q.forget(self._prefix + key)

    @property
    def shutting_down(self) -> bool:
        return self._q.shutting_down

    def shutdown(self) -> None:
        """The pool owns the queue: one agent stopping does not stop the others."""


class AgentPool:
    def __init__(
        self,
        *,
        clock: Clock = REAL_CLOCK,
        workers: int = 4,
        beat_workers: int = 4,
        status_settle: float = STATUS_SETTLE,
    ):
        if status_settle < 0:
            raise ValueError(f"agent pool: status_settle must be >= 0, got {status_settle!r}")
        self.status_settle = float(status_settle)
        self.clock = clock
        self.workers = max(1, workers)
        self.beat_workers = max(1, beat_workers)
        self.pods = WorkQueue(clock=clock)
        self.beats = WorkQueue(clock=clock)
        self.chores = WorkQueue(clock=clock)
        self._lock = threading.Lock()
        self._agents: dict[str, NodeAgent] = {}
        self._hooked: set[int] = set()  # ids of the informers our router listens on
        self._heap: list[tuple[float, int, str]] = []  # (due monotonic, seq, node name)
        self._scheduled: set[str] = set()  # the names in _heap
        self._seq = 0
        self._batches: dict[str, list[str]] = {}  # beat/chore-queue token -> the agents in it
        self._chores_queued: set[str] = set()  # agents with a chore in self.chores
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()  # .pending: the status writes this worker holds back
        # keys relists asked to re-examine, in order, each once; fed to the pod queue while it is
        # short (see _feed_resyncs)
        self._resyncs: OrderedDict[str, None] = OrderedDict()
        self._resync_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AgentPool({len(self._agents)} agents, {self.workers} workers)"

    # -- agents --------------------------------------------------------------------------------

    def queue_for(self, node_name: str) -> AgentQueue:
        return AgentQueue(self.pods, node_name, self._add_resyncs)

    def attach(self, agent: NodeAgent, informer: Informer) -> None:
        """Route `informer`'s pod events for `agent.node_name` to the agent (once per informer)."""
        with self._lock:
            self._agents[agent.node_name] = agent
            first = id(informer) not in self._hooked
            self._hooked.add(id(informer))
        if first:
            informer.add_handler(self._on_add, self._on_update, self._on_delete)

    def start_agent(self, agent: NodeAgent) -> None:
        """Begin heartbeats and relists for a started agent, at a stable offset in its interval."""
        offset = (zlib.crc32(agent.node_name.encode()) % 1000) / 1000 * agent.heartbeat_interval
        self._schedule(agent.node_name, self.clock.monotonic() + agent.heartbeat_interval + offset)

    def _schedule(self, name: str, due: float) -> None:
        with self._lock:
            if name in self._scheduled:
                return  # one beat ahead per agent (a restart while its beat ran would make two)
            self._scheduled.add(name)
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, name))
        self._wake.set()

    def _agent(self, name: str) -> NodeAgent | None:
        with self._lock:
            return self._agents.get(name)

    # -- pod event routing ---------------------------------------------------------------------

    @staticmethod
    def _node(pod: Obj | None) -> str:
        return str(((pod or {}).get("spec") or {}).get("nodeName") or "")

    def _on_add(self, pod: Obj) -> None:
        agent = self._agent(self._node(pod))
        if agent is not None:
            agent._on_add(pod)

    def _on_update(self, old: Obj, new: Obj) -> None:
        names = {self._node(old), self._node(new)} - {""}
        for name in names:
            agent = self._agent(name)
            if agent is not None:
                agent._on_update(old, new)

    def _on_delete(self, pod: Obj) -> None:
        agent = self._agent(self._node(pod))
        if agent is not None:
            agent._on_delete(pod)

    # -- threads -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        if self.pods.shutting_down:
            self.pods = WorkQueue(clock=self.clock)
            self.beats = WorkQueue(clock=self.clock)
            self.chores = WorkQueue(clock=self.clock)
            with self._lock:
                self._chores_queued.clear()
            with self._resync_lock:
                self._resyncs.clear()
        loops = [(self._ticker, "ticker"), (self._chore_worker, "chores")]
        loops += [(self._pod_worker, f"podsync-{i}") for i in range(self.workers)]
        loops += [(self._beat_worker, f"heartbeat-{i}") for i in range(self.beat_workers)]
        for target, name in loops:
            t = threading.Thread(target=target, name=f"agentpool-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.pods.shutdown()
        self.beats.shutdown()
        self.chores.shutdown()
        threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout=5.0)

    def _ticker(self) -> None:
        while not self._stop.is_set():
            now = self.clock.monotonic()
            due: list[str] = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    _, _, name = heapq.heappop(self._heap)
                    self._scheduled.discard(name)
                    due.append(name)
                wait = self._heap[0][0] - now if self._heap else _TICK_IDLE
                self._wake.clear()
            ready: list[str] = []
            for name in due:
                agent = self._agent(name)
                if agent is None or not agent.running:
                    continue  # stopped: no more beats until start_agent again
                ready.append(name)  # its next beat is scheduled when this one is done
            for start in range(0, len(ready), _BEAT_BATCH):
                self._queue_beats(ready[start : start + _BEAT_BATCH])
            if not due:
                self.clock.wait(self._wake, min(wait, _TICK_IDLE))

    def _queue_beats(self, names: list[str]) -> None:
        """One beat-queue item for the agents due at once (their Leases are written together)."""
        self.beats.add(self._token("beats", names))

    def _token(self, what: str, names: list[str]) -> str:
        with self._lock:
            self._seq += 1
            token = f"{_SEP}{what}-{self._seq}"
            self._batches[token] = names
        return token

    def _take(self, token: str) -> list[str]:
        with self._lock:
            return self._batches.pop(token, [])

    def _beat_worker(self) -> None:
        while not self._stop.is_set():
            item = self.beats.get()
            if item is None:
                return
            names = self._take(item)
            try:
                self._beat_many(names)
            except Exception as exc:  # the agents log their own failures; this is a bug
                log_failure(log, "agent pool: heartbeat", exc, detail=item)
            finally:
                self.beats.done(item)
                self._next_beats(names)

    def _queue_chores(self, names: list[str]) -> None:
        """The rest of these agents' beats, unless a chore of theirs is still queued (a chores
        thread that falls behind does each agent's once, not once per beat it missed)."""
        with self._lock:
            fresh = [n for n in names if n not in self._chores_queued]
            self._chores_queued.update(fresh)
        if fresh:
            self.chores.add(self._token("chores", fresh))

    def _chore_worker(self) -> None:
        while not self._stop.is_set():
            item = self.chores.get()
            if item is None:
                return
            names = self._take(item)
            try:
                for name in names:
                    with self._lock:
                        self._chores_queued.discard(name)  # a beat from now on queues another
                    agent = self._agent(name)
                    if agent is not None and agent.running:
                        agent.beat_chores()
            except Exception as exc:  # beat_chores logs its own failures; this is a bug
                log_failure(log, "agent pool: heartbeat chores", exc, detail=item)
            finally:
                self.chores.done(item)

    def _next_beats(self, names: list[str]) -> None:
        """Schedule the next beat of agents whose beat just finished: one interval from now."""
        now = self.clock.monotonic()
        for name in names:
            agent = self._agent(name)
            if agent is not None and agent.running:
                self._schedule(name, now + agent.heartbeat_interval)

    def _beat_many(self, names: list[str]) -> None:
        """Lease renewals of several agents in one registry batch (one store transaction), each
        its own compare-and-swap; then their chores are queued."""
        begun: list[tuple[NodeAgent, Obj | None]] = []
        for name in names:
            agent = self._agent(name)
            if agent is None or not agent.running:
                continue
            try:
                lease = agent.beat_begin()
            except Exception as exc:  # an API hiccup reading its Node: the one-at-a-time beat
                log_failure(log, f"node {name}: heartbeat", exc)
                agent.beat_and_relist()
                continue
            begun.append((agent, lease))
        # the agents of one registry (a pool normally serves one cluster) in one batch each
        by_api: dict[int, list[tuple[NodeAgent, Obj]]] = {}
        for agent, lease in begun:
            if lease is not None:
                by_api.setdefault(id(agent.api), []).append((agent, lease))
        written: dict[str, Obj | Exception] = {}
        for group in by_api.values():
            results: list[Obj | Exception]
            try:
                results = list(group[0][0].api.update_many([lease for _agent, lease in group]))
            except Exception as exc:  # the store is unavailable: each agent renews on its own
                log_failure(log, "agent pool: lease renewals", exc, detail=f"{len(group)} leases")
                results = [exc] * len(group)
            for (agent, _), result in zip(group, results, strict=True):
                written[agent.node_name] = result
        for agent, _lease in begun:
            agent.lease_written(written.get(agent.node_name))
        self._queue_chores([agent.node_name for agent, _lease in begun])

    def held_statuses(self) -> list[PendingStatus] | None:
        """The calling pod worker's held-back status writes (None outside a pod worker)."""
        pending: list[PendingStatus] | None = getattr(self._local, "pending", None)
        return pending

    def _add_resyncs(self, keys: list[str]) -> None:
        with self._resync_lock:
            for key in keys:
                self._resyncs[key] = None
        self._feed_resyncs()

    def _feed_resyncs(self) -> None:
        """Move relisted keys into the pod queue while it holds less than a batch.

        Why not straight into the queue: every agent relists every pod of its node each relist
        period, so at thousands of nodes the relists alone ask more syncs per second than the
        workers make, and a new pod's first sync, queued behind them, waited minutes to run. A
        kubelet's periodic sync never delays another pod's (each pod has its own worker); here the
        relists wait for the workers to run short of fresher work. Nothing starves: a worker
        feeds more after each batch, and a relist while the workers idle feeds at once."""
        if len(self.pods) >= STATUS_BATCH:
            return
        with self._resync_lock:
            keys = [self._resyncs.popitem(last=False)[0] for _ in range(min(STATUS_BATCH, len(self._resyncs)))]
        for key in keys:
            self.pods.add(key)

    def _pod_worker(self) -> None:
        while not self._stop.is_set():
            first = self.pods.get()
            if first is None:
                return
            taken = [first]
            while len(taken) < STATUS_BATCH:
                more = self.pods.get(0)
                if more is None:
                    break
                taken.append(more)
            pending: list[PendingStatus] = []
            self._local.pending = pending
            try:
                for full in taken:
                    try:
                        name, _, key = full.partition(_SEP)
                        agent = self._agent(name)
                        if agent is not None and agent.running:
                            agent.sync_pod_guarded(key)
                    except Exception as exc:  # sync_pod_guarded handles its own; this is a bug
                        log_failure(log, "agent pool: pod sync", exc, detail=full)
            finally:
                self._local.pending = None
                try:
                    self._write_statuses(pending)
                finally:
                    for full in taken:  # only now: a pod is never synced while its write is held
                        self.pods.done(full)
                    self._feed_resyncs()

    def _write_statuses(self, pending: list[PendingStatus]) -> None:
        """The held status writes, one update_many per registry; each result to its agent."""
        groups: dict[int, list[PendingStatus]] = {}
        for p in pending:
            groups.setdefault(id(p.agent.api), []).append(p)
        for group in groups.values():
            api = group[0].agent.api
            keys = [p.key for p in group]
            results: list[Any]
            if len(set(keys)) != len(keys) or not callable(getattr(api, "update_many", None)):
                results = []  # (one pod name under two nodes: only a deleted and re-made pod)
                for p in group:
                    try:
                        results.append(api.update_status({**p.pod, "status": p.new}))
                    except Exception as exc:
                        results.append(exc)
            else:
                try:
                    results = list(api.update_many([{**p.pod, "status": p.new} for p in group], status=True))
                except Exception as exc:  # the store is unavailable: each pod is retried on its own
                    log_failure(log, "agent pool: pod status writes", exc, detail=f"{len(group)} pods")
                    results = [exc] * len(group)
            for p, result in zip(group, results, strict=True):
                p.agent.status_written(p, result)
