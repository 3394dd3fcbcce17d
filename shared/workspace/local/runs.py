"""Local runs: what the pipeline runner records, what status and the reconcile timer read.

:class:`LocalRunStore` implements :class:`~shared.workspace.base.RunStore` plus the two methods
the local pipeline runner writes with: :meth:`LocalRunStore.create` and
:meth:`LocalRunStore.update`.
"""

from __future__ import annotations

import builtins  # builtins.list: in a class body after `def list`, a bare `list[...]` names the method
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.errors import AlreadyExists, Conflict, InvalidValue, NotFound, OperationTimeout
from shared.workspace.base import PipelineKind, Run, RunStatus, RunStore, SeriesFailure
from shared.workspace.local.db import Database, dumps, loads

_WAIT_FIRST_DELAY = 0.05
_WAIT_MAX_DELAY = 2.0


class LocalRunStore(RunStore):
    """Runs in SQLite.

    ``notice_dead_runner`` is how a run whose runner process died gets failed, as Azure ML fails a
    run whose node is lost: by :meth:`fail_lost` (the reconcile flow) and while :meth:`wait` waits
    for it, never by a read. Callers of the port never need to know that local runs are processes
    of this machine.
    """

    def __init__(self, db: Database, *, notice_dead_runner: Callable[[Run], Run] | None = None) -> None:
        self.db = db
        self._notice_dead_runner = notice_dead_runner

    # ------------------------------------------------------------------ runner side

    def create(self, run: Run) -> Run:
        """Record a new run. Creating the same run again (a replay) returns the stored one.

        Raises:
            AlreadyExists: a different run with this ``run_id`` exists.
        """
        if not run.run_id:
            raise InvalidValue("a run needs a non-empty run_id")
        with self.db.transaction() as tx:
            row = tx.execute("SELECT * FROM runs WHERE run_id = ?", (run.run_id,)).fetchone()
            if row is None:
                tx.execute(
                    "INSERT INTO runs (run_id, pipeline, kind, experiment, status, dataset_name, dataset_version, "
                    "parameters, tags, submitted, started, ended, counts, outputs, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run.run_id, run.pipeline, str(run.kind), run.experiment, str(run.status), run.dataset_name,
                     int(run.dataset_version), dumps(run.parameters), dumps(run.tags), run.submitted, run.started,
                     run.ended, dumps(run.counts), dumps(run.outputs), run.error),
                )
                _insert_failures(tx, run.run_id, run.failures, first=0)
                return run
        stored = self._load(run.run_id)
        if (stored.pipeline, stored.kind, stored.dataset_name, stored.dataset_version) != (
                run.pipeline, run.kind, run.dataset_name, run.dataset_version):
            raise AlreadyExists(f"run {run.run_id!r} already exists for pipeline {stored.pipeline!r} on dataset "
                                f"{stored.dataset_name}:{stored.dataset_version}; use a new run id")
        return stored

    def update(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        started: str | None = None,
        ended: str | None = None,
        counts: Mapping[str, int] | None = None,
        failures: Sequence[SeriesFailure] | None = None,
        outputs: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> Run:
        """Change the given fields; the others keep their values.

        ``counts`` and ``outputs`` are merged into the stored ones (key by key); ``failures`` are
        added to the stored ones, skipping any already recorded (so passing a cumulative list, or a
        replayed update, records each failure once). A final status (completed/failed/canceled)
        cannot change to another status.

        Raises:
            NotFound: no such run.
            Conflict: the run already ended with a different status.
        """
        with self.db.transaction() as tx:
            row = tx.execute("SELECT status, counts, outputs FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"run {run_id!r} does not exist")
            current = RunStatus(row["status"])
            if status is not None and current.is_final and RunStatus(status) != current:
                raise Conflict(f"run {run_id!r} already ended as {current}; it cannot become {RunStatus(status)}")
            changes: dict[str, Any] = {}
            if status is not None:
                changes["status"] = str(RunStatus(status))
            if started is not None:
                changes["started"] = started
            if ended is not None:
                changes["ended"] = ended
            if error is not None:
                changes["error"] = error
            if counts:
                changes["counts"] = dumps({**loads(row["counts"]), **{k: int(v) for k, v in counts.items()}})
            if outputs:
                changes["outputs"] = dumps({**loads(row["outputs"]), **{k: str(v) for k, v in outputs.items()}})
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                tx.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*changes.values(), run_id))
            if failures:
                known = {tuple(r) for r in tx.execute("SELECT file, series, reason FROM run_failures WHERE run_id = ?",
                                                       (run_id,))}
                new = [f for f in dict.fromkeys(failures) if (f.file, f.series, f.reason) not in known]
                first = tx.execute("SELECT COALESCE(MAX(ordinal) + 1, 0) FROM run_failures WHERE run_id = ?",
                                   (run_id,)).fetchone()[0]
                _insert_failures(tx, run_id, new, first=first)
        return self._load(run_id)

    # ------------------------------------------------------------------ RunStore

    def get(self, run_id: str) -> Run:
        return self._load(run_id)

    def fail_lost(self) -> list[Run]:
        if self._notice_dead_runner is None:
            return []
        unfinished = [*self.list(status=RunStatus.QUEUED), *self.list(status=RunStatus.RUNNING)]
        noticed = (self._notice_dead_runner(run) for run in unfinished)
        return [run for run in noticed if run.status.is_final]

    def _noticed(self, run: Run) -> Run:
        if self._notice_dead_runner is None or run.status.is_final:
            return run
        return self._notice_dead_runner(run)

    def _load(self, run_id: str) -> Run:
        with self.db.snapshot() as conn:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFound(f"run {run_id!r} does not exist in the local workspace")
            failures = conn.execute("SELECT file, series, reason FROM run_failures WHERE run_id = ? ORDER BY ordinal",
                                    (run_id,)).fetchall()
        return _run(row, failures)

    def list(self, *, status: RunStatus | None = None, kind: PipelineKind | None = None) -> list[Run]:
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(str(RunStatus(status)))
        if kind is not None:
            where.append("kind = ?")
            args.append(str(PipelineKind(kind)))
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY submitted DESC, rowid DESC"
        with self.db.snapshot() as conn:
            rows = conn.execute(sql, args).fetchall()
            failures: dict[str, list] = {}
            if rows:
                ids = [r["run_id"] for r in rows]
                for i in range(0, len(ids), 500):
                    chunk = ids[i:i + 500]
                    marks = ",".join("?" * len(chunk))
                    for f in conn.execute(f"SELECT run_id, file, series, reason FROM run_failures "
                                          f"WHERE run_id IN ({marks}) ORDER BY run_id, ordinal", chunk):
                        failures.setdefault(f["run_id"], []).append(f)
        return [_run(r, failures.get(r["run_id"], [])) for r in rows]

    def wait(self, run_id: str, *, timeout: float) -> Run:
        deadline = time.monotonic() + timeout
        delay = _WAIT_FIRST_DELAY
        while True:
            run = self._noticed(self.get(run_id))  # a runner that died never ends its run: end it here
            if run.status.is_final:
                return run
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OperationTimeout(f"run {run_id!r} is still {run.status} after {timeout:g}s; see "
                                       f"runs/{run_id}/logs in the local workspace, or wait longer")
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _WAIT_MAX_DELAY)

    # ------------------------------------------------------------------ retention

    supports_delete = True

    def delete_runs(self, run_ids: Sequence[str]) -> builtins.list[str]:
        """Delete final runs: their rows in one transaction (failures cascade), then their folders
        ``<home>/runs/<run_id>`` (shared/workspace/local/runner.py ``run_dir``). A run that is not
        final is never deleted, whatever the caller asks: its runner may still write there."""
        ids = sorted(set(run_ids))
        final = [str(s) for s in RunStatus if s.is_final]
        deleted: list[str] = []
        with self.db.transaction() as tx:
            for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                deleted += [r[0] for r in tx.execute(
                    f"SELECT run_id FROM runs WHERE run_id IN ({marks}) AND status IN "
                    f"({','.join('?' * len(final))})", (*chunk, *final))]
            tx.executemany("DELETE FROM runs WHERE run_id = ?", ((r,) for r in deleted))
        runs_dir = Path(self.db.path).parent / "runs"
        for run_id in deleted:
            shutil.rmtree(runs_dir / run_id, ignore_errors=True)
        return deleted


def _insert_failures(conn: sqlite3.Connection, run_id: str, failures: Sequence[SeriesFailure], *, first: int) -> None:
    conn.executemany("INSERT INTO run_failures (run_id, ordinal, file, series, reason) VALUES (?, ?, ?, ?, ?)",
                     ((run_id, first + i, f.file, f.series, f.reason) for i, f in enumerate(failures)))


def _run(row: sqlite3.Row, failures: Sequence[sqlite3.Row]) -> Run:
    return Run(
        run_id=row["run_id"],
        pipeline=row["pipeline"],
        kind=PipelineKind(row["kind"]),
        experiment=row["experiment"],
        status=RunStatus(row["status"]),
        dataset_name=row["dataset_name"],
        dataset_version=row["dataset_version"],
        parameters=loads(row["parameters"]),
        tags=loads(row["tags"]),
        submitted=row["submitted"],
        started=row["started"],
        ended=row["ended"],
        counts=loads(row["counts"]),
        failures=tuple(SeriesFailure(file=f["file"], series=f["series"], reason=f["reason"]) for f in failures),
        outputs=loads(row["outputs"]),
        error=row["error"],
    )
