"""The registry: typed CRUD, watch and apply for every kind, over a revisioned `Store`.

This is nbkube's API server core (and the "ApiClient" every controller, node agent, CLI command and
widget talks to). It turns plain wire-shaped objects into store keys and values, and adds what the
Kubernetes API server adds: defaults, validation, admission, uid / creationTimestamp / generation,
resourceVersion (= the store's modification revision), optimistic concurrency, the status
subresource split, watch translation (ADDED / MODIFIED / DELETED, filtered by label selector) and
`apply` (create-or-update from manifests, idempotent, all documents checked before any write).

Key layout follows the Kubernetes etcd layout: `/registry/{plural}/{namespace}/{name}` for
namespaced kinds and `/registry/{plural}/{name}` for cluster-scoped ones. Values are compact JSON
without `metadata.resourceVersion`, which is always taken from the store's KeyValue on read.

Values of the resources given `transformers` (the cluster wiring passes the Secret encryption of
`nbkube.security.encryption`) go through `to_storage` on the way to the store and `from_storage` on
the way back, as kube-apiserver's storage transformers do; a value that cannot be decrypted is a
one-line InternalError naming the object. The store never sees such a value in the clear, which is
why a Secret's `kubectl.kubernetes.io/last-applied-configuration` annotation is written without its
`data`/`stringData` (`_strip_secret_data`, on every write path). The consequence for `apply`'s
three-way merge: a Secret's data keys are never "previously applied", so a key removed from the
manifest is not removed from the Secret (the manifest's `data` replaces the stored map when it names
one; dropping `data` from the manifest altogether keeps the stored data). kubectl's client-side
apply computes its patch from the same annotation and behaves the same way.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from nbkube.api import kinds, wirejson
from nbkube.api.defaults import apply_defaults, preserve_allocated
from nbkube.api.initial_status import fill_initial_status
from nbkube.api.kinds import KindInfo
from nbkube.api.meta import Obj, json_clone
from nbkube.api.meta import name as name_of
from nbkube.api.patch import merge_patch
from nbkube.api.validation import int64_errors, validate, validate_update
from nbkube.api.wirenorm import from_wire
from nbkube.clock import REAL_CLOCK, Clock, rfc3339
from nbkube.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    FieldError,
    Forbidden,
    Invalid,
    NbkubeError,
    NotFound,
    TooLarge,
)
from nbkube.registry import binding, eviction
from nbkube.registry.continuation import LATEST, ContinueExpired, decode_continue, encode_continue
from nbkube.registry.metrics import MetricsStore
from nbkube.registry.recent import RecentValues
from nbkube.store.base import (
    MAX_VALUE_BYTES,
    BatchWrite,
    Compacted,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Store,
    WatchEvent,
)

if TYPE_CHECKING:
    from nbkube.registry.admission import AdmissionPlugin, Operation

__all__ = [
    "Registry",
    "ListPage",
    "RegistryEvent",
    "ValueTransformer",
    "RegistryWatch",
    "LAST_APPLIED",
    "AUTO_NAMESPACES",
    "PRESERVE_ON_UPDATE",
    "register_preserve",
]

log = logging.getLogger(__name__)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Kubernetes creates these at startup; we create them on first use instead, so a fresh store works.
AUTO_NAMESPACES = frozenset({"default", "kube-system", "kube-node-lease", "kube-public"})

_NAME_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet apiserver's generateName uses
_PATCH_RETRIES = 10
NAMESPACE_CACHE_SECONDS = 1.0


class _Matcher(Protocol):
    def matches(self, labels: dict[str, str]) -> bool: ...


class ValueTransformer(Protocol):
    """Turns one resource's serialized objects into what the store keeps, and back (encryption at
    rest: `nbkube.security.encryption.ResourceTransformer`). `key` is the store key, which the
    transformer may bind the value to; `from_storage` also says whether the value is stale (not
    written the way `to_storage` writes now), which `Registry.rewrite` looks for. Failures raise an
    NbkubeError whose message says why; the Registry adds which object it was."""

    def to_storage(self, data: bytes, key: str) -> bytes: ...

    def from_storage(self, data: bytes, key: str) -> tuple[bytes, bool]: ...


# --- the api layer ---------------------------------------------------------------------------------
# Imported at the top (they used to be imported inside each call while the api layer was being
# written; an import statement per call was ~1 us of every create). Both return fresh lists.
_apply_defaults = apply_defaults
# sets metadata.managedFields on the object about to be written, from the stored one (None: create)
FieldsHook = Callable[[Obj, Obj | None], None]
_validate = validate
_validate_update = validate_update


_LEFT_KEPT = 256  # paged lists in progress whose remaining counts are remembered

# kinds whose validators read nothing in `.status` (the others range-check status counters)
_STATUS_UNCHECKED = frozenset({"Pod", "Node"})


def _validate_status_write(new: Obj, old: Obj) -> builtins.list[FieldError]:
    """Validate a status write of a Pod or Node by what changed, as the apiserver's status
    strategies do; other kinds are validated whole.

    Everything but `.status` is the stored object, valid when written, and their validators read
    nothing in `.status` but its shape and integer range; revalidating the whole pod spec on every
    status write was a large share of the control plane's work per pod at scale. Whenever more than
    status differs (a managed-fields hook touched metadata), the whole object is validated."""
    if new.get("kind") not in _STATUS_UNCHECKED or {k: v for k, v in new.items() if k != "status"} != {
        k: v for k, v in old.items() if k != "status"
    }:
        return _validate(new)
    status = new.get("status")
    if status is None:
        return []
    if not isinstance(status, dict):
        return [FieldError("status", f"Invalid value: {type(status).__name__}: must be a mapping")]
    return int64_errors(status, "status")


def _selector(label_selector: Any) -> _Matcher | None:
    """A str is parsed; a Selector (anything with `matches`) is used as is; empty means none."""
    if label_selector is None:
        return None
    if isinstance(label_selector, str):
        if not label_selector.strip():
            return None
        from nbkube.api.selectors import parse_selector

        label_selector = parse_selector(label_selector)
    empty = getattr(label_selector, "empty", None)
    if callable(empty) and empty():
        return None
    return label_selector


# --- "preserve on apply/update" hooks ------------------------------------------------------------
# Fields the server assigns (by admission or by controllers) that a user's manifest usually leaves
# out. Without these, re-applying the same manifest would wipe them (and churn the object).

PreserveHook = Callable[[Obj, Obj], None]


def _preserve_allocated(new: Obj, old: Obj) -> None:
    # the api layer owns the list of server-set fields (Service clusterIP/nodePorts, Pod nodeName)
    preserve_allocated(new, old)


PRESERVE_ON_UPDATE: dict[str, list[PreserveHook]] = {
    "Service": [_preserve_allocated],
    "Pod": [_preserve_allocated],
}


def register_preserve(kind: str, hook: PreserveHook) -> None:
    """Let another layer (e.g. an allocation admission plugin) keep its fields across apply/update."""
    PRESERVE_ON_UPDATE.setdefault(kind, []).append(hook)


@dataclass
class _HeldWrite:
    """A write update_many holds back to do with the others, and what follows it."""

    info: KindInfo
    kv: KeyValue
    obj: Obj
    name: str
    hooks: tuple[Obj, Obj] | None = None  # (admitted, stored): admission's committed/rollback after it
    result: Obj | NbkubeError | None = None


# --- uids ------------------------------------------------------------------------------------------

_UID_BATCH = 256
_uid_pool: builtins.list[str] = []
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _new_uid() -> str:
    """A random (version 4) UUID, as `str(uuid.uuid4())` makes: one os.urandom call per 256 uids.

    uuid4() costs a getrandom system call and a UUID object per call, a tenth of a create's Python
    time. list.pop/extend are atomic, so threads never share a uid; a forked child drops the pool
    it inherited (see register_at_fork below), so parent and child never hand out the same one."""
    try:
        return _uid_pool.pop()
    except IndexError:
        pass
    digits = os.urandom(16 * _UID_BATCH).hex()
    fresh = []
    for i in range(0, len(digits), 32):
        u = digits[i : i + 32]
        # RFC 4122: version nibble 4, variant bits 10 (what uuid.UUID(version=4) sets)
        fresh.append(f"{u[:8]}-{u[8:12]}-4{u[13:16]}-{_VARIANT[u[16]]}{u[17:20]}-{u[20:]}")
    _uid_pool.extend(fresh)
    return _uid_pool.pop()


os.register_at_fork(after_in_child=_uid_pool.clear)


# --- encoding --------------------------------------------------------------------------------------


def _encode(obj: Obj) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    data = wirejson.dumps(obj)
    if len(data) > MAX_VALUE_BYTES:
        kind = obj.get("kind", "object")
        raise TooLarge(
            f'{kind} "{meta.get("name", "")}" is too large: {len(data)} bytes serialized, limit is {MAX_VALUE_BYTES}'
        )
    return data


def _decode(kv: KeyValue) -> Obj:
    obj: Obj = wirejson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def _describe_key(key: str) -> str:
    """`secrets "db" in namespace "prod"` for /registry/secrets/prod/db (what error lines name)."""
    parts = key.split("/")
    if len(parts) == 5:
        return f'{parts[2]} "{parts[4]}" in namespace "{parts[3]}"'
    if len(parts) == 4:
        return f'{parts[2]} "{parts[3]}"'
    return key


def _unreadable(key: str, why: str) -> NbkubeError:
    return NbkubeError(f"{_describe_key(key)} cannot be decrypted: {why}")


_SECRET_DATA_FIELDS = ("data", "stringData")


def _strip_secret_data(obj: Obj) -> None:
    """Remove `data`/`stringData` from a Secret's last-applied annotation (see the module doc)."""
    if obj.get("kind") != "Secret":
        return
    annotations = (obj.get("metadata") or {}).get("annotations")
    if not isinstance(annotations, dict):
        return
    text = annotations.get(LAST_APPLIED)
    if not isinstance(text, str) or not any(f'"{f}"' in text for f in _SECRET_DATA_FIELDS):
        return
    try:
        applied = json.loads(text)
    except ValueError:
        # not JSON, so not something apply can use; it may still hold the data: drop it whole
        del annotations[LAST_APPLIED]
        return
    if isinstance(applied, dict):
        for field in _SECRET_DATA_FIELDS:
            applied.pop(field, None)
        annotations[LAST_APPLIED] = json.dumps(applied, separators=(",", ":"), sort_keys=True)
    else:
        del annotations[LAST_APPLIED]


