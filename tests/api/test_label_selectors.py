"""Label selectors: the string form, the object forms, matching and errors."""

from __future__ import annotations

import pytest

from nbkube.api.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    NOT_EQUALS,
    NOT_IN,
    Requirement,
    Selector,
    parse_selector,
    selector_from_label_selector,
    selector_from_map,
    selector_to_label_selector,
)
from nbkube.errors import BadRequest, Invalid

FULL = "app=nginx,tier in (web,api),!canary,env!=prod,x,ver notin (1,2)"


def test_parse_full_example_into_requirements() -> None:
    sel = parse_selector(FULL)
    assert sel.requirements == (
        Requirement("app", EQUALS, ("nginx",)),
        Requirement("canary", DOES_NOT_EXIST),
        Requirement("env", NOT_EQUALS, ("prod",)),
        Requirement("tier", IN, ("api", "web")),
        Requirement("ver", NOT_IN, ("1", "2")),
        Requirement("x", EXISTS),
    )
    assert str(sel) == "app=nginx,!canary,env!=prod,tier in (api,web),ver notin (1,2),x"
    assert parse_selector(str(sel)) == sel


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"app": "nginx", "tier": "web", "x": ""}, True),
        ({"app": "nginx", "tier": "api", "x": "1", "env": "dev", "ver": "3"}, True),
        ({"app": "nginx", "tier": "web"}, False),  # x missing
        ({"app": "nginx", "tier": "db", "x": "1"}, False),
        ({"app": "nginx", "tier": "web", "x": "1", "canary": "true"}, False),
        ({"app": "nginx", "tier": "web", "x": "1", "env": "prod"}, False),
        ({"app": "nginx", "tier": "web", "x": "1", "ver": "2"}, False),
        ({"app": "apache", "tier": "web", "x": "1"}, False),
    ],
)
def test_matches(labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(FULL).matches(labels) is expected


def test_not_equals_and_notin_match_objects_without_the_label() -> None:
    assert parse_selector("env!=prod").matches({})
    assert parse_selector("ver notin (1)").matches({"other": "x"})
    assert not parse_selector("env=prod").matches({})


def test_whitespace_double_equals_and_empty_values() -> None:
    sel = parse_selector("  app == nginx ,  tier in ( web , api ) ")
    assert str(sel) == "app=nginx,tier in (api,web)"
    assert parse_selector("a=").matches({"a": ""})
    assert not parse_selector("a=").matches({"a": "b"})
    assert parse_selector("a in (,x)").matches({"a": ""})


def test_empty_selector_matches_everything() -> None:
    for text in ("", "   ", None):
        sel = parse_selector(text)
        assert sel.empty()
        assert sel.matches({}) and sel.matches({"a": "b"})
        assert str(sel) == ""
    assert not parse_selector("a").empty()


def test_prefixed_keys() -> None:
    sel = parse_selector("app.kubernetes.io/name=web,!example.com/skip")
    assert sel.matches({"app.kubernetes.io/name": "web"})
    assert not sel.matches({"app.kubernetes.io/name": "web", "example.com/skip": "1"})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("app=", None),
        ("a in (", 'invalid label selector "a in (": expected a value, found end of input'),
        ("a in ()", 'invalid label selector "a in ()": "a in ()" needs at least one value'),
        ("a in b", 'invalid label selector "a in b": expected "(" after "a in"'),
        ("a in (b c)", 'expected "," or ")" in the value list of "a", found "c"'),
        ("=b", 'invalid label selector "=b": expected a label key, found "="'),
        ("a,", 'invalid label selector "a,": expected a label key, found end of input'),
        ("a b", 'expected an operator (=, ==, !=, in, notin) after "a", found "b"'),
        ("a=b=c", 'expected "," between requirements, found "="'),
        ("!", "expected a label key after '!', found end of input"),
        ("a=b c", 'expected "," between requirements, found "c"'),
        ("a=-bad", 'invalid label value "-bad" for key "a"'),
        ("bad key!", 'expected an operator (=, ==, !=, in, notin) after "bad", found "key"'),
        ("-a=b", 'invalid label key "-a"'),
        ("a=" + "v" * 64, "must be no more than 63 characters"),
    ],
)
def test_syntax_errors_are_bad_requests(text: str, why: str | None) -> None:
    if why is None:
        parse_selector(text)
        return
    with pytest.raises(BadRequest) as info:
        parse_selector(text)
    assert str(info.value).startswith(f'invalid label selector "{text}": ')
    assert why in str(info.value)


