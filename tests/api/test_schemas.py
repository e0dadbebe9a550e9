"""The OpenAPI field table agrees with validation's: every kind has a schema, every field that
validation knows has a type and a description there, and the nesting (CHILDREN) is the same."""

from __future__ import annotations

import pytest

from nbkube.api import fieldnames, schemas
from nbkube.api.kinds import KINDS

_SCALARS = {"string", "int32", "int64", "boolean", "number", "byte", "time", "microtime", "quantity", "intstr", "object"}


def _base(type_: str) -> str:
    while type_.startswith(("[]", "{}")):
        type_ = type_[2:]
    return type_


def test_every_kind_has_a_schema_with_its_top_level_fields() -> None:
    for info in KINDS:
        assert schemas.KIND_SHAPES[info.kind] == info.kind
        assert set(schemas.SHAPES[info.kind].fields) == fieldnames.TOP_LEVEL[info.kind], info.kind
    assert set(schemas.KIND_SHAPES) == {i.kind for i in KINDS}


@pytest.mark.parametrize("shape", sorted(fieldnames.FIELDS))
def test_every_validated_field_has_a_schema(shape: str) -> None:
    # fails when someone adds a field to fieldnames.FIELDS (or here) without the other
    assert shape in schemas.SHAPES, f"fieldnames.FIELDS has {shape} but nbkube.api.schemas does not"
    described = set(schemas.SHAPES[shape].fields)
    assert described == fieldnames.FIELDS[shape], (
        f"{shape}: without a schema: {sorted(fieldnames.FIELDS[shape] - described)}; "
        f"not validated: {sorted(described - fieldnames.FIELDS[shape])}"
    )


def test_children_have_the_same_shape_in_both_tables() -> None:
    for (shape, field), child in fieldnames.CHILDREN.items():
        assert _base(schemas.SHAPES[shape].fields[field][0]) == child, (shape, field)


def test_every_type_resolves_and_every_field_is_described() -> None:
    for name, shape in schemas.SHAPES.items():
        assert shape.description and shape.model.startswith("io.k8s."), name
        assert set(shape.required) <= set(shape.fields), name
        assert set(shape.enums) <= set(shape.fields), name
        for field, (type_, description) in shape.fields.items():
            base = _base(type_)
            assert base in _SCALARS or base in schemas.SHAPES, f"{name}.{field}: unknown type {type_}"
            assert description.strip(), f"{name}.{field} has no description"


def test_models_are_unique() -> None:
    models = [s.model for s in schemas.SHAPES.values()]
    assert len(models) == len(set(models))
