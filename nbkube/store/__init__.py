"""Store layer of nbkube: a revisioned key-value space with watch (see `base.py` for the contract).

`open_store(url)` is the one entry point the registry, the CLI and the cluster wiring use to turn a
store URL into a backend, so that the URL forms are parsed in exactly one place.
"""

from __future__ import annotations

from nbkube.errors import BadRequest
from nbkube.store.base import Store

__all__ = ["open_store", "Store"]


def open_store(url: str) -> Store:
    """Open the store named by `url`.

    - `sqlite:///abs/path.db`: a SQLite file (created with its directory if missing), shareable
      by several processes;
    - `sqlite://:memory:`: a fresh in-memory store, usable from every thread of this process
      (each call returns a new, empty one);
    - `etcd://host:port[,host:port...]`: a real etcd v3 cluster;
    - `etcd+unix:///abs/path/etcd.sock`: an etcd on a unix socket (a cluster's private etcd).
    """
    if not isinstance(url, str):
        raise BadRequest(f"store URL must be a string, got {url!r}")
    if url.startswith("sqlite://"):
        from nbkube.store.sqlite import SqliteStore

        rest = url[len("sqlite://") :]
        if rest == ":memory:":
            return SqliteStore(":memory:")
        if not rest.startswith("/") or rest == "/":
            raise BadRequest(f"store URL {url!r}: expected sqlite:///absolute/path.db or sqlite://:memory:")
        return SqliteStore(rest)
    if url.startswith(("etcd://", "etcd+unix://")):
        from nbkube.store.etcd import EtcdStore

        return EtcdStore(url)
    raise BadRequest(
        f"store URL {url!r}: unknown scheme (expected sqlite:///abs/path.db, sqlite://:memory:, "
        "etcd://host:port[,host:port...] or etcd+unix:///abs/path/etcd.sock)"
    )
