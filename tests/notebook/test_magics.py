"""`%load_ext nbkube` and the `%nbkube` / `%%nbkube` magics in a real IPython shell.

Good YAML applies through the CLI's `apply -f -`; bad YAML shows one red line and writes nothing;
`get` returns an object with `.df` that renders as a table; `%nbkube?` help is the CLI's argparse help."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import IPython
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from nbkube.notebook import magics
from nbkube.notebook.views import ObjectList
from nbkube.registry.registry import Registry

GOOD = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: lone, labels: {app: lone}}
spec:
  containers: [{name: c, image: busybox}]
"""

# the second document is invalid: nothing of the file may be written
BAD = """
apiVersion: v1
kind: Pod
metadata: {name: first}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: Not_A_Name}
spec:
  containers: [{name: c, image: busybox}]
"""


class Displayed:
    """Collects what the magics pass to IPython.display.display."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def __call__(self, obj: Any, raw: bool = False, **_kw: Any) -> None:
        self.items.append(obj)


@pytest.fixture(scope="module")
def ip() -> InteractiveShell:
    # one global shell per process: another test module may have started it already
    shell = start_ipython() or IPython.get_ipython()
    assert shell is not None
    return shell


@pytest.fixture
def shell(ip: InteractiveShell, api: Registry, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    ip.run_line_magic("load_ext", "nbkube")
    magics.set_current(api)
    yield ip
    magics.set_current(None)
    ip.run_line_magic("unload_ext", "nbkube")


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Displayed:
    import IPython.display

    d = Displayed()
    monkeypatch.setattr(IPython.display, "display", d)
    return d


def test_cell_apply_writes_the_objects(shell: InteractiveShell, api: Registry, shown: Displayed) -> None:
    result = shell.run_cell_magic("nbkube", "apply", GOOD)
    assert "replicationcontroller/web created" in repr(result)
    assert "pod/lone created" in repr(result)
    assert api.get("ReplicationController", "web", "default")["spec"]["replicas"] == 2
    assert api.get("Pod", "lone", "default")["metadata"]["labels"] == {"app": "lone"}
    again = shell.run_cell_magic("nbkube", "apply", GOOD)
    assert "unchanged" in repr(again)
    assert shown.items == []


def test_bad_yaml_shows_one_red_line_and_writes_nothing(
    shell: InteractiveShell, api: Registry, shown: Displayed, capsys: pytest.CaptureFixture[str]
) -> None:
    before, _rv = api.list("Pod")
    result = shell.run_cell_magic("nbkube", "apply", BAD)
    assert result is None
    assert len(shown.items) == 1
    item = shown.items[0]
    html, text = item["text/html"], item["text/plain"]
    assert html.startswith('<span style="color:#c00">') and "\n" not in html
    assert "\n" not in text and "doc 2" in text and "metadata.name" in text
    assert "Traceback" not in capsys.readouterr().err
    assert api.list("Pod")[0] == before  # nothing written, not even the valid first doc

    shown.items.clear()
    shell.run_cell_magic("nbkube", "apply", "kind: [unclosed")
    assert len(shown.items) == 1 and "\n" not in shown.items[0]["text/plain"]


def test_get_returns_a_dataframe_backed_table(
    shell: InteractiveShell, api: Registry, shown: Displayed
) -> None:
    shell.run_cell_magic("nbkube", "apply", GOOD)
    pods = shell.run_line_magic("nbkube", "get pods")
    assert isinstance(pods, ObjectList)
    assert list(pods.df["NAME"]) == ["lone"]
    assert list(pods.df.columns)[:3] == ["NAME", "READY", "STATUS"]  # the CLI's columns
    assert "<table" in pods._repr_html_() and "lone" in pods._repr_html_()
    rcs = shell.run_line_magic("nbkube", "get rc -o wide")
    assert list(rcs.df["NAME"]) == ["web"] and len(rcs) == 1
    nodes = shell.run_line_magic("nbkube", "get nodes")
    assert len(nodes.df) == 0
    assert shell.run_line_magic("nbkube", "get pods lone")[0].name == "lone"
    assert shell.run_line_magic("nbkube", "get pods missing") is None
    assert shown.items[-1]["text/plain"] == 'error: pods "missing" not found'


def test_other_verbs_go_through_the_cli(shell: InteractiveShell, api: Registry, shown: Displayed) -> None:
    shell.run_cell_magic("nbkube", "apply", GOOD)
    out = shell.run_line_magic("nbkube", "delete pod lone")
    assert "lone" in repr(out)
    assert api.list("Pod")[0] == []
    yaml_text = shell.run_line_magic("nbkube", "get rc web -o yaml")  # not a table: the CLI's text
    assert "kind: ReplicationController" in repr(yaml_text)
    assert shell.run_line_magic("nbkube", "frobnicate") is None
    assert len(shown.items) == 1 and "invalid choice" in shown.items[0]["text/plain"]


def test_help_comes_from_the_cli_parser(shell: InteractiveShell) -> None:
    from nbkube.cli import build_parser

    doc = shell.find_line_magic("nbkube").__doc__
    assert doc is not None
    assert "usage: nbkube" in doc
    for verb in ("apply", "get", "delete"):
        assert verb in doc
    assert build_parser().format_help() in doc


def test_store_url_target(shell: InteractiveShell, tmp_path: Any) -> None:
    from nbkube.cli.context import open_registry

    url = f"sqlite://{tmp_path}/s.db"
    magics.set_current(url)
    shell.run_cell_magic("nbkube", "apply", GOOD)
    assert len(shell.run_line_magic("nbkube", "get pods")) == 1
    reg = open_registry(url)
    try:
        assert reg.get("Pod", "lone", "default")["metadata"]["name"] == "lone"
    finally:
        reg.close()


def test_question_mark_shows_the_cli_help(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell("%nbkube?")
    out = capsys.readouterr().out
    assert "usage: nbkube" in out and "%%nbkube apply" in out
