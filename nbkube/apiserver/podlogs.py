"""`pods/log`: a container's output, fetched from the node agent that runs the pod.

As the Kubernetes API server proxies `kubectl logs` to the kubelet, this finds the pod's node, reads
the agent's endpoint from the Node's `nbkube.io/agent-endpoint` annotation and says which agent URL
to relay (the HTTP layer streams it). The request carries the cluster's agent credential (see
nbkube/node/agentclient.py), as kube-apiserver presents its kubelet client certificate. Simulated
nodes run no agent server, so their pods have no logs: that is a BadRequest naming the node, as
`nbkube logs` reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbkube.errors import BadRequest
from nbkube.node.agentclient import agent_headers, agent_target, agent_url
from nbkube.registry.registry import Registry

__all__ = ["AgentRequest", "agent_logs_request"]


@dataclass(frozen=True)
class AgentRequest:
    url: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)


def agent_logs_request(registry: Registry, namespace: str, name: str, query: dict[str, str]) -> AgentRequest:
    """The node agent request (URL and credential) serving the logs `query` (kubectl's
    container/tailLines/follow) asks for."""
    endpoint, container = agent_target(registry, namespace, name, query.get("container"))
    params: dict[str, str] = {}
    if query.get("tailLines"):
        try:
            params["tail"] = str(int(query["tailLines"]))
        except ValueError:
            raise BadRequest(f'tailLines must be an integer, got "{query["tailLines"]}"') from None
    if query.get("follow") in ("true", "1"):
        params["follow"] = "1"
    url = agent_url(endpoint, "logs", namespace, name, container, params)
    return AgentRequest(url, endpoint, agent_headers(registry))
