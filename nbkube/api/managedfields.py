"""Field ownership (`metadata.managedFields`) and server-side apply, as pure functions over objects.

Kubernetes records on every write through its API which field manager set which fields, and
server-side apply (PATCH `application/apply-patch+yaml`) merges an applied configuration into the
live object by that record, as upstream's structured-merge-diff library does:

* an Update (create, PUT, merge/JSON/strategic PATCH, a subresource write) makes its manager owner of
  every field it added or changed and takes those fields from every other manager (`record_update`);
* an Apply makes its manager the owner of exactly the fields of its configuration; a field another
  manager owns whose value the apply would change is a conflict (`ApplyConflict`, unless forced,
  which takes the field), and a field the applier owned before and omits now is removed from the
  object unless someone else still owns it (`apply`).

Paths are tuples of upstream's path-element texts: `f:NAME` a field or map key, `k:{"name":"c"}` the
item of an associative list with those key fields, `v:"x"` the item of a set; `fieldsV1` nests them,
with `.` marking a node that is owned itself besides its children (`to_fields_v1`/`from_fields_v1`).

List types come from the strategic-merge table of nbkube/api/patch.py: a list merged on a key is an
associative list keyed by it (container and Service ports by their number and protocol, as upstream
declares them), a merged list of scalars is a set, every other list is atomic (owned and replaced
whole); label selectors are atomic too. Upstream's ignored fields (name, namespace, uid,
resourceVersion, generation, creationTimestamp, managedFields; `status` on the main resource of a
kind with a status subresource, everything but `status` on that subresource) are nobody's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any

from nbkube.api.kinds import lookup
from nbkube.api.meta import Obj
from nbkube.api.patch import field_strategies, json_equal
from nbkube.errors import BadRequest, Conflict

__all__ = [
    "APPLY",
    "BEFORE_FIRST_APPLY",
    "UPDATE",
    "ApplyConflict",
    "Entry",
    "Path",
    "applied_fields",
    "apply",
    "compare",
    "decode",
    "encode",
    "from_fields_v1",
    "manager_from_user_agent",
    "merge",
    "path_string",
    "record_update",
    "to_fields_v1",
    "validate_manager",
]

Path = tuple[str, ...]

APPLY = "Apply"
UPDATE = "Update"
BEFORE_FIRST_APPLY = "before-first-apply"
ANCIENT_CHANGES = "ancient-changes"
MAX_UPDATE_MANAGERS = 10  # upstream caps Update entries, folding the oldest into "ancient-changes"
MAX_MANAGER_LENGTH = 128
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# the manager whose applies upgrade (and keep in step) client-side apply's annotation, as upstream
KUBECTL_MANAGER = "kubectl"

_MISSING: Any = object()
_SCALARS = (str, int, float, bool, type(None))

# metadata fields the server owns: never any manager's
_IGNORED_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    }
)
# associative lists whose upstream keys are more than the strategic merge key
_MULTI_KEYS: dict[str, tuple[str, ...]] = {
    "containers[].ports": ("containerPort", "protocol"),
    "initContainers[].ports": ("containerPort", "protocol"),
    "ephemeralContainers[].ports": ("containerPort", "protocol"),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_SERVICE_PORT_KEYS = ("port", "protocol")
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}  # a key field's default stands in for it
# metav1.LabelSelector is `+structType=atomic`
_SELECTOR_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"})
_ATOMIC_FIELD_NAMES = frozenset({"podSelector", "namespaceSelector", "labelSelector"})


# -- the schema: list types from the strategic merge table ------------------------------------------


@dataclass(frozen=True)
class _ListType:
    kind: str  # "atomic" | "set" | "map"
    keys: tuple[str, ...] = ()  # sorted

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(sorted(self.keys)))


_ATOMIC = _ListType("atomic")


class _Schema:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.table = field_strategies(kind)
        self._list_types: dict[str, _ListType] = {}
        self._atomic: dict[str, bool] = {}

    def list_type(self, dotted: str) -> _ListType:
        found = self._list_types.get(dotted)
        if found is None:
            found = self._list_types[dotted] = self._find_list_type(dotted)
        return found

    def _find_list_type(self, dotted: str) -> _ListType:
        strategy = self.table.get(dotted)
        if strategy is None or not strategy.merge or not strategy.is_list:
            return _ATOMIC
        if strategy.merge_key is None:
            return _ListType("set")
        if self.kind == "Service" and dotted == "spec.ports":
            return _ListType("map", _SERVICE_PORT_KEYS)
        for suffix, keys in _MULTI_KEYS.items():
            if dotted == suffix or dotted.endswith("." + suffix):
                return _ListType("map", keys)
        return _ListType("map", (strategy.merge_key,))

    def atomic_map(self, dotted: str) -> bool:
        found = self._atomic.get(dotted)
        if found is None:
            found = self._atomic[dotted] = (dotted == "spec.selector" and self.kind in _SELECTOR_KINDS) or (
                dotted.rpartition(".")[2] in _ATOMIC_FIELD_NAMES
            )
        return found


@lru_cache(maxsize=64)
def _schema(kind: str) -> _Schema:
    return _Schema(kind)


def _join(dotted: str, name: str) -> str:
    return f"{dotted}.{name}" if dotted else name


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _scalar_json(value: Any) -> str:
    """`_json` of a scalar without the encoder's per-call setup (list items are keyed often)."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return _json(value)


