"""The three PATCH flavours of the Kubernetes API, as pure functions over JSON-shaped values.

`kubectl` never sends whole objects for `apply`, `edit`, `label`, `scale` or `rollout`: it sends a
patch, and the Content-Type says which of three languages it is written in:

* `application/json-patch+json`: RFC 6902, a list of add/remove/replace/move/copy/test operations
  addressed by JSON pointers (`json_patch`);
* `application/merge-patch+json`: RFC 7386, a partial object where null deletes (`merge_patch`);
* `application/strategic-merge-patch+json`: the Kubernetes extension of merge patch that merges
  lists of maps item by item on a per-field key and understands `$patch`, `$retainKeys`,
  `$setElementOrder/...` and `$deleteFromPrimitiveList/...` (`strategic_merge_patch`).

The HTTP API server and the registry both call these, so they live at the bottom of the package
with no I/O. All three work on a deep copy: callers may hand in the stored object itself. Any
malformed patch raises `PatchError` (a `BadRequest`, so the API server answers 400) whose message
names where in the document it went wrong.

Upstream reads the strategic merge metadata from Go struct tags (`patchStrategy`,
`patchMergeKey`); here it is the declarative `FIELD_STRATEGIES` table keyed by kind and by a dotted
field path in which `[]` stands for "every item of the list". A field the table does not name is
treated as upstream treats a field without tags: maps merge recursively and lists are replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbkube.errors import BadRequest

__all__ = [
    "json_equal",
    "FIELD_STRATEGIES",
    "PatchError",
    "Strategy",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]


class PatchError(BadRequest):
    """A patch that cannot be applied; `path` names the place in the document (may be empty)."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__(message)


_SCALARS = (str, int, float, bool, type(None))


def _copy(value: Any) -> Any:
    """Deep copy of a JSON-shaped value (much cheaper than copy.deepcopy for dicts of scalars)."""
    if isinstance(value, dict):
        return {k: v if isinstance(v, _SCALARS) else _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if isinstance(v, _SCALARS) else _copy(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON means it: Python's `True == 1` must not make a `test` op pass."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# -- RFC 6902 JSON patch ----------------------------------------------------------------------------


def _parse_pointer(pointer: Any, where: str) -> list[str]:
    """RFC 6901: "" is the whole document, otherwise "/"-separated tokens with ~1 = "/" and ~0 = "~"."""
    if not isinstance(pointer, str):
        raise PatchError(f"{where}: path must be a string, not {type(pointer).__name__}", str(pointer))
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"{where}: JSON pointer {pointer!r} must start with '/'", pointer)
    tokens = pointer[1:].split("/")
    for token in tokens:
        # a "~" must be followed by 0 or 1; anything else is not a pointer (RFC 6901 section 3)
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PatchError(f"{where}: bad escape in JSON pointer {pointer!r}", pointer)
    # ~1 first: "~01" is the two characters "~1", not "/"
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _array_index(token: str, length: int, where: str, pointer: str, *, allow_end: bool) -> int:
    """A list index token: decimal without leading zeros, within bounds (len itself only for add)."""
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"{where}: {token!r} is not a list index in {pointer!r}", pointer)
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchError(f"{where}: index {index} out of range (length {length}) in {pointer!r}", pointer)
    return index


