"""Shared names for the CLI tests (a uniquely named module: `conftest` is ambiguous across test dirs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbkube import examples

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = Path(examples.folder())
RC_YAML = str(EXAMPLES / "nginx-rc.yaml")
SVC_YAML = str(EXAMPLES / "nginx-service.yaml")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


Run = Callable[..., Result]
