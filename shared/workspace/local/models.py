"""Local model registry: artifact directories under ``<home>/models/<name>/<version>/`` + SQLite rows.

``<home>/models`` is therefore a models dir in the registered-model layout scoring reads
(``<root>/<name>/<version>/model.json``). Registration is built for thousands of models per call:

1. artifacts are copied into a staging folder first (hard links when the source is on the same
   file system: training outputs are written once and never modified in place), outside any
   database lock; with ``move=True`` (a pipeline run's scratch outputs) there is no copy at all;
2. one write transaction numbers every model, moves each staged (or given) directory into place
   (a rename) and inserts the rows with one ``executemany`` per table.

Queries never scan models in Python: ``latest`` is a flag column kept by registration (with a
partial index), and tags are normalised into ``model_tags(key, value, name, version)`` with an
index, so ``list(tags={"Brand": "dominicks"})`` is an index lookup.
"""

from __future__ import annotations

import builtins  # builtins.list: in a class body after `def list`, a bare `list[...]` names the method
import contextlib
import json
import os
import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from shared.errors import InvalidValue, NotFound
from shared.workspace import newest
from shared.workspace.base import ModelRecord, ModelRegistry, NewModel, parse_version
from shared.workspace.local.db import Database, dumps, plain_cursor, utc_now

# Azure ML's rule for model names (model_name_validation in azureml/_model_management/_util.py; the
# same as scoring/model_names.py). Names become folder names here too: fullmatch, since "$" alone
# lets a trailing newline through.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_STAGING = ".models-staging"  # beside the models dir (same file system), never inside it
_PLACE_IN_THREAD = 64  # models per call from which moving folders overlaps inserting rows


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a real copy
        shutil.copy2(src, dst)
    return dst


def _place(source: str, final: str) -> None:
    """Move a staged artifact directory to ``<models>/<name>/<version>`` (a rename: same file system)."""
    try:
        os.rename(source, final)
    except FileNotFoundError:  # the model's first version: its folder does not exist yet
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.rename(source, final)
    except OSError:  # left by a registration that failed before committing: its rows were never written
        shutil.rmtree(final)
        os.rename(source, final)


class _Placing(threading.Thread):
    """Moves artifact directories into place while the caller inserts their rows.

    The two wait on different things (the file system, SQLite) and both release the GIL, so a
    thousands-model registration takes about as long as the slower of the two, not their sum.
    """

    def __init__(self, moves: list[tuple[str, str]], new_folders: set[str], placed: list[tuple[str, str]]) -> None:
        super().__init__(name="models-placing", daemon=True)
        self.moves, self.new_folders, self.placed = moves, new_folders, placed
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for source, final in self.moves:
                folder = os.path.dirname(final)
                if folder in self.new_folders:  # a name's first version: make its folder (not a failed rename first)
                    self.new_folders.discard(folder)
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(folder)
                _place(source, final)
                self.placed.append((source, final))
        except BaseException as e:  # re-raised by the caller, which undoes what was placed
            self.error = e


def model_problem(model: NewModel) -> str | None:
    """Why ``model`` cannot be registered (its name or its artifact directory), or None."""
    if not isinstance(model.name, str) or not _NAME.fullmatch(model.name):
        return (f"model name {model.name!r} is not allowed: expected 1-255 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit")
    if not isinstance(model.path, str | os.PathLike) or not os.path.isdir(model.path):
        return f"model {model.name!r}: artifact directory {model.path!r} does not exist or is not a directory"
    return None


def _check(model: NewModel) -> None:
    problem = model_problem(model)
    if problem:
        raise InvalidValue(problem)


