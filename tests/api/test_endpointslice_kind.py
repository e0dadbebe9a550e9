"""The EndpointSlice kind: served under discovery.k8s.io/v1, defaulted, validated, printed."""

from __future__ import annotations

import copy
from typing import Any

from nbkube.api import kinds
from nbkube.api.defaults import apply_defaults
from nbkube.api.discovery import endpoint_slice_row
from nbkube.api.fieldnames import unknown_fields
from nbkube.api.validation import validate

SLICE: dict[str, Any] = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "web-abcde", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [
        {"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "hostname": "web-0"},
        {"addresses": ["10.244.2.5"], "conditions": {"ready": False, "terminating": True}},
        {"addresses": ["10.244.2.6"]},
        {"addresses": ["10.244.2.7"]},
    ],
    "ports": [{"name": "http", "port": 8000}],
}


def _errors(**changes: Any) -> list[str]:
    obj = copy.deepcopy(SLICE)
    obj.update(changes)
    return [str(e) for e in validate(obj)]


def test_kind_table_and_defaults() -> None:
    info = kinds.lookup("endpointslices")
    assert (info.kind, info.group, info.version, info.namespaced) == ("EndpointSlice", "discovery.k8s.io", "v1", True)
    obj = copy.deepcopy(SLICE)
    apply_defaults(obj)
    assert obj["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP"}]
    assert validate(obj) == [] and unknown_fields(obj) == []


def test_validation_names_the_field() -> None:
    assert _errors(addressType="IPv5")[0].startswith("addressType: Unsupported value")
    assert _errors(endpoints=[{"addresses": ["not-an-ip"]}]) == [
        'endpoints[0].addresses[0]: Invalid value: "not-an-ip": must be a valid IPv4 address'
    ]
    assert _errors(endpoints=[{"addresses": ["fd00::1"]}])[0].startswith("endpoints[0].addresses[0]")
    assert _errors(endpoints=[{"addresses": []}]) == ["endpoints[0].addresses: required"]
    assert _errors(endpoints=[{"addresses": ["10.0.0.1"], "hostname": "Bad_Host"}])[0].startswith(
        "endpoints[0].hostname"
    )
    assert _errors(ports=[{"name": "a", "port": 1}, {"name": "a", "port": 2}]) == ['ports[1].name: Duplicate value: "a"']
    assert _errors(ports=[{"port": 70000}])[0].startswith("ports[0].port")
    assert _errors(endpoints=[{"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}}])[0].startswith(
        "endpoints[0].conditions.ready"
    )


def test_printer_row() -> None:
    assert endpoint_slice_row(SLICE) == ("IPv4", "8000", "10.244.1.5,10.244.2.5,10.244.2.6 + 1 more...")
    assert endpoint_slice_row({"addressType": "IPv4"}) == ("IPv4", "<unset>", "<none>")
