"""`pods/log`: a container's output, fetched from the node agent that runs the pod.

As the Kubernetes API server proxies `kubectl logs` to the kubelet, this finds the pod's node, reads
the agent's loopback endpoint from the Node's `nbkube.io/agent-endpoint` annotation and relays the
agent's `/logs/...` answer (streamed with `follow=true`). Simulated nodes run no agent server, so
their pods have no logs: that is a BadRequest naming the node, as `nbkube logs` reports it. The
request carries the cluster's agent credential (see nbkube/node/agentclient.py), as kube-apiserver
presents its kubelet client certificate.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from nbkube.errors import BadRequest
from nbkube.node.agentclient import agent_error, agent_request, agent_target, agent_url
from nbkube.registry.registry import Registry

__all__ = ["agent_logs_url", "open_logs"]


def agent_logs_url(
    registry: Registry, namespace: str, name: str, query: dict[str, str]
) -> urllib.request.Request:
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
    return agent_request(registry, agent_url(endpoint, "logs", namespace, name, container, params))


def open_logs(request: urllib.request.Request, timeout: float) -> Any:
    """The agent's streaming response; its errors as nbkube errors (the agent answers 404 JSON)."""
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except OSError as e:  # HTTPError and URLError are OSErrors too
        raise agent_error(request.host, e) from None
