"""`pods/log`: a container's output, fetched from the node agent that runs the pod.

As the Kubernetes API server proxies `kubectl logs` to the kubelet, this finds the pod's node, reads
the agent's loopback endpoint from the Node's `nbkube.io/agent-endpoint` annotation and relays the
agent's `/logs/...` answer (streamed with `follow=true`). Simulated nodes run no agent server, so
their pods have no logs: that is a BadRequest naming the node, as `nbkube logs` reports it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nbkube.errors import BadRequest, NbkubeError, NotFound
from nbkube.node.agentserver import ENDPOINT_ANNOTATION
from nbkube.registry.registry import Registry

__all__ = ["agent_logs_url", "open_logs"]


def agent_logs_url(registry: Registry, namespace: str, name: str, query: dict[str, str]) -> str:
    """The node agent URL serving the logs `query` (kubectl's container/tailLines/follow) asks for."""
    pod = registry.get("Pod", name, namespace)
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container") or (containers[0] if containers else "")
    if container not in containers:
        raise BadRequest(f"container {container} is not valid for pod {name}")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {name} is not scheduled to a node yet")
    node = registry.get("Node", str(node_name))
    endpoint = ((node.get("metadata") or {}).get("annotations") or {}).get(ENDPOINT_ANNOTATION)
    if not endpoint:
        raise BadRequest(f"node {node_name} does not serve logs (a simulated node, or its agent is down)")
    params: dict[str, str] = {}
    if query.get("tailLines"):
        try:
            params["tail"] = str(int(query["tailLines"]))
        except ValueError:
            raise BadRequest(f'tailLines must be an integer, got "{query["tailLines"]}"') from None
    if query.get("follow") in ("true", "1"):
        params["follow"] = "1"
    path = "/".join(urllib.parse.quote(p, safe="") for p in ("logs", namespace or "default", name, container))
    return f"http://{endpoint}/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")


def open_logs(url: str, timeout: float) -> Any:
    """The agent's streaming response; its errors as nbkube errors (the agent answers 404 JSON)."""
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        try:
            message = str(json.loads(e.read()).get("message", ""))
        except ValueError:
            message = ""
        err: NbkubeError = (
            NotFound(message) if e.code == 404 else BadRequest(message or f"agent answered {e.code}")
        )
        raise err from None
    except OSError as e:
        raise BadRequest(f"the node agent at {url.split('/')[2]} cannot be reached: {e}") from None