def _element(item: Any, lt: _ListType) -> str | None:
    """The path element of one list item, or None when it has none (a map item missing a key)."""
    if lt.kind == "set":
        return None if isinstance(item, dict | list) else "v:" + _scalar_json(item)
    if not isinstance(item, dict):
        return None
    parts = []
    for name in lt.keys:  # sorted, as upstream's key text is
        value = item.get(name)
        if value is None:
            if name not in _KEY_DEFAULTS:
                return None
            value = _KEY_DEFAULTS[name]
        parts.append(f'"{name}":{_scalar_json(value)}')
    return "k:{" + ",".join(parts) + "}"


def _elements(items: list[Any], lt: _ListType, dotted: str, *, strict: bool) -> list[str] | None:
    """Each item's path element. A missing key or a duplicate: None (the list is then treated as
    atomic, as upstream treats lists it cannot key), or with `strict` (an applied configuration)
    a BadRequest naming the list."""
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        el = _element(item, lt)
        if el is None:
            if not strict:
                return None
            what = "is not a scalar" if lt.kind == "set" else f"omits key field(s) {', '.join(lt.keys)}"
            raise BadRequest(f".{dotted.replace('[]', '')}: element {i}: associative list item {what}")
        if el in seen:
            if not strict:
                return None
            raise BadRequest(f".{dotted.replace('[]', '')}: duplicate entries for key {_bracket(el)}")
        seen.add(el)
        out.append(el)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v if isinstance(v, _SCALARS) else _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if isinstance(v, _SCALARS) else _copy(v) for v in value]
    return value


# -- field sets -------------------------------------------------------------------------------------


def _part(kind: str, subresource: str) -> str:
    if subresource == "status":
        return "status"
    try:
        has_status = lookup(kind).has_status
    except BadRequest:
        has_status = True
    return "main" if has_status else "all"


def _ignored(path: Path, part: str) -> bool:
    head = path[0]
    if part == "status":
        return head != "f:status"
    if head in ("f:apiVersion", "f:kind"):
        return True
    if head == "f:metadata" and len(path) > 1 and path[1][2:] in _IGNORED_META:
        return True
    return head == "f:status" and part == "main"


def _owned(paths: Iterable[Path], part: str) -> set[Path]:
    return {p for p in paths if p and not _ignored(p, part)}


def applied_fields(config: Obj, kind: str, subresource: str = "") -> set[Path]:
    """The fields an applied configuration claims (upstream's ToFieldSet): every scalar, every
    atomic value, every list item, every empty map; not the maps that merely lead to them."""
    out: set[Path] = set()
    _applied(config, (), "", _schema(kind), out)
    return _owned(out, _part(kind, subresource))


def _applied(value: Any, path: Path, dotted: str, schema: _Schema, out: set[Path]) -> None:
    if isinstance(value, dict):
        if (path and schema.atomic_map(dotted)) or not value:
            out.add(path)
            return
        for k, v in value.items():
            _applied(v, (*path, "f:" + k), _join(dotted, k), schema, out)
        return
    if isinstance(value, list):
        lt = schema.list_type(dotted)
        if lt.kind == "atomic":
            out.add(path)
            return
        elements = _elements(value, lt, dotted, strict=True) or []
        for item, el in zip(value, elements, strict=True):
            child = (*path, el)
            out.add(child)
            if lt.kind == "map":
                _applied(item, child, dotted + "[]", schema, out)
        return
    out.add(path)


