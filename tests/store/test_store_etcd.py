"""etcd-only behaviour: unreachable servers fail fast and clearly, several endpoints, launch_etcd."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

from nbkube.errors import BadRequest, StoreUnavailable
from nbkube.store import open_store
from nbkube.store.etcd import parse_etcd_url
from nbkube.store.etcd_server import EtcdServer, etcd_available, launch_etcd


def test_unreachable_etcd_fails_fast_naming_the_url() -> None:
    url = "etcd://127.0.0.1:1"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"etcd at {url} is unreachable"):
        open_store(url)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("url", ["etcd://", "etcd://host", "etcd://host:notaport", "etcd://h:1,h:99999"])
def test_malformed_etcd_url_is_a_bad_request_naming_it(url: str) -> None:
    with pytest.raises(BadRequest, match="store URL"):
        open_store(url)


def test_parse_etcd_url_splits_endpoints() -> None:
    assert parse_etcd_url("etcd://127.0.0.1:2379,localhost:2380") == [
        ("127.0.0.1", 2379),
        ("localhost", 2380),
    ]


@pytest.mark.etcd
def test_a_dead_endpoint_in_the_list_is_skipped(etcd_url: str) -> None:
    live = etcd_url[len("etcd://") :].split(",")[0]
    with contextlib.closing(open_store(f"etcd://127.0.0.1:1,{live}")) as store:
        key = f"/nbkube-test/failover-{os.getpid()}-{time.monotonic_ns()}"
        rev = store.create(key, b"v")
        assert store.get(key).mod_revision == rev  # type: ignore[union-attr]
        store.delete(key)


@pytest.mark.etcd
@pytest.mark.skipif(not etcd_available(), reason="no etcd binary")
def test_launch_etcd_serves_and_cleans_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "etcd-data"
    with launch_etcd(str(data)) as server:
        assert isinstance(server, EtcdServer) and server.url.startswith("etcd://127.0.0.1:")
        with contextlib.closing(open_store(server.url)) as store:
            store.create("/k", b"v")
        own = server._own_dir
    assert server.proc.poll() is not None
    assert own is not None and not os.path.exists(own)
    assert data.exists()  # a data dir we were given is the caller's to keep


@pytest.mark.etcd
def test_private_etcd_on_a_unix_socket_opens_no_port(tmp_path, etcd_binary: None) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "c"
    folder.mkdir(mode=0o700)
    with launch_etcd(str(folder / "etcd"), socket_dir=str(folder)) as server:
        assert server.url == f"etcd+unix://{folder}/etcd.sock:2379" and server.port is None
        assert (folder / "etcd").stat().st_mode & 0o777 == 0o700
        with contextlib.closing(open_store(server.url)) as store:
            store.create("/k", b"v")
            assert store.get("/k").value == b"v"  # type: ignore[union-attr]
        # no TCP listener of this etcd: /proc/net/tcp* list none owned by its sockets' inodes
        inodes = set()
        for fd in os.listdir(f"/proc/{server.proc.pid}/fd"):
            with contextlib.suppress(FileNotFoundError):  # a descriptor etcd closed meanwhile
                inodes.add(os.readlink(f"/proc/{server.proc.pid}/fd/{fd}"))
        tcp = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as fh:
                tcp |= {f"socket:[{line.split()[9]}]" for line in fh.readlines()[1:]}
        assert not inodes & tcp
        # a second etcd for the same folder is refused while the first serves it
        with pytest.raises(StoreUnavailable, match="already serves"):
            launch_etcd(str(folder / "etcd2"), socket_dir=str(folder))
    assert not (folder / "etcd.sock:2379").exists()


def test_the_socket_folder_must_be_private(tmp_path, etcd_binary: None) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o755)
    with pytest.raises(BadRequest, match="must be ours and 0700"):
        launch_etcd(socket_dir=str(folder))


def test_unix_store_urls_are_checked() -> None:
    with pytest.raises(BadRequest, match="etcd\\+unix:///absolute/path"):
        open_store("etcd+unix://relative/etcd.sock")
