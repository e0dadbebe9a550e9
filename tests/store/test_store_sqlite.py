"""SQLite-only behaviour: several processes sharing one file, and a file we may not write."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbkube.errors import BadRequest, StoreUnavailable
from nbkube.store import open_store
from nbkube.store.base import KeyValue, RevisionMismatch
from nbkube.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[2]


def run_child(code: str) -> str:
    """Run `code` in a fresh Python process (imports nbkube from this checkout); return stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'shared.db'}"


def test_open_store_rejects_unknown_schemes_and_relative_paths() -> None:
    with pytest.raises(BadRequest, match="mysql://x"):
        open_store("mysql://x")
    with pytest.raises(BadRequest, match="sqlite://relative.db"):
        open_store("sqlite://relative.db")


def test_memory_stores_are_separate_and_usable_from_any_thread() -> None:
    with SqliteStore(":memory:") as one, SqliteStore(":memory:") as two:
        rev = one.create("/k", b"v")
        result: list[KeyValue | None] = []
        thread = threading.Thread(target=lambda: result.append(one.get("/k")))
        thread.start()
        thread.join(5)
        assert result == [KeyValue("/k", b"v", rev, rev)]
        assert two.get("/k") is None


def test_file_store_keeps_data_and_revision_across_reopen(url: str) -> None:
    with contextlib.closing(open_store(url)) as store:
        rev = store.create("/k", b"v")
        store.delete("/k")
    with contextlib.closing(open_store(url)) as store:
        assert store.get("/k") is None
        assert store.current_revision() == rev + 1
        assert store.create("/k", b"w") == rev + 2


def test_watch_sees_writes_of_another_store_on_the_same_file(url: str) -> None:
    with contextlib.closing(open_store(url)) as writer, contextlib.closing(open_store(url)) as reader:
        watch = reader.watch("/", reader.current_revision())
        try:
            rev = writer.create("/from-writer", b"hello")
            event = watch.next(5.0)  # arrives through the reader's poller, not a local wake-up
            assert event is not None and (event.kv.key, event.revision) == ("/from-writer", rev)
        finally:
            watch.cancel()


def test_watch_sees_writes_of_another_process(url: str) -> None:
    with contextlib.closing(open_store(url)) as store:
        watch = store.watch("/pods/", store.current_revision())
        try:
            child_rev = run_child(f"""
                from nbkube.store import open_store
                s = open_store({url!r})
                print(s.create("/pods/p1", b"from child"))
                s.close()
            """)
            event = watch.next(10.0)
            assert event is not None
            assert (event.kv.key, event.kv.value, event.revision) == (
                "/pods/p1",
                b"from child",
                int(child_rev),
            )
        finally:
            watch.cancel()