def compare(old: Any, new: Any, kind: str, subresource: str = "") -> tuple[set[Path], set[Path], set[Path]]:
    """(added, modified, removed) paths from `old` to `new`: for a value present on one side only,
    the node and every node under it (so an added map carries its `.` marker), else the leaves and
    atomic values that differ."""
    added: set[Path] = set()
    modified: set[Path] = set()
    removed: set[Path] = set()
    part = _part(kind, subresource)
    _compare(_view(old, part), _view(new, part), (), "", _schema(kind), added, modified, removed)
    return _owned(added, part), _owned(modified, part), _owned(removed, part)


def _view(obj: Any, part: str) -> Any:
    """The part of `obj` a write's ownership is computed over (the rest is nobody's anyway)."""
    if not isinstance(obj, dict):
        return obj
    if part == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    if part == "main" and "status" in obj:
        obj = {k: v for k, v in obj.items() if k != "status"}
    return _without_managed(obj)


def _without_managed(obj: Any) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return obj
    if "managedFields" not in obj["metadata"]:
        return obj
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _compare(
    a: Any,
    b: Any,
    path: Path,
    dotted: str,
    schema: _Schema,
    added: set[Path],
    modified: set[Path],
    removed: set[Path],
) -> None:
    if a is _MISSING:
        if b is not _MISSING:
            _all_nodes(b, path, dotted, schema, added)
        return
    if b is _MISSING:
        _all_nodes(a, path, dotted, schema, removed)
        return
    if isinstance(a, dict) and isinstance(b, dict) and not (path and schema.atomic_map(dotted)):
        for k in [*a, *(k for k in b if k not in a)]:
            _compare(
                a.get(k, _MISSING),
                b.get(k, _MISSING),
                (*path, "f:" + k),
                _join(dotted, k),
                schema,
                added,
                modified,
                removed,
            )
        return
    if isinstance(a, list) and isinstance(b, list):
        lt = schema.list_type(dotted)
        if lt.kind != "atomic":
            ea = _elements(a, lt, dotted, strict=False)
            eb = _elements(b, lt, dotted, strict=False)
            if ea is not None and eb is not None:
                ma = dict(zip(ea, a, strict=True))
                mb = dict(zip(eb, b, strict=True))
                for el in [*ea, *(e for e in eb if e not in ma)]:
                    _compare(
                        ma.get(el, _MISSING),
                        mb.get(el, _MISSING),
                        (*path, el),
                        dotted + "[]",
                        schema,
                        added,
                        modified,
                        removed,
                    )
                return
    if not json_equal(a, b):
        modified.add(path)


def _all_nodes(value: Any, path: Path, dotted: str, schema: _Schema, out: set[Path]) -> None:
    out.add(path)
    if isinstance(value, dict) and not (path and schema.atomic_map(dotted)):
        for k, v in value.items():
            _all_nodes(v, (*path, "f:" + k), _join(dotted, k), schema, out)
    elif isinstance(value, list):
        lt = schema.list_type(dotted)
        if lt.kind == "atomic":
            return
        elements = _elements(value, lt, dotted, strict=False)
        if elements is None:
            return
        for item, el in zip(value, elements, strict=True):
            _all_nodes(item, (*path, el), dotted + "[]", schema, out)


# -- fieldsV1 ---------------------------------------------------------------------------------------

_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """upstream's FieldsV1 JSON of a set of paths (`.` first, then children in upstream's order)."""
    tree: dict[str, Any] = {}
    members: set[int] = set()  # ids of the nodes that are paths of the set themselves
    for p in paths:
        node = tree
        for el in p:
            node = node.setdefault(el, {})
        members.add(id(node))
    return _emit(tree, members)


