"""How the rest of nbkube reaches a node agent: the pod's node, its endpoint, the URL, the errors.

Why: `nbkube logs`/`exec` (the CLI) and `pods/log` (the API server) both ask the agent that runs a
pod, as kubectl and the API server ask the kubelet: find the pod's node, read the agent's loopback
endpoint from the Node's `nbkube.io/agent-endpoint` annotation (written by
`nbkube.node.agentserver`), build the agent's URL and turn its error answers into nbkube errors.
One place for that, so both say the same thing about a missing container or a silent node.
The agent demands the cluster's credential (nbkube/security/agentauth.py): `agent_request` presents
the one in the registry's `credentials_dir`, the cluster folder only its owner can read.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nbkube.errors import BadRequest, NbkubeError, NotFound, Unauthorized
from nbkube.node.agentserver import ENDPOINT_ANNOTATION
from nbkube.security.agentauth import bearer, read_agent_token

__all__ = [
    "agent_error",
    "agent_headers",
    "agent_refusal",
    "agent_request",
    "agent_target",
    "agent_unreachable",
    "agent_url",
]


def agent_target(api: Any, namespace: str, name: str, container: str | None) -> tuple[str, str]:
    """(agent endpoint, container) for the pod; `container` None or "" means the pod's first."""
    pod = api.get("Pod", name, namespace)
    containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    chosen = container or (containers[0] if containers else "")
    if chosen not in containers:
        # kubectl's wording first ("container X is not valid for pod P"), then what the pod has
        raise BadRequest(
            f'container {chosen} is not valid for pod {name}: no container "{chosen}" '
            f"(it has: {', '.join(containers)})"
        )
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise BadRequest(f"pod {name} is not scheduled to a node yet")
    node = api.get("Node", str(node_name))
    endpoint = ((node.get("metadata") or {}).get("annotations") or {}).get(ENDPOINT_ANNOTATION)
    if not endpoint:
        raise BadRequest(
            f"node {node_name} does not serve logs and exec (a simulated node, or its agent is down)"
        )
    return str(endpoint), chosen


def agent_url(
    endpoint: str,
    verb: str,
    namespace: str,
    pod: str,
    container: str,
    query: dict[str, str] | list[tuple[str, str]],
) -> str:
    """The agent's URL for `verb` (logs, exec, stream/exec...) on one container."""
    names = (urllib.parse.quote(p, safe="") for p in (namespace or "default", pod, container))
    path = "/".join([verb, *names])
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    return f"http://{endpoint}/{path}{suffix}"


def agent_headers(api: Any) -> dict[str, str]:
    """The cluster's agent credential as a header, read from the registry's `credentials_dir`
    (without one, none is sent and the agent answers 401)."""
    folder = getattr(api, "credentials_dir", None)
    return {"Authorization": bearer(read_agent_token(folder))} if folder else {}


def agent_request(api: Any, url: str, body: bytes | None = None) -> urllib.request.Request:
    """A request for the agent `url` carrying the cluster's agent credential."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    return urllib.request.Request(url, data=body, headers={**headers, **agent_headers(api)})


def agent_refusal(endpoint: str, code: int, body: bytes) -> NbkubeError:
    """The agent's own error answer (its JSON `message`; 404 is NotFound) as an nbkube error."""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    if code == 404:
        return NotFound(message or f"the node agent at {endpoint} answered 404")
    if code == 401:
        return Unauthorized(
            f"the node agent at {endpoint} refused the request: it needs the cluster's agent "
            "credential (agent-credential in the cluster's folder, which this process cannot use)"
        )
    return BadRequest(message or f"the node agent at {endpoint} answered {code}")


def agent_unreachable(endpoint: str, exc: BaseException) -> NbkubeError:
    return BadRequest(f"the node agent at {endpoint} cannot be reached: {exc}")


def agent_error(endpoint: str, exc: Exception) -> NbkubeError:
    """What a failed call to the agent at `endpoint` means: its own message, or why it could not
    be reached."""
    if isinstance(exc, urllib.error.HTTPError):
        return agent_refusal(endpoint, exc.code, exc.read())
    return agent_unreachable(endpoint, exc)
