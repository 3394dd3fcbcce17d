"""Local datasets: versioned file lists in SQLite (the files themselves stay where they are).

A version is computed and numbered inside one write transaction, so two processes registering
the same closed batch at once get one version, and a replay of an already registered batch
returns the existing version (compared by file names + fingerprints, via a digest column).
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from shared.errors import InvalidValue, NotFound
from shared.workspace.base import DatasetFile, DatasetMode, DatasetStore, DatasetVersion, parse_version
from shared.workspace.dataset_versions import NewVersion, check_files, plan_version
from shared.workspace.local.db import Database, dumps, loads, plain_cursor, utc_now

_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------- local folders


def files_from_folder(folder: str | Path) -> list[DatasetFile]:
    """Every file under ``folder`` (recursively, hidden files skipped), sorted by name.

    ``name`` and ``path`` are the POSIX path relative to ``folder``; ``md5`` is the base64 MD5 of
    the content (what blob storage reports as Content-MD5), ``etag`` its hex digest.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidValue(f"dataset folder {root} does not exist or is not a directory")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in filenames:
            if filename.startswith("."):
                continue
            full = Path(dirpath) / filename
            digest = _md5(full)
            rel = full.relative_to(root).as_posix()
            files.append(DatasetFile(name=rel, path=rel, etag=digest.hex(), size=full.stat().st_size,
                                     md5=base64.b64encode(digest).decode("ascii")))
    files.sort(key=lambda f: f.name)
    return files


def folder_datastore(folder: str | Path) -> str:
    """The ``file:///abs/dir`` datastore URI of a local folder."""
    return Path(folder).resolve().as_uri()


def local_path(datastore: str, path: str) -> Path:
    """Where a file of a ``file:///`` datastore is on disk."""
    if not datastore.startswith("file:///"):
        raise InvalidValue(f"datastore {datastore!r} is not a local folder (expected file:///abs/dir)")
    return Path(unquote(urlparse(datastore).path)) / path


def _md5(path: Path) -> bytes:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.digest()


# --------------------------------------------------------------------------- the store


class LocalDatasetStore(DatasetStore):
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self,
        name: str,
        files: Sequence[DatasetFile],
        *,
        datastore: str,
        mode: DatasetMode = DatasetMode.FULL,
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion:
        mode = check_files(name, files, datastore=datastore, mode=mode)
        tags = {str(k): str(v) for k, v in (tags or {}).items()}
        with self.db.transaction() as tx:
            row = tx.execute("SELECT version FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1",
                             (name,)).fetchone()
            latest = self._get(tx, name, row["version"]) if row else None
            planned = plan_version(name, files, datastore=datastore, mode=mode, latest=latest)
            if planned is None:
                version = row["version"]  # a replay: the same content is already the latest version
            else:
                version = (row["version"] + 1) if row else 1
                self._insert(tx, name, version, datastore, mode, tags, planned)
        return self.get(name, version)

    def get(self, name: str, version: int | str = "latest") -> DatasetVersion:
        number = parse_version(f"dataset {name!r}", version)
        with self.db.snapshot() as conn:
            if number is None:
                row = conn.execute("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1",
                                   (name,)).fetchone()
            else:
                row = conn.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, number)).fetchone()
            if row is None:
                raise NotFound(self._missing(conn, name, version))
            rows = plain_cursor(conn).execute(
                f"SELECT {_FILE_COLUMNS} FROM dataset_files WHERE dataset = ? AND version = ? ORDER BY ordinal",
                (name, row["version"])).fetchall()
        return _version(row, rows)

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        where, args = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        with self.db.snapshot() as conn:
            heads = conn.execute(f"SELECT * FROM datasets {where} ORDER BY created, name, version", args).fetchall()
            where_files = "WHERE dataset = ?" if name is not None else ""
            grouped: dict[tuple[str, int], list[tuple]] = {}
            for row in plain_cursor(conn).execute(f"SELECT dataset, version, {_FILE_COLUMNS} FROM dataset_files "
                                                  f"{where_files} ORDER BY dataset, version, ordinal", args):
                grouped.setdefault((row[0], row[1]), []).append(row[2:])
        return [_version(h, grouped.get((h["name"], h["version"]), [])) for h in heads]

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _get(conn: sqlite3.Connection, name: str, version: int) -> DatasetVersion:
        head = conn.execute("SELECT * FROM datasets WHERE name = ? AND version = ?", (name, version)).fetchone()
        rows = plain_cursor(conn).execute(
            f"SELECT {_FILE_COLUMNS} FROM dataset_files WHERE dataset = ? AND version = ? ORDER BY ordinal",
            (name, version)).fetchall()
        return _version(head, rows)

    @staticmethod
    def _insert(conn: sqlite3.Connection, name: str, version: int, datastore: str, mode: DatasetMode,
                tags: Mapping[str, str], planned: NewVersion) -> None:
        changed = set(planned.changed)
        conn.execute("INSERT INTO datasets (name, version, datastore, mode, tags, created, digest) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (name, version, datastore, str(mode), dumps(tags), utc_now(), planned.fingerprint))
        conn.executemany(
            "INSERT INTO dataset_files (dataset, version, ordinal, name, path, etag, size, md5, changed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((name, version, i, f.name, f.path, f.etag, int(f.size), f.md5, int(f.name in changed))
             for i, f in enumerate(planned.files)),
        )

    @staticmethod
    def _missing(conn: sqlite3.Connection, name: str, version: int | str) -> str:
        versions = [r[0] for r in conn.execute("SELECT version FROM datasets WHERE name = ? ORDER BY version", (name,))]
        if not versions:
            known = [r[0] for r in conn.execute("SELECT DISTINCT name FROM datasets ORDER BY name")]
            return f"dataset {name!r} does not exist (registered datasets: {', '.join(known) or 'none'})"
        return f"dataset {name!r} has no version {version!r} (versions 1..{versions[-1]})"


_FILE_COLUMNS = "name, path, etag, size, md5, changed"


def _version(head: sqlite3.Row, rows: Sequence[tuple]) -> DatasetVersion:
    """``rows`` hold :data:`_FILE_COLUMNS` in order."""
    return DatasetVersion(
        name=head["name"],
        version=head["version"],
        datastore=head["datastore"],
        files=tuple(DatasetFile(r[0], r[1], r[2], r[3], r[4]) for r in rows),
        changed=tuple(r[0] for r in rows if r[5]),
        mode=DatasetMode(head["mode"]),
        tags=loads(head["tags"]),
        created=head["created"],
    )