def _without_rv(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}


def _field_value(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def _parse_rv(rv: str | int | None, what: str = "resourceVersion") -> int | None:
    if rv is None or rv == "":
        return None
    try:
        return int(rv)
    except (TypeError, ValueError):
        raise BadRequest(f'invalid {what} "{rv}": must be an integer') from None


# --- watch -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListPage:
    """One page of a list: its objects, the snapshot's revision, the token for the next page ("" on
    the last) and how many objects follow (None when a selector filters: upstream leaves it out)."""

    items: builtins.list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


@dataclass(frozen=True)
class RegistryEvent:
    """One watch event. `prev` is the object before this change when the store told it (both
    backends do): for a MODIFIED the old version, for a DELETED the last one. It is decoded only
    when asked for, so watches that never look at it do not pay a second JSON decode per event."""

    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: Obj
    prev_kv: KeyValue | None = dataclasses.field(default=None, repr=False, compare=False)
    # the registry's decoder (Secrets are decrypted by it), for `prev`
    decode: Callable[[KeyValue], Obj] = dataclasses.field(default=_decode, repr=False, compare=False)

    @functools.cached_property
    def prev(self) -> Obj | None:
        return None if self.prev_kv is None else self.decode(self.prev_kv)


def _passes(selector: _Matcher | None, predicate: Callable[[Obj], bool] | None, obj: Obj) -> bool:
    if selector is not None and not selector.matches((obj.get("metadata") or {}).get("labels") or {}):
        return False
    return predicate is None or predicate(obj)


def _with_rv(obj: Obj, revision: int) -> Obj:
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "resourceVersion": str(revision)}}


_DECODED = "_shared_decoded"  # the attribute a KeyValue carries its shared decoding in (SharedDecoder)


class SharedDecoder:
    """Decodes each stored version once for every watch that shares its objects.

    The API server opens one registry watch per client watch: with W watchers of a kind, every
    store event used to be JSON-decoded W times. Watches opened with `shared=True` promise never to
    mutate the objects they get, so they are handed the same dict. A version is named by its key and
    revision, and its bytes are compared too, so a reused revision (a store restored from a backup)
    is decoded afresh rather than served stale. Bounded: the newest versions, at most `size` of them
    and `max_bytes` of stored values (large objects must not pin memory).

    Those bounds alone broke down under load: a watch that fell more than `size` versions behind
    the first (a busy process's informer threads take turns on one interpreter lock) found none of
    its versions kept, decoded a copy of each, so fell further behind, and its informer held its own
    copies (with 150,000 pods in one process, half the pod versions were decoded twice). A store
    that hands every watch the same event (SQLite's poller fans one event out to its watchers) now
    carries the decoded object on that event's KeyValue, for exactly as long as some watch still
    holds it; the bounded table serves stores whose watches each get their own events (etcd
    streams)."""

    def __init__(self, decode: Callable[[KeyValue], Obj], size: int = 1024, max_bytes: int = 8 << 20):
        self._decode = decode
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._objs: dict[tuple[str, int], tuple[bytes, Obj]] = {}
        self._lock = threading.Lock()

    def __call__(self, kv: KeyValue) -> Obj:
        carried = kv.__dict__.get(_DECODED)
        if carried is not None and carried[0] is self:
            return carried[1]
        name = (kv.key, kv.mod_revision)
        hit = self._objs.get(name)
        if hit is not None and hit[0] == kv.value:
            object.__setattr__(kv, _DECODED, (self, hit[1]))
            return hit[1]
        obj = self._decode(kv)
        # KeyValue is frozen (its value never changes), so its decoding is a memo, not a mutation.
        # The memo names its decoder: two registries over one store decode (and decrypt) apart.
        object.__setattr__(kv, _DECODED, (self, obj))
        if len(kv.value) > self._max_bytes:
            return obj
        with self._lock:
            old = self._objs.pop(name, None)
            if old is not None:
                self._bytes -= len(old[0])
            while self._objs and (
                len(self._objs) >= self._size or self._bytes + len(kv.value) > self._max_bytes
            ):
                oldest = next(iter(self._objs))  # dicts keep insertion order
                self._bytes -= len(self._objs.pop(oldest)[0])
            self._objs[name] = (kv.value, obj)
            self._bytes += len(kv.value)
        return obj


