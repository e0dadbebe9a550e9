"""Watch responses: Registry events as the newline-delimited `{"type", "object"}` stream of Kubernetes.

A watch without a resourceVersion (or with "0") first reports every existing object as ADDED, as
the Kubernetes watch cache does; a compacted resourceVersion ends the stream with one ERROR event
carrying a 410 Expired Status, which makes informers relist. The stream ends after `timeoutSeconds`
(bounded by MAX_WATCH_SECONDS), when the client goes away, or when the server stops.

`WatchStream` is one watch as a non-blocking source (`open` blocks once, in a worker; `poll` never
blocks unless asked to), so the API server can write every open watch from its event loop without
a thread per watch (nbkube/apiserver/watchfanout.py); `watch_events` is the same stream as a
blocking generator.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from nbkube.apiserver.resources import Request, list_objects
from nbkube.apiserver.routing import parse_field_selector
from nbkube.apiserver.status import status_for
from nbkube.apiserver.tables import to_table
from nbkube.errors import NbkubeError
from nbkube.registry.registry import Registry, RegistryWatch

__all__ = ["MAX_WATCH_SECONDS", "POLL_SECONDS", "Outgoing", "WatchStream", "watch_events"]

MAX_WATCH_SECONDS = 1800.0  # the apiserver's default --min-request-timeout
BOOKMARK_SECONDS = 10.0
POLL_SECONDS = 0.5  # how often a quiet watch looks at its deadline and at `stopping`
BATCH = 8  # events per write: a burst (a replay, the initial list) goes out interleaved with the other watches, in small buffers


def _timeout(req: Request) -> float:
    raw = req.query.get("timeoutSeconds", "")
    try:
        value = float(raw) if raw else MAX_WATCH_SECONDS
    except ValueError:
        value = MAX_WATCH_SECONDS
    return max(0.0, min(value, MAX_WATCH_SECONDS))


class Outgoing(NamedTuple):
    """One event to send. `shared`: its object is the registry's shared decoded version (the same
    dict for every watch that sees this change), so its encoding may be shared too."""

    event: dict[str, Any]
    shared: bool


class WatchStream:
    """The events of one watch request (a collection GET with watch=true)."""

    def __init__(self, registry: Registry, req: Request, stopping: Callable[[], bool]):
        self.registry = registry
        self.req = req
        self.stopping = stopping
        self.info = req.route.info
        self.fields = parse_field_selector(req.query.get("fieldSelector", ""))
        self.deadline = time.monotonic() + _timeout(req)
        self.bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
        self.ended = False
        self._closed = False
        self.watch: RegistryWatch | None = None
        self._backlog: deque[Outgoing] = deque()  # the initial ADDED events, or an open error
        self._first_table = True
        self._last_sent = time.monotonic()

    def _wire(self, kind: str, obj: dict[str, Any], shared: bool) -> Outgoing:
        if self.req.table:
            obj = to_table(
                self.info,
                [obj],
                include_object=self.req.query.get("includeObject") or "Metadata",
                with_columns=self._first_table,
            )
            self._first_table = False
            shared = False
        return Outgoing({"type": kind, "object": obj}, shared)

    def _error(self, e: NbkubeError) -> Outgoing:
        return Outgoing({"type": "ERROR", "object": status_for(e, self.info)[1]}, False)

    def open(self) -> None:
        """List (without a resourceVersion) and open the registry watch: blocking store calls."""
        req = self.req
        rv = req.query.get("resourceVersion", "")
        fields = self.fields
        try:
            if rv in ("", "0"):
                items, rv = list_objects(self.registry, req)
                self._backlog.extend(self._wire("ADDED", obj, False) for obj in items)
            self.watch = self.registry.watch(
                self.info.kind,
                req.route.namespace,
                resource_version=rv,
                label_selector=req.query.get("labelSelector") or None,
                # an object leaving the field selection is DELETED, one entering ADDED (as upstream)
                predicate=(lambda o: all(f.matches(o) for f in fields)) if fields else None,
                shared=True,  # nothing here mutates an event's object
            )
        except NbkubeError as e:
            self._backlog.append(self._error(e))
            self.ended = True
        if self._closed and self.watch is not None:
            self.watch.cancel()  # closed (the client left) while this ran in a worker

    def poll(self, timeout: float = 0.0, limit: int = BATCH) -> list[Outgoing]:
        """The events to send now (at most `limit`), waiting up to `timeout` for one; none and
        `ended` once the stream is over (deadline, `stopping`, an error already returned)."""
        backlog = self._backlog
        if backlog:
            out = [backlog.popleft() for _ in range(min(limit, len(backlog)))]
            self._last_sent = time.monotonic()
            if len(out) < limit and not self.ended:
                out += self.poll(0.0, limit - len(out))  # the changes since: their wake-up is spent
            return out
        w = self.watch
        if self.ended or w is None:
            self.ended = True
            return []
        now = time.monotonic()
        left = self.deadline - now
        if left <= 0 or self.stopping():
            self.ended = True
            return []
        try:
            if timeout > 0:
                ev = w.next(timeout=min(timeout, left))
                ready = [ev] if ev is not None else []
                if ev is not None and limit > 1:
                    ready += w.ready(limit - 1)
            else:
                ready = w.ready(limit)
        except NbkubeError as e:
            self.ended = True
            return [self._error(e)]
        if ready:
            self._last_sent = time.monotonic()
            return [self._wire(ev.type, ev.object, True) for ev in ready]
        now = time.monotonic()
        if self.bookmarks and now - self._last_sent >= BOOKMARK_SECONDS and w.resource_version:
            self._last_sent = now
            bookmark = {
                "kind": self.info.kind,
                "apiVersion": self.info.api_version,
                "metadata": {"resourceVersion": w.resource_version},
            }
            return [Outgoing({"type": "BOOKMARK", "object": bookmark}, False)]
        return []

    def close(self) -> None:
        self._closed = self.ended = True
        if self.watch is not None:
            self.watch.cancel()


def watch_events(
    registry: Registry, req: Request, stopping: Callable[[], bool]
) -> Generator[dict[str, Any], None, None]:
    """The watch events for `req` as JSON-ready dicts, blocking (up to POLL_SECONDS at a time)
    while there is nothing to send."""
    stream = WatchStream(registry, req, stopping)
    try:
        stream.open()
        while True:
            out = stream.poll(timeout=POLL_SECONDS)
            for item in out:
                yield item.event
            if stream.ended and not out:
                return
    finally:
        stream.close()