def _emit(node: dict[str, Any], members: set[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node and id(node) in members:
        out["."] = {}
    for el in sorted(node, key=lambda e: (_ORDER.get(e[:1], 9), e)):
        out[el] = _emit(node[el], members)
    return out


def from_fields_v1(tree: Any, where: str = "fieldsV1") -> set[Path]:
    """The set of paths a FieldsV1 JSON object holds; BadRequest naming `where` when malformed."""
    out: set[Path] = set()
    _read_fields(tree, (), where, out)
    return out


def _read_fields(tree: Any, prefix: Path, where: str, out: set[Path]) -> None:
    if not isinstance(tree, dict):
        raise BadRequest(f"{where}: must be a JSON object, got {type(tree).__name__}")
    if not tree and prefix:
        out.add(prefix)
    for key, sub in tree.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        if key[:2] not in ("f:", "k:", "v:", "i:"):
            raise BadRequest(f'{where}: unexpected key "{key}" (a path element is f:, k:, v: or i:)')
        if key[:2] in ("k:", "v:"):
            try:
                json.loads(key[2:])
            except ValueError:
                raise BadRequest(f'{where}: path element "{key}" is not valid JSON') from None
        _read_fields(sub, (*prefix, key), where, out)


def _bracket(el: str) -> str:
    body = el[2:]
    if el.startswith("k:"):
        key = json.loads(body)
        return "[" + ",".join(f"{k}={_json(v)}" for k, v in key.items()) + "]"
    if el.startswith("v:"):
        return f"[={body}]"
    return f"[{body}]"


def path_string(path: Path) -> str:
    """upstream's text of a path: `.spec.template.spec.containers[name="c"].image`."""
    return "".join("." + el[2:] if el.startswith("f:") else _bracket(el) for el in path)


# -- managedFields entries --------------------------------------------------------------------------


@dataclass
class Entry:
    """One managedFields entry; `fields` is its set of paths."""

    manager: str
    operation: str
    api_version: str
    fields: set[Path] = field(default_factory=set)
    time: str = ""
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str, str]:
        # an applier is one entry whatever the version it applied in, as upstream identifies it
        return (
            self.manager,
            self.operation,
            "" if self.operation == APPLY else self.api_version,
            self.subresource,
        )

    def describe(self) -> str:
        """How conflicts name this manager: `"kubectl-client-side-apply" using apps/v1`."""
        text = _json(self.manager)
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


Managed = dict[tuple[str, str, str, str], Entry]


def decode(obj: Obj | None, *, from_list: Any = None) -> Managed:
    """The entries of `obj`'s metadata.managedFields (or of `from_list`); BadRequest naming the
    entry when one is malformed."""
    raw = from_list if from_list is not None else ((obj or {}).get("metadata") or {}).get("managedFields")
    out: Managed = {}
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise BadRequest("metadata.managedFields: must be a list")
    for i, item in enumerate(raw):
        where = f"metadata.managedFields[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where}: must be an object")
        operation = item.get("operation")
        if operation not in (APPLY, UPDATE):
            raise BadRequest(f'{where}.operation: must be "Apply" or "Update", got {operation!r}')
        if item.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise BadRequest(f'{where}.fieldsType: must be "FieldsV1", got {item.get("fieldsType")!r}')
        for name in ("manager", "apiVersion", "time", "subresource"):
            if not isinstance(item.get(name, ""), str):
                raise BadRequest(f"{where}.{name}: must be a string")
        entry = Entry(
            manager=item.get("manager", ""),
            operation=operation,
            api_version=item.get("apiVersion", ""),
            fields=from_fields_v1(item.get("fieldsV1") or {}, f"{where}.fieldsV1"),
            time=item.get("time", ""),
            subresource=item.get("subresource", ""),
        )
        if entry.ident in out:
            raise BadRequest(f"{where}: duplicate entry for manager {entry.describe()}")
        out[entry.ident] = entry
    return out


def encode(managed: Managed) -> list[dict[str, Any]]:
    """managedFields as upstream writes them: empty entries dropped, Apply before Update, then by
    time, manager, apiVersion and subresource."""
    entries = [e for e in managed.values() if e.fields]
    entries.sort(key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource))
    out = []
    for e in entries:
        item: dict[str, Any] = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version}
        if e.time:
            item["time"] = e.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = to_fields_v1(e.fields)
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