def test_selector_from_map() -> None:
    sel = selector_from_map({"app": "nginx", "tier": "web"})
    assert str(sel) == "app=nginx,tier=web"
    assert sel.matches({"app": "nginx", "tier": "web", "extra": "1"})
    assert not sel.matches({"app": "nginx"})
    assert selector_from_map({}).empty()
    with pytest.raises(Invalid, match=r'^app: Invalid value: "not ok"'):
        selector_from_map({"app": "not ok"})


def test_selector_from_label_selector() -> None:
    sel = selector_from_label_selector(
        {
            "matchLabels": {"app": "nginx"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "x", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
    )
    assert str(sel) == "app=nginx,!canary,env notin (prod),tier in (api,web),x"
    assert sel.matches({"app": "nginx", "tier": "api", "x": "1"})
    assert not sel.matches({"app": "nginx", "tier": "api", "x": "1", "canary": "y"})
    assert selector_from_label_selector({}).empty()
    nothing = selector_from_label_selector(None)
    assert not nothing.matches({}) and not nothing.empty()


def test_label_selector_errors_name_the_field() -> None:
    with pytest.raises(Invalid) as info:
        selector_from_label_selector(
            {
                "matchLabels": {"app": "a b"},
                "matchExpressions": [
                    {"key": "tier", "operator": "Within", "values": ["x"]},
                    {"key": "env", "operator": "In"},
                    {"key": "x", "operator": "Exists", "values": ["y"]},
                    {"operator": "Exists"},
                    "tier=web",
                ],
            }
        )
    messages = [str(e) for e in info.value.errors]
    assert messages == [
        'matchLabels[app]: Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyValue', or 'my_value', or '12345')",
        'matchExpressions[0].operator: Unsupported value: "Within": supported values: "In", "NotIn", "Exists", "DoesNotExist"',
        "matchExpressions[1].values: must be specified when `operator` is 'In' or 'NotIn'",
        "matchExpressions[2].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        "matchExpressions[3].key: required",
        "matchExpressions[4]: must be a mapping with key, operator and values",
    ]


def test_to_label_selector_round_trips_semantics() -> None:
    sel = parse_selector(FULL)
    obj = selector_to_label_selector(sel)
    assert obj["matchLabels"] == {"app": "nginx"}
    back = selector_from_label_selector(obj)
    samples = [
        {"app": "nginx", "tier": "web", "x": ""},
        {"app": "nginx", "tier": "web", "x": "", "env": "prod"},
        {"app": "nginx", "tier": "db", "x": ""},
        {},
    ]
    assert [back.matches(s) for s in samples] == [sel.matches(s) for s in samples]


def test_requirement_make_normalizes_operators_and_checks_values() -> None:
    assert Requirement.make("a", "==", ["b"]) == Requirement("a", EQUALS, ("b",))
    assert Requirement.make("a", "DoesNotExist") == Requirement("a", DOES_NOT_EXIST)
    assert Requirement.make("a", "!exists").operator == DOES_NOT_EXIST
    with pytest.raises(BadRequest, match="needs exactly one value"):
        Requirement.make("a", "=", ["b", "c"])
    with pytest.raises(BadRequest, match="takes no values"):
        Requirement.make("a", "exists", ["b"])
    with pytest.raises(BadRequest, match='unknown label selector operator "gt"'):
        Requirement.make("a", "gt", ["1"])


def test_selectors_are_hashable_and_comparable() -> None:
    assert {parse_selector("b=1,a=2"), parse_selector("a=2,b=1")} == {parse_selector("a=2,b=1")}
    assert Selector.nothing() != Selector()