def test_compare_and_swap_holds_across_processes(url: str) -> None:
    with contextlib.closing(open_store(url)) as store:
        rev = store.create("/k", b"0")
        # The child updates with the revision we read; afterwards our update with it must fail...
        child = run_child(f"""
            from nbkube.store import open_store
            from nbkube.store.base import RevisionMismatch
            s = open_store({url!r})
            new = s.update("/k", b"child", {rev})
            try:
                s.update("/k", b"child-stale", {rev})
                print(new, "no-conflict")
            except RevisionMismatch:
                print(new, "conflict")
            s.close()
        """)
        child_rev, verdict = child.split()
        assert verdict == "conflict"
        with pytest.raises(RevisionMismatch) as info:
            store.update("/k", b"parent", rev)
        assert info.value.actual == int(child_rev)
        assert store.get("/k").value == b"child"  # type: ignore[union-attr]
        # ...and a revision allocated afterwards is above the child's.
        assert store.update("/k", b"parent", int(child_rev)) == int(child_rev) + 1


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make `paths` unwritable even for root (chattr +i), else by mode bits; restore afterwards."""
    if os.geteuid() == 0:
        done = []
        try:
            chattr = shutil.which("chattr")
            if chattr is None:
                pytest.skip("running as root without chattr: cannot make a file read-only")
            for path in paths:
                if subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
                    pytest.skip(
                        "running as root on a filesystem without chattr +i: cannot make a file read-only"
                    )
                done.append(path)
            yield
        finally:
            for path in done:
                subprocess.run([chattr, "-i", str(path)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        try:
            for path in paths:
                path.chmod(0o555 if path.is_dir() else 0o444)
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def test_read_only_file_is_refused_clearly_and_nothing_is_written(tmp_path: Path) -> None:
    db = tmp_path / "ro" / "store.db"
    url = f"sqlite://{db}"
    with contextlib.closing(open_store(url)) as store:
        rev = store.create("/k", b"v")
    before = {p.name: p.read_bytes() for p in db.parent.iterdir()}
    with read_only(db, db.parent):
        with pytest.raises(StoreUnavailable, match=f"^{url} is read-only"):
            open_store(url)
        assert {p.name: p.read_bytes() for p in db.parent.iterdir()} == before
    with contextlib.closing(open_store(url)) as store:
        assert store.current_revision() == rev


def test_read_only_directory_refuses_a_new_store(tmp_path: Path) -> None:
    directory = tmp_path / "ro-dir"
    directory.mkdir()
    with read_only(directory), pytest.raises(StoreUnavailable, match="is read-only"):
        open_store(f"sqlite://{directory / 'new.db'}")
    assert list(directory.iterdir()) == []


def test_locked_database_fails_within_the_busy_timeout_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    url = f"sqlite://{db}"
    store = SqliteStore(str(db), busy_timeout=0.5)
    try:
        store.create("/before", b"v")
        rev = store.current_revision()
        other = sqlite3.connect(db, isolation_level=None)  # stands in for another process
        other.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=f"^{url} is locked by another process"):
                store.create("/during", b"v")
            assert time.monotonic() - started < 5
            assert store.get("/before") is not None  # WAL readers are not blocked by the writer
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.get("/during") is None
        assert store.current_revision() == rev
        assert store.create("/after", b"v") == rev + 1  # and the store works again
    finally:
        store.close()


def test_closed_store_refuses_calls(url: str) -> None:
    store = open_store(url)
    store.list("/")  # its list connection is open
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.get("/k")
    with pytest.raises(StoreUnavailable, match="closed"):
        store.list("/")


def test_a_long_read_blocks_none_of_the_stores_writers_and_sees_its_own_snapshot(url: str) -> None:
    """A list (or a watch poll) reads on a connection of its own: while its transaction is open,
    a write of the same store in the same process goes through, and the read does not see it."""
    with SqliteStore(url.removeprefix("sqlite://")) as store:
        store.create("/a", b"1")
        inside, release = threading.Event(), threading.Event()
        counted: list[int] = []

        def slow_read(conn: sqlite3.Connection) -> None:
            counted.append(conn.execute("SELECT COUNT(*) FROM log").fetchone()[0])
            inside.set()
            release.wait(10)
            counted.append(conn.execute("SELECT COUNT(*) FROM log").fetchone()[0])

        reader = threading.Thread(target=store._snapshot, args=(store._list_reader, slow_read))
        reader.start()
        try:
            assert inside.wait(5)
            written = threading.Event()
            threading.Thread(target=lambda: (store.create("/b", b"2"), written.set()), daemon=True).start()
            assert written.wait(5), "a write waited for an open read"
        finally:
            release.set()
            reader.join(5)
        assert counted == [1, 1]  # one snapshot, from before the write
        assert [kv.key for kv in store.list("/")[0]] == ["/a", "/b"]


# The log table as versions before the single-statement writes created it (AUTOINCREMENT, and a
# creating row stored its own id as create_revision).
_LEGACY_SCHEMA = """
CREATE TABLE log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created INTEGER NOT NULL,
    deleted INTEGER NOT NULL, create_revision INTEGER NOT NULL, prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX log_name_id ON log (name, id);