def _store(obj: Obj, managed: Managed) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = encode(_capped(managed))
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def _capped(managed: Managed) -> Managed:
    updates = sorted(
        (e for e in managed.values() if e.operation == UPDATE and e.fields), key=lambda e: e.time
    )
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return managed
    out = dict(managed)
    ancient = Entry(ANCIENT_CHANGES, UPDATE, updates[0].api_version)
    for e in updates[: len(updates) - MAX_UPDATE_MANAGERS + 1]:
        del out[e.ident]
        ancient.fields |= e.fields
        ancient.time = e.time
    old = out.pop(ancient.ident, None)
    if old is not None:
        ancient.fields |= old.fields
    out[ancient.ident] = ancient
    return out


def validate_manager(name: str) -> None:
    """A fieldManager upstream accepts: at most 128 characters, all printable."""
    if len(name) > MAX_MANAGER_LENGTH:
        raise BadRequest(f"fieldManager: Too long: may not be more than {MAX_MANAGER_LENGTH} bytes")
    if not name.isprintable():
        raise BadRequest(f"fieldManager: Invalid value: {name!r}: must be printable")


def manager_from_user_agent(user_agent: str) -> str:
    """The manager of a write that names none: the User-Agent up to its first `/`, as upstream
    (`kubectl/v1.32.0 (linux/amd64) ...` is "kubectl")."""
    return "".join(c for c in user_agent.split("/", 1)[0] if c.isprintable())[:MAX_MANAGER_LENGTH]


def _skeleton(new: Obj) -> Obj:
    """What upstream compares a created object with: an empty object of its Go type, whose
    non-pointer structs (metadata, spec, a pod template's metadata and spec, a Deployment's
    strategy) exist already, so they carry no `.` marker."""
    out: Obj = {"metadata": {}}
    spec = new.get("spec")
    if isinstance(spec, dict):
        out["spec"] = {}
        if isinstance(spec.get("template"), dict):
            out["spec"]["template"] = {"metadata": {}, "spec": {}}
        if new.get("kind") == "Deployment" and isinstance(spec.get("strategy"), dict):
            out["spec"]["strategy"] = {}
    return out


# -- Update -----------------------------------------------------------------------------------------


