"""dnsPolicy None needs a dnsConfig with a nameserver; dnsConfig's limits as the API server's."""

from __future__ import annotations

import copy
from typing import Any

from nbkube.api.validation import validate

BASE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"containers": [{"name": "c", "image": "x"}]},
}


def _errors(**spec: Any) -> list[str]:
    pod = copy.deepcopy(BASE)
    pod["spec"].update(spec)
    return [str(e) for e in validate(pod)]


def test_dns_policy_none_needs_a_nameserver() -> None:
    assert _errors(dnsPolicy="None") == ["spec.dnsConfig: required"]
    assert _errors(dnsPolicy="None", dnsConfig={"searches": ["a"]}) == [
        "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver "
        "when dnsPolicy is set to None"
    ]
    assert _errors(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["a.example."]}) == []


def test_dns_config_limits() -> None:
    errs = _errors(
        dnsConfig={
            "nameservers": ["192.0.2.1", "x", "192.0.2.3", "192.0.2.4"],
            "searches": ["Bad_Name"] + [f"s{i}.example" for i in range(32)],
            "options": [{"value": "1"}],
        }
    )
    fields = [e.split(":")[0] for e in errs]
    assert fields == [
        "spec.dnsConfig.nameservers",
        "spec.dnsConfig.nameservers[1]",
        "spec.dnsConfig.searches",
        "spec.dnsConfig.searches[0]",
        "spec.dnsConfig.options[0].name",
    ]
    assert "more than 3 nameservers" in errs[0] and "more than 32 search paths" in errs[2]
