"""Label selectors: the equality and set-based forms Kubernetes uses to group objects.

Three spellings meet here: the string form users type (`-l 'app=nginx,tier in (web,api),!canary'`),
the `{matchLabels, matchExpressions}` object of ReplicaSets, Deployments and NetworkPolicies, and the
plain `{key: value}` map of ReplicationControllers and Services. All become one `Selector`, which the
registry's list/watch filtering, the informers' indexes, the controllers and validation use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nbkube.api.naming import check_label_value, check_qualified_name
from nbkube.errors import BadRequest, FieldError, Invalid

__all__ = [
    "EQUALS",
    "NOT_EQUALS",
    "IN",
    "NOT_IN",
    "EXISTS",
    "DOES_NOT_EXIST",
    "Requirement",
    "Selector",
    "parse_selector",
    "selector_from_label_selector",
    "selector_from_map",
    "selector_to_label_selector",
    "label_selector_errors",
    "EVERYTHING",
    "NOTHING",
]

EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"

# every spelling we accept (string form, matchExpressions, Python callers) -> canonical operator
_OPERATOR_ALIASES = {
    "=": EQUALS,
    "==": EQUALS,
    "!=": NOT_EQUALS,
    "in": IN,
    "In": IN,
    "notin": NOT_IN,
    "NotIn": NOT_IN,
    "exists": EXISTS,
    "Exists": EXISTS,
    "!": DOES_NOT_EXIST,
    "!exists": DOES_NOT_EXIST,
    "DoesNotExist": DOES_NOT_EXIST,
}
_EXPRESSION_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _key_problems(key: object) -> list[str]:
    if not isinstance(key, str):
        return ["must be a string"]
    return check_qualified_name(key)


def _value_problems(value: object) -> list[str]:
    if not isinstance(value, str):
        return ["must be a string"]
    return check_label_value(value)


@dataclass(frozen=True)
class Requirement:
    """One clause: `key <operator> values`. Build through `Requirement.make` to get checks."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def make(cls, key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
        op = _OPERATOR_ALIASES.get(operator)
        if op is None:
            raise BadRequest(f'unknown label selector operator "{operator}"')
        vals = tuple(values)
        for msg in _key_problems(key):
            raise BadRequest(f"invalid label key {json.dumps(key)}: {msg}")
        for v in vals:
            for msg in _value_problems(v):
                raise BadRequest(f"invalid label value {json.dumps(v)} for key {json.dumps(key)}: {msg}")
        if op in (EQUALS, NOT_EQUALS) and len(vals) != 1:
            raise BadRequest(f'operator "{op}" needs exactly one value (key "{key}")')
        if op in (IN, NOT_IN) and not vals:
            raise BadRequest(f'operator "{op}" needs at least one value (key "{key}")')
        if op in (EXISTS, DOES_NOT_EXIST) and vals:
            raise BadRequest(f'operator "{op}" takes no values (key "{key}")')
        if op in (IN, NOT_IN):
            vals = tuple(sorted(set(vals)))
        return cls(key, op, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.operator == EXISTS:
            return has
        if self.operator == DOES_NOT_EXIST:
            return not has
        if self.operator in (EQUALS, IN):
            return has and labels[self.key] in self.values
        # != and notin match objects that lack the label, as in Kubernetes
        return not has or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in (EQUALS, NOT_EQUALS):
            return f"{self.key}{self.operator}{self.values[0]}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"


class Selector:
    """A conjunction of requirements. No requirements = everything; `Selector.nothing()` = nothing."""

    __slots__ = ("requirements", "_nothing")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # sorted by key (stable) so that equal selectors print and compare equal
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = nothing

    @classmethod
    def nothing(cls) -> Selector:
        """The selector of a nil `LabelSelector`: matches no object at all."""
        return cls(nothing=True)

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        lbls = labels or {}
        return all(r.matches(lbls) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector matches everything (no requirements)."""
        return not self._nothing and not self.requirements

    def is_nothing(self) -> bool:
        return self._nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "Selector(<nothing>)" if self._nothing else f"Selector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


EVERYTHING = Selector()
NOTHING = Selector.nothing()


# --- the string form --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(?P<op>!=|==|=|!|\(|\)|,)|(?P<word>[^\s!=(),]+))")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # pragma: no cover - every non-space character starts some token
            raise BadRequest(f'invalid label selector "{text}": unexpected character at {pos}')
        tokens.append(m.group("op") or m.group("word"))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def fail(self, why: str) -> BadRequest:
        return BadRequest(f'invalid label selector "{self.text}": {why}')

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok

    def word(self, what: str) -> str:
        tok = self.take()
        if tok is None or tok in ("!=", "==", "=", "!", "(", ")", ","):
            found = "end of input" if tok is None else f'"{tok}"'
            raise self.fail(f"expected {what}, found {found}")
        return tok

    def parse(self) -> Selector:
        reqs: list[Requirement] = []
        if not self.tokens:
            return Selector()
        while True:
            reqs.append(self.requirement())
            tok = self.take()
            if tok is None:
                return Selector(reqs)
            if tok != ",":
                raise self.fail(f'expected "," between requirements, found "{tok}"')

    def requirement(self) -> Requirement:
        try:
            if self.peek() == "!":
                self.take()
                return Requirement.make(self.word("a label key after '!'"), DOES_NOT_EXIST)
            key = self.word("a label key")
            tok = self.peek()
            if tok is None or tok == ",":
                return Requirement.make(key, EXISTS)
            self.take()
            if tok in ("=", "==", "!="):
                nxt = self.peek()
                value = "" if nxt is None or nxt == "," else self.word(f'a value after "{key}{tok}"')
                return Requirement.make(key, tok, [value])
            if tok in ("in", "notin"):
                return Requirement.make(key, tok, self.value_set(key, tok))
            raise self.fail(f'expected an operator (=, ==, !=, in, notin) after "{key}", found "{tok}"')
        except BadRequest as exc:
            if str(exc).startswith("invalid label selector"):
                raise
            raise self.fail(str(exc)) from None

    def value_set(self, key: str, op: str) -> list[str]:
        if self.take() != "(":
            raise self.fail(f'expected "(" after "{key} {op}"')
        values: list[str] = []
        if self.peek() == ")":
            self.take()
            raise self.fail(f'"{key} {op} ()" needs at least one value')
        while True:
            nxt = self.peek()
            values.append("" if nxt in (",", ")") else self.word("a value"))
            tok = self.take()
            if tok == ")":
                return values
            if tok != ",":
                found = "end of input" if tok is None else f'"{tok}"'
                raise self.fail(f'expected "," or ")" in the value list of "{key}", found {found}')


def parse_selector(text: str | None) -> Selector:
    """Parse kubectl's `-l` syntax; "" or None is the everything-selector. Raises BadRequest."""
    if text is None:
        return Selector()
    if not isinstance(text, str):
        raise BadRequest(f"invalid label selector {text!r}: must be a string")
    return _Parser(text).parse()


# --- the object forms -------------------------------------------------------------------------


def selector_from_map(d: Mapping[str, str] | None) -> Selector:
    """An RC/Service `selector: {app: nginx}`: every pair must match. Raises Invalid on bad labels."""
    errs = _map_errors(d, "")
    if errs:
        raise Invalid(errs)
    return Selector(Requirement(k, EQUALS, (v,)) for k, v in (d or {}).items())


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path and not part.startswith("[") else f"{path}{part}"


def _map_errors(d: object, path: str) -> list[FieldError]:
    if d is None:
        return []
    if not isinstance(d, Mapping):
        return [
            FieldError(path, f"must be a mapping of label keys to values, got {json.dumps(d, default=str)}")
        ]
    errs: list[FieldError] = []
    for k, v in d.items():
        errs.extend(
            FieldError(path, f"Invalid value: {json.dumps(k, default=str)}: {m}") for m in _key_problems(k)
        )
        errs.extend(
            FieldError(
                f"{path}[{k}]" if path else str(k), f"Invalid value: {json.dumps(v, default=str)}: {m}"
            )
            for m in _value_problems(v)
        )
    return errs


def label_selector_errors(d: object, path: str) -> list[FieldError]:
    """Problems with a `{matchLabels, matchExpressions}` object, each with its field path under `path`."""
    if d is None:
        return []
    if not isinstance(d, Mapping):
        return [FieldError(path, "must be a mapping with matchLabels and/or matchExpressions")]
    errs = _map_errors(d.get("matchLabels"), _join(path, "matchLabels"))
    unknown = sorted(set(d) - {"matchLabels", "matchExpressions"})
    errs.extend(FieldError(_join(path, str(k)), "unknown field") for k in unknown)
    exprs = d.get("matchExpressions")
    if exprs is None:
        return errs
    ep = _join(path, "matchExpressions")
    if not isinstance(exprs, list):
        return [*errs, FieldError(ep, "must be a list")]
    for i, e in enumerate(exprs):
        p = f"{ep}[{i}]"
        if not isinstance(e, Mapping):
            errs.append(FieldError(p, "must be a mapping with key, operator and values"))
            continue
        key = e.get("key")
        if key is None or key == "":
            errs.append(FieldError(f"{p}.key", "required"))
        else:
            errs.extend(
                FieldError(f"{p}.key", f"Invalid value: {json.dumps(key, default=str)}: {m}")
                for m in _key_problems(key)
            )
        op = e.get("operator")
        values = e.get("values")
        if op is None or op == "":
            errs.append(FieldError(f"{p}.operator", "required"))
        elif op not in _EXPRESSION_OPERATORS:
            supported = ", ".join(f'"{o}"' for o in _EXPRESSION_OPERATORS)
            errs.append(
                FieldError(
                    f"{p}.operator",
                    f"Unsupported value: {json.dumps(op, default=str)}: supported values: {supported}",
                )
            )
        if values is not None and not isinstance(values, list):
            errs.append(FieldError(f"{p}.values", "must be a list"))
            continue
        vals = values or []
        for j, v in enumerate(vals):
            errs.extend(
                FieldError(f"{p}.values[{j}]", f"Invalid value: {json.dumps(v, default=str)}: {m}")
                for m in _value_problems(v)
            )
        if op in ("In", "NotIn") and not vals:
            errs.append(FieldError(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        if op in ("Exists", "DoesNotExist") and vals:
            errs.append(
                FieldError(
                    f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
            )
    return errs


def selector_from_label_selector(d: Mapping[str, Any] | None) -> Selector:
    """A `{matchLabels, matchExpressions}` object; None gives the nothing-selector, `{}` everything.

    Raises Invalid (with paths relative to the selector) when the object is malformed.
    """
    if d is None:
        return Selector.nothing()
    errs = label_selector_errors(d, "")
    if errs:
        raise Invalid(errs)
    reqs = [Requirement(k, EQUALS, (v,)) for k, v in (d.get("matchLabels") or {}).items()]
    for e in d.get("matchExpressions") or []:
        vals = e.get("values") or []
        op = _OPERATOR_ALIASES[e["operator"]]
        reqs.append(Requirement(e["key"], op, tuple(sorted(set(vals))) if op in (IN, NOT_IN) else ()))
    return Selector(reqs)


def selector_to_label_selector(sel: Selector) -> dict[str, Any]:
    """The `{matchLabels, matchExpressions}` object that selects the same labels as `sel`."""
    match_labels: dict[str, str] = {}
    exprs: list[dict[str, Any]] = []
    ops = {IN: "In", NOT_IN: "NotIn", EXISTS: "Exists", DOES_NOT_EXIST: "DoesNotExist"}
    for r in sel.requirements:
        if r.operator == EQUALS and r.key not in match_labels:
            match_labels[r.key] = r.values[0]
        elif r.operator in (EQUALS, NOT_EQUALS):
            # key!=v matches exactly what `key notin (v)` matches, absent labels included
            exprs.append(
                {
                    "key": r.key,
                    "operator": "In" if r.operator == EQUALS else "NotIn",
                    "values": list(r.values),
                }
            )
        elif r.operator in (EXISTS, DOES_NOT_EXIST):
            exprs.append({"key": r.key, "operator": ops[r.operator]})
        else:
            exprs.append({"key": r.key, "operator": ops[r.operator], "values": list(r.values)})
    out: dict[str, Any] = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if exprs:
        out["matchExpressions"] = exprs
    return out
