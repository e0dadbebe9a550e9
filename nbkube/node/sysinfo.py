"""The host facts a node agent reports in its Node's `status.nodeInfo` (upstream's NodeSystemInfo).

Every field of NodeSystemInfo is required by clients' typed models (the official Python client's
`list_node()` refuses a Node whose nodeInfo lacks bootID or kernelVersion), and upstream's kubelet
reads them from the host it runs on: the boot id the kernel draws at each boot, the machine id
systemd writes once, the firmware's system UUID, the kernel release, the OS name from os-release,
and the architecture in Go's spelling. The node agent (agent.py) calls `node_system_info` when it
registers and on each status write.

Unreadable files are ordinary here (containers lack DMI and sometimes machine-id): then the value
is derived, stably, from what is readable (the node name and the other ids), never left empty.
"""

from __future__ import annotations

import functools
import os
import platform
import uuid

import nbkube

__all__ = ["node_system_info", "go_arch", "os_image"]

BOOT_ID = "/proc/sys/kernel/random/boot_id"
MACHINE_IDS = ("/etc/machine-id", "/var/lib/dbus/machine-id")
PRODUCT_UUID = "/sys/class/dmi/id/product_uuid"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")

# platform.machine() names -> GOARCH, the spelling of `kubernetes.io/arch` and nodeInfo.architecture
_GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def _read_first(*paths: str) -> str:
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text:
            return text
    return ""


def go_arch(machine: str | None = None) -> str:
    """The GOARCH name of this machine's architecture (its own name when Go has no other)."""
    m = (machine if machine is not None else platform.machine()).lower()
    return _GO_ARCH.get(m, m or "unknown")


def os_image(paths: tuple[str, ...] = OS_RELEASE) -> str:
    """os-release's PRETTY_NAME (as the kubelet reports it), else "<system> <release>"."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key.strip() == "PRETTY_NAME":
                return value.strip().strip("\"'")
    return f"{platform.system()} {platform.release()}".strip()


@functools.lru_cache(maxsize=1)
def _host() -> tuple[str, str, str, str, str]:
    """(bootID, machineID, product UUID or "", kernel release, OS image): read once per process."""
    boot_id = _read_first(BOOT_ID)
    machine_id = _read_first(*MACHINE_IDS)
    product_uuid = _read_first(PRODUCT_UUID).lower()
    return boot_id, machine_id, product_uuid, os.uname().release, os_image()


def node_system_info(node_name: str, runtime_name: str) -> dict[str, str]:
    """NodeSystemInfo for `node_name` running pods through `runtime_name` (docker, process, sim).

    Several simulated nodes may share one host: the host's ids are then shared too, except the
    system UUID, which a host without a readable DMI UUID derives per node."""
    boot_id, machine_id, product_uuid, kernel, image = _host()
    if not boot_id:
        boot_id = str(uuid.uuid5(uuid.NAMESPACE_OID, f"nbkube-boot/{machine_id}/{node_name}"))
    if not machine_id:
        machine_id = uuid.uuid5(uuid.NAMESPACE_OID, f"nbkube-machine/{node_name}").hex
    system_uuid = product_uuid or str(uuid.uuid5(uuid.NAMESPACE_OID, f"nbkube-node/{machine_id}/{node_name}"))
    version = f"nbkube-{nbkube.__version__}"
    return {
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": boot_id,
        "kernelVersion": kernel,
        "osImage": image,
        "containerRuntimeVersion": f"{runtime_name}://{nbkube.__version__}",
        "kubeletVersion": version,
        "kubeProxyVersion": version,
        "operatingSystem": platform.system().lower() or "linux",
        "architecture": go_arch(),
    }
