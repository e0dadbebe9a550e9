"""Manifests in and out: multi-document YAML or JSON to validated, defaulted objects, and back.

`load_manifests` is what `nbkube apply -f`, the notebook magics and the tests use to read user files;
it checks every document before returning any, so a caller that writes only after it returns never
half-applies a file. Errors name the file, the document (1-based, counting every `---` document)
and the field: `rc.yaml doc 1: spec.template.spec.containers[0].image: required`.
`dump_yaml`/`dump_json` print objects or lists the way kubectl does (`-o yaml`, `-o json`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import Any

import yaml

from nbkube.api import kinds, wirejson
from nbkube.api.defaults import apply_defaults
from nbkube.api.fieldcheck import join, show, type_name
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.meta import Obj
from nbkube.api.validation import validate
from nbkube.errors import BadRequest, Invalid, ManifestError, TooLarge

__all__ = [
    "API_MAX_OBJECT_BYTES",
    "MAX_MANIFEST_BYTES",
    "load_manifests",
    "load_file",
    "dump_yaml",
    "dump_json",
    "object_size",
]

# etcd's default request limit (1.5 MiB); the store enforces the same number as MAX_VALUE_BYTES,
# but api/ sits below store/ and may not import it, so the value is repeated here (a test pins both).
API_MAX_OBJECT_BYTES = 3 * 512 * 1024
# The most of a manifest file (or standard input) read at all: many objects, each within the limit
# above, fit; a runaway generator or a link to a device does not.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """Safe loading with two Kubernetes-compatible changes: timestamps stay strings (objects must be
    JSON), and a key given twice in one mapping is an error instead of silently keeping the last."""


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in result
        except TypeError as exc:  # e.g. a list used as a key
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from exc
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


_SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def object_size(obj: Any, limit: int | None = None) -> int:
    """Bytes the object takes as compact JSON, the form the store keeps.

    With `limit`, counting stops as soon as the size exceeds it: YAML aliases can make a small file
    expand into an enormous object ("billion laughs"), which must be refused, not serialized.
    """
    if limit is None:
        return len(_SIZE_ENCODER.encode(obj).encode())
    total = 0
    for chunk in _SIZE_ENCODER.iterencode(obj):
        total += len(chunk.encode())
        if limit is not None and total > limit:
            break
    return total


def _yaml_error(source: str, doc: int, exc: yaml.YAMLError, fmt: str) -> ManifestError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = f"{problem} ({context})" if context else problem
    return ManifestError(f"{source} doc {doc}: malformed {fmt}{where}: {detail}")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey()
    return result


def _json_documents(text: str, source: str) -> list[Any] | None:
    """A stream of JSON values (kubectl accepts concatenated objects), or None if not pure JSON.

    None also for JSON with a key given twice: the YAML parser then reports it with its line.
    """
    decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
    docs: list[Any] = []
    pos = 0
    try:
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                return docs
            value, pos = decoder.raw_decode(text, pos)
            docs.append(value)
    except (json.JSONDecodeError, _DuplicateKey):
        return None
    except RecursionError:
        raise _too_deep(source, len(docs) + 1, "JSON") from None


def _documents(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """(1-based document index, parsed document) for every document in the stream."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        docs = _json_documents(text, source)
        if docs is not None:
            yield from enumerate(docs, start=1)
            return
    # parse the whole stream first: a syntax error anywhere is reported before any field error
    parsed: list[Any] = []
    fmt = "JSON" if stripped.startswith(("{", "[")) else "YAML"
    try:
        for doc in yaml.load_all(text, Loader=_Loader):  # _Loader derives from SafeLoader
            parsed.append(doc)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, len(parsed) + 1, exc, fmt) from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise _too_deep(source, len(parsed) + 1, fmt) from None
    yield from enumerate(parsed, start=1)


def _too_deep(source: str, doc: int, fmt: str) -> ManifestError:
    return ManifestError(f"{source} doc {doc}: malformed {fmt}: nested more than {wirejson.MAX_DEPTH} levels")


