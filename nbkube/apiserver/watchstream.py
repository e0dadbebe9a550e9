"""Watch responses: Registry events as the newline-delimited `{"type", "object"}` stream of Kubernetes.

A watch without a resourceVersion (or with "0") first reports every existing object as ADDED, as
the Kubernetes watch cache does; a compacted resourceVersion ends the stream with one ERROR event
carrying a 410 Expired Status, which makes informers relist. The stream ends after `timeoutSeconds`
(bounded by MAX_WATCH_SECONDS), when the client goes away, or when the server stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from nbkube.apiserver.resources import Request, list_objects
from nbkube.apiserver.routing import parse_field_selector
from nbkube.apiserver.status import status_for
from nbkube.apiserver.tables import to_table
from nbkube.errors import NbkubeError
from nbkube.registry.registry import Registry, RegistryWatch

__all__ = ["MAX_WATCH_SECONDS", "POLL_SECONDS", "watch_events"]

MAX_WATCH_SECONDS = 1800.0  # the apiserver's default --min-request-timeout
BOOKMARK_SECONDS = 10.0
POLL_SECONDS = 0.5  # how often a quiet watch looks at its deadline and at `stopping`


def _timeout(req: Request) -> float:
    raw = req.query.get("timeoutSeconds", "")
    try:
        value = float(raw) if raw else MAX_WATCH_SECONDS
    except ValueError:
        value = MAX_WATCH_SECONDS
    return max(0.0, min(value, MAX_WATCH_SECONDS))


def watch_events(
    registry: Registry,
    req: Request,
    stopping: Callable[[], bool],
    *,
    idle: Callable[[RegistryWatch], None] | None = None,
) -> Generator[dict[str, Any] | None, None, None]:
    """The watch events for `req` (a collection GET with watch=true), as JSON-ready dicts.

    Without `idle` the generator blocks (up to half a second at a time) waiting for events. With
    `idle`, it never blocks once the watch is open: it calls `idle(watch)` once (so the caller can
    `set_wakeup` on it) and yields None whenever there is nothing to send yet; the caller waits for
    the wakeup, or for at most half a second, and asks again."""
    r = req.route
    info = r.info
    fields = parse_field_selector(req.query.get("fieldSelector", ""))
    deadline = time.monotonic() + _timeout(req)
    bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
    first_table = [True]

    def wire(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        if req.table:
            obj = to_table(
                info,
                [obj],
                include_object=req.query.get("includeObject") or "Metadata",
                with_columns=first_table[0],
            )
            first_table[0] = False
        return {"type": kind, "object": obj}

    rv = req.query.get("resourceVersion", "")
    try:
        if rv in ("", "0"):
            items, rv = list_objects(registry, req)
            for obj in items:
                yield wire("ADDED", obj)
        w = registry.watch(
            info.kind,
            r.namespace,
            resource_version=rv,
            label_selector=req.query.get("labelSelector") or None,
            # an object leaving the field selection is DELETED, one entering ADDED (as upstream)
            predicate=(lambda o: all(f.matches(o) for f in fields)) if fields else None,
        )
    except NbkubeError as e:
        yield {"type": "ERROR", "object": status_for(e, info)[1]}
        return
    if idle is not None:
        idle(w)
    poll = 0.0 if idle is not None else POLL_SECONDS
    try:
        last_sent = time.monotonic()
        while not stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                ev = w.next(timeout=min(poll, left))
            except NbkubeError as e:
                yield {"type": "ERROR", "object": status_for(e, info)[1]}
                return
            if ev is None:
                if bookmarks and time.monotonic() - last_sent >= BOOKMARK_SECONDS and w.resource_version:
                    last_sent = time.monotonic()
                    yield {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": info.kind,
                            "apiVersion": info.api_version,
                            "metadata": {"resourceVersion": w.resource_version},
                        },
                    }
                elif idle is not None:
                    yield None
                continue
            last_sent = time.monotonic()
            yield wire(ev.type, ev.object)
    finally:
        w.cancel()
