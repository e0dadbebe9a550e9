"""Which cluster a store belongs to: a marker key written when the cluster is created.

A cluster's folder (`cluster.json`) and its store can come apart: a SQLite file truncated to zero
bytes, a private etcd data folder wiped, `--store` pointing at another cluster's etcd. Opened as if
nothing happened, such a store silently starts an empty (or a stranger's) cluster, and everything
the folder's owner had is gone without a word. So a new store gets CLUSTER_ID_KEY (a uuid, also
recorded in cluster.json), and `LocalCluster` checks the two agree before it uses the store; only an
explicit request for a fresh cluster (`fresh=True`, `nbkube up --fresh`) takes an empty or foreign
store instead.
"""

from __future__ import annotations

import json
import os
import uuid

from nbkube.errors import BadRequest, NbkubeError
from nbkube.store.base import KeyExists, Store

__all__ = ["CLUSTER_ID_KEY", "WrongStore", "check_folder_store", "ensure_cluster_id", "read_cluster_id"]

# outside /registry/, where every object lives, so no list or watch of objects ever sees it
CLUSTER_ID_KEY = "/nbkube/cluster-id"


class WrongStore(NbkubeError):
    """The store is not the one the cluster folder was created with (empty, truncated or foreign)."""

    reason = "Conflict"
    code = 409


def read_cluster_id(store: Store) -> str | None:
    kv = store.get(CLUSTER_ID_KEY)
    return kv.value.decode("utf-8", "replace") if kv is not None else None


def _has_objects(store: Store) -> bool:
    # every cluster has namespaces (default, kube-system): a short list, unlike all of /registry/
    return bool(store.list("/registry/namespaces/")[0])


def ensure_cluster_id(
    store: Store, recorded: str | None, source: str, *, existing: bool, fresh: bool = False
) -> str:
    """The store's cluster id, after checking it against the cluster folder's.

    `existing`: the folder already describes a cluster (its cluster.json exists); `recorded`: the
    id it records (None for a folder from before the marker existed). A new cluster takes the
    store's id or writes a new one. An existing one needs its own id in the store; an empty store,
    or one with another id, raises WrongStore naming `source` (the file or URL), unless `fresh`,
    which starts over with the store as it is. A store with objects but no marker (written before
    the marker existed) is marked, not refused.
    """
    found = read_cluster_id(store)
    if existing and not fresh:
        hint = "pass fresh=True or `nbkube up --fresh` to start a new cluster there"
        if found is not None and recorded and found != recorded:
            raise WrongStore(
                f"store {source} belongs to another cluster (id {found}; this folder's is {recorded}): {hint}"
            )
        if found is None:
            has_objects = _has_objects(store)
            if recorded or not has_objects:
                state = "has no cluster id" if has_objects else "is empty (truncated or replaced?)"
                raise WrongStore(
                    f"store {source} {state} but its folder holds an existing cluster: refusing to "
                    f"start a new one over it; {hint}"
                )
    if found is not None:
        return found
    new = str(uuid.uuid4())
    try:
        store.create(CLUSTER_ID_KEY, new.encode())
    except KeyExists:  # another process marked it first: that one is the cluster's id
        again = read_cluster_id(store)
        if again is not None:
            return again
        raise
    return new


def check_folder_store(store: Store, data_dir: str, store_url: str, store_kind: str, *, fresh: bool) -> str:
    """`ensure_cluster_id` for the store a cluster folder (`data_dir`, with its cluster.json) opened.

    `store_kind` is LocalCluster's: "etcd-private" (the folder's own etcd, on a new port each
    start), "sqlite" or "etcd". The store is the folder's own when it is its private etcd or the
    URL cluster.json records; a different `--store` is another store, checked against nothing.
    """
    info_path = os.path.join(data_dir, "cluster.json")
    try:
        with open(info_path) as fh:
            info = json.load(fh)
        recorded = str(info.get("clusterID") or "") or None
        if store_kind == "etcd-private":
            # a folder from before storeKind was recorded had a private etcd if it recorded etcd://
            kind = info.get("storeKind") or (
                "etcd-private" if str(info.get("store")).startswith("etcd://") else ""
            )
            existing = kind == "etcd-private"
        else:
            existing = info.get("store") == store_url
    except FileNotFoundError:
        recorded, existing = None, False
    except (OSError, ValueError, AttributeError) as exc:
        raise BadRequest(f"cannot read {info_path}: {exc}") from None
    if store_kind == "etcd-private":
        source = os.path.join(data_dir, "etcd")
    else:
        source = store_url.removeprefix("sqlite://")
    return ensure_cluster_id(store, recorded, source, existing=existing, fresh=fresh)