def _is_list(doc: dict[str, Any]) -> bool:
    kind = doc.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and kind not in {k.kind for k in kinds.KINDS}


def _flatten(source: str, index: int, doc: Any) -> Iterator[tuple[str, Any]]:
    """(label, object) pairs: `doc 2` for a plain document, `doc 2 items[0]` for List members."""
    label = f"doc {index}"
    if isinstance(doc, dict) and _is_list(doc):
        items = doc.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            raise ManifestError(
                f"{source} {label}: items: must be a list, got {type_name(items)} {show(items)}"
            )
        for j, item in enumerate(items):
            yield f"{label} items[{j}]", item
        return
    yield label, doc


def _check_shape(source: str, label: str, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ManifestError(
            f"{source} {label}: not a mapping: expected an object with apiVersion and kind, "
            f"got {type_name(doc)} {show(doc)}"
        )
    for key in ("apiVersion", "kind"):
        value = doc.get(key)
        if value is None or value == "":
            raise ManifestError(f"{source} {label}: {key}: required")
        if not isinstance(value, str):
            raise ManifestError(
                f"{source} {label}: {key}: must be a string, got {json.dumps(value, default=str)}"
            )
    try:
        kinds.for_manifest(doc["apiVersion"], doc["kind"])
    except BadRequest as exc:
        raise ManifestError(f"{source} {label}: {exc}") from None
    return doc


def _json_key(key: Any, where: str) -> str:
    if isinstance(key, str):
        return key
    # as Kubernetes' YAML-to-JSON step: scalar keys become their text (`80: x` -> "80")
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    raise ManifestError(f"{where}: keys must be strings, got {type_name(key)}")


def _json_tree(value: Any, source: str, label: str, path: str) -> Any:
    """A deep copy of `value` as plain JSON types, or ManifestError naming the offending field."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            where = f"{source} {label}: {path or '(top level)'}"
            key = _json_key(k, where)
            if key in out:
                raise ManifestError(f"{where}: duplicate key {key!r}")
            out[key] = _json_tree(v, source, label, join(path, key))
        return out
    if isinstance(value, list):
        return [_json_tree(v, source, label, join(path, i)) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer() and abs(value) < _GO_PLAIN_FLOAT_LIMIT:
        # kubectl turns a manifest into JSON through Go's float64, which prints 3.0 as `3`: the API
        # server then reads an integer, so `replicas: 3.0` in a file works upstream. 3.5 stays a
        # float (and an integer field refuses it), as does 1e21 and up, which Go prints with an
        # exponent that no integer field accepts.
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ManifestError(
        f"{source} {label}: {path}: unsupported value of type {type(value).__name__} "
        "(YAML tags such as !!binary or !!set have no JSON form)"
    )


def _meta_name(obj: Obj) -> str:
    """metadata.name for a message, whatever shape a bad manifest gave metadata."""
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


_GO_PLAIN_FLOAT_LIMIT = 1e21


def _identity(obj: Obj) -> tuple[str, str, str] | None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        return None  # generateName objects get distinct names at create time
    return obj["kind"], meta.get("namespace") or "", name


def load_manifests(text: str, source: str = "<stdin>") -> list[Obj]:
    """Every object in `text`, defaulted and validated, in file order.

    Raises ManifestError (unreadable YAML, not a mapping, unknown kind, duplicates), Invalid (field
    errors) or TooLarge, each message starting with "{source} doc {i}"; nothing is returned unless
    every document is good.
    """
    objects: list[Obj] = []
    seen: dict[tuple[str, str, str], str] = {}
    may_alias = "*" in text
    for index, doc in _documents(text, source):
        if doc is None:
            continue
        if wirejson.depth(doc, wirejson.MAX_DEPTH) > wirejson.MAX_DEPTH:
            raise _too_deep(source, index, "YAML")
        for label, item in _flatten(source, index, doc):
            obj = _check_shape(source, label, item)
            # without aliases the object is no bigger than the text: measure it in one C-speed call
            size = object_size(obj, API_MAX_OBJECT_BYTES if may_alias else None)
            if size > API_MAX_OBJECT_BYTES:
                raise TooLarge(
                    f"{source} {label}: object is too large: more than {API_MAX_OBJECT_BYTES} bytes "
                    "(1.5 MiB) serialized"
                )
            # a fresh JSON-shaped copy: YAML anchors would otherwise share one dict between places
            # (and defaulting edit both at once), and YAML-only values must not reach the store
            obj = _json_tree(obj, source, label, "")
            # unknown fields first: a typo (`replica: 5`) must not be hidden by defaulting
            errors = unknown_fields(obj)
            if not errors:
                apply_defaults(obj)
                errors = validate(obj)
            if errors:
                raise Invalid(
                    errors,
                    source=f"{source} {label}",
                    kind=obj["kind"],
                    name=_meta_name(obj),
                )
            ident = _identity(obj)
            if ident is not None:
                if ident in seen:
                    ns = f"{ident[1]}/" if ident[1] else ""
                    raise ManifestError(
                        f"{source} {label}: duplicate object {ident[0]} {ns}{ident[2]} (already defined in {seen[ident]})"
                    )
                seen[ident] = label
            objects.append(obj)
    return objects


def _read_bounded(path: str) -> str:
    """The text of a manifest file, reading at most MAX_MANIFEST_BYTES + 1 bytes.

    A path may name something endless (a link to /dev/zero, a FIFO fed by a runaway process): such
    files are still read (`-f <(generate)` works, as with kubectl), but never past the limit.
    """
    with open(path, "rb") as f:
        if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
            raise IsADirectoryError(path)
        data = f.read(MAX_MANIFEST_BYTES + 1)
    return _decode_bounded(data, path)


def _decode_bounded(data: bytes, source: str) -> str:
    if len(data) > MAX_MANIFEST_BYTES:
        raise TooLarge(f"cannot read {source}: larger than {MAX_MANIFEST_BYTES // 2**20} MiB")
    return data.decode("utf-8-sig")  # -sig: tolerate a BOM from Windows editors


def load_file(path: str) -> list[Obj]:
    """`load_manifests` on a file's text; "-" reads standard input."""
    if path == "-":
        try:
            raw = getattr(sys.stdin, "buffer", None)  # a notebook swaps in a text-only StringIO
            data = raw.read(MAX_MANIFEST_BYTES + 1) if raw is not None else sys.stdin.read().encode()
            text = _decode_bounded(data, "<stdin>")
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read <stdin>: {exc}") from None
        return load_manifests(text, "<stdin>")
    try:
        text = _read_bounded(path)
    except IsADirectoryError:
        raise ManifestError(f"cannot read {path}: is a directory") from None
    except FileNotFoundError:
        raise ManifestError(f"cannot read {path}: no such file") from None
    except PermissionError:
        raise ManifestError(f"cannot read {path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"cannot read {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from None
    return load_manifests(text, path)


def _as_document(obj_or_list: Obj | list[Obj]) -> Any:
    if isinstance(obj_or_list, list):
        return {"apiVersion": "v1", "kind": "List", "items": obj_or_list}
    return obj_or_list


class _Dumper(yaml.SafeDumper):
    """Block style; strings that YAML 1.1 would read back as something else get quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        # objects that share sub-dicts (informer caches, copies) must print in full, never as &1/*1
        return True


# strings that YAML 1.2 readers (kubectl, Go) take for numbers although PyYAML's YAML 1.1 does not
_NUMBER_LIKE = re.compile(
    r"^([-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$"
)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        style: str | None = "|"
    elif _NUMBER_LIKE.match(value):
        style = "'"
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(obj_or_list: Obj | list[Obj]) -> str:
    """YAML as kubectl prints it: block style, keys in the object's own order."""
    return yaml.dump(
        _as_document(obj_or_list),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )


def dump_json(obj_or_list: Obj | list[Obj]) -> str:
    """Indented JSON; a list becomes `{"apiVersion": "v1", "kind": "List", "items": [...]}`."""
    return json.dumps(_as_document(obj_or_list), indent=4, ensure_ascii=False) + "\n"