CREATE TABLE compaction (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
INSERT INTO compaction (id, revision) VALUES (1, 0);
"""


def test_a_file_written_by_the_older_autoincrement_schema_reads_and_writes_the_same(tmp_path: Path) -> None:
    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(_LEGACY_SCHEMA)
    rows = [  # id, name, created, deleted, create_revision, prev_revision, value
        (1, "/a", 1, 0, 1, 0, b"a1"),
        (2, "/b", 1, 0, 2, 0, b"b1"),
        (3, "/a", 0, 0, 1, 1, b"a2"),
        (4, "/b", 0, 1, 2, 2, b"b1"),
    ]
    conn.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("UPDATE sqlite_sequence SET seq = 6 WHERE name = 'log'")  # ids 5 and 6 were used
    conn.close()

    with contextlib.closing(open_store(f"sqlite://{db}")) as store:
        assert store.current_revision() == 6
        assert store.get("/a") == KeyValue("/a", b"a2", 1, 3)
        assert store.get("/b") is None
        assert store.list("/") == ([KeyValue("/a", b"a2", 1, 3)], 6)
        watch = store.watch("/", 0)
        try:
            events = [watch.next(5.0) for _ in rows]
        finally:
            watch.cancel()
        assert [(e.type, e.kv, e.prev) for e in events if e is not None] == [
            ("PUT", KeyValue("/a", b"a1", 1, 1), None),
            ("PUT", KeyValue("/b", b"b1", 2, 2), None),
            ("PUT", KeyValue("/a", b"a2", 1, 3), KeyValue("/a", b"a1", 1, 1)),
            ("DELETE", KeyValue("/b", b"b1", 2, 4), KeyValue("/b", b"b1", 2, 2)),
        ]
        # new writes continue above every id the old file ever handed out
        assert store.update("/a", b"a3", 3) == 7
        assert store.get("/a") == KeyValue("/a", b"a3", 1, 7)
        assert store.create("/b", b"b2") == 8
        assert store.get("/b") == KeyValue("/b", b"b2", 8, 8)
        assert store.current_revision() == 8


def test_revisions_never_go_back_after_compaction_and_reopen(url: str) -> None:
    with contextlib.closing(open_store(url)) as store:
        created = store.create("/k", b"1")
        store.update("/k", b"2", created)
        store.delete("/k")
        last = store.create("/gone", b"x")
        deleted = store.delete("/gone")
        store.compact(deleted)  # drops every row it may: only the newest ones remain
        assert store.current_revision() == deleted
    with contextlib.closing(open_store(url)) as store:
        assert store.current_revision() == deleted > last
        assert store.create("/k", b"again") == deleted + 1
        assert store.get("/k") == KeyValue("/k", b"again", deleted + 1, deleted + 1)


def test_the_store_file_and_its_wal_are_the_owners_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SqliteStore(str(tmp_path / "new" / "store.db"))
        store.create("/k", b"v")
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "new").iterdir()}
        store.close()
        assert (
            modes["store.db"] == 0o600 and modes["store.db-wal"] == 0o600 and modes["store.db-shm"] == 0o600
        )
        # a store made before modes were enforced is tightened when opened
        os.chmod(tmp_path / "new" / "store.db", 0o644)
        SqliteStore(str(tmp_path / "new" / "store.db")).close()
        assert (tmp_path / "new" / "store.db").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_the_watch_poller_reads_only_watched_rows_and_makes_events_of_those(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows of kinds nobody watches (a busy cluster's Events) are neither copied out nor made
    into events; the watched ones arrive in order."""
    import nbkube.store.sqlite as sqlite_module

    made: list[str] = []
    real_event = sqlite_module._event

    def counting(row: tuple) -> object:  # type: ignore[type-arg]
        made.append(row[1])
        return real_event(row)

    monkeypatch.setattr(sqlite_module, "_event", counting)
    store = SqliteStore(":memory:")
    try:
        watch = store.watch("/a/", 0)
        for i in range(50):
            store.create(f"/b/{i}", b"{}")
        store.create("/a/1", b"{}")
        event = watch.next(5)
        assert event is not None and event.kv.key == "/a/1"
        assert made == ["/a/1"]
    finally:
        store.close()


def test_a_watcher_added_while_the_poller_reads_other_prefixes_misses_nothing() -> None:
    """The poller read the rows under the prefixes watched when it began; a watcher that came
    meanwhile under another prefix gets its rows of that range by a read of its own, once."""
    store = SqliteStore(":memory:")
    try:
        watch_a = store.watch("/a/", 0)
        poller = store._poller
        with poller._poll_lock:  # the poller thread waits: this test plays its part
            since = poller._last_seen
            prefixes = ("/a/",)
            store.create("/a/1", b"{}")
            store.create("/b/1", b"{}")
            rows = store._txn("BEGIN", lambda conn: store._rows_since(conn, since, prefixes=prefixes))
            current = store.current_revision()
            watch_b = store.watch("/b/", since)  # registered now: replays up to `since` only
            poller._fan_out(rows, since, current, prefixes)
        got_a, got_b = watch_a.next(5), watch_b.next(5)
        assert got_a is not None and got_a.kv.key == "/a/1"
        assert got_b is not None and got_b.kv.key == "/b/1"
        store.create("/b/2", b"{}")
        again = watch_b.next(5)
        assert again is not None and again.kv.key == "/b/2"  # not /b/1 a second time
        assert watch_a.next(0.2) is None
    finally:
        store.close()


def test_the_poller_hands_each_row_to_exactly_the_watchers_whose_prefix_it_has() -> None:
    """Watchers are looked up by their prefix's first three path segments: prefixes shorter than
    that, and ones that end inside a segment, still get every key they cover and nothing else."""
    store = SqliteStore(":memory:")
    prefixes = ["", "/registry", "/registry/", "/registry/pods", "/registry/pods/", "/registry/pods/ns/", "/registry/pods/n", "/registry/podsx/"]  # fmt: skip
    keys = ["/registry/pods/ns/a", "/registry/podsx/ns/b", "/registry/pods/other/c", "/registry/nodes/d", "/x"]
    try:
        watches = {p: store.watch(p, 0) for p in prefixes}
        for key in keys:
            store.create(key, b"{}")
        for prefix, watch in watches.items():
            want = [k for k in keys if k.startswith(prefix)]
            got = [ev.kv.key for ev in (watch.next(5) for _ in want) if ev is not None]
            assert got == want, prefix
            assert watch.next(0.05) is None, prefix
    finally:
        store.close()
