"""Pod Security Standards vocabulary: the namespace labels, the three levels and their versions.

Kubernetes' Pod Security admission reads a namespace's `pod-security.kubernetes.io/<mode>` labels
(mode: enforce, warn, audit) with a level (`privileged`, `baseline`, `restricted`) and the optional
`<mode>-version` labels (`latest` or `v1.N`). Two layers need them: Namespace validation
(`validate_other.validate_namespace`, so a bad value is a field error before anything is written,
also inside a multi-document `apply`) and the admission plugin
(`nbkube.registry.admission_podsecurity`), which reads the levels to judge pods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nbkube.api.fieldcheck import Errors, show

__all__ = [
    "LABEL_PREFIX",
    "LEVELS",
    "MODES",
    "LevelVersion",
    "check_namespace_labels",
    "label_for",
    "parse_level",
    "parse_version",
    "version_label_for",
]

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "warn", "audit")
LEVELS = ("privileged", "baseline", "restricted")
_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


def label_for(mode: str) -> str:
    return f"{LABEL_PREFIX}{mode}"


def version_label_for(mode: str) -> str:
    return f"{LABEL_PREFIX}{mode}-version"


@dataclass(frozen=True)
class LevelVersion:
    """A level at a version, printed as upstream prints it: `restricted:latest`, `baseline:v1.30`."""

    level: str
    version: str = "latest"

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    @property
    def privileged(self) -> bool:
        return self.level == "privileged"


def parse_level(value: Any) -> str | None:
    """The level `value` names, or None when it is not one of LEVELS."""
    return value if isinstance(value, str) and value in LEVELS else None


def parse_version(value: Any) -> str | None:
    """`latest` or `v1.N`, or None when `value` is neither."""
    if value == "latest" or (isinstance(value, str) and _VERSION.match(value)):
        return str(value)
    return None


def check_namespace_labels(e: Errors, labels: dict[str, Any], path: str = "metadata.labels") -> None:
    """Field errors for pod-security labels with unknown levels or versions (other labels pass)."""
    for key, value in labels.items():
        if not isinstance(key, str) or not key.startswith(LABEL_PREFIX):
            continue
        mode = key[len(LABEL_PREFIX) :]
        where = f"{path}[{key}]"
        is_version = mode.endswith("-version") and mode[: -len("-version")] in MODES
        if mode in MODES and parse_level(value) is None:
            e.add(where, f"Invalid value: {show(value)}: must be one of {', '.join(LEVELS)}")
        elif is_version and parse_version(value) is None:
            e.add(where, f'Invalid value: {show(value)}: must be "latest" or "v1.x"')
