"""`pods/log`: a container's output, fetched from the node agent that runs the pod.

As the Kubernetes API server proxies `kubectl logs` to the kubelet, this finds the pod's node, reads
the agent's endpoint from the Node's `nbkube.io/agent-endpoint` annotation and says which agent URL
to relay (the HTTP layer streams it). The request carries the cluster's agent credential (see
nbkube/node/agentclient.py), as kube-apiserver presents its kubelet client certificate. Simulated
nodes run no agent server, so their pods have no logs: that is a BadRequest naming the node, as
`nbkube logs` reports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nbkube.clock import parse_rfc3339
from nbkube.errors import BadRequest
from nbkube.node.agentclient import agent_headers, agent_target, agent_url
from nbkube.registry.registry import Registry

__all__ = ["AgentRequest", "agent_logs_request"]


@dataclass(frozen=True)
class AgentRequest:
    url: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)


def _integer(query: dict[str, str], name: str, minimum: int) -> str | None:
    text = query.get(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f'{name} must be an integer, got "{text}"') from None
    if value < minimum:
        raise BadRequest(f"{name} must be at least {minimum}, got {value}")
    return str(value)


def agent_logs_request(registry: Registry, namespace: str, name: str, query: dict[str, str]) -> AgentRequest:
    """The node agent request (URL and credential) serving the logs `query` asks for: kubectl's
    container, follow, tailLines, limitBytes, sinceSeconds or sinceTime, timestamps, previous."""
    endpoint, container = agent_target(registry, namespace, name, query.get("container"))
    params: dict[str, str] = {}
    for field_name, param, minimum in (("tailLines", "tail", 0), ("limitBytes", "limitBytes", 1)):
        value = _integer(query, field_name, minimum)
        if value is not None:
            params[param] = value
    since_seconds = _integer(query, "sinceSeconds", 1)
    since_time = query.get("sinceTime")
    if since_seconds and since_time:
        raise BadRequest("at most one of sinceTime or sinceSeconds may be specified")
    if since_seconds:
        params["since"] = repr(time.time() - int(since_seconds))
    elif since_time:
        try:
            params["since"] = repr(parse_rfc3339(since_time))
        except ValueError:
            raise BadRequest(f'sinceTime must be an RFC 3339 time, got "{since_time}"') from None
    for flag in ("follow", "timestamps", "previous"):
        if query.get(flag) in ("true", "1"):
            params[flag] = "1"
    url = agent_url(endpoint, "logs", namespace, name, container, params)
    return AgentRequest(url, endpoint, agent_headers(registry))