def _resolve_parent(doc: Any, tokens: list[str], where: str, pointer: str) -> Any:
    """The container that holds the last token's target; every step before it must exist."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{where}: {pointer!r} does not exist (no {token!r})", pointer)
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), where, pointer, allow_end=False)]
        else:
            raise PatchError(f"{where}: {pointer!r} goes through a scalar", pointer)
    return node


def _get(doc: Any, tokens: list[str], where: str, pointer: str) -> Any:
    if not tokens:
        return doc
    parent = _resolve_parent(doc, tokens, where, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: {pointer!r} does not exist", pointer)
        return parent[last]
    if isinstance(parent, list):
        return parent[_array_index(last, len(parent), where, pointer, allow_end=False)]
    raise PatchError(f"{where}: {pointer!r} goes through a scalar", pointer)


def _add(doc: Any, tokens: list[str], value: Any, where: str, pointer: str) -> Any:
    """Returns the new document (a root add replaces the whole of it)."""
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, where, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), where, pointer, allow_end=True), value)
    else:
        raise PatchError(f"{where}: {pointer!r} goes through a scalar", pointer)
    return doc


def _replace(doc: Any, tokens: list[str], value: Any, where: str, pointer: str) -> Any:
    """Set an existing target in place (a map keeps its key order); returns the new document."""
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, where, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: {pointer!r} does not exist", pointer)
        parent[last] = value
    elif isinstance(parent, list):
        parent[_array_index(last, len(parent), where, pointer, allow_end=False)] = value
    else:
        raise PatchError(f"{where}: {pointer!r} goes through a scalar", pointer)
    return doc


def _remove(doc: Any, tokens: list[str], where: str, pointer: str) -> Any:
    """Removes and returns the value at `tokens` (which must exist and must not be the root)."""
    if not tokens:
        raise PatchError(f"{where}: cannot remove the whole document", pointer)
    parent = _resolve_parent(doc, tokens, where, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{where}: {pointer!r} does not exist", pointer)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_array_index(last, len(parent), where, pointer, allow_end=False))
    raise PatchError(f"{where}: {pointer!r} goes through a scalar", pointer)


_OPS = ("add", "remove", "replace", "move", "copy", "test")


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operation objects) and return the new document.

    `doc` is not modified. Every failure (malformed op, missing target, failed `test`) raises
    `PatchError` naming the op index, the op and its path; the patch is all or nothing."""
    if not isinstance(ops, list):
        raise PatchError(f"json patch must be a list of operations, not {type(ops).__name__}")
    result = _copy(doc)
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"json patch op {i}: must be an object, not {type(op).__name__}")
        name = op.get("op")
        where = f"json patch op {i} ({name} {op.get('path')})"
        if name not in _OPS:
            raise PatchError(
                f"{where}: unknown op {name!r} (want one of {', '.join(_OPS)})", str(op.get("path"))
            )
        if "path" not in op:
            raise PatchError(f"{where}: missing 'path'")
        tokens = _parse_pointer(op["path"], where)
        pointer: str = op["path"]
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{where}: missing 'value'", pointer)
        if name == "add":
            result = _add(result, tokens, _copy(op["value"]), where, pointer)
        elif name == "remove":
            _remove(result, tokens, where, pointer)
        elif name == "replace":
            result = _replace(result, tokens, _copy(op["value"]), where, pointer)
        elif name == "test":
            if not json_equal(_get(result, tokens, where, pointer), op["value"]):
                raise PatchError(f"{where}: test failed, the value differs", pointer)
        else:  # move, copy
            if "from" not in op:
                raise PatchError(f"{where}: missing 'from'", pointer)
            source = _parse_pointer(op["from"], where)
            origin: str = op["from"]
            if name == "move":
                if source == tokens:
                    continue
                if tokens[: len(source)] == source:  # also catches moving the root anywhere
                    raise PatchError(f"{where}: cannot move {origin!r} into its own child", pointer)
                value = _remove(result, source, where, origin)
            else:
                value = _copy(_get(result, source, where, origin))
            result = _add(result, tokens, value, where, pointer)
    return result


