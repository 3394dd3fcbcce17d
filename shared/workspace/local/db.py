"""The local workspace's SQLite database (``<MANYMODELS_HOME>/workspace.db``).

Several processes open it at once (the Function App host, the pipeline runner, the CLI), and the
host is multi-threaded, so:

- WAL journal: readers never block the one writer and the writer never blocks readers;
- one connection per thread (``sqlite3`` connections must not be shared across threads), reopened
  after a ``fork``;
- every read-modify-write (version numbering, status transitions) runs in
  :meth:`Database.transaction`, which takes the write lock up front (``BEGIN IMMEDIATE``) so two
  writers never both read "latest is 3" and both write 4. Transactions are short: file copies
  and other slow work happen before or after, never inside;
- a locked database is waited for (``busy_timeout``) and retried with backoff before giving up
  with :class:`~shared.errors.Unavailable`.

The schema is versioned with ``PRAGMA user_version`` and created idempotently, so any process
may be the first to open a new home.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.errors import Unavailable

DB_FILE = "workspace.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
LOCK_RETRY_SECONDS = 120.0  # total time a writer keeps retrying a locked database
_INHERITED: list[sqlite3.Connection] = []  # connections a forked child got from its parent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name      TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    datastore TEXT    NOT NULL,
    mode      TEXT    NOT NULL,
    tags      TEXT    NOT NULL DEFAULT '{}',
    created   TEXT    NOT NULL,
    digest    TEXT    NOT NULL,  -- hash of the sorted (name, fingerprint) pairs: replay detection
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS dataset_files (
    dataset  TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    ordinal  INTEGER NOT NULL,
    name     TEXT    NOT NULL,
    path     TEXT    NOT NULL,
    etag     TEXT    NOT NULL,
    size     INTEGER NOT NULL,
    md5      TEXT,
    changed  INTEGER NOT NULL,
    PRIMARY KEY (dataset, version, ordinal),  -- clustered in file order: a version reads sequentially
    UNIQUE (dataset, version, name),
    FOREIGN KEY (dataset, version) REFERENCES datasets (name, version) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS pipelines (
    pipeline_id TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created     TEXT    NOT NULL,
    parameters  TEXT    NOT NULL DEFAULT '{}',
    description TEXT    NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS pipelines_name ON pipelines (name, enabled, version);

CREATE TABLE IF NOT EXISTS runs (
    run_id          TEXT    PRIMARY KEY,
    pipeline        TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    experiment      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    dataset_name    TEXT    NOT NULL,
    dataset_version INTEGER NOT NULL,
    parameters      TEXT    NOT NULL DEFAULT '{}',
    tags            TEXT    NOT NULL DEFAULT '{}',
    submitted       TEXT    NOT NULL,
    started         TEXT,
    ended           TEXT,
    counts          TEXT    NOT NULL DEFAULT '{}',
    outputs         TEXT    NOT NULL DEFAULT '{}',
    error           TEXT
);
CREATE INDEX IF NOT EXISTS runs_submitted ON runs (submitted);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, submitted);
CREATE TABLE IF NOT EXISTS run_failures (
    run_id  TEXT    NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    file    TEXT    NOT NULL,
    series  TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    PRIMARY KEY (run_id, ordinal)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS models (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    latest     INTEGER NOT NULL,  -- 1 on the highest version of each name (kept by register_many)
    tags       TEXT    NOT NULL DEFAULT '{}',
    properties TEXT    NOT NULL DEFAULT '{}',
    path       TEXT    NOT NULL,
    created    TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS models_latest ON models (name) WHERE latest = 1;
CREATE TABLE IF NOT EXISTS model_tags (
    name    TEXT    NOT NULL,
    version INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES models (name, version) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS model_tags_value ON model_tags (key, value, name, version);

CREATE TABLE IF NOT EXISTS services (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    scoring_uri TEXT NOT NULL DEFAULT '',
    models      TEXT NOT NULL DEFAULT '[]',
    updated     TEXT NOT NULL,
    error       TEXT,
    process     TEXT NOT NULL DEFAULT '{}'  -- local service process: pid, port, config (E), never keys
);
"""


def utc_now() -> str:
    """ISO 8601 UTC timestamp with a ``Z`` suffix, like Azure ML's."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# one encoder for every call (json.dumps with options builds a new one each time: thousands per registration)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def dumps(value: Mapping[str, Any] | list[Any] | tuple[Any, ...] | None) -> str:
    """JSON for a column: compact and key-sorted, so equal content gives equal text."""
    return _ENCODER.encode(value if value is not None else {})


def loads(text: str | None, default: Any = None) -> Any:
    if not text:
        return {} if default is None else default
    return json.loads(text)


def plain_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """A cursor yielding tuples, not ``sqlite3.Row``: several times cheaper over thousands of rows."""
    cursor = conn.cursor()
    cursor.row_factory = None
    return cursor


def _is_locked(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "locked" in message or "busy" in message


class Database:
    """One SQLite file, one connection per thread. Use :func:`connect` to open one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._ensure_schema()

    # ------------------------------------------------------------------ connections

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: every statement outside a transaction commits)."""
        if os.getpid() != self._pid:
            # A forked child must neither use nor close the parent's connections (closing may
            # checkpoint or unlock the parent's WAL): keep them referenced, open new ones.
            _INHERITED.extend(self._connections)
            self._local = threading.local()
            self._connections = []
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a power cut may lose the last commit only
        return conn

    def close(self) -> None:
        """Close every connection this object opened (call when no other thread uses it)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from its first statement.

        Keep the body short and free of slow I/O: every other writer waits for it.
        """
        conn = self.connection()
        self._begin(conn, "BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.OperationalError) and _is_locked(e):
                raise self._locked(e) from e
            raise
        else:
            conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in the body sees the same committed state."""
        conn = self.connection()
        self._begin(conn, "BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _begin(self, conn: sqlite3.Connection, statement: str) -> None:
        if conn.in_transaction:  # a nested use on this thread would silently merge transactions
            raise RuntimeError("nested workspace transaction on one thread")
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                conn.execute(statement)
                return
            except sqlite3.OperationalError as e:
                if not _is_locked(e):
                    raise
                if time.monotonic() > deadline:
                    raise self._locked(e) from e
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)

    def _locked(self, error: sqlite3.OperationalError) -> Unavailable:
        return Unavailable(f"the local workspace database {self.path} stayed locked ({error}): another process "
                           "holds it; check for a stuck 'manymodels' or runner process and retry")

    # ------------------------------------------------------------------ schema

    def _ensure_schema(self) -> None:
        conn = self.connection()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise Unavailable(
                f"{self.path} has schema version {version}, newer than this code's {SCHEMA_VERSION}: "
                "upgrade manymodels or use another MANYMODELS_HOME"
            )
        self._set_wal(conn)
        with self.transaction() as tx:
            # Re-read under the write lock: another process may have created it meanwhile.
            if tx.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # journal_mode is persistent in the file; switching needs a moment alone with it.
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return
            except sqlite3.OperationalError as e:
                if not _is_locked(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05 + random.random() * 0.1)


def connect(home: Path | str) -> Database:
    """The workspace database of ``home`` (created, with its schema, on first use)."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    return Database(home / DB_FILE)
