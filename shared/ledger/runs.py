"""Pipeline runs the app submitted (partition ``run``): ``submitted -> completed | failed | canceled``,
made once (shared/flows/runs.py acts only when ``finish`` says this call made the change)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from enum import StrEnum
from typing import Any

from shared.ledger.records import RunEntry, RunState
from shared.ledger.table import LedgerTable, Row, encode_key, optional_int
from shared.ledger.times import utcnow

_PK = "run"


class Runs:
    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def record(self, entry: RunEntry) -> RunEntry:
        """Record a submitted run (first writer wins); returns what the ledger holds."""
        self._table.create(_run_row(entry))
        found = self.get(entry.run_id)
        assert found is not None
        return found

    def get(self, run_id: str) -> RunEntry | None:
        row = self._table.get(_PK, encode_key(run_id))
        return _run(row) if row else None

    def all(self, *, state: RunState | None = None) -> list[RunEntry]:
        """Every run (in ``state``), newest submitted first."""
        rows = self._table.query(_PK, "state eq @state", state=str(state)) if state else self._table.query(_PK)
        return sorted((_run(r) for r in rows), key=lambda r: r.submitted, reverse=True)

    def finish(self, entry: RunEntry, *, state: RunState, reason: str = "", predictions: str = "",
               ended: str = "") -> tuple[RunEntry, bool]:
        """Move a run from ``submitted`` to a final state, creating its row if the app never saw it
        submitted (a run started by hand). Returns (the run, whether this call made the change):
        only the caller that gets True acts on the completion."""
        self._table.create(_run_row(entry))

        def change(row: Row) -> Row | None:
            if row["state"] != RunState.SUBMITTED:
                return None
            row.update(state=str(state), reason=reason[:4000], predictions=predictions, ended=ended or utcnow())
            return row

        row, changed = self._table.mutate(_PK, encode_key(entry.run_id), change)
        assert row is not None
        return _run(row), changed

    def prune(self, *, before: str, limit: int) -> int:
        """Delete the rows of runs that ended (completed/failed/canceled) before ``before``; a run
        still ``submitted`` is never deleted (reconcile has yet to act on it)."""
        rows: list[Row] = []
        for row in self._table.query(_PK, "state ne @state", state=str(RunState.SUBMITTED)):
            if (row.get("ended") or row.get("submitted") or "") < before:
                rows.append(row)
                if len(rows) >= limit:
                    break
        return self._table.delete_rows(rows)


def _run_row(entry: RunEntry) -> Row:
    row: Row = {"PartitionKey": _PK, "RowKey": encode_key(entry.run_id)}
    for f in fields(entry):
        value = getattr(entry, f.name)
        row[f.name] = "" if value is None else (str(value) if isinstance(value, StrEnum | int) else value)
    return row


def _run(row: Mapping[str, Any]) -> RunEntry:
    return RunEntry(run_id=row["run_id"], kind=row.get("kind", ""), state=RunState(row["state"]),
                    submitted=row.get("submitted", ""), dataset_name=row.get("dataset_name", ""),
                    dataset_version=optional_int(row.get("dataset_version")), batch=row.get("batch", ""),
                    source=row.get("source", ""), ended=row.get("ended", ""), reason=row.get("reason", ""),
                    predictions=row.get("predictions", ""), experiment=row.get("experiment", ""))
