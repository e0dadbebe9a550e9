"""The embedded store: a kine-style append-only revision log in one SQLite file (or in memory).

Why: a notebook or a laptop should run nbkube without an etcd server, yet the registry must see the
same semantics either way (revisions, compare-and-swap, watch from a revision, compaction). Like
k3s's kine, every write appends one row to `log`; the row id *is* the revision, so revisions are
strictly increasing across every thread and every process that shares the file. SQLite picks the id
(one more than the largest): compaction never deletes the newest row, so an id is never reused and
the largest id is the current revision. `open_store()`
builds this for `sqlite:///abs/path.db` and `sqlite://:memory:`.

Concurrency: one connection per store for writes and point reads, guarded by a lock (SQLite
serialises writers anyway), so a store may be used from any thread. A file store's watch poller and
its lists read through connections of their own (`_Reader`): in WAL mode a reader never blocks a
writer, but on the shared connection every poll held the lock that this process's writers wait
for (in a busy process, half the time). Each create/update/delete is ONE conditional `INSERT` statement in
autocommit mode: SQLite runs a single statement as its own transaction and takes the database write
lock before the statement reads anything, so the compare-and-swap condition (subqueries in the
statement) and the insert happen under that lock and two processes can never interleave inside one write. One
statement instead of BEGIN / read revision / read latest / INSERT / COMMIT is what makes a write cost
about what a bare INSERT costs. Only when the condition fails (no row inserted) does a second read
find out why (exists / not found / revision mismatch).

Watch: one poller thread per store reads rows newer than the last one it saw and fans them out to
the watchers. A local commit wakes it at once; otherwise it polls every `poll_interval` seconds, so
that writes from other processes arrive too. It only runs while somebody watches.
"""

from __future__ import annotations

