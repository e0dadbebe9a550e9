"""Seeded fuzzing: any field of a valid object replaced by a value of the wrong type must give
clean FieldErrors from validate()/validate_update() and never crash apply_defaults()."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import yaml

from nbkube.api.defaults import apply_defaults, preserve_allocated
from nbkube.api.serialization import load_manifests
from nbkube.api.validation import validate, validate_update
from nbkube.errors import FieldError, NbkubeError

DATA = Path(__file__).parent / "data"
JUNK: list[Any] = [None, "", "x", "-1", 0, -5, 70000, 1.5, True, [], [1, "a"], {}, {"a": [None]}, {"": 1}]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def test_every_field_with_every_junk_value() -> None:
    texts = [(DATA / name).read_text() for name in ("rc.yaml", "service.yaml", "all_kinds.yaml")]
    docs = [d for t in texts for d in yaml.safe_load_all(t)]
    checked = 0
    for raw in docs:
        good = load_manifests(yaml.safe_dump(raw))[0]
        for path in _paths(raw):
            if path[0] in ("apiVersion", "kind"):
                continue
            for junk in JUNK:
                obj = copy.deepcopy(raw)
                _replace(obj, path, copy.deepcopy(junk))
                apply_defaults(obj)
                errors = validate(obj)
                assert all(isinstance(e, FieldError) for e in errors)
                assert len(set(errors)) == len(errors), errors  # each problem reported once
                preserve_allocated(copy.deepcopy(obj), good)
                assert all(isinstance(e, FieldError) for e in validate_update(obj, good))
                assert all(isinstance(e, FieldError) for e in validate_update(good, obj))
                checked += 1
    assert checked > 3000


def test_mangled_manifest_text_gives_only_clean_errors() -> None:
    text = "---\n".join((DATA / name).read_text() for name in ("rc.yaml", "service.yaml", "all_kinds.yaml"))
    rng = random.Random(42)
    alphabet = [
        "",
        " ",
        "  ",
        "\n",
        ":",
        "-",
        "[",
        "]",
        "{",
        "}",
        "*",
        "&a",
        "'",
        '"',
        "#",
        "\t",
        "x",
        "0",
        "!!",
    ]
    outcomes = set()
    for _ in range(300):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(chars))
            chars[pos] = rng.choice(alphabet)
        try:
            load_manifests("".join(chars), "m.yaml")
            outcomes.add("ok")
        except NbkubeError as exc:
            assert str(exc).startswith("m.yaml doc "), str(exc)
            outcomes.add(type(exc).__name__)
    assert {"ok", "Invalid", "ManifestError"} <= outcomes
