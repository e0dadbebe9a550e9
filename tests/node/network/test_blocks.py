"""Loopback address blocks: the plan's slots are disjoint, and claims hold across processes and restarts.

Every test uses a blocks folder of its own (`blocks_dir=`), so it neither takes nor sees the slots
of clusters running on the host meanwhile.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nbkube.errors import BadRequest
from nbkube.node.network.blocks import (
    CLUSTER_ENV,
    LEGACY,
    SLOTS,
    LoopbackBlock,
    claim_block,
)


def _nets(block: LoopbackBlock) -> list[ipaddress.IPv4Network]:
    return [ipaddress.ip_network(n) for n in (block.node_net, block.pod_net, block.service_net)]


def test_slot_zero_is_the_fixed_plan_of_earlier_versions() -> None:
    assert (LEGACY.node_ip(1), LEGACY.pod_cidr(1)) == ("127.240.0.2", "127.244.1.0/24")
    assert LEGACY.service_address("10.96.0.10") == "127.96.0.10"
    assert LEGACY.service_address("10.111.255.254") == "127.111.255.254"


def test_a_slots_addresses_and_its_one_for_one_service_mirror() -> None:
    block = LoopbackBlock(1)
    assert (block.node_ip(1), block.node_ip(253)) == ("127.241.0.2", "127.241.0.254")
    assert block.pod_cidr(3) == "127.241.3.0/24"
    assert block.service_address("10.96.0.10") == "127.16.0.10"
    assert block.service_address("10.111.255.254") == "127.31.255.254"
    assert block.service_address("192.0.2.1") == "192.0.2.1"  # not a ClusterIP: unchanged
    for bad in (0, 254):
        with pytest.raises(ValueError, match="node index"):
            block.node_ip(bad)
    with pytest.raises(ValueError, match="slot"):
        LoopbackBlock(SLOTS + 1)


def test_no_two_slots_share_an_address_and_none_touches_127_0() -> None:
    host = ipaddress.ip_network("127.0.0.0/16")
    blocks = [LoopbackBlock(k) for k in range(SLOTS + 1)]
    for i, a in enumerate(blocks):
        assert not any(net.overlaps(host) for net in _nets(a))
        assert ipaddress.ip_network(a.node_net).subnet_of(ipaddress.ip_network(a.pod_net)) or a.slot == 0
        assert not ipaddress.ip_network(a.pod_net).overlaps(ipaddress.ip_network(a.service_net))
        for b in blocks[i + 1 :]:
            for x in _nets(a):
                for y in _nets(b):
                    assert not x.overlaps(y), (a.describe(), b.describe())


def test_two_clusters_get_different_slots_and_a_restart_gets_its_own_again(tmp_path: Path) -> None:
    blocks = str(tmp_path / "blocks")
    a = claim_block(str(tmp_path / "a"), blocks_dir=blocks)
    b = claim_block(str(tmp_path / "b"), blocks_dir=blocks)
    try:
        assert a.block.slot != b.block.slot and a.cluster_id != b.cluster_id
        record = json.loads((tmp_path / "a" / "blocks.json").read_text())
        assert (record["cluster"], record["slot"], record["pods"]) == (
            a.cluster_id,
            a.block.slot,
            a.block.pod_net,
        )
        assert oct(os.stat(blocks).st_mode & 0o7777) == "0o1777"
        slot_a, id_a = a.block.slot, a.cluster_id
        a.close()
        again = claim_block(str(tmp_path / "a"), blocks_dir=blocks)
        assert (again.block.slot, again.cluster_id) == (slot_a, id_a)
        again.close()
    finally:
        a.close()
        b.close()


def test_a_slot_held_by_a_live_process_is_not_handed_out_and_is_free_once_it_ends(tmp_path: Path) -> None:
    blocks = str(tmp_path / "blocks")
    first = claim_block(str(tmp_path / "a"), blocks_dir=blocks)
    # a pod of the first cluster holds the lock after the cluster's process let go of it
    pod = subprocess.Popen(["sleep", "60"], pass_fds=(first.fd,), start_new_session=True)
    try:
        first.close()
        other = claim_block(str(tmp_path / "b"), blocks_dir=blocks)
        assert other.block.slot != first.block.slot
        other.close()
    finally:
        pod.kill()
        pod.wait(5)
    reclaimed = claim_block(str(tmp_path / "c"), blocks_dir=blocks)  # the dead cluster's slot is free
    assert reclaimed.block.slot == first.block.slot
    reclaimed.close()


def test_a_restart_joins_its_own_surviving_pods_but_moves_off_a_strangers_slot(tmp_path: Path) -> None:
    blocks = str(tmp_path / "blocks")
    mine = str(tmp_path / "mine")
    lease = claim_block(mine, blocks_dir=blocks)
    slot, cluster_id = lease.block.slot, lease.cluster_id
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), CLUSTER_ENV: cluster_id}
    pod = subprocess.Popen(["sleep", "60"], pass_fds=(lease.fd,), env=env, start_new_session=True)
    lease.close()  # the cluster's process died; its pod runs on, holding the slot
    try:
        back = claim_block(mine, blocks_dir=blocks)
        assert back.block.slot == slot
        # and nobody else can have it while the restarted cluster runs
        stranger = claim_block(str(tmp_path / "stranger"), blocks_dir=blocks)
        assert stranger.block.slot != slot
        stranger.close()
        back.close()
    finally:
        pod.kill()
        pod.wait(5)
    # now a stranger holds our slot (we were stopped) and none of our processes live: we move
    taker = claim_block(str(tmp_path / "taker"), blocks_dir=blocks)
    assert taker.block.slot == slot
    try:
        moved = claim_block(mine, blocks_dir=blocks)
        assert moved.block.slot != slot and moved.cluster_id == cluster_id
        assert json.loads(Path(mine, "blocks.json").read_text())["slot"] == moved.block.slot
        moved.close()
    finally:
        taker.close()


def test_all_slots_taken_is_a_clear_error(tmp_path: Path) -> None:
    blocks = str(tmp_path / "blocks")
    leases = [claim_block(str(tmp_path / f"c{i}"), blocks_dir=blocks) for i in range(SLOTS)]
    try:
        assert sorted(lease.block.slot for lease in leases) == list(range(1, SLOTS + 1))
        with pytest.raises(BadRequest, match=f"all {SLOTS} are held") as refused:
            claim_block(str(tmp_path / "one-too-many"), blocks_dir=blocks)
        assert f"slot 1: pids {os.getpid()}" in str(refused.value)  # who holds them, to stop
    finally:
        for lease in leases:
            lease.close()


_CLAIMER = """
import sys
from nbkube.node.network.blocks import claim_block
lease = claim_block(sys.argv[1], blocks_dir=sys.argv[2])
print(lease.block.slot, flush=True)
sys.stdin.read()  # hold the slot until the test closes our stdin
"""


def test_processes_racing_for_slots_never_share_one(tmp_path: Path) -> None:
    blocks = str(tmp_path / "blocks")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(tmp_path / f"c{i}"), blocks],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(5)
    ]
    try:
        slots = [int(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
        assert len(set(slots)) == 5, slots
    finally:
        for p in procs:
            p.stdin.close()  # type: ignore[union-attr]
            p.wait(20)


def test_a_shared_folder_that_is_not_safe_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a folder that belongs to another user")
    unsafe = tmp_path / "theirs"
    unsafe.mkdir(mode=0o755)
    os.chown(unsafe, 65534, 65534)
    with pytest.raises(BadRequest, match="must be sticky and writable by all"):
        claim_block(str(tmp_path / "a"), blocks_dir=str(unsafe))
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(BadRequest, match="is not a directory"):
        claim_block(str(tmp_path / "a"), blocks_dir=str(target))


def test_the_lock_files_are_shared_read_only(tmp_path: Path) -> None:
    blocks = tmp_path / "blocks"
    old = os.umask(0o077)
    try:
        lease = claim_block(str(tmp_path / "a"), blocks_dir=str(blocks))
    finally:
        os.umask(old)
    try:
        for name in ("claim.lock", f"use-{lease.block.slot}.lock"):
            assert oct(os.stat(blocks / name).st_mode & 0o777) == "0o444"
        with open(blocks / f"use-{lease.block.slot}.lock", "rb") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        lease.close()


def test_another_user_shares_the_folder_and_gets_another_slot(tmp_path: Path) -> None:
    """Root claims first (its lock files are 0444 and root's); `nobody` then claims beside it."""
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or python is None or setpriv is None:
        pytest.skip("needs root, setpriv and a system python3 to run a claim as another user")
    shared = tempfile.mkdtemp(prefix="nbkube-blocks-test-")
    try:
        os.chmod(shared, 0o755)  # traversable by the other user; the blocks folder inside is 1777
        blocks = os.path.join(shared, "blocks")
        mine = claim_block(str(tmp_path / "root-cluster"), blocks_dir=blocks)
        theirs = os.path.join(shared, "nobody-cluster")
        os.mkdir(theirs)
        os.chown(theirs, 65534, 65534)
        proc = subprocess.Popen(
            [
                setpriv,
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                python,
                "-c",
                _CLAIMER,
                theirs,
                blocks,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.getcwd()},
        )
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line.strip().isdigit(), line or proc.stderr.read()  # type: ignore[union-attr]
            assert int(line) != mine.block.slot
            assert json.loads(Path(theirs, "blocks.json").read_text())["slot"] == int(line)
        finally:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(20)
            mine.close()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