def _strings(values: Mapping[str, object] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


_COLUMNS = "m.name, m.version, m.tags, m.properties, m.path, m.created"


def _record(row: tuple) -> ModelRecord:
    """A record from a row of :data:`_COLUMNS` (tuples: building 100,000 records stays cheap)."""
    name, version, tags, properties, path, created = row
    return ModelRecord(name, version, json.loads(tags), path, json.loads(properties), created)



class LocalModelRegistry(ModelRegistry):
    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = Path(root)
        self._root_made = False

    def register_many(self, models: Iterable[NewModel], *, move: bool = False,
                      rejected: list[tuple[NewModel, str]] | None = None) -> list[ModelRecord]:
        """Register every model in one call; each gets the next version of its name.

        ``move=True`` moves each artifact directory into the registry instead of copying it: for
        outputs nobody reads afterwards (a training run's models), it saves a copy per model. On the
        same file system only; the directories are moved back if the registration fails.

        A model with a name or artifact directory that is not allowed raises InvalidValue (nothing
        is registered), unless ``rejected`` is given: it then gets ``(model, reason)`` and the
        others are registered (a training run: one odd series must not cost the whole chunk).
        """
        models = list(models)
        if rejected is None:
            for model in models:
                _check(model)
        else:
            kept = []
            for model in models:
                problem = model_problem(model)
                if problem:
                    rejected.append((model, problem))
                else:
                    kept.append(model)
            models = kept
        if not models:
            return []
        if move and len({m.path for m in models}) == len(models) and self._same_file_system(models):
            return self._commit([(model, model.path) for model in models], moved=True)
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

    def _make_root(self) -> str:
        if not self._root_made:
            os.makedirs(self.root, exist_ok=True)
            self._root_made = True
        return str(self.root)

    def _same_file_system(self, models: list[NewModel]) -> bool:
        """Whether every artifact directory can be renamed into the models dir."""
        self._make_root()
        try:
            device = os.stat(self.root).st_dev
            return all(os.stat(parent).st_dev == device for parent in {os.path.dirname(m.path) for m in models})
        except OSError:
            return False

    def _commit(self, staged: list[tuple[NewModel, str]], *, moved: bool = False) -> list[ModelRecord]:
        created = utc_now()
        root = self._make_root()
        placed: list[tuple[str, str]] = []  # (source, final) of every folder moved into place so far
        try:
            with self.db.transaction() as tx:
                # the pointers inside the write lock too: two registrations never leave a stale one
                return self._point_at_newest(tx, self._insert(tx, staged, root, created, placed))
        except BaseException:
            # Scoring reads the folders directly: no folder may outlive its rolled-back row.
            for source, final in placed:
                if moved:
                    with contextlib.suppress(OSError):
                        os.rename(final, source)
                else:
                    shutil.rmtree(final, ignore_errors=True)
            raise

    def _insert(self, tx: sqlite3.Connection, staged: list[tuple[NewModel, str]], root: str, created: str,
                placed: list[tuple[str, str]]) -> list[ModelRecord]:
        """Number every model, then place the folders and insert the rows; appends to ``placed`` as it goes."""
        names = sorted({m.name for m, _ in staged})
        current = dict(self._latest_versions(tx, names))
        previous = set(current)  # names with versions already: their latest flag moves
        new_folders = {os.path.join(root, n) for n in names if n not in previous}
        records: list[ModelRecord] = []
        moves: list[tuple[str, str]] = []
        for model, source in staged:
            version = current.get(model.name, 0) + 1
            current[model.name] = version
            final = os.path.join(root, model.name, str(version))
            moves.append((source, final))
            records.append(ModelRecord(name=model.name, version=version, tags=_strings(model.tags),
                                       path=final, properties=_strings(model.properties), created=created))
        placing = _Placing(moves, new_folders, placed)
        if len(moves) < _PLACE_IN_THREAD:
            placing.run()
        else:
            placing.start()
        try:
            tx.executemany("UPDATE models SET latest = 0 WHERE name = ? AND latest = 1",
                           ((n,) for n in names if n in previous))
            tx.executemany(
                "INSERT INTO models (name, version, latest, tags, properties, path, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((r.name, r.version, int(current[r.name] == r.version), dumps(r.tags), dumps(r.properties),
                  r.path, r.created) for r in records),
            )
            tx.executemany("INSERT INTO model_tags (name, version, key, value) VALUES (?, ?, ?, ?)",
                           ((r.name, r.version, k, v) for r in records for k, v in r.tags.items()))
        finally:
            if placing.is_alive():
                placing.join()
        if placing.error is not None:
            raise placing.error
        return records

    @staticmethod
    def _latest_versions(conn: sqlite3.Connection, names: list[str]) -> Iterable[tuple[str, int]]:
        for i in range(0, len(names), 500):  # stay under SQLite's bound-parameter limit
            chunk = names[i:i + 500]
            marks = ",".join("?" * len(chunk))
            yield from conn.execute(f"SELECT name, MAX(version) FROM models WHERE name IN ({marks}) GROUP BY name",
                                    chunk)

    def _point_at_newest(self, tx: sqlite3.Connection, records: list[ModelRecord]) -> list[ModelRecord]:
        """Leave ``<name>/NEWEST_VERSION`` where the newest data's version is not the highest (a run that
        finished late registered older data last), and none elsewhere: what batch forecasting serves
        (shared/workspace/newest.py). Returns ``records``."""
        names = sorted({r.name for r in records})
        conn = plain_cursor(tx)
        every: list[ModelRecord] = []
        for i in range(0, len(names), 500):  # stay under SQLite's bound-parameter limit
            chunk = names[i:i + 500]
            every += [_record(r) for r in conn.execute(
                f"SELECT {_COLUMNS} FROM models m WHERE m.name IN ({','.join('?' * len(chunk))})", chunk)]
        run_ids = sorted({str(r.tags.get(newest.RUN_ID_TAG, "")) for r in every} - {""})
        submitted = dict(conn.execute(f"SELECT run_id, submitted FROM runs WHERE run_id IN "
                                      f"({','.join('?' * len(run_ids))})", run_ids).fetchall()) if run_ids else {}
        highest: dict[str, int] = {}
        for r in every:
            highest[r.name] = max(highest.get(r.name, 0), r.version)
        for name, chosen in newest.newest_per_name(every, submitted).items():
            pointer = os.path.join(self.root, name, newest.NEWEST_VERSION_FILE)
            if chosen.version == highest[name]:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(pointer)
            else:
                with open(pointer + ".tmp", "w") as f:
                    f.write(f"{chosen.version}\n")
                os.replace(pointer + ".tmp", pointer)
        return records

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
        number = parse_version(f"model {name!r}", version)
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

    supports_delete = True

    def delete_versions(self, versions: Iterable[tuple[str, int]]) -> builtins.list[tuple[str, int]]:
        """Delete model versions: rows in one transaction, then their artifact folders.

        Rows go first: a crash in between leaves a folder nobody lists (harmless), never a listed
        model without its folder. A name's latest version is never deleted (skipped): numbers here
        come from ``MAX(version) + 1``, so deleting the latest would give its number to the next
        registration, a different model under a version someone may have cached.
        """
        wanted = sorted({(str(n), int(v)) for n, v in versions})
        if not wanted:
            return []
        deleted: list[tuple[str, int, str]] = []
        with self.db.transaction() as tx:
            for i in range(0, len(wanted), 400):  # stay under SQLite's bound-parameter limit
                chunk = wanted[i:i + 400]
                marks = ",".join("(?, ?)" for _ in chunk)
                args = [x for pair in chunk for x in pair]
                deleted += [tuple(r) for r in plain_cursor(tx).execute(
                    f"SELECT name, version, path FROM models WHERE latest = 0 AND (name, version) IN "
                    f"(VALUES {marks})", args)]
            tx.executemany("DELETE FROM models WHERE name = ? AND version = ?", ((n, v) for n, v, _ in deleted))
        for _, _, path in deleted:
            shutil.rmtree(path, ignore_errors=True)
        return [(n, v) for n, v, _ in deleted]
