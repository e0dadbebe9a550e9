"""A pod's `dnsPolicy` / `dnsConfig`, validated as the API server does (before any runtime sees it).

Kept apart from validate_pod.py (which calls `check_dns_config`) so the DNS rules sit in one place
with the resolv.conf they end up in (nbkube/node/runtime/dnsconf.py applies the same limits).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from nbkube.api import naming
from nbkube.api.fieldcheck import Errors, join

__all__ = ["check_dns_config", "MAX_DNS_NAMESERVERS", "MAX_DNS_SEARCHES", "MAX_DNS_SEARCH_CHARS"]

MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCHES = 32
MAX_DNS_SEARCH_CHARS = 2048


def check_dns_config(e: Errors, spec: dict[str, Any], path: str) -> None:
    cfg = spec.get("dnsConfig")
    where = join(path, "dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if not isinstance(cfg, dict):
            e.required(where)  # a resolv.conf with nothing in it resolves nothing
            return
        if not cfg.get("nameservers"):
            e.add(join(where, "nameservers"), "Required value: must provide at least one DNS nameserver "
                  "when dnsPolicy is set to None")  # fmt: skip
    if not isinstance(cfg, dict):
        return
    servers = e.strings(cfg, "nameservers", where)
    if len(servers) > MAX_DNS_NAMESERVERS:
        e.invalid(join(where, "nameservers"), servers, f"must not have more than {MAX_DNS_NAMESERVERS} nameservers")
    for i, ns in enumerate(servers):
        try:
            ipaddress.ip_address(ns)
        except ValueError:
            e.invalid(join(join(where, "nameservers"), i), ns, "must be a valid IP address")
    searches = e.strings(cfg, "searches", where)
    if len(searches) > MAX_DNS_SEARCHES:
        e.invalid(join(where, "searches"), searches, f"must not have more than {MAX_DNS_SEARCHES} search paths")
    if len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        e.invalid(join(where, "searches"), searches, f"must not have more than {MAX_DNS_SEARCH_CHARS} characters")
    for i, s in enumerate(searches):
        name = s[:-1] if s.endswith(".") else s  # a rooted name is fine
        if name:
            e.extend_messages(join(join(where, "searches"), i), s, naming.check_dns1123_subdomain(name))
    for op, opt in e.maps(cfg, "options", where):
        e.string(opt, "name", op, required=True)
        e.string(opt, "value", op)
