"""NodeSystemInfo from the host: every field filled, read from the files the kubelet reads."""

from __future__ import annotations

import os
import platform
from typing import Any

from nbkube.node import sysinfo
from nbkube.node.sysinfo import go_arch, node_system_info, os_image

FIELDS = {
    "machineID",
    "systemUUID",
    "bootID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "kubeletVersion",
    "kubeProxyVersion",
    "operatingSystem",
    "architecture",
}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def test_every_field_is_a_non_empty_string_from_this_host() -> None:
    info = node_system_info("node-1", "sim")
    assert set(info) == FIELDS and all(isinstance(v, str) and v for v in info.values())
    assert info["kernelVersion"] == os.uname().release
    assert info["operatingSystem"] == platform.system().lower()
    assert info["containerRuntimeVersion"].startswith("sim://")
    boot_id = _read(sysinfo.BOOT_ID)
    if boot_id:
        assert info["bootID"] == boot_id
    machine_id = _read("/etc/machine-id")
    if machine_id:
        assert info["machineID"] == machine_id
    if not _read(sysinfo.PRODUCT_UUID):
        # derived per node, stably
        assert info["systemUUID"] != node_system_info("node-2", "sim")["systemUUID"]
        assert info["systemUUID"] == node_system_info("node-1", "sim")["systemUUID"]


def test_arch_names_follow_go() -> None:
    assert go_arch("x86_64") == "amd64" and go_arch("aarch64") == "arm64" and go_arch("riscv64") == "riscv64"


def test_os_image_from_pretty_name(tmp_path: Any) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    assert os_image((str(tmp_path / "missing"), str(release))) == "Debian GNU/Linux 12 (bookworm)"
    assert os_image((str(tmp_path / "missing"),)).startswith(platform.system())