class RegistryWatch:
    """Store events under one kind (and namespace), as API watch events, filtered by labels and by
    any further predicate (the API server's field selectors).

    With a filter, an object that stops matching is reported DELETED (carrying its previous,
    matching version at the event's resourceVersion) and one that starts matching ADDED, as the
    Kubernetes watch cache does. Whether the object matched before comes from the store event's
    `prev` when the backend provides it, else from what this watch has seen, else from a snapshot
    of matching keys taken when the watch began.
    """

    def __init__(
        self,
        store_watch: Any,
        selector: _Matcher | None,
        matching: set[str] | None = None,
        on_cancel: Callable[[RegistryWatch], None] | None = None,
        decode: Callable[[KeyValue], Obj] = _decode,
        predicate: Callable[[Obj], bool] | None = None,
        seen: Callable[[KeyValue], None] | None = None,
        raw_filter: Callable[[bytes], bool] | None = None,
        exact: bool = False,
    ):
        """`seen`: told each value the watch delivers (the registry's recent values, recent.py).
        `raw_filter`: see Registry.watch. `exact`: `matching` is what matched at the revision the
        watch starts from, so that, kept up by every event, it says whether a key matched before."""
        self._exact = exact and (selector is not None or predicate is not None)
        self._w = store_watch
        self._decode = decode
        self._seen = seen
        self._raw_filter = raw_filter if predicate is not None else None
        self._selector = selector
        self._predicate = predicate
        self._filtered = selector is not None or predicate is not None
        self._matching: set[str] = set(matching or ())
        self._on_cancel = on_cancel
        self.cancelled = False
        # the revision of the last event delivered (or the start revision): resume from here
        self.resource_version = ""
        self._expired: Expired | None = None  # met by `ready` after some events; raised next

    def _matches(self, obj: Obj) -> bool:
        return _passes(self._selector, self._predicate, obj)

    def _ruled_out(self, value: bytes) -> bool:
        """Whether the raw filter says this stored (plain JSON) value certainly does not match."""
        return self._raw_filter is not None and value[:1] == b"{" and not self._raw_filter(value)

    def _translate(self, ev: WatchEvent) -> RegistryEvent | None:
        if ev.type != "DELETE" and ev.kv.key not in self._matching and self._ruled_out(ev.kv.value):
            # did not match before and certainly does not now: nothing to say, nothing to decode
            self.resource_version = str(ev.kv.mod_revision)
            return None
        obj = self._decode(ev.kv)
        self.resource_version = str(ev.kv.mod_revision)
        if ev.type != "DELETE" and self._seen is not None:
            self._seen(ev.kv)
        if ev.type == "DELETE":
            if self._filtered:
                self._matching.discard(ev.kv.key)
                if not self._matches(obj):
                    return None
            return RegistryEvent("DELETED", obj, ev.prev, self._decode)
        created = ev.kv.create_revision == ev.kv.mod_revision
        if not self._filtered:
            return RegistryEvent("ADDED" if created else "MODIFIED", obj, ev.prev, self._decode)
        prev: Obj | None = None
        key = ev.kv.key
        if created:
            was = False
        elif self._exact:
            was = key in self._matching  # kept exact since the watch's start: no decode needed
        elif ev.prev is not None and self._ruled_out(ev.prev.value):
            was = False  # e.g. the pending version of a pod just bound: not decoded
        elif ev.prev is not None:
            prev = self._decode(ev.prev)
            was = self._matches(prev)
        else:
            was = key in self._matching
        now = self._matches(obj)
        if now:
            self._matching.add(key)
        else:
            self._matching.discard(key)
        if now and was:
            return RegistryEvent("MODIFIED", obj, ev.prev, self._decode)
        if now:
            return RegistryEvent("ADDED", obj, ev.prev, self._decode)
        if was:
            if prev is None and ev.prev is not None:
                prev = self._decode(ev.prev)
            # what the watcher last saw matching, stamped with this event's resourceVersion
            return RegistryEvent(
                "DELETED", _with_rv(prev, ev.kv.mod_revision) if prev else obj, ev.prev, self._decode
            )
        return None

    def next(self, timeout: float | None = None) -> RegistryEvent | None:
        """The next event, or None after `timeout` seconds without one or once cancelled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ev = self._w.next(remaining)
            except Compacted as e:
                raise Expired(str(e)) from e
            if ev is None or self.cancelled:
                return None
            out = self._translate(ev)
            if out is not None:
                return out
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def ready(self, limit: int) -> builtins.list[RegistryEvent]:
        """The events (at most `limit`) that can be had now, without waiting. Unlike `next(0)`, an
        event filtered out does not hide the ones queued behind it. An expiry met after some events
        is raised by the next call, so those events are delivered first."""
        if self._expired is not None:
            err, self._expired = self._expired, None
            raise err
        out: builtins.list[RegistryEvent] = []
        while len(out) < limit and not self.cancelled:
            try:
                ev = self._w.next(0)
            except Compacted as e:
                expired = Expired(str(e))
                if not out:
                    raise expired from e
                self._expired = expired
                break
            if ev is None:
                break
            translated = self._translate(ev)
            if translated is not None:
                out.append(translated)
        return out

    def __iter__(self) -> Iterator[RegistryEvent]:
        try:
            for ev in self._w:
                out = self._translate(ev)
                if out is not None:
                    yield out
        except Compacted as e:
            raise Expired(str(e)) from e

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Be told (from the store's producer thread) when `next` may have something to return;
        the API server's event loop waits on this instead of holding a thread per watch."""
        self._w.set_wakeup(callback)

    def cancel(self) -> None:
        self.cancelled = True
        self._w.cancel()
        if self._on_cancel is not None:
            self._on_cancel(self)


# --- the registry ----------------------------------------------------------------------------------


def _not_found(info: KindInfo, name: str) -> NotFound:
    return NotFound(f'{info.plural} "{name}" not found')