import builtins
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from nbkube.errors import BadRequest, StoreUnavailable
from nbkube.security.private import restrict_file
from nbkube.store._common import check_key, check_value, prefix_end
from nbkube.store._watch import QueueWatch
from nbkube.store.base import (
    MAX_BATCH,
    BatchWrite,
    Compacted,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    StoreError,
    Watch,
    WatchEvent,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")

# No AUTOINCREMENT: it would make every commit also update `sqlite_sequence` (one more b-tree page
# written per write, ~30% of a bare INSERT). Plain rowid allocation (largest id + 1) is strictly
# increasing here because compaction never deletes the newest row (see `_Poller.compact`). Files made
# by older versions keep their AUTOINCREMENT table and stay correct (SQLite then allocates
# max(sqlite_sequence, largest id) + 1); `_current` reads sqlite_sequence for them.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY,                 -- the revision
    name TEXT NOT NULL,
    created INTEGER NOT NULL,               -- 1 when this row brought the key into existence
    deleted INTEGER NOT NULL,               -- 1 for a tombstone (value = last value before delete)
    create_revision INTEGER NOT NULL,       -- meaningless when created = 1: then it is the row's id
    prev_revision INTEGER NOT NULL,         -- id of the key's previous row, 0 if none
    value BLOB NOT NULL
);
-- The one secondary index: latest row per name, and prefix ranges. (Compaction walks the
-- primary key, so prev_revision needs none; each extra index costs every write a page.)
CREATE UNIQUE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE TABLE IF NOT EXISTS compaction (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT OR IGNORE INTO compaction (id, revision) VALUES (1, 0);
"""


def _create_rev(table: str = "") -> str:
    """SQL for a row's create revision. A creating row is inserted before its id is known, so it
    stores 0 and its id stands in; older files stored the id itself, which gives the same answer."""
    t = f"{table}." if table else ""
    return f"CASE WHEN {t}created THEN {t}id ELSE {t}create_revision END"


# Columns of an event row: the log row plus its predecessor's value (for `prev` of a PUT).
_EVENT_COLUMNS = (
    f"l.id, l.name, l.created, l.deleted, {_create_rev('l')}, l.prev_revision, l.value, "
    f"p.value, {_create_rev('p')}"
)

# The writes, one statement each (see the module docstring); ?1 is the key. Each is a single-row
# `INSERT OR IGNORE ... VALUES` whose `value` is NULL when the write's condition fails: the NOT NULL
# constraint then makes SQLite skip the row, so nothing is written and rowcount is 0. (The obvious
# `INSERT ... SELECT ... WHERE condition` reads the table it inserts into, which makes SQLite buffer
# the selected row in a temporary table first: measurably slower on every write.) The key's newest
# row is found through the (name, id) index. OR IGNORE cannot hide another conflict: the id is new
# and no other column is constrained.
_NEWEST = "(SELECT MAX(id) FROM log WHERE name = ?1)"
_INSERT = "INSERT OR IGNORE INTO log (name, created, deleted, create_revision, prev_revision, value) "
_CREATE_SQL = (
    f"{_INSERT}VALUES (?1, 1, 0, 0, COALESCE({_NEWEST}, 0), "
    f"CASE WHEN COALESCE((SELECT deleted FROM log WHERE id = {_NEWEST}), 1) THEN ?2 END)"
)  # ?2 value; the key has no row or its newest row is a tombstone
_UPDATE_SQL = (
    f"{_INSERT}VALUES (?1, 0, 0, (SELECT {_create_rev()} FROM log WHERE id = ?3), ?3, "
    f"CASE WHEN {_NEWEST} = ?3 AND (SELECT deleted FROM log WHERE id = ?3) = 0 THEN ?2 END)"
)  # ?2 value, ?3 the expected newest id


def _delete_sql(condition: str) -> str:
    # a tombstone keeps the last value; `condition` narrows which newest row may be deleted
    return (
        f"{_INSERT}VALUES (?1, 0, 1, (SELECT {_create_rev()} FROM log WHERE id = {_NEWEST}), "
        f"COALESCE({_NEWEST}, 0), (SELECT value FROM log WHERE id = {_NEWEST} AND deleted = 0{condition}))"
    )


_DELETE_SQL = _delete_sql("")
_DELETE_IF_SQL = _delete_sql(" AND id = ?2")  # ?2 the expected newest id

_Row = tuple[Any, ...]
_Rows = list[_Row]  # an alias: inside SqliteStore, `list` names the method


def _name_range(prefix: str, column: str = "name") -> tuple[str, tuple[str, ...]]:
    """SQL condition (and parameters) selecting names under `prefix`, usable with the name index."""
    if not prefix:
        return "1", ()
    end = prefix_end(prefix)
    if end is None:
        return f"{column} >= ?", (prefix,)
    return f"{column} >= ? AND {column} < ?", (prefix, end)


def _covering(prefixes: Iterable[str]) -> tuple[str, ...]:
    """The fewest prefixes covering `prefixes` ("" covers every key)."""
    out: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not out or not prefix.startswith(out[-1]):
            out.append(prefix)
    return tuple(out)


def _under_any(prefix: str, prefixes: tuple[str, ...]) -> bool:
    return any(prefix.startswith(p) for p in prefixes)


def _segment(key: str) -> str | None:
    """`key` up to and including its third "/" ("/registry/pods/" of "/registry/pods/ns/web"),
    None when it has fewer. Every key under a prefix that has a segment shares that segment, so a
    row's watchers are looked up by its key's segment instead of trying every watcher's prefix."""
    second = key.find("/", 1)
    third = key.find("/", second + 1) if second >= 0 else -1
    return key[: third + 1] if third >= 0 else None


def _event(row: _Row) -> WatchEvent:
    rev, name, created, deleted, create_rev, prev_rev, value, prev_value, prev_create_rev = row
    if deleted:
        # A tombstone carries the last value, so the DELETE event needs no join.
        last = KeyValue(name, bytes(value), create_rev, prev_rev)
        return WatchEvent("DELETE", KeyValue(name, bytes(value), create_rev, rev), last)
    prev = None
    if not created and prev_value is not None:
        prev = KeyValue(name, bytes(prev_value), prev_create_rev, prev_rev)
    return WatchEvent("PUT", KeyValue(name, bytes(value), create_rev, rev), prev)


class SqliteStore:
    """`Store` over a SQLite revision log. `path` is an absolute file path or ":memory:"."""

    def __init__(self, path: str, *, busy_timeout: float = 2.0, poll_interval: float = 0.01):
        self.path = path
        self.memory = path == ":memory:"
        self.url = "sqlite://:memory:" if self.memory else f"sqlite://{path}"
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._closed = False
        if not self.memory:
            self._check_writable()
        try:
            self._conn = self._connect()
        except sqlite3.Error as err:
            raise self._unavailable(err) from err
        self._poller = _Poller(self, poll_interval)
        # the poller's reads and the lists, each on a connection of its own (see the module doc)
        self._watch_reader = _Reader(self)
        self._list_reader = _Reader(self)

    # --- opening -------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        """Refuse a file we could not write, before SQLite creates or changes anything."""
        if not os.path.isabs(self.path):
            raise BadRequest(f"{self.url}: the SQLite path must be absolute (sqlite:///abs/path.db)")
        directory = os.path.dirname(self.path) or "/"
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as err:
            raise StoreUnavailable(
                f"{self.url}: cannot create directory {directory}: {err.strerror}"
            ) from err
        if os.path.isdir(self.path):
            raise StoreUnavailable(f"{self.url} is a directory, not a SQLite file")
        exists = os.path.exists(self.path)
        # WAL mode needs to create `-wal`/`-shm` files beside the database, hence the directory check.
        if (exists and not os.access(self.path, os.W_OK)) or not os.access(directory, os.W_OK):
            raise StoreUnavailable(f"{self.url} is read-only")
        self._make_private(exists)

    def _make_private(self, exists: bool) -> None:
        """The store is the whole cluster, Secrets included: only its owner may read it. A new file
        is created 0600 before SQLite opens it (SQLite gives `-wal`/`-shm` the database file's
        mode); files of ours from before that are tightened."""
        if not exists:
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass  # another process created it a moment ago: theirs is made the same way
            except OSError as err:
                raise StoreUnavailable(f"{self.url}: cannot create the file: {err.strerror}") from err
        for suffix in ("", "-wal", "-shm"):
            restrict_file(self.path + suffix)

    def _open_connection(self) -> sqlite3.Connection:
        """A connection to this store's file, as every one of ours is made (the writers' and the
        readers'); the caller closes it if what it does next fails."""
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit: we issue BEGIN/COMMIT ourselves where needed
            check_same_thread=False,  # each is guarded by a lock of its owner's
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = self._open_connection()
        try:
            if not self.memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreUnavailable(f"{self.url}: cannot switch to WAL mode (journal mode is {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            has_log = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log'"
            ).fetchone()
            if not has_log:
                # Only take the write lock when the schema is missing, so opening an existing store
                # never blocks behind (or is refused by) another process's writer.
                conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            # An AUTOINCREMENT log (made by an older version) may have allocated ids above the
            # largest one still present; its sqlite_sequence row is then the current revision.
            legacy = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
            ).fetchone()
            self._current_sql = _CURRENT_LEGACY_SQL if legacy else _CURRENT_SQL
        except BaseException:
            conn.close()
            raise
        return conn

    def _unavailable(self, err: sqlite3.Error) -> StoreUnavailable:
        text = str(err).lower()
        if "locked" in text or "busy" in text:
            msg = f"{self.url} is locked by another process (waited {self._busy_timeout:g}s)"
        elif "readonly" in text or "read-only" in text:
            msg = f"{self.url} is read-only"
        elif "not a database" in text:
            msg = f"{self.url} is not a SQLite database"
        else:
            msg = f"{self.url}: {err}"
        return StoreUnavailable(msg)

    # --- transactions --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"{self.url}: store is closed")

    def _txn(self, begin: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one transaction; roll back on any error (nothing half-written)."""
        with self._lock:
            self._check_open()
            conn = self._conn
            try:
                conn.execute(begin)
            except sqlite3.Error as err:
                raise self._unavailable(err) from err
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException as err:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(err, sqlite3.Error):
                    raise self._unavailable(err) from err
                raise
            return result

    def _snapshot(self, reader: _Reader, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run the read-only `body` in one read transaction on `reader`'s connection (a memory
        store has one connection only: its own, under `_txn`)."""
        if self.memory:
            return self._txn("BEGIN", body)
        return reader.run(body)

    def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """A single-statement read: atomic on its own, so it skips BEGIN/COMMIT (twice as fast)."""
        with self._lock:
            self._check_open()
            try:
                return body(self._conn)
            except sqlite3.Error as err:
                raise self._unavailable(err) from err

    def _write(
        self, key: str, sql: str, params: tuple[Any, ...], expected: int | None, creating: bool = False
    ) -> int:
        """Run one conditional-insert statement (its own transaction); return the new revision.

        When it inserts nothing, the condition failed: read the key's newest row to say why. That
        read is a moment later, so another writer may have made the condition true again meanwhile
        (e.g. deleted the key a create collided with); then the statement is simply run again."""
        with self._lock:
            self._check_open()
            conn = self._conn
            try:
                while True:
                    cursor = conn.execute(sql, params)
                    if cursor.rowcount == 1:
                        rev = cursor.lastrowid
                        break
                    self._refuse(conn, key, creating=creating, expected=expected)
            except sqlite3.Error as err:
                raise self._unavailable(err) from err
        self._poller.kick()
        assert rev is not None  # a row was inserted, so SQLite reports its id
        return rev

    @staticmethod
    def _refuse(conn: sqlite3.Connection, key: str, *, creating: bool, expected: int | None) -> None:
        """Raise what made a write's condition fail; return if it holds now (so: try again)."""
        latest = _latest(conn, key)
        live = latest is not None and not latest[2]
        if creating:
            if live:
                raise KeyExists(f"{key}: already exists")
            return
        if latest is None or not live:
            raise KeyNotFound(f"{key}: not found")
        if expected is not None and latest[0] != expected:
            raise RevisionMismatch(key, expected, latest[0])

    # --- Store protocol ------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        check_key(key)
        row = self._read(lambda conn: _latest(conn, key))
        if row is None or row[2]:
            return None
        rev, _created, _deleted, create_rev, _prev, value = row
        return KeyValue(key, bytes(value), create_rev, rev)

    def list(
        self, prefix: str, *, revision: int | None = None, start: str = "", limit: int = 0
    ) -> tuple[builtins.list[KeyValue], int]:
        cond, params = _name_range(prefix)
        if start:
            cond, params = f"{cond} AND name >= ?", (*params, start)

        def read(conn: sqlite3.Connection) -> tuple[builtins.list[KeyValue], int]:
            # All statements run in one read transaction: WAL gives them the same snapshot.
            rev = self._read_revision(conn, revision)
            upto = f" AND id <= {int(rev)}" if revision is not None else ""
            if not limit:
                rows = conn.execute(
                    f"SELECT l.name, l.value, {_create_rev('l')}, l.id FROM log l WHERE l.id IN "
                    f"(SELECT MAX(id) FROM log WHERE {cond}{upto} GROUP BY name) AND l.deleted = 0 "
                    "ORDER BY l.name",
                    params,
                ).fetchall()
                return [KeyValue(n, bytes(v), c, m) for n, v, c, m in rows], rev
            # a page: the (name, id) index yields names in order, so LIMIT stops the walk early;
            # tombstones take places in it, so walk on until the page is full or the range ends
            out: builtins.list[KeyValue] = []
            after: tuple[str, ...] = ()
            while len(out) < limit:
                want = limit - len(out)
                extra = " AND name > ?" if after else ""
                latest = conn.execute(
                    f"SELECT name, MAX(id) FROM log WHERE {cond}{extra}{upto} GROUP BY name ORDER BY name LIMIT ?",
                    (*params, *after, want),
                ).fetchall()
                if not latest:
                    break
                ids = [i for _n, i in latest]
                marks = ",".join("?" * len(ids))
                rows = conn.execute(
                    f"SELECT l.name, l.value, {_create_rev('l')}, l.id FROM log l WHERE l.id IN ({marks}) "
                    "AND l.deleted = 0 ORDER BY l.name",
                    ids,
                ).fetchall()
                out += [KeyValue(n, bytes(v), c, m) for n, v, c, m in rows]
                if len(latest) < want:
                    break
                after = (latest[-1][0],)
            return out, rev

        return self._snapshot(self._list_reader, read)

    def count(self, prefix: str, *, revision: int | None = None, start: str = "") -> int:
        cond, params = _name_range(prefix)
        if start:
            cond, params = f"{cond} AND name >= ?", (*params, start)

        def read(conn: sqlite3.Connection) -> int:
            rev = self._read_revision(conn, revision)
            upto = f" AND id <= {int(rev)}" if revision is not None else ""
            row = conn.execute(
                f"SELECT COUNT(*) FROM log WHERE id IN (SELECT MAX(id) FROM log WHERE {cond}{upto} "
                "GROUP BY name) AND deleted = 0",
                params,
            ).fetchone()
            return int(row[0])

        return self._snapshot(self._list_reader, read)

    def _read_revision(self, conn: sqlite3.Connection, revision: int | None) -> int:
        """The revision a read reflects: the current one, or `revision` if it is still readable."""
        rev = self._current(conn)
        if revision is None:
            return rev
        if revision > rev:
            raise BadRequest(f"revision {revision} is in the future: {self.url} is at {rev}")
        compacted = self._compaction_revision(conn)
        # compaction keeps every row a read at `compacted` or later needs (see _Poller.compact)
        if revision < compacted:
            raise Compacted(revision, compacted)
        return revision

    def create(self, key: str, value: bytes) -> int:
        check_key(key)
        check_value(key, value)
        return self._write(key, _CREATE_SQL, (key, bytes(value)), None, creating=True)

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> int:
        check_key(key)
        check_value(key, value)
        return self._write(
            key, _UPDATE_SQL, (key, bytes(value), expected_mod_revision), expected_mod_revision
        )

    def write_batch(self, writes: Sequence[BatchWrite]) -> builtins.list[int | StoreError]:
        keys = [w.key for w in writes]
        if len(set(keys)) != len(keys):
            raise BadRequest("store batch: a key appears twice")
        for w in writes:
            check_key(w.key)
            check_value(w.key, w.value)
        out: builtins.list[int | StoreError] = []
        for start in range(0, len(writes), MAX_BATCH):
            chunk = writes[start : start + MAX_BATCH]
            out += self._txn("BEGIN IMMEDIATE", functools.partial(self._batch, writes=chunk))
        if any(isinstance(r, int) for r in out):
            self._poller.kick()
        return out

    def _batch(self, conn: sqlite3.Connection, *, writes: Sequence[BatchWrite]) -> builtins.list[int | StoreError]:
        """Each write's own conditional statement, in the caller's transaction: one refused item
        inserts nothing and the others stand (no other writer runs meanwhile: it is IMMEDIATE)."""
        out: builtins.list[int | StoreError] = []
        for w in writes:
            creating = w.expected_mod_revision is None
            if creating:
                cursor = conn.execute(_CREATE_SQL, (w.key, bytes(w.value)))
            else:
                cursor = conn.execute(_UPDATE_SQL, (w.key, bytes(w.value), w.expected_mod_revision))
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                out.append(cursor.lastrowid)
                continue
            try:
                self._refuse(conn, w.key, creating=creating, expected=w.expected_mod_revision)
            except StoreError as err:
                out.append(err)
                continue
            raise AssertionError(f"{w.key}: a write's condition held, yet nothing was inserted")
        return out

    def delete(self, key: str, expected_mod_revision: int | None = None) -> int:
        check_key(key)
        if expected_mod_revision is None:
            return self._write(key, _DELETE_SQL, (key,), None)
        return self._write(key, _DELETE_IF_SQL, (key, expected_mod_revision), expected_mod_revision)

    def watch(self, prefix: str, after_revision: int) -> Watch:
        return self._poller.add(prefix, after_revision)

    def current_revision(self) -> int:
        return self._read(self._current)

    def compact(self, revision: int) -> None:
        self._poller.compact(revision)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._poller.close()
        self._watch_reader.close()
        self._list_reader.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"

    # --- used by the poller --------------------------------------------------------------------

    def _current(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute(self._current_sql).fetchone()[0])

    def _compaction_revision(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT revision FROM compaction WHERE id = 1").fetchone()[0])

    def _rows_since(
        self, conn: sqlite3.Connection, after: int, upto: int | None = None, prefixes: Sequence[str] = ("",)
    ) -> _Rows:
        """The rows after revision `after` (up to `upto`) under any of `prefixes` (_covering's; ""
        and none: every key), in order."""
        ranges = [_name_range(p, "l.name") for p in prefixes or ("",)]
        where = " OR ".join(f"({cond})" for cond, _params in ranges)
        sql = f"SELECT {_EVENT_COLUMNS} FROM log l LEFT JOIN log p ON p.id = l.prev_revision WHERE l.id > ?"
        args: list[object] = [after]
        if upto is not None:
            sql += " AND l.id <= ?"
            args.append(upto)
        args.extend(value for _cond, params in ranges for value in params)
        return conn.execute(f"{sql} AND ({where}) ORDER BY l.id", args).fetchall()


# The current revision: the largest id (compaction keeps the newest row, so it never goes back); for
# an older AUTOINCREMENT file, sqlite_sequence, which never goes back either.
_CURRENT_SQL = "SELECT COALESCE(MAX(id), 0) FROM log"
_CURRENT_LEGACY_SQL = "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'log'"


_LATEST_SQL = (
    f"SELECT id, created, deleted, {_create_rev()}, prev_revision, value FROM log "
    "WHERE name = ? ORDER BY id DESC LIMIT 1"
)


def _latest(conn: sqlite3.Connection, key: str) -> _Row | None:
    """(id, created, deleted, create_revision, prev_revision, value) of the key's newest row."""
    row: _Row | None = conn.execute(_LATEST_SQL, (key,)).fetchone()
    return row


class _Reader:
    """A read-only connection of a file store's, opened at its first read, for one kind of reader
    (the watch poller, the lists): its reads wait neither for the store's writers nor for the
    other kind. Each read is one transaction: one snapshot of the log."""

    def __init__(self, store: SqliteStore):
        self._store = store
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def run(self, body: Callable[[sqlite3.Connection], T]) -> T:
        store = self._store
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"{store.url}: store is closed")
            try:
                if self._conn is None:
                    self._conn = self._open()
                conn = self._conn
                conn.execute("BEGIN")
            except sqlite3.Error as err:
                raise store._unavailable(err) from err
            try:
                result = body(conn)
            except sqlite3.Error as err:
                raise store._unavailable(err) from err
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # read-only: ending it is all a commit would do
            return result

    def _open(self) -> sqlite3.Connection:
        conn = self._store._open_connection()
        try:
            conn.execute("PRAGMA query_only = 1")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _Poller:
    """Reads new log rows and fans them out to this store's watchers (one thread per store)."""

    def __init__(self, store: SqliteStore, interval: float):
        self._store = store
        self._interval = interval
        self._cond = threading.Condition()
        self._watchers: list[QueueWatch] = []
        self._last_seen = 0  # every row up to here has been fanned out
        self._kicked = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # Serialises reading-and-fanning-out, so rows reach every watcher exactly once and in order.
        self._poll_lock = threading.Lock()

    def add(self, prefix: str, after_revision: int) -> QueueWatch:
        store = self._store
        watch = QueueWatch(prefix, after_revision, on_cancel=self._remove)
        with self._cond:
            if self._closed:
                raise StoreUnavailable(f"{store.url}: store is closed")

            def replay(conn: sqlite3.Connection) -> list[_Row]:
                compacted = store._compaction_revision(conn)
                if after_revision + 1 < compacted:
                    raise Compacted(after_revision + 1, compacted)
                if not self._watchers:
                    # Nobody was watching, so the poller was idle: start tracking from now.
                    self._last_seen = max(self._last_seen, store._current(conn))
                if after_revision >= self._last_seen:
                    return []
                return store._rows_since(conn, after_revision, self._last_seen, (prefix,))

            # Holding the condition while replaying means the poller cannot fan out rows past
            # `_last_seen` until this watcher is registered: no gap and no duplicate.
            rows = store._snapshot(store._watch_reader, replay)
            for row in rows:
                watch.push(_event(row))
            self._watchers.append(watch)
            self._ensure_thread()
        return watch

    def _remove(self, watch: QueueWatch) -> None:
        with self._cond:
            if watch in self._watchers:
                self._watchers.remove(watch)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"nbkube-sqlite-watch {self._store.url}", daemon=True
            )
            self._thread.start()
        self._cond.notify_all()

    def kick(self) -> None:
        # Unlocked read: a watcher registering concurrently replays up to `_last_seen` and the
        # periodic poll picks up the rest, so a missed kick costs one interval at most.
        if self._watchers:
            with self._cond:
                self._kicked = True
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._watchers:
                    self._cond.wait()
                if not self._closed and not self._kicked:
                    self._cond.wait(self._interval)
                if self._closed:
                    return
                self._kicked = False
            try:
                self.poll()
            except StoreUnavailable as err:
                self._fail_all(err)

    def poll(self) -> None:
        store = self._store
        with self._poll_lock:
            with self._cond:
                since = self._last_seen
                if not self._watchers:
                    return
                prefixes = _covering(w.prefix for w in self._watchers)

            def read(conn: sqlite3.Connection) -> tuple[list[_Row], int, int]:
                # only the rows somebody watches: no value of an unwatched kind (every Event a
                # busy cluster writes) is copied out of SQLite or made into an event
                rows = store._rows_since(conn, since, prefixes=prefixes)
                return rows, store._compaction_revision(conn), store._current(conn)

            rows, compacted, current = store._snapshot(store._watch_reader, read)
            if compacted > since + 1:
                # Another process compacted past rows we had not read yet: some may be gone.
                self._fail_all(Compacted(since + 1, compacted))
            self._fan_out(rows, since, current, prefixes)

    def _fan_out(self, rows: list[_Row], since: int, current: int, prefixes: tuple[str, ...]) -> None:
        with self._cond:
            # A watcher added while the rows were read, under a prefix the read did not cover,
            # gets its rows of the same range by a read of its own (its registration replayed up
            # to `since`); the others get the rows read.
            covered: list[QueueWatch] = []
            for watch in self._watchers:
                if _under_any(watch.prefix, prefixes):
                    covered.append(watch)
                elif current > since:
                    for row in self._rows_between(since, current, watch.prefix):
                        watch.push(_event(row))
            by_segment: dict[str, list[QueueWatch]] = {}
            anywhere: list[QueueWatch] = []  # prefixes too short to have a segment ("", "/registry/")
            for watch in covered:
                segment = _segment(watch.prefix)
                if segment is None:
                    anywhere.append(watch)
                else:
                    by_segment.setdefault(segment, []).append(watch)
            for row in rows:
                key = row[1]
                event: WatchEvent | None = None
                segment = _segment(key)
                candidates = by_segment.get(segment, ()) if segment is not None else ()
                for watches in (candidates, anywhere):
                    for watch in watches:
                        if key.startswith(watch.prefix):
                            event = event or _event(row)
                            watch.push(event)
            self._last_seen = max(self._last_seen, current)

    def _rows_between(self, after: int, upto: int, prefix: str) -> list[_Row]:
        store = self._store

        def read(conn: sqlite3.Connection) -> list[_Row]:
            return store._rows_since(conn, after, upto, (prefix,))

        return store._snapshot(store._watch_reader, read)

    def _fail_all(self, err: Exception) -> None:
        with self._cond:
            watchers, self._watchers = self._watchers, []
        for watch in watchers:
            watch.fail(err)

    def compact(self, revision: int) -> None:
        store = self._store

        def body(conn: sqlite3.Connection) -> tuple[list[_Row], int, int]:
            current = store._current(conn)
            if revision > current:
                raise BadRequest(
                    f"cannot compact {store.url} to revision {revision}: current revision is {current}"
                )
            if revision <= store._compaction_revision(conn):
                return [], 0, 0
            # Read unseen rows in the same transaction as the delete, so watchers get them first.
            since = self._last_seen
            unseen = store._rows_since(conn, since) if self._watchers else []
            # Keep every row at or after `revision` (and each one's predecessor, for prev values):
            # drop rows superseded before it, and tombstones before it.
            conn.execute(
                "DELETE FROM log WHERE id IN (SELECT prev_revision FROM log WHERE id < ? AND prev_revision > 0)",
                (revision,),
            )
            conn.execute("DELETE FROM log WHERE deleted = 1 AND id < ?", (revision,))
            conn.execute("UPDATE compaction SET revision = ? WHERE id = 1", (revision,))
            return unseen, since, current

        with self._poll_lock:
            rows, since, current = store._txn("BEGIN IMMEDIATE", body)
            if current:
                self._fan_out(rows, since, current, ("",))  # every row: every watcher is covered

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._cond:
            watchers, self._watchers = self._watchers, []
        for watch in watchers:
            watch.close_stream()
