"""Offline images: the host's busybox seeded into Docker, and pulls that fail clearly (real dockerd)."""

from __future__ import annotations

import io
import os
import tarfile
from typing import Any

import pytest

from nbkube.node.runtime.images import (
    BUSYBOX_IMAGE,
    PAUSE_IMAGE,
    ImagePullError,
    build_busybox_rootfs,
    ensure_image,
    ensure_images,
    list_images,
    normalize_ref,
    seed_busybox,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def client(docker_client: Any) -> Any:
    return docker_client


def test_normalize_ref() -> None:
    assert normalize_ref("busybox") == "busybox:latest"
    assert normalize_ref("localhost:5000/app") == "localhost:5000/app:latest"
    assert normalize_ref("a/b:1.2") == "a/b:1.2"
    assert normalize_ref("x@sha256:00") == "x@sha256:00"


def test_rootfs_has_busybox_applets_and_etc() -> None:
    if not os.path.isfile("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    with tarfile.open(fileobj=io.BytesIO(build_busybox_rootfs()), mode="r") as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert names["bin/busybox"].isfile()
    for applet in ("sh", "httpd", "wget", "sleep"):
        assert names[f"bin/{applet}"].issym() and names[f"bin/{applet}"].linkname == "busybox"
    assert {"etc/passwd", "etc/group", "tmp"} <= names.keys()
    assert names["tmp"].mode == 0o1777


def test_rootfs_without_busybox_names_the_path(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="busybox-static"):
        build_busybox_rootfs(str(tmp_path / "nope"))


def test_seed_busybox_is_idempotent_and_runs(client: Any) -> None:
    first = seed_busybox(client)
    second = seed_busybox(client)
    assert first == second == client.images.get(BUSYBOX_IMAGE).id
    assert ensure_images(client) == {BUSYBOX_IMAGE: "present", PAUSE_IMAGE: "present"}
    out = client.containers.run(BUSYBOX_IMAGE, ["sh", "-c", "echo ok; id -un"], remove=True)
    assert out.decode().split() == ["ok", "root"]
    assert client.images.get(PAUSE_IMAGE).attrs["Config"]["Cmd"][0] == "sleep"
    refs = {r["ref"] for r in list_images(client)}
    assert {BUSYBOX_IMAGE, PAUSE_IMAGE} <= refs


def test_only_busybox_and_pause_are_seeded_from_the_host(client: Any) -> None:
    # under a private tag so a removal does not disturb other users of busybox:latest
    seed_busybox(client)
    client.images.get(BUSYBOX_IMAGE).tag("nbkube-test/busybox", "gone")
    client.images.remove("nbkube-test/busybox:gone")
    with pytest.raises(ImagePullError):
        ensure_image(client, "nbkube-test/busybox:gone", timeout=15)


def test_missing_image_fails_with_the_daemon_message(client: Any) -> None:
    import docker

    with pytest.raises(ImagePullError) as info:
        ensure_image(client, "nbkube-test/does-not-exist:1", timeout=15)
    try:
        client.images.pull("nbkube-test/does-not-exist", tag="1")
    except docker.errors.APIError as exc:
        daemon = str(exc.explanation)
    else:  # pragma: no cover - a registry answered
        pytest.skip("a registry is reachable here")
    assert str(info.value) == daemon
    assert str(info.value)  # never an empty message


def test_cli_images_seed_and_list(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from nbkube.cli import main

    seed_busybox(client)
    assert main(["images", "seed"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["busybox:latest already present", "nbkube/pause:latest already present"]
    assert main(["images", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "ID", "SIZE", "CREATED"]
    assert {"busybox:latest", "nbkube/pause:latest"} <= {line.split()[0] for line in lines[1:]}
