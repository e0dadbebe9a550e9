"""The node agent credential (nbkube/security/agentauth.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nbkube.errors import BadRequest
from nbkube.security.agentauth import (
    AGENT_CREDENTIAL_FILE,
    bearer,
    ensure_agent_token,
    read_agent_token,
    token_matches,
)


def test_the_token_is_made_once_private_and_random(tmp_path: Path) -> None:
    token = ensure_agent_token(str(tmp_path / "c"))
    path = tmp_path / "c" / AGENT_CREDENTIAL_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o700
    assert len(token) == 64 and int(token, 16) >= 0
    assert ensure_agent_token(str(tmp_path / "c")) == token
    assert ensure_agent_token(str(tmp_path / "other")) != token


def test_matching(tmp_path: Path) -> None:
    token = ensure_agent_token(str(tmp_path))
    assert token_matches(bearer(token), token)
    assert token_matches(f"bearer  {token} ", token)
    for header in (None, "", "Bearer", f"Basic {token}", bearer(token[:-1] + "x"), bearer(token + "0")):
        assert not token_matches(header, token)


def test_missing_or_damaged_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match=f"{AGENT_CREDENTIAL_FILE}: no node agent credential"):
        read_agent_token(str(tmp_path))
    (tmp_path / AGENT_CREDENTIAL_FILE).write_text("not hex\n")
    with pytest.raises(BadRequest, match="not a node agent credential"):
        read_agent_token(str(tmp_path))
