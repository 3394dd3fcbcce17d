"""Local model registry: artifact directories under ``<home>/models/<name>/<version>/`` + SQLite rows.

``<home>/models`` is therefore a models dir in the registered-model layout scoring reads
(``<root>/<name>/<version>/model.json``). Registration is built for thousands of models per call:

1. artifacts are copied into a staging folder first (hard links when the source is on the same
   file system: training outputs are written once and never modified in place), outside any
   database lock;
2. one write transaction numbers every model, moves each staged directory into place (a rename)
   and inserts the rows with one ``executemany`` per table.

Queries never scan models in Python: ``latest`` is a flag column kept by registration (with a
partial index), and tags are normalised into ``model_tags(key, value, name, version)`` with an
index, so ``list(tags={"Brand": "dominicks"})`` is an index lookup.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.errors import InvalidValue, NotFound
from shared.workspace.base import ModelRecord, ModelRegistry, NewModel
from shared.workspace.local.db import Database, dumps, plain_cursor, utc_now

# Azure ML's rule for model names (they become folder names here too).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_STAGING = ".models-staging"  # beside the models dir (same file system), never inside it


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a real copy
        shutil.copy2(src, dst)
    return dst


def _place(source: str, parent: str, version: str) -> str:
    """Move a staged artifact directory to ``<parent>/<version>`` (a rename: same file system)."""
    final = os.path.join(parent, version)
    try:
        os.rename(source, final)
    except FileNotFoundError:  # the model's first version: its folder does not exist yet
        os.makedirs(parent, exist_ok=True)
        os.rename(source, final)
    except OSError:  # left by a registration that failed before committing: its rows were never written
        shutil.rmtree(final)
        os.rename(source, final)
    return final


def _check(model: NewModel) -> None:
    if not _NAME.match(model.name or "") or model.name in (".", ".."):
        raise InvalidValue(f"model name {model.name!r} is not allowed: expected 1-255 letters, digits, "
                           "'.', '_' or '-', starting with a letter or digit")
    if not Path(model.path).is_dir():
        raise InvalidValue(f"model {model.name!r}: artifact directory {model.path!r} does not exist or is "
                           "not a directory")


def _strings(values: Mapping[str, object] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def _version_number(name: str, version: int | str) -> int | None:
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    text = str(version).strip().lower()
    if text == "latest":
        return None
    if text.isdigit():
        return int(text)
    raise InvalidValue(f"model {name!r}: version {version!r} is not allowed: expected a number or 'latest'")


_COLUMNS = "m.name, m.version, m.tags, m.properties, m.path, m.created"


def _record(row: tuple) -> ModelRecord:
    """A record from a row of :data:`_COLUMNS` (tuples: building 100,000 records stays cheap)."""
    name, version, tags, properties, path, created = row
    return ModelRecord(name, version, json.loads(tags), path, json.loads(properties), created)



class LocalModelRegistry(ModelRegistry):
    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = Path(root)

    def register_many(self, models: Iterable[NewModel]) -> list[ModelRecord]:
        models = list(models)
        for model in models:
            _check(model)
        if not models:
            return []
        staging = self.root.parent / _STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            staged = [(model, self._stage(model, os.path.join(staging, str(i)))) for i, model in enumerate(models)]
            return self._commit(staged)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _stage(model: NewModel, target: str) -> str:
        shutil.copytree(model.path, target, copy_function=_link_or_copy)
        return target

    def _commit(self, staged: list[tuple[NewModel, str]]) -> list[ModelRecord]:
        created = utc_now()
        root = str(self.root)
        os.makedirs(root, exist_ok=True)
        records: list[ModelRecord] = []
        try:
            with self.db.transaction() as tx:
                self._insert(tx, staged, root, created, records)
        except BaseException:
            # Scoring reads the folders directly: no folder may outlive its rolled-back row.
            for record in records:
                shutil.rmtree(record.path, ignore_errors=True)
            raise
        return records

    def _insert(self, tx: sqlite3.Connection, staged: list[tuple[NewModel, str]], root: str, created: str,
                records: list[ModelRecord]) -> None:
        """Number, place and insert every model; appends to ``records`` as folders are placed."""
        names = sorted({m.name for m, _ in staged})
        current = dict(self._latest_versions(tx, names))
        for model, source in staged:
            version = current.get(model.name, 0) + 1
            current[model.name] = version
            final = _place(source, os.path.join(root, model.name), str(version))
            records.append(ModelRecord(name=model.name, version=version, tags=_strings(model.tags),
                                       path=final, properties=_strings(model.properties), created=created))
        tx.executemany("UPDATE models SET latest = 0 WHERE name = ? AND latest = 1", ((n,) for n in names))
        tx.executemany(
            "INSERT INTO models (name, version, latest, tags, properties, path, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((r.name, r.version, int(current[r.name] == r.version), dumps(r.tags), dumps(r.properties), r.path,
              r.created) for r in records),
        )
        tx.executemany("INSERT INTO model_tags (name, version, key, value) VALUES (?, ?, ?, ?)",
                       ((r.name, r.version, k, v) for r in records for k, v in r.tags.items()))

    @staticmethod
    def _latest_versions(conn: sqlite3.Connection, names: list[str]) -> Iterable[tuple[str, int]]:
        for i in range(0, len(names), 500):  # stay under SQLite's bound-parameter limit
            chunk = names[i:i + 500]
            marks = ",".join("?" * len(chunk))
            yield from conn.execute(f"SELECT name, MAX(version) FROM models WHERE name IN ({marks}) GROUP BY name",
                                    chunk)

    def list(
        self,
        *,
        latest: bool = True,
        tags: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> list[ModelRecord]:
        """Latest means the highest version of each name, kept only if it matches ``tags``."""
        where: list[str] = []
        args: list[object] = []
        source = "models m"
        tag_items = list(_strings(tags).items())
        if tag_items:
            matching = " INTERSECT ".join("SELECT name, version FROM model_tags WHERE key = ? AND value = ?"
                                         for _ in tag_items)
            source = f"({matching}) t JOIN models m ON m.name = t.name AND m.version = t.version"
            args += [x for item in tag_items for x in item]
        if latest:
            where.append("m.latest = 1")
        if name is not None:
            where.append("m.name = ?")
            args.append(name)
        sql = f"SELECT {_COLUMNS} FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY m.name, m.version"
        rows = plain_cursor(self.db.connection()).execute(sql, args).fetchall()
        return [_record(r) for r in rows]

    def get(self, name: str, version: int | str = "latest") -> ModelRecord:
        number = _version_number(name, version)
        conn = plain_cursor(self.db.connection())
        if number is None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM models m WHERE m.name = ? AND m.latest = 1", (name,)).fetchone()
        else:
            row = conn.execute(f"SELECT {_COLUMNS} FROM models m WHERE m.name = ? AND m.version = ?",
                               (name, number)).fetchone()
        if row is None:
            versions = [r[0] for r in conn.execute("SELECT version FROM models WHERE name = ? ORDER BY version",
                                                   (name,))]
            if not versions:
                raise NotFound(f"model {name!r} is not registered")
            raise NotFound(f"model {name!r} has no version {version!r} (versions {versions[0]}..{versions[-1]})")
        return _record(row)

    def download(self, record: ModelRecord, target_dir: str) -> str:
        """Copy the artifact directory's content into ``target_dir`` (created; existing files overwritten)."""
        source = Path(record.path)
        if not source.is_dir():
            raise NotFound(f"model {record.name}:{record.version}: artifact directory {source} is missing; "
                           "it was removed from the local workspace's models folder")
        shutil.copytree(source, target_dir, dirs_exist_ok=True)
        return str(target_dir)
