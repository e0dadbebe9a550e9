"""Timing profiles: the leader-election durations keep the order that prevents two leaders."""

from __future__ import annotations

import pytest

from nbkube.controlplane.profiles import PROFILES, get_profile
from nbkube.errors import BadRequest


def test_profiles_order_their_leader_durations() -> None:
    for profile in PROFILES.values():
        assert profile.leader_lease_duration > profile.leader_renew_deadline > profile.leader_renew_interval
    with pytest.raises(BadRequest, match="leader_renew_deadline"):
        get_profile("fast", leader_renew_deadline=3.0)
