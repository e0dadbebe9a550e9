"""Pod volumes on the host, as both real runtimes prepare them (no Docker, no root needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from nbkube.node.runtime.volumes import (
    PodConfigError,
    file_mode,
    prepare_host_volumes,
    release_host_volumes,
    source_files,
    volume_kind,
    write_volume_files,
)


def _pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"volumes": list(volumes)}}


def test_volume_kind_defaults_to_empty_dir() -> None:
    assert volume_kind({"name": "v"}) == "emptyDir"
    assert volume_kind({"name": "v", "hostPath": {"path": "/tmp"}}) == "hostPath"


@pytest.mark.parametrize(
    ("given", "mode"),
    [(None, 0o644), ("", 0o644), (0o400, 0o400), (256, 0o400), ("0400", 0o400), ("x", 0o644)],
)
def test_file_mode_takes_ints_and_octal_strings(given: Any, mode: int) -> None:
    assert file_mode(given) == mode


def test_missing_source_is_an_error_to_retry_unless_optional() -> None:
    vol = {"name": "cfg", "configMap": {"name": "app-config"}}
    with pytest.raises(PodConfigError, match="volume 'cfg': configMap 'app-config' not found") as err:
        source_files(_pod(vol), vol, lambda _p, _v: None)
    assert err.value.retry and err.value.reason == "CreateContainerConfigError"
    optional = {"name": "cfg", "secret": {"secretName": "s", "optional": True}}
    assert source_files(_pod(optional), optional, lambda _p, _v: None) == {}
    assert source_files(_pod(vol), vol, lambda _p, _v: {"a": b"1"}) == {"a": b"1"}


def test_files_are_written_with_their_mode_and_never_outside(tmp_path: Path) -> None:
    write_volume_files(str(tmp_path / "v"), {"a.txt": b"A", "sub/b": b"B"}, 0o600, "volume 'v'")
    assert (tmp_path / "v" / "sub" / "b").read_bytes() == b"B"
    assert stat.S_IMODE(os.stat(tmp_path / "v" / "a.txt").st_mode) == 0o600
    with pytest.raises(PodConfigError, match="leaves the volume"):
        write_volume_files(str(tmp_path / "w"), {"../escape": b"x"}, 0o644, "volume 'w'")
    assert not (tmp_path / "escape").exists()


def test_host_volumes_map_to_paths_and_modes(tmp_path: Path) -> None:
    host_dir = tmp_path / "data"
    pod = _pod(
        {"name": "scratch", "emptyDir": {}},
        {"name": "made", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
        {"name": "cfg", "configMap": {"name": "c", "defaultMode": 0o440}},
    )
    binds = prepare_host_volumes(pod, str(tmp_path / "vols"), "node-1", lambda _p, _v: {"k": b"v"})
    assert binds["scratch"] == (str(tmp_path / "vols" / "empty-dir" / "scratch"), False)
    assert binds["made"] == (str(host_dir), False) and host_dir.is_dir()
    cfg_path, read_only = binds["cfg"]
    assert read_only and stat.S_IMODE(os.stat(os.path.join(cfg_path, "k")).st_mode) == 0o440
    release_host_volumes(str(tmp_path / "vols"))  # nothing mounted: a no-op


@pytest.mark.parametrize(
    ("volume", "reason", "text"),
    [
        (
            {"name": "h", "hostPath": {"path": "/nonexistent/nbkube-test"}},
            "CreateContainerConfigError",
            "does not exist",
        ),
        (
            {"name": "e", "awsElasticBlockStore": {"volumeID": "x"}},
            "VolumeUnsupported",
            "not supported by node n1",
        ),
        ({"name": "g", "gitRepo": {"repository": ""}}, "CreateContainerConfigError", "needs a repository"),
    ],
)
def test_bad_volumes_name_the_volume_and_the_reason(
    tmp_path: Path, volume: dict, reason: str, text: str
) -> None:
    with pytest.raises(PodConfigError, match=text) as err:
        prepare_host_volumes(_pod(volume), str(tmp_path), "n1", None)
    assert err.value.reason == reason and repr(volume["name"]) in err.value.message