def _conflict(info: KindInfo, name: str) -> Conflict:
    return Conflict(
        f'Operation cannot be fulfilled on {info.plural} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


class Registry:
    """CRUD + watch + apply for every kind in `nbkube.api.kinds`; safe to share between threads.

    Holds no per-request state: concurrency control lives in the store's compare-and-swap, so
    several registries (threads, processes, machines against one etcd) may write at once.
    """

    def __init__(
        self,
        store: Store,
        *,
        admission: Sequence[AdmissionPlugin] = (),
        clock: Clock = REAL_CLOCK,
        transformers: Mapping[str, ValueTransformer] | None = None,
        credentials_dir: str | None = None,
    ):
        """`transformers`: resource plural ("secrets") -> how its values are stored (encryption at
        rest). `credentials_dir`: the cluster folder holding its keys and the node agents'
        credential, for the callers that reach the agents (None: this cluster has none)."""
        self.store = store
        self.credentials_dir = credentials_dir
        # store key prefix -> transformer; a prefix per resource, as kube-apiserver's are
        self._transformers: dict[str, ValueTransformer] = {}
        for resource, transformer in (transformers or {}).items():
            try:
                info = kinds.lookup(resource)
            except NbkubeError:
                raise BadRequest(f"encryption: unknown resource {resource!r}") from None
            if info.plural != resource:
                raise BadRequest(f"encryption: name resources by plural ({info.plural!r}, not {resource!r})")
            self._transformers[f"/registry/{info.plural}/"] = transformer
        self.admission: list[AdmissionPlugin] = list(admission)
        self.clock = clock
        # the node agents' latest CPU/memory samples: a cache beside the store, not in it
        self.metrics = MetricsStore(clock=clock)
        self._watches: set[RegistryWatch] = set()  # open watches, cancelled by close()
        self._watches_lock = threading.Lock()
        # .writes: the writes update_many holds back; .no_policies: see `policies`
        self._batching = threading.local()
        # (prefix, snapshot revision, next page's start) -> objects from there on, so that each page
        # of a paged list says its remainingItemCount without counting the rest of the snapshot
        self._left: dict[tuple[str, int, str], int] = {}
        self._left_lock = threading.Lock()
        self._shared_decode = SharedDecoder(self._decode)  # for the API server's watches
        # what this registry wrote last per key: an update naming that revision skips the read
        self._recent = RecentValues()
        # namespace -> monotonic time until which it is known to exist and not be terminating. Every
        # namespaced create used to read the Namespace first: on etcd that doubled the round trips.
        # A namespace deleted or terminated through this registry is forgotten at once; one changed by
        # another process is noticed within NAMESPACE_CACHE_SECONDS.
        self._live_namespaces: dict[str, float] = {}

    # -- values ------------------------------------------------------------------------------------

    def _transformer(self, key: str) -> ValueTransformer | None:
        if not self._transformers:
            return None
        end = key.find("/", len("/registry/"))
        return self._transformers.get(key[: end + 1]) if end > 0 else None

    def _to_store(self, key: str, obj: Obj) -> bytes:
        data = _encode(obj)
        transformer = self._transformer(key)
        return data if transformer is None else transformer.to_storage(data, key)

    def _remember(self, info: KindInfo, key: str, value: bytes, create_revision: int, revision: int) -> None:
        """Keep a value just written for the next update of its key (see recent.py). Events are
        written once and seldom updated: keeping them would only push out what is."""
        if info.kind != "Event":
            self._recent.remember(key, value, create_revision, revision)

    def _plain(self, key: str, value: bytes) -> tuple[bytes, bool]:
        """The serialized object stored under `key`, and whether it is stale (see rewrite)."""
        transformer = self._transformer(key)
        if transformer is None:
            if value[:1] != b"{":
                # e.g. an encrypted Secret read by a registry opened without the cluster's keys
                raise _unreadable(key, "it is encrypted and this process has no encryption keys for it")
            return value, False
        try:
            return transformer.from_storage(value, key)
        except NbkubeError as exc:
            raise _unreadable(key, str(exc)) from None

    def _decode(self, kv: KeyValue) -> Obj:
        if not self._transformers and kv.value[:1] == b"{":
            return _decode(kv)  # the common path: nothing to transform
        plain, _stale = self._plain(kv.key, kv.value)
        return _decode(KeyValue(kv.key, plain, kv.create_revision, kv.mod_revision))

    def rewrite(self, kind: str, namespace: str = "") -> tuple[int, int]:
        """Write again every stored object of `kind` (in `namespace`, "" for all) whose value is
        stale (stored in the clear, or encrypted with a key that is no longer the first: what lets
        an old key be dropped after `rotate`) or whose last-applied annotation still carries a
        Secret's data (written before it was stripped). Returns (rewritten, total)."""
        # Each write is a compare-and-swap on the revision read; an object changed meanwhile is
        # read again (its new value was written the current way).
        info = self._info(kind)
        kvs, _rev = self.store.list(self._prefix(info, namespace))
        rewritten = 0
        for kv in kvs:
            current: KeyValue | None = kv
            while current is not None:
                plain, stale = self._plain(current.key, current.value)
                obj = wirejson.loads(plain)
                before = json.dumps(obj, sort_keys=True)
                _strip_secret_data(obj)  # written before annotations were stripped: strip now
                if not stale and json.dumps(obj, sort_keys=True) == before:
                    break
                value = self._to_store(current.key, obj)
                try:
                    self.store.update(current.key, value, current.mod_revision)
                    rewritten += 1
                    break
                except RevisionMismatch:
                    current = self.store.get(current.key)
                except KeyNotFound:
                    break
        return rewritten, len(kvs)

    # -- keys --------------------------------------------------------------------------------------

    @staticmethod
    def _info(kind: str) -> KindInfo:
        return kinds.lookup(kind)

    @staticmethod
    def _key(info: KindInfo, name: str, namespace: str) -> str:
        if info.namespaced:
            return f"/registry/{info.plural}/{namespace or 'default'}/{name}"
        return f"/registry/{info.plural}/{name}"

    @staticmethod
    def _prefix(info: KindInfo, namespace: str) -> str:
        if info.namespaced and namespace:
            return f"/registry/{info.plural}/{namespace}/"
        return f"/registry/{info.plural}/"

    def _info_for_obj(self, obj: Obj) -> KindInfo:
        if not isinstance(obj, dict):
            raise BadRequest(f"object must be a mapping, got {type(obj).__name__}")
        kind = obj.get("kind")
        if not kind or not isinstance(kind, str):
            raise Invalid([FieldError("kind", "required")])
        api_version = obj.get("apiVersion")
        if api_version:
            return kinds.for_manifest(str(api_version), kind)
        info = kinds.lookup(kind)
        obj["apiVersion"] = info.api_version
        return info

    def _admit(self, op: Operation, obj: Obj, old: Obj | None) -> None:
        done: builtins.list[AdmissionPlugin] = []
        try:
            for plugin in self.admission:
                plugin.admit(op, obj, old, self)
                done.append(plugin)
        except BaseException:
            # plugins before the one that refused may hold allocations or quota charges: undo them
            self._after_write(done, "rollback", op, obj, old)
            raise

    def _before_admission(self, info: KindInfo, obj: Obj) -> Obj | None:
        """A copy of `obj` to tell afterwards whether admission changed it (and so whether it must
        be validated again); None when no plugin may change this kind (see `mutates` in
        admission.py): the Events of every pod, say, skip a deep copy and a comparison."""
        for plugin in self.admission:
            kinds_changed = getattr(plugin, "mutates", None)
            if kinds_changed is None or info.kind in kinds_changed:
                return json_clone(obj)
        return None

    def _after_write(
        self, plugins: Sequence[AdmissionPlugin], hook: str, op: Operation, obj: Obj, old: Obj | None
    ) -> None:
        """Call the optional `rollback`/`committed` hook of admitted plugins (see admission.py).

        A failing hook is logged, never raised: the write's own outcome is what the caller sees."""
        for plugin in reversed(plugins):
            fn = getattr(plugin, hook, None)
            if fn is None:
                continue
            try:
                fn(op, obj, old, self)
            except Exception:
                log.exception("admission %s hook of %s failed", hook, type(plugin).__name__)

    @staticmethod
    def _meta(obj: Obj) -> dict[str, Any]:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        return meta

    # -- namespaces --------------------------------------------------------------------------------

    def _ensure_namespace(self, namespace: str) -> None:
        now = time.monotonic()
        if self._live_namespaces.get(namespace, 0.0) > now:
            return
        self._check_namespace(namespace)
        self._live_namespaces[namespace] = now + NAMESPACE_CACHE_SECONDS

    def ensure_system_namespaces(self) -> None:
        """Create the namespaces every cluster has (default, kube-system, kube-public,
        kube-node-lease) where missing, as kube-apiserver's system-namespaces controller does at
        start: otherwise `default` appeared only with the first object written to it (a node's
        first Event, say), at a moment that depended on timing."""
        for namespace in sorted(AUTO_NAMESPACES):
            self._ensure_namespace(namespace)

    def _forget_namespace(self, obj: Obj) -> None:
        if obj.get("kind") == "Namespace":
            self._live_namespaces.pop(name_of(obj), None)

    def _check_namespace(self, namespace: str) -> None:
        kv = self.store.get(f"/registry/namespaces/{namespace}")
        if kv is None:
            if namespace not in AUTO_NAMESPACES:
                raise NotFound(f'namespaces "{namespace}" not found')
            # AlreadyExists: another writer created it first, which is all we wanted
            with contextlib.suppress(AlreadyExists):
                self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            return
        ns = json.loads(kv.value)
        if (ns.get("status") or {}).get("phase") == "Terminating" or (ns.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            raise Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated"
            )

    # -- create / get / list -----------------------------------------------------------------------

    def _prepare_create(self, obj: Obj) -> tuple[Obj, KindInfo]:
        obj = from_wire(obj)
        info = self._info_for_obj(obj)
        meta = self._meta(obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = str(meta["generateName"]) + "".join(random.choices(_NAME_SUFFIX_CHARS, k=5))
        # the uid is the server's, and known before defaulting: a Job's generated selector names it
        meta["uid"] = _new_uid()
        _apply_defaults(obj)
        _strip_secret_data(obj)
        if not info.namespaced:
            meta.pop("namespace", None)
        errors = _validate(obj)
        if errors:
            raise Invalid(errors, kind=info.kind, name=str(meta.get("name", "")))
        return obj, info

    def create(self, obj: Obj, *, dry_run: bool = False, managed_fields: FieldsHook | None = None) -> Obj:
        """Create `obj` (a copy is stored and returned with uid, creationTimestamp, resourceVersion).

        `dry_run`: defaulted, validated and admitted as for real, and returned as it would be stored
        (without a resourceVersion, as the apiserver's dryRun=All answers), but nothing is written:
        what admission claimed or charged is rolled back, and a missing namespace is not created.
        `managed_fields(new, None)` records field ownership on the defaulted object (the API
        server's writes; see nbkube/api/managedfields.py)."""
        obj, info = self._prepare_create(obj)
        if managed_fields is not None:
            managed_fields(obj, None)
        meta = self._meta(obj)
        if info.namespaced:
            namespace = str(meta.get("namespace") or "default")
            if dry_run:
                self._ensure_namespace_exists_readonly(namespace)
            else:
                self._ensure_namespace(namespace)
        if not self.admission:
            return self._create_admitted(obj, info, dry_run=dry_run)
        before = self._before_admission(info, obj)
        self._admit("CREATE", obj, None)
        try:
            # what mutating plugins added must be valid too (an unchanged object was just validated)
            errors = _validate(obj) if before is not None and obj != before else []
            if errors:
                raise Invalid(errors, kind=info.kind, name=name_of(obj))
            created = self._create_admitted(obj, info, dry_run=dry_run)
        except BaseException:
            self._after_write(self.admission, "rollback", "CREATE", obj, None)
            raise
        self._after_write(self.admission, "rollback" if dry_run else "committed", "CREATE", created, None)
        return created

    def policies(self, kind: str, namespace: str) -> builtins.list[Obj]:
        """The `kind` objects (ResourceQuotas, LimitRanges) of `namespace` an admission plugin
        applies to a create. Inside one `create_many`, a namespace found to have none is not read
        again for the batch's other objects: the batch is admitted against one read of that
        absence, as one create is against its own read (a policy created meanwhile applies from
        the next create on, the same window either way). Found policies are read each time (a
        quota's `status.used` moves with every charge)."""
        empty: set[tuple[str, str]] | None = getattr(self._batching, "no_policies", None)
        if empty is not None and (kind, namespace) in empty:
            return []
        items, _rv = self.list(kind, namespace)
        if empty is not None and not items:
            empty.add((kind, namespace))
        return items

    def create_many(self, objs: Sequence[Obj]) -> builtins.list[Obj | NbkubeError]:
        """`create` of each object, the writes in one store transaction per store batch instead of
        one each. Each object is defaulted, validated and admitted on its own and fails on its own:
        the result has, per object in order, what `create` would have returned or the NbkubeError
        it would have raised; the others are written. Why: many small records at once (the Events
        of thousands of pods) pay one transaction and one lock instead of one each. A name taken
        meanwhile is AlreadyExists, except for a generated name, which is retried with `create`."""
        self._batching.no_policies = set()
        try:
            return self._create_many(objs)
        finally:
            self._batching.no_policies = None

    def _create_many(self, objs: Sequence[Obj]) -> builtins.list[Obj | NbkubeError]:
        results: builtins.list[Obj | NbkubeError | None] = []
        staged: builtins.list[tuple[int, Obj, Obj, KindInfo, str, bool]] = []  # index, original, ...
        for original in objs:
            try:
                obj, info = self._prepare_create(original)
                meta = self._meta(obj)
                if info.namespaced:
                    self._ensure_namespace(str(meta.get("namespace") or "default"))
                admitted = bool(self.admission)
                if admitted:
                    before = self._before_admission(info, obj)
                    self._admit("CREATE", obj, None)
                    errors = _validate(obj) if before is not None and obj != before else []
                    if errors:
                        self._after_write(self.admission, "rollback", "CREATE", obj, None)
                        raise Invalid(errors, kind=info.kind, name=name_of(obj))
                meta = self._stamp_new(obj)
                key = self._key(info, str(meta.get("name", "")), str(meta.get("namespace", "")))
            except NbkubeError as err:
                results.append(err)
                continue
            staged.append((len(results), original, obj, info, key, admitted))
            results.append(None)
        if len({key for *_x, key, _a in staged}) != len(staged):
            for _i, _o, obj, _info, _key, admitted in staged:
                if admitted:
                    self._after_write(self.admission, "rollback", "CREATE", obj, None)
            raise BadRequest("create_many: two objects name the same object")
        values = [self._to_store(key, obj) for *_x, obj, _info, key, _a in staged]
        try:
            outcomes = self.store.write_batch(
                [BatchWrite(key, value) for (*_x, key, _a), value in zip(staged, values, strict=True)]
            )
        except BaseException:
            for _i, _o, obj, _info, _key, admitted in staged:
                if admitted:
                    self._after_write(self.admission, "rollback", "CREATE", obj, None)
            raise
        for (i, original, obj, info, key, admitted), value, outcome in zip(
            staged, values, outcomes, strict=True
        ):
            if isinstance(outcome, int):
                self._remember(info, key, value, outcome, outcome)
                self._meta(obj)["resourceVersion"] = str(outcome)
                if admitted:
                    self._after_write(self.admission, "committed", "CREATE", obj, None)
                results[i] = obj
                continue
            if admitted:
                self._after_write(self.admission, "rollback", "CREATE", obj, None)
            if isinstance(outcome, KeyExists) and not (original.get("metadata") or {}).get("name"):
                try:
                    results[i] = self.create(original)  # a generated name collided: another name
                except NbkubeError as err:
                    results[i] = err
            elif isinstance(outcome, KeyExists):
                results[i] = AlreadyExists(f'{info.plural} "{name_of(obj)}" already exists')
            else:
                results[i] = outcome if isinstance(outcome, NbkubeError) else BadRequest(str(outcome))
        return [r for r in results if r is not None]

    def _stamp_new(self, obj: Obj) -> dict[str, Any]:
        """Set what the server sets on an admitted object about to be created; its metadata."""
        meta = self._meta(obj)  # a plugin may have replaced it
        meta["uid"] = meta.get("uid") or _new_uid()  # set by _prepare_create
        meta["creationTimestamp"] = rfc3339(self.clock.now())
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        fill_initial_status(obj)
        return meta

    def _create_admitted(self, obj: Obj, info: KindInfo, *, dry_run: bool = False) -> Obj:
        meta = self._stamp_new(obj)
        if dry_run:
            name = str(meta.get("name", ""))
            if self.store.get(self._key(info, name, str(meta.get("namespace", "")))) is not None:
                raise AlreadyExists(f'{info.plural} "{name}" already exists')
            return obj
        for _attempt in range(5):
            name = str(meta.get("name", ""))
            try:
                key = self._key(info, name, str(meta.get("namespace", "")))
                value = self._to_store(key, obj)
                rev = self.store.create(key, value)
            except KeyExists:
                if meta.get("generateName") and _attempt < 4:
                    # a random-suffix collision: pick another name, as the apiserver's retry does
                    meta["name"] = str(meta["generateName"]) + "".join(
                        random.choices(_NAME_SUFFIX_CHARS, k=5)
                    )
                    continue
                raise AlreadyExists(f'{info.plural} "{name}" already exists') from None
            self._remember(info, key, value, rev, rev)
            meta["resourceVersion"] = str(rev)
            return obj
        raise AssertionError("unreachable")

    def get(self, kind: str, name: str, namespace: str = "") -> Obj:
        info = self._info(kind)
        kv = self.store.get(self._key(info, name, namespace))
        if kv is None:
            raise _not_found(info, name)
        return self._decode(kv)

    def list(
        self,
        kind: str,
        namespace: str = "",
        *,
        label_selector: Any = None,
        field_selector: dict[str, str] | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        """Objects of `kind` (all namespaces when `namespace` is ""), filtered; and the list's RV."""
        info = self._info(kind)
        selector = _selector(label_selector)
        kvs, rev = self.store.list(self._prefix(info, namespace))
        items: builtins.list[Obj] = []
        for kv in kvs:
            obj = self._decode(kv)
            if selector is not None and not selector.matches((obj["metadata"].get("labels")) or {}):
                continue
            if field_selector and any(_field_value(obj, p) != str(v) for p, v in field_selector.items()):
                continue
            items.append(obj)
        return items, str(rev)

    def list_page(
        self,
        kind: str,
        namespace: str = "",
        *,
        label_selector: Any = None,
        predicate: Callable[[Obj], bool] | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListPage:
        """One page of a list (all of it when `limit` is 0), as the apiserver pages with
        `limit`/`continue`: the first page reads the current revision, each later one the same
        revision again (see continuation.py), so the pages are one consistent snapshot.

        `predicate` filters further (the API server's field selectors). `remaining` counts the
        objects after this page only when nothing filters (upstream's remainingItemCount), and a
        continue token is given only when a matching object is left. ContinueExpired (410) when
        the snapshot was compacted; BadRequest for a token that is not one of ours."""
        info = self._info(kind)
        prefix = self._prefix(info, namespace)
        selector = _selector(label_selector)
        revision: int | None = None
        start = ""
        if continue_token:
            token_rev, start = decode_continue(continue_token)
            revision = None if token_rev == LATEST else token_rev
        revision_given = revision is not None
        filtering = selector is not None or predicate is not None

        def wanted(obj: Obj) -> bool:
            if selector is not None and not selector.matches(obj["metadata"].get("labels") or {}):
                return False
            return predicate is None or predicate(obj)

        # read the store a chunk at a time from where the page starts: a page of 500 out of
        # 150,000 pods reads about 500, not the whole prefix (more chunks only when filtering)
        chunk = 0 if not limit else (limit + 1 if not filtering else max(4 * limit, 500))
        items: builtins.list[Obj] = []
        key_from = prefix + start if start else ""
        last_key = ""
        more = False
        rev = -1
        try:
            while True:
                kvs, read_rev = self.store.list(prefix, revision=revision, start=key_from, limit=chunk)
                if rev < 0:
                    rev, revision = read_rev, read_rev  # later chunks read the same snapshot
                for kv in kvs:
                    if limit and len(items) == limit:
                        # a matching object is left (when nothing filters, any object is)
                        more = not filtering or wanted(self._decode(kv))
                        if more:
                            break
                        continue
                    obj = self._decode(kv)
                    last_key = kv.key
                    if not filtering or wanted(obj):
                        items.append(obj)
                if more or not chunk or len(kvs) < chunk:
                    break
                key_from = kvs[-1].key + "\x00"
        except Compacted:
            raise ContinueExpired(encode_continue(LATEST, start)) from None
        remaining: int | None = None
        if more and not filtering:
            # what the previous page counted from its end on, less this page: its snapshot is fixed
            with self._left_lock:
                left = self._left.pop((prefix, rev, start), None) if start and revision_given else None
            if left is not None:
                remaining = left - len(items)
            else:
                remaining = self.store.count(prefix, revision=rev, start=last_key + "\x00")
            with self._left_lock:
                if len(self._left) >= _LEFT_KEPT:
                    self._left.pop(next(iter(self._left)))
                self._left[(prefix, rev, last_key[len(prefix) :] + "\x00")] = remaining
        return ListPage(
            items,
            str(rev),
            encode_continue(rev, last_key[len(prefix) :] + "\x00") if more else "",
            remaining,
        )

    # -- update ------------------------------------------------------------------------------------

    def _load_for_write(self, info: KindInfo, obj: Obj) -> tuple[KeyValue, Obj, str, str]:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            raise Invalid([FieldError("metadata.name", "required")], kind=info.kind)
        namespace = str(meta.get("namespace") or ("default" if info.namespaced else ""))
        key = self._key(info, name, namespace)
        expected = _parse_rv(meta.get("resourceVersion"))
        # the value this registry wrote at the named revision is the stored one at it; whether it
        # is still the newest, the write's compare-and-swap says (Conflict or NotFound, as a read)
        kv = self._recent.at(key, expected) if expected is not None else None
        if kv is None:
            kv = self.store.get(key)
            if kv is None:
                raise _not_found(info, name)
            if expected is not None and expected != kv.mod_revision:
                raise _conflict(info, name)
        return kv, self._decode(kv), name, namespace

    def _write(self, info: KindInfo, kv: KeyValue, obj: Obj, name: str) -> Obj:
        held: builtins.list[_HeldWrite] | None = getattr(self._batching, "writes", None)
        if held is not None and kv.key == self._batching.key:
            # update_many's own object (not a write something on its path makes): written with
            # the others in one store transaction
            held.append(_HeldWrite(info, kv, obj, name))
            return obj
        self._forget_namespace(obj)  # e.g. now Terminating: the next create must look again
        value = self._to_store(kv.key, obj)
        try:
            rev = self.store.update(kv.key, value, kv.mod_revision)
        except RevisionMismatch:
            raise _conflict(info, name) from None
        except KeyNotFound:
            raise _not_found(info, name) from None
        self._remember(info, kv.key, value, kv.create_revision, rev)
        self._meta(obj)["resourceVersion"] = str(rev)
        return obj

    def update(self, obj: Obj, *, dry_run: bool = False, managed_fields: FieldsHook | None = None) -> Obj:
        """Replace an object's spec/metadata (CAS on its resourceVersion; status is kept as stored).

        An empty resourceVersion means an unconditional update (as Kubernetes allows). `dry_run`:
        everything up to the write (defaults, validation, admission, the immutability checks) and
        the object that would be stored is returned; nothing is written, admission is rolled back.
        `managed_fields(new, stored)` records field ownership on the defaulted object."""
        new = from_wire(obj)
        info = self._info_for_obj(new)
        kv, old, name, namespace = self._load_for_write(info, new)
        meta = self._meta(new)
        if info.namespaced:
            meta["namespace"] = namespace
        _apply_defaults(new)
        _strip_secret_data(new)
        old_meta = old["metadata"]
        for field in ("uid", "creationTimestamp", "deletionTimestamp"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if not meta.get("managedFields") and old_meta.get("managedFields"):
            # a writer that leaves field ownership out keeps it, as kube-apiserver does
            meta["managedFields"] = old_meta["managedFields"]
        if info.has_status:
            if "status" in old:
                new["status"] = json_clone(old["status"])
            else:
                new.pop("status", None)
        for hook in PRESERVE_ON_UPDATE.get(info.kind, ()):
            hook(new, old)
        if managed_fields is not None:
            managed_fields(new, old)
        errors = _validate(new)
        if errors:
            raise Invalid(errors, kind=info.kind, name=name)
        if not self.admission:
            return self._update_admitted(info, kv, new, old, name, dry_run=dry_run)
        # Plugins see a valid object; what they add (LimitRange defaults, allocated ports) is
        # validated too, and the immutability check runs on the admitted result, so a
        # re-applied manifest that admission completes the same way again is no change.
        before = self._before_admission(info, new)
        self._admit("UPDATE", new, old)
        try:
            errors = _validate(new) if before is not None and new != before else []
            if errors:
                raise Invalid(errors, kind=info.kind, name=name)
            result = self._update_admitted(info, kv, new, old, name, dry_run=dry_run)
        except BaseException:
            self._after_write(self.admission, "rollback", "UPDATE", new, old)
            raise
        if dry_run:
            # `new` is what admission saw (and what its rollback matches); `result` may be `old`
            self._after_write(self.admission, "rollback", "UPDATE", new, old)
            return result
        held: builtins.list[_HeldWrite] | None = getattr(self._batching, "writes", None)
        if held and held[-1].obj is result:  # its write is to come (update_many): hooks after it
            held[-1].hooks = (new, old)
        else:
            self._after_write(self.admission, "committed", "UPDATE", result, old)
        return result

    def update_many(self, objs: Sequence[Obj], *, status: bool = False) -> builtins.list[Obj | NbkubeError]:
        """`update` (or with `status`, `update_status`) of each object, written in one store
        transaction (one SQLite transaction, one etcd txn per store batch) instead of one each.

        Every object keeps its own compare-and-swap on its resourceVersion and fails on its own:
        the result has, per object in order, what `update` would have returned or the NbkubeError it
        would have raised (Conflict, NotFound, Invalid...); the others are written. Objects must
        name distinct keys. Why: many small writers at once (the leases of thousands of simulated
        nodes, their pods' status) pay one transaction and one lock instead of one each."""
        held: builtins.list[_HeldWrite] = []
        results: builtins.list[Obj | NbkubeError | _HeldWrite] = []
        self._batching.writes = held
        try:
            for obj in objs:
                n = len(held)
                try:
                    info = self._info_for_obj(dict(obj))
                    meta = obj.get("metadata") or {}
                    self._batching.key = self._key(
                        info, str(meta.get("name") or ""), str(meta.get("namespace") or "")
                    )
                    out = self.update_status(obj) if status else self.update(obj)
                except NbkubeError as err:
                    results.append(err)
                    continue
                results.append(held[n] if len(held) > n else out)
        finally:
            self._batching.writes = None
            self._batching.key = None
        if len({h.kv.key for h in held}) != len(held):
            for h in held:
                if h.hooks is not None:
                    self._after_write(self.admission, "rollback", "UPDATE", *h.hooks)
            raise BadRequest("update_many: two objects name the same object")
        values = [self._to_store(h.kv.key, h.obj) for h in held]
        outcomes = self.store.write_batch(
            [BatchWrite(h.kv.key, value, h.kv.mod_revision) for h, value in zip(held, values, strict=True)]
        )
        outcome: int | Exception
        for h, value, outcome in zip(held, values, outcomes, strict=True):
            if isinstance(outcome, int):
                self._remember(h.info, h.kv.key, value, h.kv.create_revision, outcome)
                self._forget_namespace(h.obj)
                self._meta(h.obj)["resourceVersion"] = str(outcome)
                h.result = h.obj
            else:
                h.result = (
                    _not_found(h.info, h.name)
                    if isinstance(outcome, KeyNotFound)
                    else _conflict(h.info, h.name)
                )
            if h.hooks is not None:
                if isinstance(outcome, int):
                    self._after_write(self.admission, "committed", "UPDATE", h.obj, h.hooks[1])
                else:
                    self._after_write(self.admission, "rollback", "UPDATE", *h.hooks)
        return [r.result if isinstance(r, _HeldWrite) else r for r in results]  # type: ignore[misc]

    def _update_admitted(
        self, info: KindInfo, kv: KeyValue, new: Obj, old: Obj, name: str, *, dry_run: bool = False
    ) -> Obj:
        old_meta = old["metadata"]
        errors = _validate_update(new, old)
        if errors:
            raise Invalid(errors, kind=info.kind, name=name)
        meta = self._meta(new)
        generation = int(old_meta.get("generation") or 1)
        meta["generation"] = generation + 1 if new.get("spec") != old.get("spec") else generation
        if _without_rv(new) == _without_rv(old):
            return old
        if dry_run:
            self._meta(new)["resourceVersion"] = str(kv.mod_revision)
            return new
        return self._write(info, kv, new, name)

    def update_status(
        self, obj: Obj, *, dry_run: bool = False, managed_fields: FieldsHook | None = None
    ) -> Obj:
        """Replace only `.status` of the stored object (CAS on the given resourceVersion);
        `dry_run` validates and returns the result without writing it. `managed_fields` as for
        `update`."""
        info = self._info_for_obj(dict(obj))
        if not info.has_status:
            raise BadRequest(f"{info.kind} has no status subresource")
        kv, old, name, _ns = self._load_for_write(info, obj)
        # `old` is a fresh decode of its own: the new version may share all but what changes
        # (its status, and the metadata the write stamps), unless a hook rewrites metadata deep
        new = {**old, "metadata": dict(old["metadata"])} if managed_fields is None else json_clone(old)
        if obj.get("status") is None:
            new.pop("status", None)
        else:
            new["status"] = from_wire(obj["status"])
        if managed_fields is not None:
            managed_fields(new, old)
        if new == old:
            return old
        errors = _validate_status_write(new, old)
        if errors:
            raise Invalid(errors, kind=info.kind, name=name)
        if dry_run:
            return new
        return self._write(info, kv, new, name)

    def patch(
        self, kind: str, name: str, namespace: str, patch: dict[str, Any], *, status: bool = False
    ) -> Obj:
        """JSON merge patch (RFC 7386). Retries on conflict unless the patch pins a resourceVersion."""
        # merge_patch works on a copy, so the object `get` returned is left alone
        return self.mutate(kind, name, namespace, lambda cur: merge_patch(cur, patch), status=status)

    def mutate(
        self,
        kind: str,
        name: str,
        namespace: str,
        change: Callable[[Obj], Obj],
        *,
        status: bool = False,
        dry_run: bool = False,
        managed_fields: FieldsHook | None = None,
    ) -> Obj:
        """Read-modify-write: write `change(current object)` (an update, or with `status` an
        update_status) at the current resourceVersion, reading and changing again on Conflict.

        Every patch is this (here, and the API server's JSON/strategic patches and `scale`). A changed
        object that names another resourceVersion pins it: that write is tried and its Conflict raised,
        never retried, as the Kubernetes API server treats a patch carrying a resourceVersion."""
        for attempt in range(_PATCH_RETRIES):
            cur = self.get(kind, name, namespace)
            current_rv = cur["metadata"]["resourceVersion"]
            new = change(cur)
            meta = new.setdefault("metadata", {})
            pinned = bool(meta.get("resourceVersion")) and str(meta["resourceVersion"]) != current_rv
            if not meta.get("resourceVersion"):
                meta["resourceVersion"] = current_rv
            try:
                if status:
                    return self.update_status(new, dry_run=dry_run, managed_fields=managed_fields)
                return self.update(new, dry_run=dry_run, managed_fields=managed_fields)
            except Conflict:
                if pinned or attempt == _PATCH_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def bind(self, name: str, namespace: str, to: str | binding.BindTo, *, dry_run: bool = False) -> Obj:
        """pods/NAME/binding: put the pending pod on the node `to` names (a node name, or a
        BindTo with annotations and preconditions); Conflict if it is on one already or being
        deleted; the bound pod (registry/binding.py)."""
        target = binding.BindTo(to) if isinstance(to, str) else to
        return binding.bind(self, name, namespace or "default", target, dry_run=dry_run)

    # -- delete ------------------------------------------------------------------------------------

    def evict(
        self, name: str, namespace: str = "", *, dry_run: bool = False, resource_version: str | None = None
    ) -> Obj:
        """pods/NAME/eviction: delete the pod if its PodDisruptionBudget allows it, else
        TooManyRequests naming the budget (registry/eviction.py); returns the deleted pod."""
        return eviction.evict(
            self, name, namespace or "default", dry_run=dry_run, resource_version=resource_version
        )

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str = "",
        *,
        resource_version: str | None = None,
        propagation: Literal["Background", "Orphan"] = "Background",
        dry_run: bool = False,
    ) -> Obj:
        """Delete and return the object (its resourceVersion is the deletion's revision).

        "Orphan" first removes ownerReferences to it from its dependents; "Background" leaves the
        dependents for the garbage collector, which sees the owner gone. `dry_run`: the checks
        (existence, precondition, admission) run and the stored object is returned untouched;
        nothing is deleted, dependents keep their ownerReferences, admission is rolled back."""
        info = self._info(kind)
        if info.namespaced and not namespace:
            namespace = "default"
        kv = self.store.get(self._key(info, name, namespace))
        if kv is None:
            raise _not_found(info, name)
        expected = _parse_rv(resource_version)
        if expected is not None and expected != kv.mod_revision:
            raise _conflict(info, name)
        old = self._decode(kv)
        if dry_run:
            self._admit("DELETE", old, old)
            self._after_write(self.admission, "rollback", "DELETE", old, old)
            return old
        self._forget_namespace(old)
        self._admit("DELETE", old, old)
        try:
            if propagation == "Orphan":
                kv = self._mark_deleting(info, kv, name, retry=expected is None)
                # the caller sees the object as it was marked (upstream returns it so, finalizing)
                old["metadata"]["deletionTimestamp"] = self._decode(kv)["metadata"]["deletionTimestamp"]
                self._orphan_dependents(
                    str(old["metadata"].get("uid", "")), namespace if info.namespaced else ""
                )
            for attempt in range(_PATCH_RETRIES):
                try:
                    rev = self.store.delete(kv.key, kv.mod_revision)
                    self._recent.forget(kv.key)
                    break
                except RevisionMismatch:
                    # Without a precondition, a write that landed since the read (a node agent's
                    # status, a controller's) is no reason to refuse the delete: read again and
                    # delete that, as upstream's storage does. With one, the caller asked for it.
                    if expected is not None or attempt == _PATCH_RETRIES - 1:
                        raise _conflict(info, name) from None
                    fresh = self.store.get(kv.key)
                    if fresh is None:
                        raise _not_found(info, name) from None
                    kv = fresh
                except KeyNotFound:
                    raise _not_found(info, name) from None
            if propagation == "Orphan":
                # a controller acting on a stale cache may have re-adopted a dependent meanwhile
                try:
                    self._orphan_dependents(
                        str(old["metadata"].get("uid", "")), namespace if info.namespaced else ""
                    )
                except Exception:  # the delete itself is done: never undo it for this sweep
                    log.warning("orphaning dependents of %s after delete failed", name, exc_info=True)
        except BaseException:
            self._after_write(self.admission, "rollback", "DELETE", old, old)
            raise
        old["metadata"]["resourceVersion"] = str(rev)
        # e.g. the service allocator releases the ClusterIP and NodePorts only once the delete stuck
        self._after_write(self.admission, "committed", "DELETE", old, old)
        return old

    def _mark_deleting(self, info: KindInfo, kv: KeyValue, name: str, *, retry: bool) -> KeyValue:
        """Set metadata.deletionTimestamp before releasing dependents (what Kubernetes' orphan
        finalizer achieves): the owner's controller then stops adopting and creating, so it
        neither takes back nor replaces the dependents being released. With `retry` (no
        precondition) a concurrent write is read again and marked, as the delete itself is."""
        for attempt in range(_PATCH_RETRIES):
            marked = self._decode(kv)
            marked["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
            try:
                value = self._to_store(kv.key, marked)
                rev = self.store.update(kv.key, value, kv.mod_revision)
            except RevisionMismatch:
                if not retry or attempt == _PATCH_RETRIES - 1:
                    raise _conflict(info, name) from None
                fresh = self.store.get(kv.key)
                if fresh is None:
                    raise _not_found(info, name) from None
                kv = fresh
                continue
            except KeyNotFound:
                raise _not_found(info, name) from None
            return KeyValue(kv.key, value, kv.create_revision, rev)
        raise AssertionError("unreachable")

    def _orphan_dependents(self, owner_uid: str, namespace: str) -> None:
        if not owner_uid:
            return
        for info in kinds.KINDS:
            if namespace and not info.namespaced:
                continue
            items, _rv = self.list(info.kind, namespace)
            for item in items:
                refs = item["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                for _attempt in range(_PATCH_RETRIES):
                    kept = [r for r in refs if r.get("uid") != owner_uid]
                    if kept:
                        item["metadata"]["ownerReferences"] = kept
                    else:
                        item["metadata"].pop("ownerReferences", None)
                    try:
                        self.update(item)
                        break
                    except Conflict:
                        item = self.get(
                            info.kind, item["metadata"]["name"], item["metadata"].get("namespace", "")
                        )
                        refs = item["metadata"].get("ownerReferences") or []
                    except NotFound:
                        break

    # -- watch -------------------------------------------------------------------------------------

    def watch(
        self,
        kind: str,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: Any = None,
        predicate: Callable[[Obj], bool] | None = None,
        shared: bool = False,
        raw_filter: Callable[[bytes], bool] | None = None,
    ) -> RegistryWatch:
        """Events after `resource_version` ("" or "0": from now). Expired if it was compacted.

        `predicate` filters beyond labels (the API server's field selectors), with the same
        entering = ADDED / leaving = DELETED translation as the label selector. `shared=True`: the
        caller never mutates the event objects, which are then decoded once and shared with every
        other shared watch (see SharedDecoder). `raw_filter(value)`, with a predicate: False when
        the stored JSON certainly fails the predicate (e.g. no `"nodeName":"` in it), so that a
        value which matched neither before nor now is skipped undecoded; True decides nothing."""
        info = self._info(kind)
        prefix = self._prefix(info, namespace)
        selector = _selector(label_selector)
        after = _parse_rv(resource_version)
        if not after:
            after = self.store.current_revision()
        expired = f"too old resource version: {after}: the {info.plural} watch must relist"
        matching: set[str] | None = None
        exact = False
        if selector is not None or predicate is not None:
            # What matched at the revision the watch starts from: every event after it keeps this
            # exact, so whether an object matched before needs no decode of its previous version.
            # A start the store has not reached yet gets the current keys, and `prev` decides.
            try:
                kvs, _ = self.store.list(prefix, revision=after)
                exact = True
            except Compacted as e:
                raise Expired(f"{expired} (compacted at {e.compacted})") from e
            except BadRequest:
                kvs, _ = self.store.list(prefix)
            matching = {kv.key for kv in kvs if _passes(selector, predicate, self._decode(kv))}
        try:
            store_watch = self.store.watch(prefix, after)
        except Compacted as e:
            raise Expired(f"{expired} (compacted at {e.compacted})") from e
        decode = self._shared_decode if shared else self._decode
        w = RegistryWatch(
            store_watch,
            selector,
            matching,
            on_cancel=self._forget_watch,
            decode=decode,
            predicate=predicate,
            # Events are written once and seldom updated (see _remember)
            seen=None if info.kind == "Event" else self._recent.remember_seen,
            raw_filter=raw_filter,
            exact=exact,
        )
        w.resource_version = str(after)
        with self._watches_lock:
            self._watches.add(w)
        return w

    def _forget_watch(self, w: RegistryWatch) -> None:
        with self._watches_lock:
            self._watches.discard(w)

    # -- apply -------------------------------------------------------------------------------------

    def apply(self, objs: builtins.list[Obj], *, dry_run: bool = False) -> builtins.list[tuple[Obj, str]]:
        """Create or update each object, as `kubectl apply` does; returns (object, action) pairs.

        Every document is defaulted and validated (and its namespace checked) before anything is
        written; re-applying the same manifests writes nothing ("unchanged", same resourceVersion).
        """
        prepared: builtins.list[tuple[int, Obj, Obj, KindInfo]] = []
        errors: builtins.list[FieldError] = []
        seen: dict[tuple[str, str, str], int] = {}
        new_namespaces: set[str] = set()
        for i, raw in enumerate(objs, start=1):
            try:
                original = json_clone(raw)
                if not isinstance(original, dict):
                    raise BadRequest(f"object must be a mapping, got {type(raw).__name__}")
                annotations = (original.get("metadata") or {}).get("annotations")
                if isinstance(annotations, dict):
                    annotations.pop(LAST_APPLIED, None)
                obj, info = self._prepare_create(original)
            except Invalid as e:
                errors.extend(
                    FieldError(f"doc {i}: {fe.path}" if fe.path else f"doc {i}", fe.message)
                    for fe in e.errors
                )
                continue
            except BadRequest as e:
                errors.append(FieldError(f"doc {i}", str(e)))
                continue
            meta = obj["metadata"]
            ident = (info.kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
            if ident in seen:
                errors.append(
                    FieldError(
                        f"doc {i}", f'duplicate {info.kind} "{ident[2]}" (already in doc {seen[ident]})'
                    )
                )
                continue
            seen[ident] = i
            if info.kind == "Namespace":
                new_namespaces.add(ident[2])
            prepared.append((i, original, obj, info))
        for i, _orig, obj, info in prepared:
            ns = str(obj["metadata"].get("namespace", ""))
            if info.namespaced and ns not in new_namespaces:
                try:
                    self._ensure_namespace_exists_readonly(ns)
                except (NotFound, Forbidden) as e:
                    errors.append(FieldError(f"doc {i}", str(e)))
        if errors:
            raise Invalid(errors)
        results: builtins.list[tuple[Obj, str]] = []
        for _i, original, obj, info in prepared:
            results.append(self._apply_one(original, obj, info, dry_run=dry_run))
        return results

    def _ensure_namespace_exists_readonly(self, namespace: str) -> None:
        kv = self.store.get(f"/registry/namespaces/{namespace}")
        if kv is None:
            if namespace not in AUTO_NAMESPACES:
                raise NotFound(f'namespaces "{namespace}" not found')
            return
        ns = json.loads(kv.value)
        if (ns.get("status") or {}).get("phase") == "Terminating":
            raise Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated"
            )

    def _apply_one(
        self, original: Obj, obj: Obj, info: KindInfo, *, dry_run: bool = False
    ) -> tuple[Obj, str]:
        last_applied = json.dumps(_without_rv(original), separators=(",", ":"), sort_keys=True)
        annotations = obj["metadata"].setdefault("annotations", {})
        annotations[LAST_APPLIED] = last_applied
        _strip_secret_data(obj)
        name = str(obj["metadata"]["name"])
        namespace = str(obj["metadata"].get("namespace", ""))
        for attempt in range(_PATCH_RETRIES):
            kv = self.store.get(self._key(info, name, namespace))
            if kv is None:
                try:
                    return self.create(obj, dry_run=dry_run), "created"
                except AlreadyExists:
                    continue  # raced with another writer: merge into theirs
            stored = self._decode(kv)
            merged = self._merge_applied(stored, obj, info)
            if _without_rv(merged) == _without_rv(stored):
                return stored, "unchanged"
            try:
                result = self.update(merged, dry_run=dry_run)
            except Conflict:
                if attempt == _PATCH_RETRIES - 1:
                    raise
                continue
            if result["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]:
                return result, "unchanged"
            return result, "configured"
        raise AssertionError("unreachable")

    @staticmethod
    def _merge_applied(stored: Obj, applied: Obj, info: KindInfo) -> Obj:
        """The stored object with the manifest's intent laid over it.

        labels/annotations: a three-way merge (keys dropped from the previous manifest are removed,
        keys others added stay); top-level fields the manifest names replace the stored ones;
        server-assigned fields the manifest omits survive through the preserve hooks."""
        merged = json_clone(stored)
        smeta = merged["metadata"]
        ameta = applied["metadata"]
        prev_applied: Obj = {}
        prev_text = (smeta.get("annotations") or {}).get(LAST_APPLIED)
        if prev_text:
            try:
                prev_applied = json.loads(prev_text)
            except ValueError:
                prev_applied = {}
        prev_meta = prev_applied.get("metadata") or {}
        for field in ("labels", "annotations"):
            current = dict(smeta.get(field) or {})
            for k in prev_meta.get(field) or {}:
                current.pop(k, None)
            if field == "annotations":
                current.pop(LAST_APPLIED, None)
            current.update(ameta.get(field) or {})
            if current or field in ameta:  # keep an explicit empty map as the manifest wrote it
                smeta[field] = current
            else:
                smeta.pop(field, None)
        for k, v in ameta.items():
            if k not in (
                "labels",
                "annotations",
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
            ):
                smeta[k] = json_clone(v)
        for k, v in applied.items():
            if k in ("metadata", "status"):
                continue
            merged[k] = json_clone(v)
        for k in prev_applied:
            if k not in applied and k not in ("metadata", "status", "apiVersion", "kind"):
                merged.pop(k, None)
        for hook in PRESERVE_ON_UPDATE.get(info.kind, ()):
            hook(merged, stored)
        return merged

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether close() ran: watches ending then are a shutdown, not a failure (see client/informer.py)."""
        return getattr(self, "_closed", False)

    def close(self) -> None:
        """Cancel open watches and close the store."""
        self._closed = True
        with self._watches_lock:
            watches, self._watches = builtins.list(self._watches), set()
        for w in watches:
            try:
                w.cancel()
            except Exception:  # closing must not fail because one watch is already gone
                log.debug("cancelling watch failed", exc_info=True)
        self.store.close()
