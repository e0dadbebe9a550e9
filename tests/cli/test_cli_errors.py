"""User errors end in exactly one `error: ...` line on stderr, exit 1, no traceback, nothing written."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from nbk_clitest import RC_YAML, SVC_YAML, Result, Run


def _one_error_line(r: Result) -> str:
    assert r.code == 1
    assert "Traceback" not in r.err
    assert len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith("error: ")
    return r.err_lines[0]


def test_unknown_kind(nbkube: Run) -> None:
    line = _one_error_line(nbkube("get", "flurbs"))
    assert '"flurbs"' in line


def test_unknown_kind_in_a_list_of_kinds(nbkube: Run) -> None:
    line = _one_error_line(nbkube("get", "rc,nope"))
    assert '"nope"' in line


def test_malformed_yaml_names_the_file_and_writes_nothing(nbkube: Run, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n  spec: [\n")
    # the good file comes first: it must not be written either
    line = _one_error_line(nbkube("apply", "-f", RC_YAML, "-f", str(bad)))
    assert str(bad) in line
    r = nbkube("get", "rc,svc")
    assert r.out == ""


def test_invalid_field_names_file_and_field(nbkube: Run, tmp_path: Path) -> None:
    bad = tmp_path / "rc.yaml"
    bad.write_text(Path(RC_YAML).read_text().replace("        image: nginx\n", ""))
    line = _one_error_line(nbkube("apply", "-f", str(bad)))
    assert str(bad) in line and "image" in line


def test_duplicate_object_across_files(nbkube: Run) -> None:
    line = _one_error_line(nbkube("apply", "-f", RC_YAML, "-f", RC_YAML))
    assert "duplicate" in line
    assert nbkube("get", "rc").out == ""


def test_missing_file(nbkube: Run, tmp_path: Path) -> None:
    line = _one_error_line(nbkube("apply", "-f", str(tmp_path / "nope.yaml")))
    assert "nope.yaml" in line


def test_bad_stdin(nbkube: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("- just\n- a list\n"))
    line = _one_error_line(nbkube("apply", "-f", "-"))
    assert "<stdin>" in line


def test_namespace_that_does_not_exist(nbkube: Run, tmp_path: Path) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(
        Path(SVC_YAML).read_text().replace("  name: nginx-http-service\n", "  name: s\n  namespace: ghost\n")
    )
    line = _one_error_line(nbkube("apply", "-f", str(f)))
    assert "ghost" in line and str(f) in line


def test_unreachable_etcd_names_the_url_quickly(nbkube: Run) -> None:
    url = "etcd://127.0.0.1:1"
    started = time.monotonic()
    r = nbkube("--store", url, "get", "po")
    elapsed = time.monotonic() - started
    line = _one_error_line(r)
    assert url in line
    assert elapsed < 15  # a bound against hanging, not a performance assertion


def test_bad_store_url(nbkube: Run) -> None:
    line = _one_error_line(nbkube("get", "po", "--store", "mysql://x"))
    assert "mysql://x" in line


def test_unwritable_sqlite_location(nbkube: Run, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = _one_error_line(nbkube("--store", f"sqlite://{blocker}/sub/store.db", "get", "po"))
    assert str(blocker) in line


def test_usage_errors_exit_2(nbkube: Run) -> None:
    r = nbkube("get")
    assert r.code == 2 and "Traceback" not in r.err
    assert nbkube("frobnicate").code == 2
    assert nbkube("get", "po", "--store").code == 2
    assert nbkube("get", "po", "-o", "toml").code == 2


def test_delete_needs_a_name(nbkube: Run) -> None:
    line = _one_error_line(nbkube("delete", "po"))
    assert "name" in line


def test_keyboard_interrupt_exits_130(nbkube: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbkube.cli import cmd_basic

    def interrupted(*_a: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd_basic, "_version", interrupted)
    r = nbkube("version")
    assert r.code == 130 and "Traceback" not in r.err


def test_unusable_home_for_the_default_store(
    nbkube: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("HOME", str(not_a_dir))
    monkeypatch.delenv("NBKUBE_STORE")
    line = _one_error_line(nbkube("get", "po"))
    assert str(not_a_dir) in line
