"""Informers: a list + watch of one kind kept in a local, indexed, thread-safe cache.

Controllers, the scheduler, node agents and notebook widgets read objects from an informer's cache
instead of the registry, and react to its add/update/delete callbacks (which, by convention, only
enqueue keys into a WorkQueue). One background thread per informer lists, then watches from the
list's resourceVersion, resumes the watch after transient errors (with backoff), and relists when
the watch's revision was compacted (Expired), turning the difference into add/update/delete calls.
`InformerFactory` shares one informer per (kind, namespace) between all users in a process.

Cached objects are shared between all readers: never mutate them (`copy.deepcopy` first). Over an
in-process Registry they are shared between informers too: the watches are opened `shared=True`,
so two informers of one kind (the control plane's and the node agents') hold one decoded object per
version instead of a copy each.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbkube.api import kinds
from nbkube.api.meta import Obj, controller_of, key_of
from nbkube.errors import Expired
from nbkube.logutil import log_failure

if TYPE_CHECKING:
    from nbkube.registry.registry import Registry

__all__ = ["Informer", "InformerFactory", "IndexFunc", "WatchFilter", "filters_watches"]

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], list[str]]


@dataclass(frozen=True)
class WatchFilter:
    """Which objects of a kind an informer keeps, as a field selector would: `keep(obj)` decides;
    `raw(value)` is False when the stored JSON certainly fails `keep`, so that such a value is not
    even decoded (Registry.watch's raw_filter). A node's pod informer keeps bound pods only."""

    name: str
    keep: Callable[[Obj], bool]
    raw: Callable[[bytes], bool] | None = None

_WATCH_POLL = 0.25  # how often the watch loop looks at the stop flag when no event arrives
_BACKOFF_START = 0.1
_BACKOFF_MAX = 5.0


def _index_namespace(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def _index_node_name(obj: Obj) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _index_controller(obj: Obj) -> list[str]:
    # the uid of the controlling owner: a ReplicaSet finds its pods without scanning the namespace
    ref = controller_of(obj)
    uid = ref.get("uid") if ref is not None else None
    return [str(uid)] if uid else []


def _index_orphan(obj: Obj) -> list[str]:
    # objects without a controller, by namespace: the only ones a controller may adopt
    if controller_of(obj) is not None:
        return []
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def _index_label(obj: Obj) -> list[str]:
    return [f"{k}={v}" for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items()]


BUILTIN_INDEXERS: dict[str, IndexFunc] = {
    "namespace": _index_namespace,
    "nodeName": _index_node_name,
    "label": _index_label,
    "controller": _index_controller,
    "orphan": _index_orphan,
}


def _watch_takes(api: Any, parameter: str) -> bool:
    """Whether `api.watch` takes `parameter` (the in-process Registry's options; a RestClient
    has none of them)."""
    try:
        return parameter in inspect.signature(api.watch).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def _shares_decoding(api: Any) -> bool:
    """Whether `api.watch` can hand every shared watch the same decoded objects (the Registry's
    `shared=True`; a RestClient decodes its own stream)."""
    return _watch_takes(api, "shared")


def filters_watches(api: Any) -> bool:
    """Whether `api.watch` takes a predicate (the in-process Registry; not a REST client)."""
    return _watch_takes(api, "predicate")


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


@dataclass(frozen=True)
class _Handler:
    on_add: Callable[[Obj], Any] | None
    on_update: Callable[[Obj, Obj], Any] | None
    on_delete: Callable[[Obj], Any] | None


class Informer:
    def __init__(
        self,
        api: Registry,
        kind: str,
        *,
        namespace: str = "",
        label_selector: str | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        watch_filter: WatchFilter | None = None,
    ):
        """`watch_filter`: keep only what it keeps (over an in-process Registry, which filters
        the watch; a client without predicate watches is refused)."""
        if watch_filter is not None and not filters_watches(api):
            raise TypeError(
                f"{kind} informer: watch filter {watch_filter.name!r} needs the in-process registry "
                f"(predicate watches), not {type(api).__name__}"
            )
        self.watch_filter = watch_filter
        self.api = api
        self.info = kinds.lookup(kind)
        self.kind = self.info.kind
        self.namespace = namespace if self.info.namespaced else ""
        self.label_selector = label_selector
        self._indexers: dict[str, IndexFunc] = {**BUILTIN_INDEXERS, **(indexers or {})}
        self._lock = threading.RLock()  # guards the cache and indexes (cheap, for readers)
        self._dispatch = threading.RLock()  # held while one change is applied and handed to handlers
        self._items: dict[str, Obj] = {}
        # The indexes kept, by name: the ones given here from the start, a built-in one from its
        # first `by_index` on (built then from the cache). Why lazily: every object's change
        # recomputes every kept index's values, old and new, and most informers are read through
        # one or two of the five built-in ones (a scheduler's pods through none of them).
        self._index: dict[str, dict[str, set[str]]] = {name: {} for name in indexers or {}}
        self._handlers: builtins.list[_Handler] = []
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self.resource_version = ""

    # -- handlers ----------------------------------------------------------------------------------

    def add_handler(
        self,
        on_add: Callable[[Obj], Any] | None = None,
        on_update: Callable[[Obj, Obj], Any] | None = None,
        on_delete: Callable[[Obj], Any] | None = None,
    ) -> None:
        """Register callbacks. Objects already cached are replayed to `on_add` (on the caller's
        thread, before any later change reaches the new handler); later changes arrive on the
        informer's thread, in order."""
        handler = _Handler(on_add, on_update, on_delete)
        with self._dispatch:
            with self._lock:
                self._handlers.append(handler)
                existing = builtins.list(self._items.values())
            for obj in existing:
                self._call(handler.on_add, obj)

    def _call(self, fn: Callable[..., Any] | None, *args: Obj) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # one faulty handler must not stop the informer or the others
            log.exception("%s informer: handler %r failed", self.kind, fn)

    # -- cache -------------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        """The cached object for "namespace/name" (or "name" for cluster-scoped kinds)."""
        with self._lock:
            return self._items.get(key)

    def list(self) -> builtins.list[Obj]:
        with self._lock:
            return builtins.list(self._items.values())

    def count(self) -> int:
        """How many objects the cache holds (without copying them out, as `list` does)."""
        with self._lock:
            return len(self._items)

    def keys(self) -> builtins.list[str]:
        with self._lock:
            return builtins.list(self._items)

    def by_index(self, index_name: str, value: str) -> builtins.list[Obj]:
        """The cached objects index `index_name` files under `value` (KeyError: no such index)."""
        with self._lock:
            index = self._index.get(index_name)
            if index is None:
                index = self._build_index(index_name)
            return [self._items[k] for k in index.get(value, ()) if k in self._items]

    def _build_index(self, name: str) -> dict[str, set[str]]:
        """Start keeping index `name`, built from the cache as it is (called under `_lock`, so no
        change slips between the build and the first update that maintains it)."""
        fn = self._indexers.get(name)
        if fn is None:
            raise KeyError(f"{self.kind} informer has no index {name!r} (have: {', '.join(self._indexers)})")
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for v in self._index_value(name, fn, obj):
                index.setdefault(v, set()).add(key)
        self._index[name] = index
        return index

    def _index_value(self, name: str, fn: IndexFunc, obj: Obj) -> builtins.list[str]:
        try:
            return builtins.list(fn(obj))
        except Exception:
            log.exception("%s informer: indexer %r failed", self.kind, name)
            return []

    def _index_values(self, obj: Obj) -> dict[str, builtins.list[str]]:
        """`obj`'s values in each index kept."""
        return {name: self._index_value(name, self._indexers[name], obj) for name in self._index}

    def _store(self, key: str, obj: Obj | None) -> Obj | None:
        """Put (or with None remove) one object; returns the previous one."""
        with self._lock:
            old = self._items.pop(key, None)
            before = self._index_values(old) if old is not None else {}
            after = self._index_values(obj) if obj is not None else {}
            # most updates (a status write) move no index entry: those indexes are left as they are
            unmoved = {name for name, values in before.items() if after.get(name) == values}
            for name, values in before.items():
                if name in unmoved:
                    continue
                for v in values:
                    keys = self._index[name].get(v)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del self._index[name][v]
            if obj is not None:
                self._items[key] = obj
                for name, values in after.items():
                    if name in unmoved:
                        continue
                    for v in values:
                        self._index[name].setdefault(v, set()).add(key)
            return old

    def _handlers_snapshot(self) -> builtins.list[_Handler]:
        with self._lock:
            return builtins.list(self._handlers)

    def _apply(self, type_: str, obj: Obj) -> None:
        key = key_of(obj)
        with self._dispatch:
            if type_ == "DELETED":
                old = self._store(key, None)
                if old is not None:
                    for h in self._handlers_snapshot():
                        self._call(h.on_delete, obj)
                return
            current = self.get(key)
            if current is not None and _rv(current) == _rv(obj):
                return  # already seen (a relist and a watch may both deliver it)
            old = self._store(key, obj)
            for h in self._handlers_snapshot():
                if old is None:
                    self._call(h.on_add, obj)
                else:
                    if h.on_update is not None:
                        self._call(h.on_update, old, obj)

    def _replace(self, items: builtins.list[Obj]) -> None:
        """Make the cache equal to a fresh list, telling handlers what changed."""
        fresh = {key_of(o): o for o in items}
        with self._dispatch:
            for key in self.keys():
                if key not in fresh:
                    old = self.get(key)
                    if old is not None:
                        self._apply("DELETED", old)
            for key, obj in fresh.items():
                old = self.get(key)
                if old is None or _rv(old) != _rv(obj):
                    self._apply("MODIFIED", obj)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float = 10.0) -> bool:
        return self._synced.wait(timeout)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.info.plural}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            try:
                w.cancel()
            except Exception:
                log.debug("cancelling watch failed", exc_info=True)
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=2.0)
        self._thread = None

    def _open_watch(self, resource_version: str) -> Any:
        extra: dict[str, Any] = {}
        if self.watch_filter is not None:
            extra = {"predicate": self.watch_filter.keep, "raw_filter": self.watch_filter.raw}
        if _shares_decoding(self.api):
            # cached objects are never mutated (see the module docstring): every informer of this
            # kind on the Registry holds the same decoded object, not a copy each
            extra["shared"] = True
        return self.api.watch(
            self.kind,
            self.namespace,
            resource_version=resource_version,
            label_selector=self.label_selector,
            **extra,
        )

    def _run(self) -> None:
        backoff = _BACKOFF_START
        # After stop() + start() resume the watch where it left off; Expired falls back to a relist.
        # "0" (a list of a store that had never been written) cannot be resumed from: the registry
        # reads "0" as "from now", so relist instead.
        need_list = self.resource_version in ("", "0")
        while not self._stop.is_set():
            try:
                skip_upto = 0
                if need_list:
                    # Watch first, then list: nothing written in between is missed, and the watch's
                    # events the list already reflects (revision <= the list's) are skipped.
                    self._watch = self._open_watch("")
                    items, rv = self.api.list(self.kind, self.namespace, label_selector=self.label_selector)
                    if self.watch_filter is not None:
                        items = [obj for obj in items if self.watch_filter.keep(obj)]
                    self._replace(items)
                    self.resource_version = rv
                    skip_upto = int(rv)
                    need_list = False
                    self._synced.set()
                else:
                    # One revision may hold several events (a batch written in one etcd txn), and
                    # a watch that broke may have delivered only some: resume one revision early;
                    # what is replayed is already cached at that resourceVersion and is skipped.
                    self._watch = self._open_watch(str(max(int(self.resource_version) - 1, 1)))
                if self._stop.is_set():
                    break
                backoff = _BACKOFF_START
                while not self._stop.is_set():
                    ev = self._watch.next(_WATCH_POLL)
                    if ev is None:
                        if getattr(self._watch, "cancelled", False) and not self._stop.is_set():
                            # closed under us (e.g. Registry.close()): reconnect, with backoff
                            raise ConnectionError(f"{self.kind} watch was cancelled")
                        continue
                    rv = str(ev.object["metadata"]["resourceVersion"])
                    if int(rv) <= skip_upto:
                        continue
                    self._apply(ev.type, ev.object)
                    self.resource_version = rv
            except Expired:
                log.info("%s informer: watch expired at %s, relisting", self.kind, self.resource_version)
                need_list = True
            except Exception as exc:
                if self._stop.is_set() or getattr(self.api, "closed", False):
                    break  # shutting down: the registry closed its watches under us
                if self.resource_version == "0":
                    need_list = True
                log_failure(
                    log, f"{self.kind} informer: list/watch", exc, detail=f"retrying in {backoff:.1f}s"
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                w, self._watch = self._watch, None
                if w is not None:
                    try:
                        w.cancel()
                    except Exception:
                        log.debug("cancelling watch failed", exc_info=True)


class InformerFactory:
    """One shared informer per (kind, namespace) for everything running in this process."""

    def __init__(self, api: Registry, *, filters: dict[str, WatchFilter] | None = None):
        """`filters`: by kind, what this factory's informers of it keep (see WatchFilter)."""
        self.api = api
        self.filters = {kinds.lookup(kind).kind: f for kind, f in (filters or {}).items()}
        self._lock = threading.Lock()
        self._informers: dict[tuple[str, str], Informer] = {}
        self._started = False

    def informer(self, kind: str, namespace: str = "") -> Informer:
        info = kinds.lookup(kind)
        key = (info.kind, namespace if info.namespaced else "")
        with self._lock:
            inf = self._informers.get(key)
            if inf is None:
                inf = self._informers[key] = Informer(
                    self.api, info.kind, namespace=key[1], watch_filter=self.filters.get(info.kind)
                )
                if self._started:
                    inf.start()
            return inf

    def start_all(self) -> None:
        with self._lock:
            self._started = True
            informers = list(self._informers.values())
        for inf in informers:
            inf.start()

    def stop_all(self) -> None:
        with self._lock:
            self._started = False
            informers = list(self._informers.values())
        for inf in informers:
            inf.stop()

    def wait_all_synced(self, timeout: float = 10.0) -> bool:
        with self._lock:
            informers = list(self._informers.values())
        deadline = time.monotonic() + timeout
        return all(inf.wait_synced(max(0.0, deadline - time.monotonic())) for inf in informers)
