"""Quantities and int-or-percent values, as Kubernetes reads and rounds them."""

from __future__ import annotations

import pytest

from nbkube.api.intstr import resolve_int_or_percent
from nbkube.api.quantity import (
    QuantityError,
    format_cpu,
    format_memory,
    parse_cpu,
    parse_memory,
    parse_quantity,
)
from nbkube.errors import BadRequest


@pytest.mark.parametrize(
    ("q", "millis"),
    [
        ("100m", 100),
        ("0.5", 500),
        (1, 1000),
        (0.25, 250),
        ("2", 2000),
        ("1.5", 1500),
        ("0.1", 100),
        ("1u", 1),
        ("1e-3", 1),
    ],
)
def test_parse_cpu(q: object, millis: int) -> None:
    assert parse_cpu(q) == millis


@pytest.mark.parametrize(
    ("q", "num_bytes"),
    [
        ("64Mi", 64 * 2**20),
        ("1G", 10**9),
        ("1e3", 1000),
        ("100", 100),
        (100, 100),
        ("1.5Gi", 3 * 2**29),
        ("128974848", 128974848),
        ("129M", 129_000_000),
        ("123Ki", 123 * 1024),
        ("1k", 1000),
        ("500m", 1),  # rounded up to whole bytes
    ],
)
def test_parse_memory(q: object, num_bytes: int) -> None:
    assert parse_memory(q) == num_bytes


def test_parse_quantity_float() -> None:
    assert parse_quantity("1.5") == 1.5
    assert parse_quantity("-2k") == -2000.0


@pytest.mark.parametrize(
    "q", ["", "abc", "1x", "1.2.3", "Mi", " 1", "1 Mi", "1KB", True, None, [1], float("nan")]
)
def test_invalid_quantities(q: object) -> None:
    with pytest.raises(QuantityError) as info:
        parse_memory(q)
    assert isinstance(info.value, BadRequest) and isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"invalid quantity {q!r}: must be a number with an optional suffix")


def test_format_helpers() -> None:
    assert format_cpu(2000) == "2"
    assert format_cpu(250) == "250m"
    assert format_memory(64 * 2**20) == "64Mi"
    assert format_memory(2**30) == "1Gi"
    assert format_memory(1000) == "1000"
    assert format_memory(0) == "0"
    assert parse_memory(format_memory(3 * 2**29)) == 3 * 2**29


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 4, True, 1),
        ("25%", 4, False, 1),
        ("0%", 10, True, 0),
        ("100%", 3, False, 3),
        (2, 10, True, 2),
        (None, 10, True, 0),
        ("33%", 1, True, 1),
        ("33%", 1, False, 0),
    ],
)
def test_resolve_int_or_percent(value: int | str | None, total: int, round_up: bool, expected: int) -> None:
    assert resolve_int_or_percent(value, total, round_up) == expected


@pytest.mark.parametrize("value", ["25", "x%", "-5%", True, 1.5])
def test_resolve_int_or_percent_rejects_bad_values(value: object) -> None:
    with pytest.raises(ValueError, match="must be an integer or a percentage"):
        resolve_int_or_percent(value, 10, True)  # type: ignore[arg-type]


def test_a_quantity_text_is_parsed_once_and_a_bad_one_is_refused_every_time() -> None:
    from nbkube.api.quantity import _parse_text, parse_decimal

    _parse_text.cache_clear()
    assert parse_decimal("16Mi") == parse_decimal("16Mi") == 16 * 2**20
    assert _parse_text.cache_info().hits >= 1
    for _ in range(2):
        with pytest.raises(BadRequest):
            parse_decimal("16 Mi")
