"""Validation of the networking kinds: Service, Endpoints and NetworkPolicy.

Port ranges follow Kubernetes: service and target ports 1-65535, node ports 30000-32767 and only on
NodePort/LoadBalancer services, cluster IPs a literal IP, "None" (headless) or "" (to be allocated).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join
from nbkube.api.selectors import label_selector_errors
from nbkube.api.validate_common import (
    PROTOCOLS,
    check_cidr,
    check_int_or_name_port,
    check_ip,
    check_labels,
    check_name,
    check_port,
    check_protocol,
)

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767
POLICY_TYPES = ("Ingress", "Egress")


def validate_service(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    stype = e.one_of(spec, "type", "spec", SERVICE_TYPES) or "ClusterIP"
    cluster_ip = e.string(spec, "clusterIP", "spec")
    if cluster_ip and cluster_ip != "None":
        check_ip(e, spec, "clusterIP", "spec")
    for i, ip in enumerate(e.strings(spec, "clusterIPs", "spec")):
        if ip != "None" and not _is_ip(ip):
            e.invalid(
                f"spec.clusterIPs[{i}]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            )
    headless = cluster_ip == "None"
    if stype == "ExternalName":
        ext = e.string(spec, "externalName", "spec", required=True)
        if ext:
            check_name(e, "spec.externalName", ext.rstrip("."), naming.check_dns1123_subdomain)
        if cluster_ip and not headless:
            e.forbidden("spec.clusterIP", "may not be set for ExternalName services")
    ports = e.maps(spec, "ports", "spec")
    if spec.get("ports") in (None, []) and stype != "ExternalName" and not headless:
        e.required("spec.ports")
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for pp, port in ports:
        name = e.string(port, "name", pp)
        if name:
            if check_name(e, join(pp, "name"), name, naming.check_dns1123_label) and name in names:
                e.duplicate(join(pp, "name"), name)
            names.add(name)
        elif len(ports) > 1:
            e.add(join(pp, "name"), "required when a service has more than one port")
        number = check_port(e, port, "port", pp, required=True)
        check_protocol(e, port, pp)
        protocol = port.get("protocol") or "TCP"
        if number is not None and isinstance(protocol, str):
            if (number, protocol) in seen:
                e.duplicate(pp, {"port": number, "protocol": protocol})
            seen.add((number, protocol))
        check_int_or_name_port(e, port, "targetPort", pp)
        node_port = e.int32(port, "nodePort", pp)
        if node_port is not None and node_port != 0:
            np_path = join(pp, "nodePort")
            if stype not in ("NodePort", "LoadBalancer"):
                e.forbidden(np_path, f"may not be used when `type` is '{stype}'")
            elif not NODE_PORT_MIN <= node_port <= NODE_PORT_MAX:
                e.invalid(
                    np_path,
                    node_port,
                    f"provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}",
                )
            elif isinstance(protocol, str):
                if (node_port, protocol) in node_ports:
                    e.duplicate(np_path, node_port)
                node_ports.add((node_port, protocol))
    check_labels(e, spec, "selector", "spec")
    e.one_of(spec, "sessionAffinity", "spec", ("None", "ClientIP"))
    policy = e.one_of(spec, "externalTrafficPolicy", "spec", ("Cluster", "Local"))
    if policy and stype not in ("NodePort", "LoadBalancer"):
        e.forbidden(
            "spec.externalTrafficPolicy", "may only be set when `type` is 'NodePort' or 'LoadBalancer'"
        )
    e.one_of(spec, "internalTrafficPolicy", "spec", ("Cluster", "Local"))
    for i, ip in enumerate(e.strings(spec, "externalIPs", "spec")):
        if not _is_ip(ip):
            e.invalid(f"spec.externalIPs[{i}]", ip, "must be a valid IP address")
    check_ip(e, spec, "loadBalancerIP", "spec")
    e.boolean(spec, "publishNotReadyAddresses", "spec")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_endpoints(e: Errors, obj: dict[str, Any]) -> None:
    for sp, subset in e.maps(obj, "subsets", ""):
        for key in ("addresses", "notReadyAddresses"):
            for ap, addr in e.maps(subset, key, sp):
                check_ip(e, addr, "ip", ap, required=True)
                node = e.string(addr, "nodeName", ap)
                if node:
                    check_name(e, join(ap, "nodeName"), node, naming.check_dns1123_subdomain)
                e.string(addr, "hostname", ap)
                e.mapping(addr, "targetRef", ap)
        ports = e.maps(subset, "ports", sp)
        for pp, port in ports:
            name = e.string(port, "name", pp)
            if name:
                check_name(e, join(pp, "name"), name, naming.check_dns1123_label)
            elif len(ports) > 1:
                e.add(join(pp, "name"), "required when a subset has more than one port")
            check_port(e, port, "port", pp, required=True)
            check_protocol(e, port, pp)


def validate_network_policy(e: Errors, obj: dict[str, Any]) -> None:
    spec = e.mapping(obj, "spec", "", required=True)
    if spec is None:
        return
    if spec.get("podSelector") is None:
        e.add("spec.podSelector", "required (use {} to select every pod in the namespace)")
    else:
        e.extend(label_selector_errors(spec["podSelector"], "spec.podSelector"))
    types = e.strings(spec, "policyTypes", "spec")
    seen: set[str] = set()
    for i, t in enumerate(types):
        if t not in POLICY_TYPES:
            e.unsupported(f"spec.policyTypes[{i}]", t, POLICY_TYPES)
        elif t in seen:
            e.duplicate(f"spec.policyTypes[{i}]", t)
        seen.add(t)
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for rp, rule in e.maps(spec, direction, "spec"):
            for pp, peer in e.maps(rule, peers_key, rp):
                _check_peer(e, peer, pp)
            for pp, port in e.maps(rule, "ports", rp):
                e.one_of(port, "protocol", pp, PROTOCOLS)
                check_int_or_name_port(e, port, "port", pp)
                end = e.int32(port, "endPort", pp)
                if end is not None:
                    start = port.get("port")
                    if not isinstance(start, int) or isinstance(start, bool):
                        e.invalid(
                            join(pp, "endPort"), end, "may not be specified when `port` is not a number"
                        )
                    elif end < start:
                        e.invalid(join(pp, "endPort"), end, "must be greater than or equal to `port`")


def _check_peer(e: Errors, peer: dict[str, Any], path: str) -> None:
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if not present:
        e.add(path, "must specify a peer (podSelector, namespaceSelector or ipBlock)")
    elif "ipBlock" in present and len(present) > 1:
        e.forbidden(path, "may not specify both ipBlock and another peer")
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            e.extend(label_selector_errors(peer[key], join(path, key)))
    block = e.mapping(peer, "ipBlock", path)
    if block is None:
        return
    bp = join(path, "ipBlock")
    check_cidr(e, block, "cidr", bp, required=True)
    cidr = block.get("cidr")
    try:
        outer = ipaddress.ip_network(cidr, strict=False) if isinstance(cidr, str) else None
    except ValueError:
        outer = None
    for i, ex in enumerate(e.strings(block, "except", bp)):
        ep = f"{bp}.except[{i}]"
        try:
            inner = ipaddress.ip_network(ex, strict=False)
        except ValueError:
            e.invalid(ep, ex, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
            continue
        if outer is not None and (inner.version != outer.version or not inner.subnet_of(outer)):  # type: ignore[arg-type]
            e.invalid(ep, ex, "must be a strict subset of `cidr`")
