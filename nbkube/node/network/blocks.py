"""Loopback address blocks for embedded clusters: many clusters, of one user or several, on one host.

Why: the embedded mode puts every node, pod and ClusterIP mirror on an address of 127.0.0.0/8. With
one fixed plan a second cluster on the host binds the same pod addresses and NodePorts as the first
and fails. So each embedded cluster takes a free *slot* of the plan below the first time it starts,
records it in its folder (`blocks.json`) and takes the same slot again on every restart.

The plan (slot k = 1..13): pods of node N on 127.P.N.0/24 and node N itself on 127.P.0.(N+1) (one
/16, P = `POD_OCTETS[k-1]`), and the ClusterIP range 10.96.0.0/12 mirrored one for one into the /12
127.S.0.0/12 (S = `SERVICE_OCTETS[k-1]`). The service range is a /12, and 127.0.0.0/8 holds only
sixteen /12s: 127.0.0.0/12 holds the host's own 127.0.0.1 and 127.0.1.1, 127.240.0.0/12 the pods,
and 127.96.0.0/12 with 127.240.0.0/24 and 127.244.0.0/16 make slot 0, the fixed plan of earlier
nbkube versions (`LEGACY`), which is never handed out, so such a cluster still on the host keeps
working beside these. That leaves thirteen slots.

Who holds a slot (host-wide, across users): a shared (`flock` LOCK_SH) lock on `use-<k>.lock` in
a world-writable sticky folder (`/tmp/nbkube-blocks`, or `$NBKUBE_BLOCKS_DIR`). The cluster's
process holds it, and every pod process it starts inherits the locked descriptor (the process
runtime's `pass_fds`), so the kernel keeps the slot taken exactly as long as anything of the
cluster lives, even after its process was killed with SIGKILL, and frees it when the last of it
ends: no record goes stale, nobody cleans up. Claims are serialized by an exclusive lock on
`claim.lock`, so two processes racing for slots (of one user or two) never take the same one: under
it, a slot is free when an exclusive lock on its file can be taken. A cluster restarting finds its
slot held by its own surviving pods (processes whose environment names its id, `CLUSTER_ENV`) and
joins them; otherwise it claims a free slot (its own again when nobody took it meanwhile). The lock
files are never written (0444, opened read-only), so a file another user created serves everyone.

Called by `nbkube.cluster` (LocalCluster, JoinedNode) for the process runtime; the kit
(`nbkube.node.kit`) threads the block to the node network, the runtime and the userspace proxy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import logging
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from nbkube.errors import BadRequest
from nbkube.node.network.base import MAX_NODE_INDEX

__all__ = [
    "BLOCKS_DIR_ENV",
    "BLOCKS_FILE",
    "CLUSTER_ENV",
    "LEGACY",
    "NODE_ENV",
    "SLOTS",
    "BlockLease",
    "LoopbackBlock",
    "claim_block",
    "default_blocks_dir",
    "holders",
]

log = logging.getLogger(__name__)

BLOCKS_DIR_ENV = "NBKUBE_BLOCKS_DIR"
BLOCKS_FILE = "blocks.json"  # in the cluster's folder: its id and slot
CLUSTER_ENV = "NBKUBE_CLUSTER"  # in every pod process's environment: the cluster's id
NODE_ENV = "NBKUBE_NODE"  # ... and the name of the node that started it
SERVICE_RANGE = ipaddress.IPv4Network("10.96.0.0/12")  # what the ClusterIP allocator hands out

POD_OCTETS = (241, 242, 243, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254)
SERVICE_OCTETS = (16, 32, 48, 64, 80, 112, 128, 144, 160, 176, 192, 208, 224)
SLOTS = len(SERVICE_OCTETS)


@dataclass(frozen=True)
class LoopbackBlock:
    """The addresses of one slot: node IPs, pod CIDRs and the ClusterIP mirror (slot 0: `LEGACY`)."""

    slot: int

    def __post_init__(self) -> None:
        if not isinstance(self.slot, int) or not 0 <= self.slot <= SLOTS:
            raise ValueError(f"address block slot must be an integer in 0..{SLOTS}, got {self.slot!r}")

    @property
    def pod_octet(self) -> int:
        return 244 if self.slot == 0 else POD_OCTETS[self.slot - 1]

    @property
    def service_octet(self) -> int:
        return 96 if self.slot == 0 else SERVICE_OCTETS[self.slot - 1]

    @property
    def node_net(self) -> str:
        return "127.240.0.0/24" if self.slot == 0 else f"127.{self.pod_octet}.0.0/24"

    @property
    def pod_net(self) -> str:
        return f"127.{self.pod_octet}.0.0/16"

    @property
    def service_net(self) -> str:
        return f"127.{self.service_octet}.0.0/12"

    def node_ip(self, index: int) -> str:
        """The address node number `index` (1..253) answers on (its NodePorts, hostPorts)."""
        _check_index(index)
        return f"{self.node_net.rsplit('.', 2)[0]}.0.{index + 1}"

    def pod_cidr(self, index: int) -> str:
        """Node `index`'s pod addresses: the pod of the node's N-th address is 127.P.index.N."""
        _check_index(index)
        return f"127.{self.pod_octet}.{index}.0/24"

    def service_address(self, cluster_ip: str) -> str:
        """The loopback mirror of a ClusterIP: 10.96.0.0/12 maps one for one onto `service_net`.

        An address outside the service range (none is allocated there) is returned unchanged."""
        try:
            addr = ipaddress.IPv4Address(cluster_ip)
        except ValueError:
            return cluster_ip
        if addr not in SERVICE_RANGE:
            return cluster_ip
        offset = int(addr) - int(SERVICE_RANGE.network_address)
        return str(
            ipaddress.IPv4Address(int(ipaddress.IPv4Address(f"127.{self.service_octet}.0.0")) + offset)
        )

    def describe(self) -> str:
        return f"slot {self.slot}: nodes {self.node_net}, pods {self.pod_net}, services {self.service_net}"


def _check_index(index: int) -> None:
    if not isinstance(index, int) or not 1 <= index <= MAX_NODE_INDEX:
        raise ValueError(f"node index must be an integer in 1..{MAX_NODE_INDEX}, got {index!r}")


LEGACY = LoopbackBlock(0)


def default_blocks_dir() -> str:
    """The host-wide folder of slot locks: every cluster on the host must use the same one."""
    return os.environ.get(BLOCKS_DIR_ENV) or "/tmp/nbkube-blocks"


@dataclass
class BlockLease:
    """A slot this process holds: `fd` carries the shared lock (pass it to every pod process)."""

    cluster_id: str
    block: LoopbackBlock
    fd: int
    path: str  # the cluster's blocks.json

    def close(self) -> None:
        """Let go of the slot here (pods still running hold it until they end)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        # a lease dropped without close() (its owner failed half-way through construction) must
        # not keep the slot taken for the life of this process
        self.close()

    def identity_env(self, node: str) -> dict[str, str]:
        """What every pod process of node `node` carries in its environment."""
        return {CLUSTER_ENV: self.cluster_id, NODE_ENV: node}


