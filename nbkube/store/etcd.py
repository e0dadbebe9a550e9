"""The `Store` over a real etcd v3 cluster, through python3-etcd3's gRPC bindings.

Who uses it: `open_store("etcd://host:port[,host:port...]")`, i.e. the registry of a cluster whose
control plane and node agents share one etcd (possibly on several machines). etcd already has the
exact semantics of the Protocol (revisions, mod/create revisions, transactions, watch from a
revision, compaction), so each method is one etcd request.

We call the generated stubs (`etcd3.etcdrpc`) rather than the high-level `etcd3` client because we
need things it hides: the response header revision of a transaction, one watch stream per watch
with the compaction revision reported back, bounded deadlines everywhere (an unreachable etcd must
fail within seconds, never hang), and our own endpoint failover. One gRPC channel per endpoint is
made once and reused: channels are expensive.
"""

from __future__ import annotations

import builtins
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from etcd3 import etcdrpc

from nbkube.errors import BadRequest, StoreUnavailable, TooLarge
from nbkube.store._common import check_key, check_value
from nbkube.store._watch import QueueWatch
from nbkube.store.base import (
    MAX_BATCH,
    BatchWrite,
    Compacted,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    StoreError,
    Watch,
    WatchEvent,
)

__all__ = ["EtcdStore", "UNIX_SCHEME", "parse_etcd_url", "etcd_targets"]

# `etcd+unix:///abs/path/etcd.sock`: an etcd listening on a unix socket (a cluster's private etcd,
# whose socket sits in the cluster's 0700 folder so that only its owner can connect).
UNIX_SCHEME = "etcd+unix://"

