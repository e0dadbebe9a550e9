"""Checks shared by several kinds: object metadata, labels, ports, protocols, IPs and quantities.

Called by the per-kind validators (`validate_pod`, `validate_workloads`, `validate_network`,
`validate_other`); `validation` is the public entry point.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, is_int, join
from nbkube.api.quantity import QuantityError, parse_decimal

NameCheck = Callable[[str], list[str]]
PROTOCOLS = ("TCP", "UDP", "SCTP")
TOTAL_ANNOTATION_BYTES = 256 * 1024


def check_labels(e: Errors, parent: dict[str, Any], key: str, path: str) -> dict[str, str]:
    """A labels-style map (labels, selector, nodeSelector): qualified-name keys, label values."""
    labels = e.string_map(parent, key, path)
    if not labels:  # the usual case on the write path: skip building the path
        return labels
    full = join(path, key)
    for k, v in labels.items():
        e.extend_messages(full, k, naming.check_qualified_name(k))
        e.extend_messages(f"{full}[{k}]", v, naming.check_label_value(v))
    return labels


def check_annotations(e: Errors, meta: dict[str, Any], path: str) -> None:
    annotations = e.string_map(meta, "annotations", path)
    if not annotations:
        return
    full = join(path, "annotations")
    total = 0
    for k, v in annotations.items():
        e.extend_messages(full, k, naming.check_qualified_name(k.lower()))
        total += len(k) + len(v)
    if total > TOTAL_ANNOTATION_BYTES:
        e.add(full, f"Too long: must have at most {TOTAL_ANNOTATION_BYTES} bytes")


def check_name(e: Errors, path: str, value: str, check: NameCheck) -> bool:
    return e.extend_messages(path, value, check(value))


def _mask_trailing_dash(value: str) -> str:
    # generateName "web-" is fine: the registry appends random characters after the dash
    return value[:-1] + "a" if len(value) > 1 and value.endswith("-") else value


def check_object_meta(e: Errors, obj: dict[str, Any], name_check: NameCheck, namespaced: bool) -> None:
    """metadata of a top-level object: name (or generateName), namespace, labels, annotations..."""
    path = "metadata"
    meta = e.mapping(obj, "metadata", "", required=True)
    if meta is None:
        return
    name = e.string(meta, "name", path)
    generate = e.string(meta, "generateName", path)
    if name:
        check_name(e, join(path, "name"), name, name_check)
    elif generate:
        check_name(e, join(path, "generateName"), generate, lambda v: name_check(_mask_trailing_dash(v)))
    elif "name" not in meta or meta.get("name") in (None, ""):
        e.add(join(path, "name"), "required (or set metadata.generateName)")
    ns = e.string(meta, "namespace", path)
    if namespaced:
        if ns:
            check_name(e, join(path, "namespace"), ns, naming.check_dns1123_label)
    elif ns:
        e.forbidden(join(path, "namespace"), "not allowed on this type (it is cluster-scoped)")
    check_meta_fields(e, meta, path)


# The metadata fields check_meta_fields reads besides labels and annotations.
_SERVER_SET_AND_LIST_FIELDS = frozenset(
    {
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
    }
)


def check_meta_fields(e: Errors, meta: dict[str, Any], path: str) -> dict[str, str]:
    """The parts of metadata that top-level objects and pod templates share; returns the labels."""
    labels = check_labels(e, meta, "labels", path)
    check_annotations(e, meta, path)
    if meta.keys().isdisjoint(_SERVER_SET_AND_LIST_FIELDS):
        # A new object (what every create validates) has none of these, and an absent optional
        # field has nothing to check: skip the eight getters.
        return labels
    e.optional_strings(meta, ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"), path)
    e.integer(meta, "generation", path, minimum=0)
    e.integer(meta, "deletionGracePeriodSeconds", path, minimum=0)
    for i, f in enumerate(e.strings(meta, "finalizers", path)):
        e.extend_messages(join(join(path, "finalizers"), i), f, naming.check_qualified_name(f))
    for p, ref in e.maps(meta, "ownerReferences", path):
        for key in ("apiVersion", "kind", "name", "uid"):
            e.string(ref, key, p, required=True)
        e.boolean(ref, "controller", p)
        e.boolean(ref, "blockOwnerDeletion", p)
    return labels


def check_template_meta(e: Errors, template: dict[str, Any], path: str) -> dict[str, str]:
    """metadata of a pod template; returns its labels (for matching against the selector)."""
    meta = e.mapping(template, "metadata", path)
    if meta is None:
        return {}
    return check_meta_fields(e, meta, join(path, "metadata"))


def check_port(e: Errors, parent: dict[str, Any], key: str, path: str, required: bool = False) -> int | None:
    value = e.int32(parent, key, path, required=required)
    if value is not None and not e.extend_messages(join(path, key), value, naming.check_port_number(value)):
        return None
    return value


def check_int_or_name_port(
    e: Errors, parent: dict[str, Any], key: str, path: str, required: bool = False
) -> None:
    """A port given as a number (1-65535) or as a named container port (`http`)."""
    value = parent.get(key)
    full = join(path, key)
    if value is None:
        if required:
            e.required(full)
    elif is_int(value):
        e.extend_messages(full, value, naming.check_port_number(value))
    elif isinstance(value, str):
        # as Kubernetes: a quoted "8080" is a port *name*, and names need a letter
        e.extend_messages(full, value, naming.check_iana_svc_name(value))
    else:
        e.wrong_type(full, "an integer or a port name", value)


def check_protocol(e: Errors, parent: dict[str, Any], path: str) -> None:
    e.one_of(parent, "protocol", path, PROTOCOLS)


def check_ip(e: Errors, parent: dict[str, Any], key: str, path: str, required: bool = False) -> None:
    value = e.string(parent, key, path, required=required)
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            e.invalid(join(path, key), value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")


def check_cidr(e: Errors, parent: dict[str, Any], key: str, path: str, required: bool = False) -> None:
    value = e.string(parent, key, path, required=required)
    if value:
        try:
            ipaddress.ip_network(value, strict=False)
            if "/" not in value:
                raise ValueError(value)
        except ValueError:
            e.invalid(
                join(path, key), value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            )


def quantity_of(e: Errors, path: str, value: Any, non_negative: bool = True) -> Any:
    """The exact Decimal amount of a quantity field, or None after recording why it is invalid."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        e.wrong_type(path, "a quantity (a number or a string like 100m or 64Mi)", value)
        return None
    try:
        amount = parse_decimal(value)
    except QuantityError as exc:
        e.invalid(path, value, str(exc).split(": ", 1)[1])
        return None
    if non_negative and amount < 0:
        e.invalid(path, value, "must be greater than or equal to 0")
        return None
    return amount


def check_resource_name(e: Errors, path: str, name: Any) -> bool:
    if not isinstance(name, str):
        e.wrong_type(path, "a resource name string", name)
        return False
    return e.extend_messages(path, name, naming.check_qualified_name(name))


def check_quantity_map(e: Errors, parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """`{cpu: 100m, memory: 64Mi}` -> {name: Decimal} of the valid entries."""
    d = e.mapping(parent, key, path)
    full = join(path, key)
    out: dict[str, Any] = {}
    for name, value in (d or {}).items():
        if not check_resource_name(e, full, name):
            continue
        amount = quantity_of(e, f"{full}[{name}]", value)
        if amount is not None:
            out[name] = amount
    return out
