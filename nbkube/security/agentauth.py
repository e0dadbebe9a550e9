"""The credential that lets a caller use a node agent's logs/exec endpoint: one per cluster.

Why: the agent runs containers' commands for whoever asks it (`POST /exec`), and on a shared
machine anyone can open a loopback port. As the kubelet accepts only the API server's client
certificate, a node agent (`nbkube.node.agentserver`) accepts only requests that present its
cluster's credential, `Authorization: Bearer <token>`, compared in constant time. The token is 32
random bytes (hex) in the file `agent-credential` (0600) of the cluster's 0700 folder, created at
the cluster's first start; the CLI's `logs`/`exec` and the API server's `pods/log` read it from
there (see `Registry.credentials_dir`), so only the cluster's owner can present it.
"""

from __future__ import annotations

import hmac
import os

from nbkube.errors import BadRequest
from nbkube.security.private import create_private_file, make_private_dir

__all__ = ["AGENT_CREDENTIAL_FILE", "ensure_agent_token", "read_agent_token", "bearer", "token_matches"]

AGENT_CREDENTIAL_FILE = "agent-credential"
_TOKEN_BYTES = 32


def ensure_agent_token(folder: str) -> str:
    """`folder`'s agent token, created (0600, folder 0700) when missing."""
    make_private_dir(folder)
    path = os.path.join(folder, AGENT_CREDENTIAL_FILE)
    if not os.path.exists(path):
        create_private_file(path, os.urandom(_TOKEN_BYTES).hex().encode() + b"\n")
    return read_agent_token(folder)


def read_agent_token(folder: str) -> str:
    """The token in `folder`; BadRequest naming the file when it is missing, unreadable or damaged."""
    path = os.path.join(folder, AGENT_CREDENTIAL_FILE)
    try:
        with open(path, encoding="ascii") as fh:
            token = fh.read().strip()
    except FileNotFoundError:
        raise BadRequest(f"{path}: no node agent credential (the cluster was never started here)") from None
    except PermissionError:
        raise BadRequest(
            f"{path}: permission denied (the node agent credential belongs to another user)"
        ) from None
    except UnicodeDecodeError:
        token = ""
    if len(token) != 2 * _TOKEN_BYTES or any(c not in "0123456789abcdef" for c in token):
        raise BadRequest(f"{path}: not a node agent credential ({2 * _TOKEN_BYTES} hex digits)")
    return token


def bearer(token: str) -> str:
    """The Authorization header value presenting `token`."""
    return f"Bearer {token}"


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header presents `token` (constant-time comparison)."""
    if not authorization:
        return False
    scheme, _sep, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