_EVENT_DELETE = 1  # mvccpb.Event.EventType.DELETE
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_CHANNEL_OPTIONS = [
    # A list of many objects easily passes gRPC's default 4 MiB receive limit.
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # Fail fast when the server is gone instead of backing off for minutes between reconnects.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def parse_etcd_url(url: str) -> list[tuple[str, int]]:
    """`etcd://h1:p1,h2:p2` -> [(h1, p1), (h2, p2)]; BadRequest naming the URL otherwise."""
    if not url.startswith("etcd://"):
        raise BadRequest(f"store URL {url!r}: not an etcd:// URL")
    endpoints = []
    for part in url[len("etcd://") :].rstrip("/").split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadRequest(f"store URL {url!r}: expected etcd://host:port[,host:port...], got {part!r}")
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints


def etcd_targets(url: str) -> list[str]:
    """The gRPC targets of an `etcd://host:port,...` or `etcd+unix:///abs/path` URL."""
    if url.startswith(UNIX_SCHEME):
        path = url[len(UNIX_SCHEME) :]
        if not path.startswith("/") or path.endswith("/"):
            raise BadRequest(f"store URL {url!r}: expected etcd+unix:///absolute/path/to/socket")
        return [f"unix://{path}"]
    return [f"{host}:{port}" for host, port in parse_etcd_url(url)]


def _key_range(prefix: str) -> tuple[bytes, bytes]:
    """etcd's [key, range_end) for every key under `prefix` ("" = all keys)."""
    if not prefix:
        return b"\0", b"\0"
    start = prefix.encode()
    end = bytearray(start)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return start, b"\0"
    end[-1] += 1
    return start, bytes(end)


def _kv(kv: Any) -> KeyValue:
    return KeyValue(kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision)


def _event(ev: Any) -> WatchEvent:
    prev = _kv(ev.prev_kv) if ev.HasField("prev_kv") else None
    if ev.type == _EVENT_DELETE:
        # etcd's DELETE carries an empty value; the Protocol wants the last value, from prev_kv.
        key = ev.kv.key.decode()
        value = prev.value if prev else b""
        create_rev = prev.create_revision if prev else 0
        return WatchEvent("DELETE", KeyValue(key, value, create_rev, ev.kv.mod_revision), prev)
    return WatchEvent("PUT", _kv(ev.kv), prev)


class _Endpoint:
    def __init__(self, target: str):
        self.netloc = target
        self.channel = grpc.insecure_channel(self.netloc, options=_CHANNEL_OPTIONS)
        self.kv = etcdrpc.KVStub(self.channel)
        self.watch = etcdrpc.WatchStub(self.channel)


class EtcdStore:
    """`Store` over etcd. `timeout` bounds every request; opening probes the cluster within `connect_timeout`."""

    def __init__(self, url: str, *, timeout: float = 5.0, connect_timeout: float = 3.0):
        self.url = url
        self._timeout = timeout
        self._endpoints = [_Endpoint(t) for t in etcd_targets(url)]
        self._current = 0
        self._lock = threading.Lock()
        self._watches: set[QueueWatch] = set()
        self._closed = False
        try:
            self._probe(connect_timeout)
        except BaseException:
            self.close()
            raise

    # --- plumbing ------------------------------------------------------------------------------

    def _probe(self, budget: float) -> None:
        """Find an endpoint that answers, trying each once within `budget` seconds in total."""
        deadline = time.monotonic() + budget
        errors = []
        for i, endpoint in enumerate(self._endpoints):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            share = remaining / (len(self._endpoints) - i)
            try:
                endpoint.kv.Range(etcdrpc.RangeRequest(key=b"\0", count_only=True), timeout=share)
                self._current = i
                return
            except grpc.RpcError as exc:
                errors.append(f"{endpoint.netloc}: {_details(exc)}")
        raise StoreUnavailable(f"etcd at {self.url} is unreachable ({'; '.join(errors) or 'timed out'})")

    def _endpoint(self) -> _Endpoint:
        if self._closed:
            raise StoreUnavailable(f"{self.url}: store is closed")
        return self._endpoints[self._current]

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One unary KV request, failing over to the next endpoint when one is unreachable."""
        errors = []
        for _ in range(len(self._endpoints)):
            endpoint = self._endpoint()
            try:
                return getattr(endpoint.kv, method)(request, timeout=timeout or self._timeout)
            except grpc.RpcError as exc:
                if exc.code() not in _RETRYABLE:
                    raise self._translate(exc) from exc
                errors.append(f"{endpoint.netloc}: {_details(exc)}")
                with self._lock:
                    if self._endpoints[self._current] is endpoint:
                        self._current = (self._current + 1) % len(self._endpoints)
        raise StoreUnavailable(f"etcd at {self.url} is unreachable ({'; '.join(errors)})")

    def _translate(self, exc: grpc.RpcError) -> Exception:
        details = _details(exc)
        if "too large" in details:
            return TooLarge(f"etcd at {self.url} refused the request: {details}")
        return StoreUnavailable(f"etcd at {self.url}: {details}")

    def _txn(self, compare: Any, success: list[Any], failure: list[Any]) -> Any:
        return self._call("Txn", etcdrpc.TxnRequest(compare=[compare], success=success, failure=failure))

    # --- Store protocol ------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        check_key(key)
        resp = self._call("Range", etcdrpc.RangeRequest(key=key.encode()))
        return _kv(resp.kvs[0]) if resp.kvs else None

    def list(
        self, prefix: str, *, revision: int | None = None, start: str = "", limit: int = 0
    ) -> tuple[builtins.list[KeyValue], int]:
        resp = self._range(prefix, revision, start, limit=limit)
        return [_kv(kv) for kv in resp.kvs], revision if revision is not None else resp.header.revision

    def count(self, prefix: str, *, revision: int | None = None, start: str = "") -> int:
        return int(self._range(prefix, revision, start, count_only=True).count)

    def _range(self, prefix: str, revision: int | None, start: str, **kw: Any) -> Any:
        first, end = _key_range(prefix)
        if start and start.encode() > first:
            first = start.encode()
        if revision is None:
            return self._call("Range", etcdrpc.RangeRequest(key=first, range_end=end, **kw))
        try:
            return self._call("Range", etcdrpc.RangeRequest(key=first, range_end=end, revision=revision, **kw))
        except StoreUnavailable as err:
            # etcd says which in the message only (mvcc: required revision has been compacted / is
            # a future revision); a Range does not tell the compaction revision, a watch would
            if "compacted" in str(err):
                raise Compacted(revision, revision + 1) from err
            if "future revision" in str(err):
                raise BadRequest(f"revision {revision} is in the future for etcd at {self.url}") from err
            raise

    def create(self, key: str, value: bytes) -> int:
        check_key(key)
        check_value(key, value)
        k = key.encode()
        absent = etcdrpc.Compare(
            key=k, target=etcdrpc.Compare.CREATE, result=etcdrpc.Compare.EQUAL, create_revision=0
        )
        resp = self._txn(absent, [_put(k, value)], [])
        if not resp.succeeded:
            raise KeyExists(f"{key}: already exists")
        return int(resp.header.revision)

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        check_key(key)
        check_value(key, value)
        k = key.encode()
        resp = self._txn(_mod_is(k, expected_mod_revision), [_put(k, value)], [_get(k)])
        if not resp.succeeded:
            self._explain_failure(key, expected_mod_revision, resp)
        return int(resp.header.revision)

    def write_batch(self, writes: Sequence[BatchWrite]) -> builtins.list[int | StoreError]:
        """One etcd txn per MAX_BATCH / 2 items, each item a nested txn of its own (etcd 3.3+): its
        compare decides its put alone, and its failure branch reads the key to say why."""
        keys = [w.key for w in writes]
        if len(set(keys)) != len(keys):
            raise BadRequest("store batch: a key appears twice")
        for w in writes:
            check_key(w.key)
            check_value(w.key, w.value)
        out: builtins.list[int | StoreError] = []
        # etcd counts a nested txn's own ops against --max-txn-ops too: half as many items per txn
        per_txn = MAX_BATCH // 2
        for start in range(0, len(writes), per_txn):
            chunk = writes[start : start + per_txn]
            ops = []
            for w in chunk:
                k = w.key.encode()
                if w.expected_mod_revision is None:
                    cond = etcdrpc.Compare(
                        key=k, target=etcdrpc.Compare.CREATE, result=etcdrpc.Compare.EQUAL, create_revision=0
                    )
                else:
                    cond = _mod_is(k, w.expected_mod_revision)
                inner = etcdrpc.TxnRequest(compare=[cond], success=[_put(k, w.value)], failure=[_get(k)])
                ops.append(etcdrpc.RequestOp(request_txn=inner))
            resp = self._call("Txn", etcdrpc.TxnRequest(compare=[], success=ops, failure=[]))
            revision = int(resp.header.revision)
            for w, op in zip(chunk, resp.responses, strict=True):
                sub = op.response_txn
                if sub.succeeded:
                    out.append(revision)  # every put of one txn gets the txn's revision
                    continue
                kvs = sub.responses[0].response_range.kvs
                if w.expected_mod_revision is None:
                    out.append(KeyExists(f"{w.key}: already exists"))
                elif not kvs:
                    out.append(KeyNotFound(f"{w.key}: not found"))
                else:
                    out.append(RevisionMismatch(w.key, w.expected_mod_revision, kvs[0].mod_revision))
        return out

    def delete(self, key: str, expected_mod_revision: int | None = None) -> int:
        check_key(key)
        k = key.encode()
        if expected_mod_revision is None:
            resp = self._call("DeleteRange", etcdrpc.DeleteRangeRequest(key=k))
            if resp.deleted == 0:
                raise KeyNotFound(f"{key}: not found")
            return int(resp.header.revision)
        request = etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=k))
        resp = self._txn(_mod_is(k, expected_mod_revision), [request], [_get(k)])
        if not resp.succeeded:
            self._explain_failure(key, expected_mod_revision, resp)
        return int(resp.header.revision)

    def _explain_failure(self, key: str, expected: int, resp: Any) -> None:
        # The failure branch read the key in the same transaction, so this verdict is exact.
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            raise KeyNotFound(f"{key}: not found")
        raise RevisionMismatch(key, expected, kvs[0].mod_revision)

    def watch(self, prefix: str, after_revision: int) -> Watch:
        start = max(after_revision, 0) + 1
        if self._is_compacted(start):
            # etcd tells the compaction revision only on a watch stream: open one to learn it.
            probe = _EtcdWatch(self, prefix, start - 1, created_timeout=self._timeout)
            try:
                probe.next(timeout=2.0)
            finally:
                probe.cancel()
            raise Compacted(start, start + 1)
        watch = _EtcdWatch(self, prefix, start - 1, created_timeout=self._timeout)
        with self._lock:
            self._watches.add(watch)
        return watch

    def _is_compacted(self, revision: int) -> bool:
        try:
            self._call("Range", etcdrpc.RangeRequest(key=b"\0", count_only=True, revision=revision))
        except StoreUnavailable as err:
            if "compacted" in str(err):
                return True
            if "future revision" in str(err):
                return False
            raise
        return False

    def current_revision(self) -> int:
        return int(self._call("Range", etcdrpc.RangeRequest(key=b"\0", count_only=True)).header.revision)

    def compact(self, revision: int) -> None:
        try:
            self._call("Compact", etcdrpc.CompactionRequest(revision=revision, physical=True))
        except StoreUnavailable as err:
            if "compacted" in str(err):
                return  # already compacted at or past `revision`: nothing to do, as in SQLite
            if "future revision" in str(err):
                raise BadRequest(
                    f"cannot compact {self.url} to revision {revision}: current revision is {self.current_revision()}"
                ) from err
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = list(self._watches)
            self._watches.clear()
        for watch in watches:
            watch.cancel()
        for endpoint in self._endpoints:
            endpoint.channel.close()

    def _forget(self, watch: QueueWatch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdStore({self.url!r})"


def _details(exc: grpc.RpcError) -> str:
    details = exc.details() if hasattr(exc, "details") else ""
    code = exc.code().name if hasattr(exc, "code") else ""
    return f"{code} {details}".strip() or str(exc)


def _put(key: bytes, value: bytes) -> Any:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=bytes(value)))


def _get(key: bytes) -> Any:
    return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))


def _mod_is(key: bytes, revision: int) -> Any:
    return etcdrpc.Compare(
        key=key, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL, mod_revision=revision
    )


class _EtcdWatch(QueueWatch):
    """One etcd watch stream (its own gRPC call on the shared channel) read by one thread."""

    def __init__(self, store: EtcdStore, prefix: str, after_revision: int, *, created_timeout: float):
        super().__init__(prefix, after_revision, on_cancel=store._forget)
        self._store = store
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        start, end = _key_range(prefix)
        create = etcdrpc.WatchCreateRequest(
            key=start, range_end=end, start_revision=after_revision + 1, prev_kv=True
        )
        self._requests.put(etcdrpc.WatchRequest(create_request=create))
        self._created = threading.Event()
        self._stopping = False
        endpoint = store._endpoint()
        self._call = endpoint.watch.Watch(self._request_iter())
        self._thread = threading.Thread(target=self._read, name=f"nbkube-etcd-watch {prefix}", daemon=True)
        self._thread.start()
        if not self._created.wait(created_timeout) and not self.done:
            self.cancel()
            raise StoreUnavailable(
                f"etcd at {store.url}: watch on {prefix!r} was not created within {created_timeout:g}s"
            )

    def _request_iter(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _read(self) -> None:
        try:
            for resp in self._call:
                if resp.created:
                    self._created.set()
                if resp.compact_revision:
                    self.fail(Compacted(self.min_revision, resp.compact_revision))
                    return
                if resp.canceled:
                    reason = resp.cancel_reason or "cancelled by the server"
                    self.fail(
                        StoreUnavailable(
                            f"etcd at {self._store.url}: watch on {self.prefix!r} ended: {reason}"
                        )
                    )
                    return
                for ev in resp.events:
                    self.push(_event(ev))
        except grpc.RpcError as exc:
            if not self._stopping:
                self.fail(
                    StoreUnavailable(
                        f"etcd at {self._store.url}: watch on {self.prefix!r} broke: {_details(exc)}"
                    )
                )
        finally:
            self._created.set()
            self.close_stream()

    def cancel(self) -> None:
        self._stopping = True
        self._requests.put(None)
        self._call.cancel()
        super().cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