def _prepare_dir(path: str) -> None:
    """Create the shared folder (1777) or check that an existing one is safe to use."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o1777)  # chmod: the mode given to mkdir is cut by the umask
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise BadRequest(
            f"address blocks: {path} is not a directory (set {BLOCKS_DIR_ENV} to another folder)"
        )
    shared = st.st_mode & 0o1002 == 0o1002  # sticky and writable by all
    if not shared and st.st_uid not in (0, os.geteuid()):
        raise BadRequest(
            f"address blocks: {path} belongs to uid {st.st_uid} with mode {stat.S_IMODE(st.st_mode):o}; "
            f"it must be sticky and writable by all (1777) to be shared (or set {BLOCKS_DIR_ENV})"
        )


def _open_lock(path: str) -> int:
    """A read-only descriptor of a lock file, created (0444) if missing; never follows a symlink."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            pass
        try:
            # O_CREAT only when missing: some kernels refuse O_CREAT on another user's file in a
            # sticky folder even when it exists (fs.protected_regular)
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            continue  # somebody created it meanwhile
        os.fchmod(fd, 0o444)  # readable by every user whatever our umask
        return fd


def _try_flock(fd: int, op: int) -> bool:
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


def _read_record(path: str) -> tuple[str, int | None]:
    """(cluster id, slot) from a cluster's blocks.json; a new id when there is none yet."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return uuid.uuid4().hex, None
    except (OSError, ValueError) as exc:
        raise BadRequest(
            f"{path}: unreadable address block record ({exc}); remove it to start afresh"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), str) or not data["cluster"]:
        raise BadRequest(f"{path}: cluster must be a non-empty string")
    slot = data.get("slot")
    return data["cluster"], slot if isinstance(slot, int) and 1 <= slot <= SLOTS else None


def _write_record(path: str, cluster_id: str, block: LoopbackBlock) -> None:
    record = {
        "cluster": cluster_id,
        "slot": block.slot,
        "nodes": block.node_net,
        "pods": block.pod_net,
        "services": block.service_net,
    }
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def processes_of(cluster_id: str) -> list[int]:
    """Pids of live processes whose environment names `cluster_id` (those this user may read)."""
    needle = f"{CLUSTER_ENV}={cluster_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue  # gone, or another user's
    return found


def claim_block(
    cluster_dir: str,
    *,
    blocks_dir: str | None = None,
    alive: Callable[[str], list[int]] = processes_of,
) -> BlockLease:
    """Take this cluster's slot (see the module docstring): its own again when it still holds it
    or nobody took it meanwhile, else the first free one; recorded in `cluster_dir/blocks.json`."""
    blocks_dir = blocks_dir or default_blocks_dir()
    os.makedirs(cluster_dir, mode=0o700, exist_ok=True)
    record = os.path.join(cluster_dir, BLOCKS_FILE)
    cluster_id, recorded = _read_record(record)
    _prepare_dir(blocks_dir)
    claim_fd = _open_lock(os.path.join(blocks_dir, "claim.lock"))
    try:
        fcntl.flock(claim_fd, fcntl.LOCK_EX)  # held for milliseconds by whoever claims
        order = list(range(1, SLOTS + 1))
        if recorded is not None:
            order.remove(recorded)
            order.insert(0, recorded)
        for slot in order:
            fd = _open_lock(os.path.join(blocks_dir, f"use-{slot}.lock"))
            taken = _try_flock(fd, fcntl.LOCK_EX)
            if not taken and slot == recorded and alive(cluster_id):
                # our own pods survived their cluster's process and hold the slot: join them
                taken = _try_flock(fd, fcntl.LOCK_SH)
            if not taken:
                os.close(fd)
                continue
            # Every claimer waits on claim.lock and running clusters never take a lock outside
            # it, so turning the exclusive lock into a shared one cannot be overtaken.
            fcntl.flock(fd, fcntl.LOCK_SH)
            block = LoopbackBlock(slot)
            try:
                _write_record(record, cluster_id, block)
            except OSError:
                os.close(fd)
                raise
            if recorded is not None and slot != recorded:
                log.warning(
                    "address block %d of %s was taken by another cluster meanwhile; now %s",
                    recorded,
                    cluster_dir,
                    block.describe(),
                )
            return BlockLease(cluster_id, block, fd, record)
    finally:
        os.close(claim_fd)
    held = holders(blocks_dir)
    who = "; ".join(f"slot {k}: pids {', '.join(map(str, pids))}" for k, pids in sorted(held.items()))
    raise BadRequest(
        f"no free loopback address block: all {SLOTS} are held by clusters (or pods they left running) "
        f"on this host, locks in {blocks_dir}; stop one of them"
        + (f" (holders this user can see: {who})" if who else "")
    )


def holders(blocks_dir: str) -> dict[int, list[int]]:
    """{slot: pids holding its lock open}, as far as this user may look into other processes."""
    targets = {os.path.join(blocks_dir, f"use-{k}.lock"): k for k in range(1, SLOTS + 1)}
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                slot = targets.get(os.readlink(f"/proc/{entry}/fd/{fd}"))
            except OSError:
                continue
            if slot is not None:
                found.setdefault(slot, []).append(int(entry))
                break
    return found
