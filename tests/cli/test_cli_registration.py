"""Other helpers add verbs through COMMAND_MODULES without editing the CLI package."""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import pytest
from nbk_clitest import Run

import nbkube.cli as cli
from nbkube.cli.context import Context


def _fake_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def hello(args: argparse.Namespace, ctx: Context) -> int:
        ctx.out(f"hello {args.who} via {ctx.store_url.split('://')[0]}")
        assert not ctx.opened  # the registry is only opened when a handler asks for ctx.api
        return 0

    def register(subparsers: argparse._SubParsersAction) -> None:
        p = subparsers.add_parser("hello")
        p.add_argument("who")
        p.set_defaults(handler=hello)

    module.register = register  # type: ignore[attr-defined]
    return module


def test_a_registered_module_adds_a_verb(nbkube: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nbk_fake_verbs", _fake_module("nbk_fake_verbs"))
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "nbk_fake_verbs"])
    r = nbkube("hello", "world")
    assert r.code == 0
    assert r.out.strip() == "hello world via sqlite"


def test_a_missing_command_module_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["nbkube.cli.cmd_basic", "nbkube.cli.cmd_not_written_yet"])
    with pytest.raises(ModuleNotFoundError, match="cmd_not_written_yet"):
        cli.build_parser()


def test_a_broken_command_module_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the module exists, but one of *its* imports fails: a broken install, not a verb to drop quietly
    (tmp_path / "nbk_broken_verbs.py").write_text("import nbk_dependency_that_is_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["nbkube.cli.cmd_basic", "nbk_broken_verbs"])
    with pytest.raises(ModuleNotFoundError, match="nbk_dependency_that_is_missing"):
        cli.build_parser()
