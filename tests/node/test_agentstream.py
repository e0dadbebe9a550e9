"""The frames between the API server and a node agent (nbkube/node/agentstream.py)."""

from __future__ import annotations

import io

import pytest

from nbkube.node import agentstream


def test_frames_round_trip_and_end() -> None:
    data = agentstream.encode(1, b"out") + agentstream.encode(3, b"") + agentstream.encode(255, b"\x00")
    f = io.BufferedReader(io.BytesIO(data))
    assert agentstream.read_frame(f) == (1, b"out")
    assert agentstream.read_frame(f) == (3, b"")
    assert agentstream.read_frame(f) == (255, b"\x00")
    assert agentstream.read_frame(f) is None


def test_a_cut_or_oversized_frame() -> None:
    assert agentstream.read_frame(io.BytesIO(agentstream.encode(1, b"abc")[:-1])) is None
    with pytest.raises(agentstream.FrameError, match="larger than"):
        agentstream.parse_header(bytes([1]) + (agentstream.MAX_FRAME + 1).to_bytes(4, "big"))
