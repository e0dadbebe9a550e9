"""Validation of the remaining kinds: Namespace, Node, ConfigMap, Secret, ServiceAccount,
ResourceQuota, LimitRange, Event and Lease. Each function takes the error collector and the whole object.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join
from nbkube.api.podsecurity import check_namespace_labels
from nbkube.api.validate_common import check_cidr, check_quantity_map, check_resource_name, quantity_of
from nbkube.api.validate_pod import TAINT_EFFECTS

MAX_DATA_BYTES = 1024 * 1024
LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
EVENT_TYPES = ("Normal", "Warning")


# the string fields of an ObjectReference but its name (checked as a name where one is required)
_REFERENCE_STRINGS = ("kind", "namespace", "uid", "apiVersion", "resourceVersion", "fieldPath")
_INVOLVED_STRINGS = ("name", *_REFERENCE_STRINGS)
_EVENT_STRINGS = (
    "reason",
    "message",
    "action",
    "reportingComponent",
    "reportingInstance",
    "firstTimestamp",
    "lastTimestamp",
    "eventTime",
)


def validate_namespace(e: Errors, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if isinstance(labels, dict) and labels:
        check_namespace_labels(e, labels)  # pod-security.kubernetes.io/* levels and versions
    spec = e.mapping(obj, "spec", "")
    if spec is not None:
        e.strings(spec, "finalizers", "spec")
    status = e.mapping(obj, "status", "")
    if status is not None:
        e.one_of(status, "phase", "status", ("Active", "Terminating"))


def validate_node(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "")
    if spec is None:
        return
    check_cidr(e, spec, "podCIDR", "spec")
    for i, cidr in enumerate(e.strings(spec, "podCIDRs", "spec")):
        _cidr_item(e, cidr, f"spec.podCIDRs[{i}]")
    e.boolean(spec, "unschedulable", "spec")
    e.string(spec, "providerID", "spec")
    seen: set[tuple[str, str]] = set()
    for tp, taint in e.maps(spec, "taints", "spec"):
        key = e.string(taint, "key", tp, required=True)
        if key:
            e.extend_messages(join(tp, "key"), key, naming.check_qualified_name(key))
        value = e.string(taint, "value", tp)
        if value:
            e.extend_messages(join(tp, "value"), value, naming.check_label_value(value))
        effect = e.one_of(taint, "effect", tp, TAINT_EFFECTS, required=True)
        e.string(taint, "timeAdded", tp)
        if key and effect:
            if (key, effect) in seen:
                e.duplicate(tp, {"key": key, "effect": effect})
            seen.add((key, effect))


def _cidr_item(e: Errors, value: str, path: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
        ok = "/" in value
    except ValueError:
        ok = False
    if not ok:
        e.invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")


def _check_keys(e: Errors, data: dict[str, str], path: str, seen: set[str]) -> None:
    for key in data:
        if e.extend_messages(path, key, naming.check_config_key(key)) and key in seen:
            e.duplicate(path, key)
        seen.add(key)


def validate_config_map(e: Errors, obj: dict[str, Any]) -> None:
    data = e.string_map(obj, "data", "")
    seen: set[str] = set()
    _check_keys(e, data, "data", seen)
    binary = e.string_map(obj, "binaryData", "")
    _check_keys(e, binary, "binaryData", seen)
    for k, v in binary.items():
        _check_base64(e, f"binaryData[{k}]", v)
    e.boolean(obj, "immutable", "")
    size = sum(len(k) + len(v) for k, v in data.items()) + sum(
        len(k) + len(v) * 3 // 4 for k, v in binary.items()
    )
    if size > MAX_DATA_BYTES:
        e.add("data", f"Too long: a ConfigMap may hold at most {MAX_DATA_BYTES} bytes of data")


def _check_base64(e: Errors, path: str, value: str) -> int:
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        e.invalid(path, "<secret data>", "must be valid base64 (put plain text under stringData)")
        return 0


def validate_secret(e: Errors, obj: dict[str, Any]) -> None:
    data = e.string_map(obj, "data", "")
    _check_keys(e, data, "data", set())
    size = 0
    for k, v in data.items():
        size += _check_base64(e, f"data[{k}]", v)
    string_data = e.string_map(obj, "stringData", "")
    _check_keys(e, string_data, "stringData", set())
    size += sum(len(v.encode()) for v in string_data.values())
    e.string(obj, "type", "")
    e.boolean(obj, "immutable", "")
    if size > MAX_DATA_BYTES:
        e.add("data", f"Too long: a Secret may hold at most {MAX_DATA_BYTES} bytes of data")


def validate_service_account(e: Errors, obj: dict[str, Any]) -> None:
    # Secrets listed here are references only: nbkube mints tokens through TokenRequest and never
    # mounts them, as upstream since 1.24; the names are still checked so a typo shows.
    for path, ref in e.maps(obj, "secrets", ""):
        e.optional_strings(ref, _REFERENCE_STRINGS, path)
        secret = e.string(ref, "name", path)
        if secret:
            e.extend_messages(join(path, "name"), secret, naming.check_dns1123_subdomain(secret))
    for path, ref in e.maps(obj, "imagePullSecrets", ""):
        secret = e.string(ref, "name", path)
        if secret:
            e.extend_messages(join(path, "name"), secret, naming.check_dns1123_subdomain(secret))
    e.boolean(obj, "automountServiceAccountToken", "")


def validate_resource_quota(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "")
    if spec is not None:
        check_quantity_map(e, spec, "hard", "spec")
        e.strings(spec, "scopes", "spec")
    status = e.mapping(obj, "status", "")
    if status is not None:
        check_quantity_map(e, status, "hard", "status")
        check_quantity_map(e, status, "used", "status")


def validate_limit_range(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    for lp, item in e.maps(spec, "limits", "spec", required=True):
        ltype = e.one_of(item, "type", lp, LIMIT_TYPES, required=True)
        bounds = {
            key: check_quantity_map(e, item, key, lp) for key in ("max", "min", "default", "defaultRequest")
        }
        ratio = e.mapping(item, "maxLimitRequestRatio", lp)
        for name, value in (ratio or {}).items():
            rp = f"{join(lp, 'maxLimitRequestRatio')}[{name}]"
            if check_resource_name(e, join(lp, "maxLimitRequestRatio"), name):
                amount = quantity_of(e, rp, value)
                if amount is not None and amount < 1:
                    e.invalid(rp, value, "ratio must be greater than or equal to 1")
        if ltype != "Container":
            for key in ("default", "defaultRequest"):
                if bounds[key]:
                    e.forbidden(
                        join(lp, key), f"may not be set when `type` is '{ltype}' (only for Container)"
                    )
        _check_limit_order(e, item, bounds, lp)


def _check_limit_order(e: Errors, item: dict[str, Any], b: dict[str, dict[str, Any]], path: str) -> None:
    # min <= defaultRequest <= default <= max, per resource, wherever both sides are given
    order = (
        ("min", "max"),
        ("min", "defaultRequest"),
        ("defaultRequest", "default"),
        ("default", "max"),
        ("min", "default"),
        ("defaultRequest", "max"),
    )
    reported: set[tuple[str, str]] = set()
    for low, high in order:
        for name, lo in b[low].items():
            hi = b[high].get(name)
            if hi is not None and lo > hi and (high, name) not in reported:
                reported.add((high, name))
                e.invalid(
                    f"{join(path, high)}[{name}]",
                    item[high][name],
                    f"{low} value {item[low][name]} is greater than {high} value {item[high][name]}",
                )


def validate_event(e: Errors, obj: dict[str, Any]) -> None:
    involved = e.mapping(obj, "involvedObject", "", required=True)
    if involved is not None:
        e.optional_strings(involved, _INVOLVED_STRINGS, "involvedObject")
    e.optional_strings(obj, _EVENT_STRINGS, "")
    e.one_of(obj, "type", "", EVENT_TYPES)
    e.int32(obj, "count", "", minimum=0)
    source = e.mapping(obj, "source", "")
    if source is not None:
        e.string(source, "component", "source")
        e.string(source, "host", "source")


def validate_lease(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "")
    if spec is None:
        return
    e.string(spec, "holderIdentity", "spec")
    e.int32(spec, "leaseDurationSeconds", "spec", minimum=1)
    e.int32(spec, "leaseTransitions", "spec", minimum=0)
    e.string(spec, "acquireTime", "spec")
    e.string(spec, "renewTime", "spec")


def check_event_name(value: str) -> list[str]:
    return naming.check_path_segment(value)


__all__ = [
    "validate_namespace",
    "validate_node",
    "validate_config_map",
    "validate_secret",
    "validate_service_account",
    "validate_resource_quota",
    "validate_limit_range",
    "validate_event",
    "validate_lease",
    "check_event_name",
]
