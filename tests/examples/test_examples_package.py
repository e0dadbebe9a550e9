"""nbkube.examples: the shipped manifests by name, as files any working directory can use."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbkube import examples
from nbkube.api.serialization import load_file
from nbkube.errors import NotFound


def test_names_list_the_article_and_rootless_manifests() -> None:
    assert examples.names() == [
        "nginx-rc.yaml",
        "nginx-service.yaml",
        "rootless/web-rc.yaml",
        "rootless/web-service.yaml",
    ]


def test_path_is_a_file_that_loads_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    objs = load_file(examples.path("rootless/web-rc.yaml"))
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ReplicationController", "web-test-controller")
    ]
    assert Path(examples.folder("rootless"), "web-service.yaml").is_file()


def test_unknown_names_fail_naming_the_known_ones() -> None:
    with pytest.raises(NotFound, match=r"'nope.yaml'.*known: nginx-rc.yaml"):
        examples.path("nope.yaml")
    with pytest.raises(NotFound, match="not a manifest name"):
        examples.path("../pyproject.toml")
    with pytest.raises(NotFound, match="no such folder"):
        examples.folder("nope")


def test_the_top_level_package_exposes_it_lazily() -> None:
    import nbkube

    assert nbkube.examples is examples
