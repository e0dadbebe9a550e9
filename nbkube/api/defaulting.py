"""The steps every defaulting module (defaults.py, defaults_storage.py) is made of, as upstream's Go
defaulting functions do them: a field that is unset (None or "") gets its default, a nested object
that is absent is created to be defaulted in turn, and a workload's update strategy defaults to
RollingUpdate with its rolling parameters. One copy, so the kinds' modules cannot drift apart."""

from __future__ import annotations

from typing import Any

__all__ = ["child_dict", "default_rolling_strategy", "set_default"]


def child_dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """parent[key] when it is a mapping (created when absent), None when it has another type."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def set_default(d: dict[str, Any], key: str, value: Any) -> None:
    """d[key] = value when it is unset: "" counts as unset, as in Kubernetes' Go defaulting
    (`if spec.RestartPolicy == ""`)."""
    current = d.get(key)
    if current is None or (isinstance(current, str) and current == ""):
        d[key] = value


def default_rolling_strategy(spec: dict[str, Any], field: str, **rolling: Any) -> None:
    """spec[field] (a Deployment's `strategy`, a DaemonSet's or StatefulSet's `updateStrategy`):
    type RollingUpdate, and for a RollingUpdate the `rolling` defaults in its rollingUpdate."""
    strategy = child_dict(spec, field)
    if strategy is None:
        return
    set_default(strategy, "type", "RollingUpdate")
    if strategy.get("type") == "RollingUpdate":
        params = child_dict(strategy, "rollingUpdate")
        if params is not None:
            for key, value in rolling.items():
                set_default(params, key, value)
