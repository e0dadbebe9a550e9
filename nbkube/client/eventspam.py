"""Upstream's Event spam filter: at most a burst of Events per source and object, then a trickle.

Why: a ReplicaSet of 10,000 replicas records 10,000 `SuccessfulCreate` Events about itself, a
crash-looping pod one `BackOff` per restart. Each is a store write, a watch event and memory until
the Event expires, and nobody reads the 10,000th. Kubernetes' event recorder (client-go's
`EventSourceObjectSpamFilter`, part of its EventCorrelator) gives every source+object pair a token
bucket: a burst of 25 Events, then one more every 5 minutes; the rest are not written. nbkube does
the same, with upstream's key (the source component, the involved object's kind, namespace, name,
uid and apiVersion, and the Event's type) and its numbers.

What it changes for a reader: an object's first 25 Events of a kind are all there (a demo's pods,
a failover's replacements, a small rollout); a large one shows its first 25 and then one per 5
minutes. Dropped Events are counted (`SpamFilter.dropped`) and the first drop for a key is logged
in one line, so a missing Event is never a mystery.

One filter serves each API object (`spam_filter_for(api)`), as upstream's filter belongs to the
broadcaster that writes to one API server: clusters side by side in one process, or the many
registries of a test run, never share a bucket. The least recently used keys beyond `MAX_KEYS` are
forgotten (upstream keeps an LRU of 4,096 as well).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from nbkube.api.meta import Obj
from nbkube.perobject import PerObject

__all__ = ["SpamFilter", "spam_filter_for", "spam_key", "BURST", "REFILL_SECONDS", "MAX_KEYS"]

log = logging.getLogger(__name__)

BURST = 25  # Events a source may record about one object at once (client-go's defaultSpamBurst)
REFILL_SECONDS = 300.0  # one more token every 5 minutes (client-go's defaultSpamQPS, 1/300)
MAX_KEYS = 4096  # source+object pairs remembered (client-go's maxLruCacheEntries)


@dataclass
class _Bucket:
    tokens: float
    last: float  # the clock's time when `tokens` was counted
    warned: bool = False


def spam_key(event: Obj) -> tuple[str, ...]:
    """client-go's default spam key: source, involved object (with uid) and the Event's type."""
    source = event.get("source") or {}
    return spam_key_of(
        str(source.get("component") or event.get("reportingComponent") or ""),
        str(source.get("host") or ""),
        event.get("involvedObject") or {},
        str(event.get("type") or ""),
    )


def spam_key_of(component: str, host: str, inv: Obj, type: str) -> tuple[str, ...]:
    """`spam_key` of an Event not built yet (a recorder checks before it builds one)."""
    return (
        component,
        host,
        str(inv.get("kind") or ""),
        str(inv.get("namespace") or ""),
        str(inv.get("name") or ""),
        str(inv.get("uid") or ""),
        str(inv.get("apiVersion") or ""),
        type,
    )


class SpamFilter:
    """Token buckets per spam key; `allow(event, now)` takes a token or says the Event is dropped."""

    def __init__(
        self, *, burst: int = BURST, refill_seconds: float = REFILL_SECONDS, max_keys: int = MAX_KEYS
    ):
        if burst < 1 or refill_seconds <= 0 or max_keys < 1:
            raise ValueError(
                f"event spam filter: burst {burst!r} and max_keys {max_keys!r} must be >= 1, "
                f"refill_seconds {refill_seconds!r} > 0"
            )
        self.burst, self.refill_seconds, self.max_keys = burst, float(refill_seconds), max_keys
        self.dropped = 0
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, event: Obj, now: float) -> bool:
        return self.allow_key(spam_key(event), now, event.get("involvedObject") or {})

    def allow_key(self, key: tuple[str, ...], now: float, inv: Obj) -> bool:
        """`allow` by the Event's spam key (`spam_key_of`) and involved object."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                # a clock that went back (another clock for the same key) refills nothing
                elapsed = max(0.0, now - bucket.last)
                bucket.tokens = min(float(self.burst), bucket.tokens + elapsed / self.refill_seconds)
                bucket.last = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            self.dropped += 1
            warn = not bucket.warned
            bucket.warned = True
        if warn:
            log.info(
                "events: %s recorded more than %d Events about %s %s/%s; further ones are dropped "
                "(one kept per %.0f s), as Kubernetes' event spam filter does",
                key[0] or "a component",
                self.burst,
                inv.get("kind"),
                inv.get("namespace") or "-",
                inv.get("name"),
                self.refill_seconds,
            )
        return False


_filters: PerObject[Any, SpamFilter] = PerObject(lambda _api: SpamFilter())


def spam_filter_for(api: Any) -> SpamFilter:
    """The spam filter of the Events written to `api` (made on first use)."""
    return _filters.get(api)
