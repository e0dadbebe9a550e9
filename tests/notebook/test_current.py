"""The `%nbkube` magics follow the kernel's own clusters (nbkube/notebook/current.py).

A LocalCluster (or a `connect()` handle) running in the shell is what `%nbkube` and `%%nbkube apply`
act on, with no set-up; `%nbkube use NAME` switches between several; with none, a verb that needs
a cluster answers with one line saying how to get one, and nothing touches ~/.nbkube/store.db.
HOME is the test's own folder throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import IPython
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from nbkube.cluster import LocalCluster, connect, running_clusters
from nbkube.notebook import current
from nbkube.notebook.current import NO_CLUSTER_HINT

POD = """
apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers: [{name: c, image: busybox}]
"""


class Displayed:
    """What the magics pass to IPython.display.display (their red error lines)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def __call__(self, obj: Any, raw: bool = False, **_kw: Any) -> None:
        self.items.append(obj)

    def texts(self) -> list[str]:
        return [item["text/plain"] for item in self.items if isinstance(item, dict)]


@pytest.fixture(scope="module")
def ip() -> InteractiveShell:
    # one global shell per process: another test module may have started it already
    shell = start_ipython() or IPython.get_ipython()
    assert shell is not None
    return shell


@pytest.fixture
def shell(
    ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NBKUBE_STORE", raising=False)
    ip.run_line_magic("load_ext", "nbkube")
    yield ip
    ip.run_line_magic("unload_ext", "nbkube")
    for cluster in running_clusters().values():
        cluster.close()
    current.set_current(None)


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> Displayed:
    import IPython.display

    d = Displayed()
    monkeypatch.setattr(IPython.display, "display", d)
    return d


def sim(name: str | None = None, nodes: int = 1) -> LocalCluster:
    return LocalCluster(nodes=nodes, runtime="sim", store="memory", name=name)


def test_without_a_cluster_the_magics_give_a_hint_not_another_store(
    shell: InteractiveShell, shown: Displayed, tmp_path: Path
) -> None:
    assert shell.run_line_magic("nbkube", "get pods") is None
    assert shell.run_cell_magic("nbkube", "apply", POD) is None
    assert shell.run_line_magic("nbkube", "get rc,svc") is None  # a shape the CLI prints itself
    assert shown.texts() == [f"error: {NO_CLUSTER_HINT}"] * 3
    assert "\n" not in NO_CLUSTER_HINT
    assert not (tmp_path / ".nbkube").exists()
    # a verb that needs no cluster still runs
    assert "nbkube" in repr(shell.run_line_magic("nbkube", "version"))


def test_a_started_cluster_is_current_for_get_and_apply(shell: InteractiveShell, shown: Displayed) -> None:
    cluster = sim(nodes=2)
    nodes = shell.run_line_magic("nbkube", "get nodes")
    assert sorted(nodes.df["NAME"]) == ["node-1", "node-2"]
    shell.run_cell_magic("nbkube", "apply", POD)
    assert cluster.api.get("Pod", "solo", "default")["metadata"]["name"] == "solo"
    assert shown.texts() == []
    cluster.stop()
    assert shell.run_line_magic("nbkube", "get pods") is None
    assert shown.texts() == [f"error: {NO_CLUSTER_HINT}"]


def test_use_switches_between_clusters(shell: InteractiveShell, shown: Displayed) -> None:
    first, second = sim("first", nodes=1), sim("second", nodes=2)
    assert len(shell.run_line_magic("nbkube", "get nodes").df) == 2  # the newest
    listing = repr(shell.run_line_magic("nbkube", "use"))
    assert "  first" in listing and "* second" in listing
    shell.run_line_magic("nbkube", "use first")
    assert len(shell.run_line_magic("nbkube", "get nodes").df) == 1
    shell.run_cell_magic("nbkube", "apply", POD)
    assert first.api.get("Pod", "solo", "default") and not second.api.list("Pod", "default")[0]
    shell.run_line_magic("nbkube", "use nope")
    assert shown.texts() == ["error: no cluster named 'nope' runs in this kernel (running: first, second)"]
    first.stop()  # the chosen one gone: back to the newest running
    assert len(shell.run_line_magic("nbkube", "get nodes").df) == 2


def test_a_connect_handle_is_current_until_closed(shell: InteractiveShell, tmp_path: Path) -> None:
    with LocalCluster(nodes=1, runtime="sim", store="sqlite", name="src") as src:
        current.use("src")
        handle = connect(src.store_url, name="attached")
        current.use("attached")
        assert current.current_cluster() is handle
        assert list(shell.run_line_magic("nbkube", "get nodes").df["NAME"]) == ["node-1"]
        handle.close()
        assert current.current_cluster() is src