def _is_reset(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 1 and value[0] == {}


def record_update(
    old: Obj | None, new: Obj, *, kind: str, api_version: str, manager: str, now: str, subresource: str = ""
) -> None:
    """Set `new`'s metadata.managedFields for a write of `new` over `old` (None: a create) by
    `manager`: it owns what it added or changed, others lose that and what it removed.

    managedFields the request itself changed are taken as given (how `kubectl apply --server-side`
    upgrades client-side apply's entry); `[{}]` clears them, as upstream."""
    meta = new.setdefault("metadata", {})
    given = meta.get("managedFields")
    live = ((old or {}).get("metadata") or {}).get("managedFields")
    if _is_reset(given) and not subresource:
        meta.pop("managedFields", None)
        return
    # managedFields the request changed are what it asks for; else (unknown to it) the live ones
    use_given = bool(given) and given != live and not subresource
    managed = decode(None, from_list=given) if use_given else decode(old)
    added, modified, removed = compare(old if old is not None else _skeleton(new), new, kind, subresource)
    changed = added | modified
    me = Entry(manager, UPDATE, api_version, subresource=subresource)
    for ident, entry in managed.items():
        if ident != me.ident:
            entry.fields -= changed
            entry.fields -= removed
    prev = managed.get(me.ident)
    if prev is not None:
        me.fields = prev.fields - removed
        me.time = prev.time
    me.fields |= changed
    if changed:
        me.time = now
    managed[me.ident] = me
    _store(new, managed)


# -- Apply ------------------------------------------------------------------------------------------


class ApplyConflict(Conflict):
    """An apply would change fields other managers own; `causes` are upstream's Status causes."""

    def __init__(self, conflicts: list[tuple[Entry, Path]]):
        conflicts = sorted(conflicts, key=lambda c: (c[0].describe(), path_string(c[1])))
        self.conflicts = conflicts
        self.causes = [
            {
                "type": "FieldManagerConflict",
                "message": f"conflict with {e.describe()}",
                "field": path_string(p),
            }
            for e, p in conflicts
        ]
        if len(conflicts) == 1:
            e, p = conflicts[0]
            message = f"Apply failed with 1 conflict: conflict with {e.describe()}: {path_string(p)}"
        else:
            lines: list[str] = []
            by_manager: dict[str, list[str]] = {}
            for e, p in conflicts:
                by_manager.setdefault(e.describe(), []).append(path_string(p))
            for who in sorted(by_manager):
                lines.append(f"conflicts with {who}:")
                lines.extend(f"- {p}" for p in by_manager[who])
            message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
        super().__init__(message)


def merge(live: Any, config: Any, kind: str) -> Any:
    """`config` laid over `live` (upstream's typed Merge): maps merge key by key, associative lists
    and sets item by item (the configuration's order for its items, the live order for the rest),
    everything else is replaced by the configuration's value."""
    return _merge(live, config, "", _schema(kind), root=True)


def _merge(live: Any, cfg: Any, dotted: str, schema: _Schema, root: bool = False) -> Any:
    if isinstance(cfg, dict) and isinstance(live, dict) and (root or not schema.atomic_map(dotted)):
        out = dict(live)
        for k, v in cfg.items():
            out[k] = _merge(live[k], v, _join(dotted, k), schema) if k in live else _copy(v)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        lt = schema.list_type(dotted)
        if lt.kind != "atomic":
            el = _elements(live, lt, dotted, strict=False)
            ec = _elements(cfg, lt, dotted, strict=True)
            if el is not None and ec is not None:
                return _merge_list(live, cfg, el, ec, dotted, schema, lt)
    return _copy(cfg)


def _merge_list(
    live: list[Any], cfg: list[Any], el: list[str], ec: list[str], dotted: str, schema: _Schema, lt: _ListType
) -> list[Any]:
    """structured-merge-diff's list merge, ported: shared items in the configuration's order, live
    items it does not name where they were."""
    ml = dict(zip(el, live, strict=True))
    mc = dict(zip(ec, cfg, strict=True))

    def item(pe: str) -> Any:
        if lt.kind == "set" or pe not in ml:
            return _copy(mc[pe])
        return _merge(ml[pe], mc[pe], dotted + "[]", schema)

    shared = [pe for pe in ec if pe in ml]
    shared_i = 0
    next_shared = shared[0] if shared else None
    shared_i = 1
    merged: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(el) or ri < len(ec):
        if li < len(el) and ri < len(ec):
            pe = el[li]
            if pe == ec[ri]:
                merged.add(pe)
                out.append(item(pe))
                li += 1
                ri += 1
                next_shared = shared[shared_i] if shared_i < len(shared) else None
                shared_i += 1
                continue
            if pe in mc and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(el):
            pe = el[li]
            if pe not in mc:
                out.append(_copy(live[li]))
                li += 1
                continue
            if pe in merged:
                li += 1
                continue
        if ri < len(ec):
            pe = ec[ri]
            merged.add(pe)
            out.append(item(pe))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared[shared_i] if shared_i < len(shared) else None
                shared_i += 1
    return out


def _locate(obj: Any, path: Path, schema: _Schema) -> tuple[Any, str] | None:
    """The value at `path` and its dotted schema path, or None when it is not there."""
    node, dotted = obj, ""
    for el in path:
        if el.startswith("f:") and isinstance(node, dict):
            name = el[2:]
            if name not in node:
                return None
            node, dotted = node[name], _join(dotted, name)
        elif isinstance(node, list):
            lt = schema.list_type(dotted)
            found = _MISSING
            for item in node:
                if _element(item, lt) == el:
                    found = item
                    break
            if found is _MISSING:
                return None
            node, dotted = found, dotted + "[]"
        else:
            return None
    return node, dotted


def _delete(obj: Any, path: Path, schema: _Schema) -> bool:
    where = _locate(obj, path[:-1], schema)
    if where is None:
        return False
    parent, dotted = where
    el = path[-1]
    if isinstance(parent, dict) and el.startswith("f:"):
        return parent.pop(el[2:], _MISSING) is not _MISSING
    if isinstance(parent, list):
        lt = schema.list_type(dotted)
        for i, item in enumerate(parent):
            if _element(item, lt) == el:
                del parent[i]
                return True
    return False


def _prune(obj: Obj, to_remove: set[Path], owned: set[Path], schema: _Schema) -> None:
    """Remove what the applier gave up and nobody owns (in place). A node with an owned node
    under it stays, a list item keeps its key fields, and a map or list left empty by a removal
    goes too unless somebody owns it."""
    if not to_remove:
        return
    keep = {p[:i] for p in owned for i in range(1, len(p))}
    for path in sorted(to_remove, key=len):
        if path in keep:
            continue
        if len(path) >= 2 and path[-2].startswith("k:") and path[-1][2:] in json.loads(path[-2][2:]):
            continue  # a key field of an item that stays
        if not _delete(obj, path, schema):
            continue
        for i in range(len(path) - 1, 1, -1):
            ancestor = path[:i]
            where = _locate(obj, ancestor, schema)
            if where is None or where[0] not in ({}, []) or ancestor in owned or ancestor in keep:
                break
            _delete(obj, ancestor, schema)


def _last_applied_allowance(live: Obj, kind: str, subresource: str) -> set[Path]:
    """Fields client-side apply recorded in the last-applied annotation whose live value is still
    that value: a `kubectl` server-side apply may take them over without a conflict (upstream's
    upgrade path from client-side apply)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return set()
    try:
        last = json.loads(text)
    except ValueError:
        return set()
    if not isinstance(last, dict):
        return set()
    try:
        fields = applied_fields(last, kind, subresource)
    except BadRequest:
        return set()
    _added, modified, _removed = compare(last, live, kind, subresource)
    return fields - modified


def _last_applied_text(config: Obj) -> str:
    applied = _copy(config)
    annotations = (applied.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    return json.dumps(applied, separators=(",", ":"), sort_keys=True) + "\n"


def apply(
    live: Obj | None,
    config: Obj,
    *,
    kind: str,
    api_version: str,
    manager: str,
    now: str,
    force: bool = False,
    subresource: str = "",
) -> Obj:
    """The object after `manager` applied `config` to `live` (None: the object is created), with
    its managedFields; `live` itself is not changed. ApplyConflict when another manager owns a
    field whose value this would change, unless `force` (the applier then takes the field)."""
    schema = _schema(kind)
    managed = decode(live)
    base: Obj = _without_managed(live) if live is not None else {}
    if live is not None and not managed:
        # an object no manager recorded yet: everything in it was someone's before this apply
        added, _m, _r = compare(_skeleton(live), live, kind, subresource)
        first = Entry(BEFORE_FIRST_APPLY, UPDATE, str(live.get("apiVersion") or api_version), added, now)
        managed = {first.ident: first}
    part = _part(kind, subresource)
    if part != "all":
        # upstream resets what the endpoint does not write: status on the main resource, the
        # rest on the status subresource
        config = (
            {k: v for k, v in config.items() if k != "status"}
            if part == "main"
            else {k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")}
        )
    merged = merge(base, config, kind)
    me = Entry(
        manager, APPLY, api_version, applied_fields(config, kind, subresource), subresource=subresource
    )
    prev = managed.get(me.ident)
    last = prev.fields if prev is not None else set()
    me.time = prev.time if prev is not None else now
    managed[me.ident] = me
    owned: set[Path] = set().union(*(e.fields for e in managed.values()))
    _prune(merged, last - owned, owned, schema)
    added, modified, removed = compare(base, merged, kind, subresource)
    changed = added | modified
    conflicts = [
        (entry, path)
        for ident, entry in managed.items()
        if ident != me.ident
        for path in sorted(entry.fields & changed)
    ]
    if conflicts and not force:
        allowed = _last_applied_allowance(base, kind, subresource) if manager == KUBECTL_MANAGER else set()
        refused = [(e, p) for e, p in conflicts if p not in allowed]
        if refused:
            raise ApplyConflict(refused)
    for ident, entry in managed.items():
        if ident != me.ident:
            entry.fields -= changed
            entry.fields -= removed
    if live is None or base != merged or not json_equal(base, merged):
        me.time = now
    annotations = (base.get("metadata") or {}).get("annotations") or {}
    if manager == KUBECTL_MANAGER and annotations.get(LAST_APPLIED):
        # keep client-side apply's record in step, so a later `kubectl apply` agrees with this one
        merged.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = _last_applied_text(
            config
        )
    _store(merged, managed)
    return merged
