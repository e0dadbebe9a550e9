"""Notebook-friendly wrappers: an object as a card, a list of objects as a table and a DataFrame.

`ClusterViews(api)` is what `cluster.pods`, `cluster.nodes`, `cluster.services` and `cluster.events`
return through (LocalCluster attaches one); the `%nbkube get` magic returns an `ObjectList` built
from the CLI's printer columns. Each property reads the registry when it is accessed: the views are
snapshots, cheap to make, and never cache or reconcile anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from nbkube.api import kinds
from nbkube.api.meta import Obj
from nbkube.notebook import html
from nbkube.notebook.summary import columns_for, row_of, status_of

if TYPE_CHECKING:
    import pandas

    from nbkube.registry.registry import Registry

__all__ = ["ObjectView", "ObjectList", "EventList", "ClusterViews"]


class ObjectView:
    """One object: renders as a card; item access reads the underlying wire-shape dict."""

    def __init__(self, obj: Obj):
        self.obj = obj

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    @property
    def status(self) -> str:
        return status_of(self.obj)[0]

    def __getitem__(self, key: str) -> Any:
        return self.obj[key]

    def _repr_html_(self) -> str:
        return html.object_card(self.obj)

    def __repr__(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"<{self.kind} {ns}{self.name}: {self.status}>"


def _sort_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class ObjectList:
    """Objects of one kind: a table in the notebook, `.df` for pandas, and a sequence of ObjectView.

    With `headers`/`rows` (the CLI printer's columns, as `%nbkube get` passes them) the table and
    `.df` show exactly those columns; otherwise the per-kind view columns of summary.py.
    """

    def __init__(
        self,
        kind: str,
        objs: Sequence[Obj],
        *,
        headers: Sequence[str] | None = None,
        rows: Sequence[Sequence[Any]] | None = None,
    ):
        self.kind = kinds.lookup(kind).kind if kind else ""
        self.objs = sorted(objs, key=_sort_key) if headers is None else list(objs)
        if (headers is None) != (rows is None):
            raise ValueError("ObjectList: give both headers and rows, or neither")
        self.headers = list(headers) if headers is not None else None
        self.rows = [list(r) for r in rows] if rows is not None else None

    @property
    def df(self) -> pandas.DataFrame:
        import pandas as pd

        if self.headers is not None and self.rows is not None:
            return pd.DataFrame(self.rows, columns=self.headers)
        cols = columns_for(self.kind)
        return pd.DataFrame([row_of(o) for o in self.objs], columns=cols)

    def __len__(self) -> int:
        return len(self.objs)

    def __iter__(self) -> Iterator[ObjectView]:
        return (ObjectView(o) for o in self.objs)

    @overload
    def __getitem__(self, key: int | str) -> ObjectView: ...
    @overload
    def __getitem__(self, key: slice) -> ObjectList: ...
    def __getitem__(self, key: int | str | slice) -> ObjectView | ObjectList:
        if isinstance(key, slice):
            return ObjectList(self.kind, self.objs[key])
        if isinstance(key, int):
            return ObjectView(self.objs[key])
        # "name" or "namespace/name"
        for o in self.objs:
            meta = o.get("metadata") or {}
            full = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
            if key in (meta.get("name"), full):
                return ObjectView(o)
        raise KeyError(f"no {self.kind} named {key!r}")

    @property
    def names(self) -> list[str]:
        return [str((o.get("metadata") or {}).get("name") or "") for o in self.objs]

    def _repr_html_(self) -> str:
        if self.headers is not None and self.rows is not None:
            if not self.rows:
                return html.object_table(self.kind, [])
            colours = [status_of(o)[1] for o in self.objs] if len(self.objs) == len(self.rows) else None
            return html.table(self.headers, self.rows, colours)
        return html.object_table(self.kind, self.objs)

    def __repr__(self) -> str:
        if not self.objs and not self.rows:
            return f"<no {self.kind} objects>"
        return self.df.to_string(index=False)


class EventList:
    """The event log as a table; `.df` is nbkube.client.events.events_dataframe."""

    def __init__(self, api: Registry, namespace: str = ""):
        self._api = api
        self._namespace = namespace
        self._df: pandas.DataFrame | None = None

    @property
    def df(self) -> pandas.DataFrame:
        if self._df is None:
            from nbkube.client.events import events_dataframe

            self._df = events_dataframe(self._api, self._namespace)
        return self._df

    def __len__(self) -> int:
        return len(self.df)

    def _repr_html_(self) -> str:
        df = self.df
        if df.empty:
            return html.object_table("Event", [])
        return html.table(list(df.columns), df.astype(str).itertuples(index=False))

    def __repr__(self) -> str:
        return self.df.to_string(index=False)


class ClusterViews:
    """Snapshot views over a registry: `views.pods.df`, `views.nodes[0]`, `views.events.df`."""

    def __init__(self, api: Registry, namespace: str = ""):
        self.api = api
        self.namespace = namespace

    def get(self, kind: str, namespace: str | None = None) -> ObjectList:
        info = kinds.lookup(kind)
        ns = self.namespace if namespace is None else namespace
        items, _rv = self.api.list(info.kind, ns if info.namespaced else "")
        return ObjectList(info.kind, items)

    @property
    def pods(self) -> ObjectList:
        return self.get("Pod")

    @property
    def nodes(self) -> ObjectList:
        return self.get("Node")

    @property
    def services(self) -> ObjectList:
        return self.get("Service")

    @property
    def replicationcontrollers(self) -> ObjectList:
        return self.get("ReplicationController")

    @property
    def deployments(self) -> ObjectList:
        return self.get("Deployment")

    @property
    def replicasets(self) -> ObjectList:
        return self.get("ReplicaSet")

    @property
    def events(self) -> EventList:
        return EventList(self.api, self.namespace)
