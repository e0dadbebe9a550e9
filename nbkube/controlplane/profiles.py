"""Named timing profiles for heartbeats, failure detection and eviction.

Kubernetes' defaults (10 s node heartbeat, 40 s node-monitor grace, 300 s default toleration of the
not-ready/unreachable taints) make failover take more than five minutes; the article found that
too slow. A `Profile` bundles every timing that failover depends on, so that `LocalCluster`,
`nbkube up`, the `ControlPlane`, the node-lifecycle controller and the node agents all agree.
`kubernetes` mirrors upstream; `fast` fails a node over within a few seconds. Any field can be
overridden by keyword: `get_profile("kubernetes", toleration_seconds=30)`.

Node agents read `heartbeat_interval` and `grace_period` by attribute (node/ may not import this
module, per the layering contract), so keep those names stable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nbkube.errors import BadRequest

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    heartbeat_interval: float  # node agent: Lease renewal and node-status refresh period
    grace_period: float  # node-monitor grace: no Lease renewal for this long => Ready=Unknown
    toleration_seconds: float  # default tolerationSeconds for the not-ready/unreachable NoExecute taints
    node_monitor_period: float  # how often the lifecycle controller re-checks a node at the latest
    leader_lease_duration: float = 15.0  # control-plane leader Lease
    leader_renew_interval: float = 2.0  # client-go's RetryPeriod: how often to try/renew
    leader_renew_deadline: float = 10.0  # a leader that has not renewed for this long stops acting
    metrics_interval: float = 15.0  # node agents: resource-metrics sample period (metrics-server's 15 s)
    hpa_sync_period: float = 15.0  # --horizontal-pod-autoscaler-sync-period

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if field.name == "name":
                continue
            value = getattr(self, field.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"profile {self.name!r}: {field.name} must be a number >= 0, got {value!r}")
        for field_name in (
            "metrics_interval",
            "hpa_sync_period",
            "heartbeat_interval",
            "grace_period",
            "leader_lease_duration",
            "leader_renew_interval",
            "leader_renew_deadline",
        ):
            if getattr(self, field_name) <= 0:
                raise BadRequest(f"profile {self.name!r}: {field_name} must be > 0")
        # the old leader must stop (renew deadline) before a standby may start (lease expiry)
        if not self.leader_lease_duration > self.leader_renew_deadline > self.leader_renew_interval:
            raise BadRequest(
                f"profile {self.name!r}: leader_lease_duration ({self.leader_lease_duration:g}) > "
                f"leader_renew_deadline ({self.leader_renew_deadline:g}) > leader_renew_interval "
                f"({self.leader_renew_interval:g}) must hold"
            )

    # short names, as the README and the experiments call them
    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval

    @property
    def grace(self) -> float:
        return self.grace_period

    @property
    def eviction(self) -> float:
        return self.toleration_seconds


PROFILES: dict[str, Profile] = {
    # upstream: kubelet nodeStatusUpdateFrequency/lease renew 10 s, node-monitor-grace-period 40 s,
    # DefaultTolerationSeconds 300 s, node-monitor-period 5 s, leader election 15 s / renew deadline
    # 10 s / retry 2 s
    "kubernetes": Profile(
        name="kubernetes",
        heartbeat_interval=10.0,
        grace_period=40.0,
        toleration_seconds=300.0,
        node_monitor_period=5.0,
        leader_lease_duration=15.0,
        leader_renew_interval=2.0,
        leader_renew_deadline=10.0,
    ),
    "fast": Profile(
        name="fast",
        heartbeat_interval=1.0,
        grace_period=2.0,
        toleration_seconds=0.0,
        node_monitor_period=0.5,
        leader_lease_duration=3.0,
        leader_renew_interval=0.5,
        leader_renew_deadline=2.0,  # upstream's 15/10/2 ratio, rounded to the retry period
        metrics_interval=1.0,
        hpa_sync_period=2.0,
    ),
}


def get_profile(name: str | Profile = "fast", **overrides: float) -> Profile:
    """The named profile (or a Profile itself), with any field replaced by keyword."""
    if isinstance(name, Profile):
        base = name
    else:
        base_or_none = PROFILES.get(str(name))
        if base_or_none is None:
            raise BadRequest(f"unknown profile {name!r} (known: {', '.join(sorted(PROFILES))})")
        base = base_or_none
    if not overrides:
        return base
    known = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    aliases = {"heartbeat": "heartbeat_interval", "grace": "grace_period", "eviction": "toleration_seconds"}
    fixed: dict[str, float] = {}
    for key, value in overrides.items():
        key = aliases.get(key, key)
        if key not in known:
            raise BadRequest(f"unknown profile field {key!r} (known: {', '.join(sorted(known))})")
        fixed[key] = value
    return dataclasses.replace(base, **fixed)  # type: ignore[arg-type]
