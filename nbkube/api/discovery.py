"""EndpointSlice (`discovery.k8s.io/v1`): validation, defaulting and the `kubectl get` row.

Kept apart from the shared tables (kinds, fieldnames, schemas, printers, validation, defaults), which
only name these functions: the slice logic lives here. Controllers write slices
(nbkube/controlplane/controllers/endpointslice.py); the node proxies and the cluster DNS read them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join
from nbkube.api.meta import Obj
from nbkube.api.validate_common import check_name, check_port, check_protocol

__all__ = [
    "ADDRESS_TYPES",
    "LABEL_SERVICE_NAME",
    "LABEL_MANAGED_BY",
    "MAX_ENDPOINTS",
    "default_endpoint_slice",
    "endpoint_slice_row",
    "validate_endpoint_slice",
]

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
MAX_ENDPOINTS = 1000  # per slice, as upstream
MAX_ADDRESSES = 100  # per endpoint
MAX_PORTS = 100


def default_endpoint_slice(obj: Obj) -> None:
    """Ports without a protocol are TCP; a port's missing name is "" (upstream's defaults)."""
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("name", "")


def _check_address(e: Errors, kind: str, value: str, path: str) -> None:
    if kind == "FQDN":
        e.extend_messages(path, value, naming.check_dns1123_subdomain(value))
        return
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        e.invalid(path, value, f"must be a valid {kind} address")
        return
    if (kind == "IPv4") != (addr.version == 4):
        e.invalid(path, value, f"must be a valid {kind} address")


def validate_endpoint_slice(e: Errors, obj: dict[str, Any]) -> None:
    kind = e.one_of(obj, "addressType", "", ADDRESS_TYPES, required=True)
    endpoints = e.maps(obj, "endpoints", "")
    if len(endpoints) > MAX_ENDPOINTS:
        e.add("endpoints", f"Too many: {len(endpoints)}: must have at most {MAX_ENDPOINTS} items")
    for ep_path, ep in endpoints:
        addresses = e.strings(ep, "addresses", ep_path)
        if not addresses:
            e.required(join(ep_path, "addresses"))
        elif len(addresses) > MAX_ADDRESSES:
            e.add(join(ep_path, "addresses"), f"Too many: must have at most {MAX_ADDRESSES} items")
        for i, addr in enumerate(addresses):
            if kind:
                _check_address(e, kind, addr, join(join(ep_path, "addresses"), i))
        cond = e.mapping(ep, "conditions", ep_path)
        for key in ("ready", "serving", "terminating"):
            if cond is not None:
                e.boolean(cond, key, join(ep_path, "conditions"))
        hostname = e.string(ep, "hostname", ep_path)
        if hostname:
            check_name(e, join(ep_path, "hostname"), hostname, naming.check_dns1123_label)
        node = e.string(ep, "nodeName", ep_path)
        if node:
            check_name(e, join(ep_path, "nodeName"), node, naming.check_dns1123_subdomain)
        e.mapping(ep, "targetRef", ep_path)
    ports = e.maps(obj, "ports", "")
    if len(ports) > MAX_PORTS:
        e.add("ports", f"Too many: {len(ports)}: must have at most {MAX_PORTS} items")
    seen: set[str] = set()
    for pp, port in ports:
        name = e.string(port, "name", pp)
        if name:
            check_name(e, join(pp, "name"), name, naming.check_dns1123_label)
        if (name or "") in seen:
            e.duplicate(join(pp, "name"), name or "")
        seen.add(name or "")
        check_port(e, port, "port", pp)
        check_protocol(e, port, pp)


def endpoint_slice_row(obj: Obj, limit: int = 3) -> tuple[str, str, str]:
    """(ADDRESSTYPE, PORTS, ENDPOINTS) as kubectl prints them."""
    ports = [str(p.get("port")) for p in obj.get("ports") or [] if isinstance(p, dict) and p.get("port")]
    if not obj.get("ports") or not ports:
        ports_text = "<unset>"
    else:
        ports_text = ",".join(ports[:limit]) + (f" + {len(ports) - limit} more..." if len(ports) > limit else "")
    addrs = [
        str(a)
        for ep in obj.get("endpoints") or []
        if isinstance(ep, dict)
        for a in ep.get("addresses") or []
    ]
    if not addrs:
        ep_text = "<none>"
    else:
        ep_text = ",".join(addrs[:limit]) + (f" + {len(addrs) - limit} more..." if len(addrs) > limit else "")
    return str(obj.get("addressType") or ""), ports_text, ep_text