# -- RFC 7386 JSON merge patch ----------------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch and return the new document; `doc` is not modified.

    Objects merge recursively, a null value deletes the key, anything else (lists included)
    replaces. Never raises: every JSON value is a valid merge patch."""
    if not isinstance(patch, dict):
        return _copy(patch)
    result = _copy(doc) if isinstance(doc, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            child = target.get(key)
            if not isinstance(child, dict):
                child = target[key] = {}
            _merge_into(child, value)
        else:
            target[key] = _copy(value)


# -- strategic merge patch: the per-kind field table --------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """How one field merges, as upstream's `patchStrategy`/`patchMergeKey` tags say.

    merge=True on a list: lists of maps are merged item by item on `merge_key`; lists of
    primitives (merge_key None) are merged as an ordered set. merge=False: the value is replaced
    whole, map or list. `is_list` says the field holds a list, so a patch sending anything else
    for a merged list is refused rather than silently replacing it. `retain_keys` records
    upstream's "retainKeys" strategy; the `$retainKeys` directive itself is honoured wherever a
    patch sends it, as upstream does."""

    merge: bool = True
    merge_key: str | None = None
    retain_keys: bool = False
    is_list: bool = True


def by(key: str, *, retain_keys: bool = False) -> Strategy:
    """A list of maps merged on `key` (`patchStrategy:"merge" patchMergeKey:"<key>"`)."""
    return Strategy(merge_key=key, retain_keys=retain_keys)


MERGE_SET = Strategy()  # list of primitives with patchStrategy merge (finalizers, podCIDRs)
REPLACE = Strategy(merge=False)  # what an untagged list already gets; named where it helps a reader
RETAIN_KEYS = Strategy(retain_keys=True, is_list=False)  # a map (Deployment spec.strategy)


def _under(prefix: str, table: Mapping[str, Strategy]) -> dict[str, Strategy]:
    return {f"{prefix}.{path}": strategy for path, strategy in table.items()}


_OBJECT_META: dict[str, Strategy] = {
    "ownerReferences": by("uid"),
    "finalizers": MERGE_SET,
}

_CONTAINER: dict[str, Strategy] = {
    "ports": by("containerPort"),
    "env": by("name"),
    "volumeMounts": by("mountPath"),
    "volumeDevices": by("devicePath"),
}

_POD_SPEC: dict[str, Strategy] = {
    "containers": by("name"),
    **_under("containers[]", _CONTAINER),
    "initContainers": by("name"),
    **_under("initContainers[]", _CONTAINER),
    "ephemeralContainers": by("name"),
    **_under("ephemeralContainers[]", _CONTAINER),
    "volumes": by("name", retain_keys=True),
    "imagePullSecrets": by("name"),
    "hostAliases": by("ip"),
    "topologySpreadConstraints": by("topologyKey"),
    "schedulingGates": by("name"),
    "resourceClaims": by("name", retain_keys=True),
    "tolerations": REPLACE,
}

_POD_TEMPLATE: dict[str, Strategy] = {**_under("metadata", _OBJECT_META), **_under("spec", _POD_SPEC)}

_CONDITIONS: dict[str, Strategy] = {"status.conditions": by("type")}

_WORKLOAD: dict[str, Strategy] = {**_under("spec.template", _POD_TEMPLATE), **_CONDITIONS}

# Kind -> dotted field path ("[]" = each list item) -> strategy. `metadata` is added for every kind
# (including kinds missing here) by `_table`. A new kind needs one entry here; a kind with no
# tagged fields needs none.
FIELD_STRATEGIES: dict[str, dict[str, Strategy]] = {
    "Pod": {
        **_under("spec", _POD_SPEC),
        **_CONDITIONS,
        "status.podIPs": by("ip"),
        "status.hostIPs": by("ip"),
    },
    "ReplicationController": _WORKLOAD,
    "ReplicaSet": _WORKLOAD,
    "Deployment": {**_WORKLOAD, "spec.strategy": RETAIN_KEYS},
    "DaemonSet": {**_WORKLOAD, "spec.updateStrategy": RETAIN_KEYS},
    "PodDisruptionBudget": _CONDITIONS,
    "Job": _WORKLOAD,
    "CronJob": _under("spec.jobTemplate.spec.template", _POD_TEMPLATE),
    "Service": {"spec.ports": by("port"), **_CONDITIONS},
    "Node": {
        "spec.podCIDRs": MERGE_SET,
        **_CONDITIONS,
        "status.addresses": by("type"),
    },
    "Namespace": {**_CONDITIONS},
    "Endpoints": {"subsets": REPLACE},
    "EndpointSlice": {"endpoints": REPLACE, "ports": REPLACE},
    "ServiceAccount": {"secrets": by("name")},
    "StatefulSet": _WORKLOAD,
    "PersistentVolumeClaim": _CONDITIONS,
}

_METADATA_TABLE = _under("metadata", _OBJECT_META)


def _table(kind: str) -> dict[str, Strategy]:
    return {**_METADATA_TABLE, **FIELD_STRATEGIES.get(kind, {})}


def field_strategies(kind: str) -> dict[str, Strategy]:
    """Every tagged field of `kind`, metadata included (dotted path -> strategy): what the OpenAPI
    schema's x-kubernetes-patch-* annotations say (nbkube/apiserver/openapi.py), and the list types
    server-side apply derives (nbkube/api/managedfields.py)."""
    return _table(kind)


# -- strategic merge patch: the merge ---------------------------------------------------------------

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _item_where(where: str, item: Any, key: str | None, index: int) -> str:
    if key is not None and isinstance(item, dict) and key in item:
        return f"{where}[{key}={item[key]}]"
    return f"{where}[{index}]"


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else f"a {type(value).__name__}"


class _Merger:
    """One strategic merge: the kind's table plus the recursive merge over (document, patch).

    Both arguments have been deep-copied by the caller, so the merge mutates them freely."""

    def __init__(self, kind: str):
        self.table = _table(kind)

    def strategy(self, spath: str) -> Strategy | None:
        return self.table.get(spath)

    # maps

    def merge_map(
        self, orig: dict[str, Any], patch: dict[str, Any], spath: str, where: str
    ) -> dict[str, Any]:
        directive = patch.get(_PATCH)
        if directive is not None or _PATCH in patch:
            if directive == "replace":
                return self.fresh_map({k: v for k, v in patch.items() if k != _PATCH}, spath, where)
            if directive == "delete":
                # upstream leaves an empty map in place of the deleted one
                return {}
            if directive != "merge":
                raise PatchError(
                    f"strategic merge patch: {where or '<root>'}: unknown $patch directive {directive!r} "
                    "(want replace, merge or delete)",
                    where,
                )
            patch = {k: v for k, v in patch.items() if k != _PATCH}
        self.check_keys(patch, where)

        if _RETAIN_KEYS in patch:
            self.retain_keys(orig, patch, where)

        # lists with a $setElementOrder are merged (and ordered) first, as upstream does
        done: set[str] = set()
        for key in [k for k in patch if k.startswith(_SET_ORDER)]:
            field = key[len(_SET_ORDER) :]
            self.set_order(orig, patch, field, patch[key], _join(spath, field), _join(where, field))
            if patch.get(field) is not None:
                done.add(field)

        for key, value in patch.items():
            if key.startswith("$") or key in done:
                continue
            fspath, fwhere = _join(spath, key), _join(where, key)
            if value is None:
                orig.pop(key, None)
            elif key not in orig:
                orig[key] = self.fresh(value, fspath, fwhere)
            else:
                orig[key] = self.merge_value(orig[key], value, fspath, fwhere)

        for key in [k for k in patch if k.startswith(_DELETE_FROM)]:
            field = key[len(_DELETE_FROM) :]
            self.delete_from_primitive_list(orig, field, patch[key], _join(where, field))
        return orig

    def check_keys(self, patch: dict[str, Any], where: str) -> None:
        for key in patch:
            if not key.startswith("$") or key == _RETAIN_KEYS:
                continue
            for prefix in (_SET_ORDER, _DELETE_FROM):
                if key.startswith(prefix):
                    if len(key) == len(prefix):
                        raise PatchError(
                            f"strategic merge patch: {where or '<root>'}: {key!r} names no field", where
                        )
                    if not isinstance(patch[key], list):
                        raise PatchError(
                            f"strategic merge patch: {_join(where, key)}: must be a list, "
                            f"not {_type_name(patch[key])}",
                            _join(where, key),
                        )
                    break
            else:
                raise PatchError(
                    f"strategic merge patch: {_join(where, key)}: unknown directive {key!r}", where
                )

    def retain_keys(self, orig: dict[str, Any], patch: dict[str, Any], where: str) -> None:
        """Clear every key of `orig` not listed; the patch itself may only set listed keys."""
        keep = patch[_RETAIN_KEYS]
        if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
            raise PatchError(
                f"strategic merge patch: {_join(where, _RETAIN_KEYS)}: must be a list of field names", where
            )
        for key, value in patch.items():
            if value is None or key.startswith("$"):
                continue
            if key not in keep:
                raise PatchError(
                    f"strategic merge patch: {_join(where, key)}: set by the patch but missing from $retainKeys",
                    _join(where, key),
                )
        for key in [k for k in orig if k not in keep]:
            del orig[key]

    def merge_value(self, orig: Any, patch: Any, spath: str, where: str) -> Any:
        """Merge the patch value of a field the document has (a null was handled by the caller)."""
        strategy = self.strategy(spath)
        if strategy is not None and strategy.merge and strategy.is_list:
            if not isinstance(patch, list):
                raise PatchError(
                    f"strategic merge patch: {where}: expected a list, got {_type_name(patch)}", where
                )
            # a stored non-list is not what the field should hold: merge as over an empty list
            return self.merge_list(orig if isinstance(orig, list) else [], patch, strategy, spath, where)
        if isinstance(orig, dict) and isinstance(patch, dict) and (strategy is None or strategy.merge):
            return self.merge_map(orig, patch, spath, where)
        # lists without a merge strategy, scalars, changed types, replace-strategy maps: the patch wins
        return self.fresh(patch, spath, where)

    def fresh(self, value: Any, spath: str, where: str) -> Any:
        """A patch value for a field the document lacks: its directives still apply (to nothing)."""
        strategy = self.strategy(spath)
        if strategy is not None and strategy.merge and strategy.is_list:
            if not isinstance(value, list):
                raise PatchError(
                    f"strategic merge patch: {where}: expected a list, got {_type_name(value)}", where
                )
            return self.merge_list([], value, strategy, spath, where)
        if isinstance(value, dict):
            return self.fresh_map(value, spath, where)
        return value

    def fresh_map(self, value: dict[str, Any], spath: str, where: str) -> dict[str, Any]:
        strategy = self.strategy(spath)
        if strategy is not None and not strategy.merge:
            return value
        return self.merge_map({}, value, spath, where)

    # lists

    def merge_list(
        self, orig: list[Any], patch: list[Any], strategy: Strategy, spath: str, where: str
    ) -> list[Any]:
        if not orig and not patch:
            return orig
        maps = self.element_kind(orig, patch, where)
        if not maps:
            merged: list[Any] = []
            for item in (*orig, *patch):
                if not any(json_equal(item, seen) for seen in merged):
                    merged.append(item)
            return self.order(merged, patch, orig, None)
        key = strategy.merge_key
        if key is None:
            raise PatchError(
                f"strategic merge patch: {where}: cannot merge a list of maps without a merge key", where
            )
        self.require_key(orig, key, where, "document")
        plain: list[dict[str, Any]] = []
        replace = False
        for index, item in enumerate(patch):
            if not isinstance(item, dict):
                raise PatchError(
                    f"strategic merge patch: {where}[{index}]: expected a map, got {_type_name(item)}", where
                )
            directive = item.get(_PATCH)
            if _PATCH not in item:
                plain.append(item)
            elif directive == "delete":
                if key not in item:
                    raise PatchError(
                        f"strategic merge patch: {where}[{index}]: $patch delete without the merge key {key!r}",
                        where,
                    )
                orig = [o for o in orig if o.get(key) != item[key]]
            elif directive == "replace":
                replace = True
            else:
                raise PatchError(
                    f"strategic merge patch: {where}[{index}]: unknown $patch directive {directive!r} in a list "
                    "(want delete or replace)",
                    where,
                )
        ispath = f"{spath}[]"
        if replace:
            # `$patch: replace` as a list item: the other items are the whole new list
            return [
                self.merge_map({}, item, ispath, _item_where(where, item, key, i))
                for i, item in enumerate(plain)
            ]
        self.require_key(plain, key, where, "patch")
        merged = list(orig)
        for index, item in enumerate(plain):
            iwhere = _item_where(where, item, key, index)
            at = next((i for i, o in enumerate(merged) if o.get(key) == item[key]), None)
            if at is None:
                merged.append(self.merge_map({}, item, ispath, iwhere))
            else:
                merged[at] = self.merge_map(merged[at], item, ispath, iwhere)
        return self.order(merged, plain, orig, key)

    def element_kind(self, orig: list[Any], patch: list[Any], where: str) -> bool:
        """True for a list of maps, False for primitives; mixtures and nested lists are refused."""
        kinds = set()
        for item in (*orig, *patch):
            if isinstance(item, list):
                raise PatchError(f"strategic merge patch: {where}: lists of lists cannot be merged", where)
            kinds.add(isinstance(item, dict))
        if len(kinds) > 1:
            raise PatchError(f"strategic merge patch: {where}: list mixes maps and primitive values", where)
        return kinds == {True}

    @staticmethod
    def require_key(items: list[Any], key: str, where: str, side: str) -> None:
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise PatchError(
                    f"strategic merge patch: {where}[{index}]: expected a map, got {_type_name(item)}", where
                )
            if key not in item:
                raise PatchError(
                    f"strategic merge patch: {where}[{index}]: {side} item has no merge key {key!r}", where
                )

    @staticmethod
    def order(
        merged: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None
    ) -> list[Any]:
        """Upstream's ordering of a merged list: the items the patch names, in the patch's order,
        interleaved with the server-only items, which keep their stored order; a server-only item
        goes before a patch item only when both were stored and it was stored first."""

        def ident(item: Any) -> Any:
            return item.get(key) if key is not None else item

        patch_ids = [ident(i) for i in patch_order]
        server_ids = [ident(i) for i in server_order]

        def rank(ids: list[Any], item: Any) -> int:
            try:
                return ids.index(ident(item))
            except ValueError:
                return -1

        from_patch = [i for i in merged if rank(patch_ids, i) >= 0]
        server_only = [i for i in merged if rank(patch_ids, i) < 0]
        from_patch.sort(key=lambda i: rank(patch_ids, i))
        server_only.sort(key=lambda i: (rank(server_ids, i) < 0, rank(server_ids, i)))
        out: list[Any] = []
        left, right = 0, 0
        while left < len(server_only) or right < len(from_patch):
            if right >= len(from_patch):
                out.append(server_only[left])
                left += 1
            elif left >= len(server_only):
                out.append(from_patch[right])
                right += 1
            else:
                li, ri = rank(server_ids, server_only[left]), rank(server_ids, from_patch[right])
                if li >= 0 and ri >= 0 and li < ri:
                    out.append(server_only[left])
                    left += 1
                else:
                    out.append(from_patch[right])
                    right += 1
        return out

    def set_order(
        self,
        orig: dict[str, Any],
        patch: dict[str, Any],
        field: str,
        order: list[Any],
        spath: str,
        where: str,
    ) -> None:
        """`$setElementOrder/<field>`: merge the field's list (if patched) and put it in that order."""
        strategy = self.strategy(spath)
        if strategy is None or not strategy.merge:
            raise PatchError(
                f"strategic merge patch: {where}: $setElementOrder on a list without merge strategy", where
            )
        key = strategy.merge_key
        if key is not None:
            self.require_key(order, key, where, "$setElementOrder")
        elif any(isinstance(i, dict | list) for i in order):
            raise PatchError(
                f"strategic merge patch: {where}: $setElementOrder of a primitive list holds non-primitives",
                where,
            )
        has_orig, has_patch = field in orig, field in patch and patch[field] is not None
        if has_orig and not isinstance(orig[field], list):
            raise PatchError(
                f"strategic merge patch: {where}: expected a list, got {_type_name(orig[field])}", where
            )
        if has_patch and not isinstance(patch[field], list):
            raise PatchError(
                f"strategic merge patch: {where}: expected a list, got {_type_name(patch[field])}", where
            )
        stored: list[Any] = list(orig[field]) if has_orig else []
        if has_patch:
            # merge first so a missing merge key is reported as such, not as an order mismatch
            merged = self.merge_list(stored, patch[field], strategy, spath, where)
            self.check_order_agrees(patch[field], order, key, where)
        elif has_orig:
            merged = stored
        else:
            return
        orig[field] = self.order(merged, order, stored, key)

    @staticmethod
    def check_order_agrees(items: list[Any], order: list[Any], key: str | None, where: str) -> None:
        """The patch's own items must appear in `$setElementOrder`, in the same relative order."""

        def ident(item: Any) -> Any:
            return item.get(key) if key is not None and isinstance(item, dict) else item

        wanted = [ident(o) for o in order]
        pos = 0
        for item in items:
            if isinstance(item, dict) and _PATCH in item:
                continue
            try:
                pos = wanted.index(ident(item), pos) + 1
            except ValueError:
                raise PatchError(
                    f"strategic merge patch: {where}: the patch's items are not in the order (or not among) "
                    "$setElementOrder",
                    where,
                ) from None

    @staticmethod
    def delete_from_primitive_list(orig: dict[str, Any], field: str, values: list[Any], where: str) -> None:
        current = orig.get(field)
        if current is None:
            return
        if not isinstance(current, list):
            raise PatchError(
                f"strategic merge patch: {where}: $deleteFromPrimitiveList on {_type_name(current)}", where
            )
        orig[field] = [v for v in current if v not in values]


def strategic_merge_patch(doc: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of `kind` and return the new object.

    `doc` and `patch` are not modified. Lists are merged per `FIELD_STRATEGIES` (unknown kinds
    and fields: maps merge, lists replace). Raises `PatchError` (a BadRequest) naming the path for
    a malformed patch: an unknown directive, a list item without its merge key, a non-list where
    a merge list or directive list is expected, `$retainKeys` not covering the patch, items out of
    `$setElementOrder`'s order."""
    if not isinstance(doc, dict):
        raise PatchError(f"strategic merge patch: the document must be a map, not {_type_name(doc)}")
    if not isinstance(patch, dict):
        raise PatchError(f"strategic merge patch: the patch must be a map, not {_type_name(patch)}")
    return _Merger(kind).merge_map(_copy(doc), _copy(patch), "", "")
