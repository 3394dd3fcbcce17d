"""Landing batches (partition ``batch``, one row per "<kind>/<batch>") and the blobs recorded in each
(partition ``batchfile:<kind>/<batch>``): ``open -> closing -> closed | failed`` (docs/architecture.md §3.1).

One closer at a time holds a batch (``claim``, with a token); every later transition names that token,
so a closer that was taken over (it went quiet, see ``claim``) gets :class:`Conflict` and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.errors import Conflict
from shared.ledger.records import Batch, BatchFile, BatchState
from shared.ledger.table import LedgerTable, Row, encode_key, get_json, optional_int, put_json
from shared.ledger.times import age_seconds, utcnow

_PK = "batch"


def files_partition(kind: str, batch: str) -> str:
    """The partition holding the blobs recorded in batch ``kind/batch``."""
    return "batchfile:" + encode_key(f"{kind}/{batch}")


class Batches:
    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def get(self, kind: str, batch: str) -> Batch | None:
        row = self._table.get(_PK, encode_key(f"{kind}/{batch}"))
        return _batch(row) if row else None

    def open(self, kind: str, batch: str) -> Batch:
        """The batch's row, created ``open`` when it does not exist."""
        found = self.get(kind, batch)
        if found is not None:  # the common case: one read, no failed insert
            return found
        now = utcnow()
        self._table.create({"PartitionKey": _PK, "RowKey": encode_key(f"{kind}/{batch}"), "kind": kind,
                            "batch": batch, "state": str(BatchState.OPEN), "created": now, "last_blob": now})
        found = self.get(kind, batch)
        assert found is not None
        return found

    def record_file(self, kind: str, batch: str, file: BatchFile, *, touch_after: float = 1.0) -> Batch:
        """Record a blob of an open batch; returns the batch (unchanged when it is not open).

        ``last_blob`` is refreshed only when older than ``touch_after`` seconds: thousands of blobs
        landing at once then cost thousands of row inserts but only a few writes to the batch row.
        """
        header = self.open(kind, batch)
        if header.state != BatchState.OPEN:
            return header
        self._table.upsert({"PartitionKey": files_partition(kind, batch), "RowKey": encode_key(file.name),
                            "name": file.name, "path": file.path, "etag": file.etag,
                            "size": "" if file.size is None else str(file.size), "recorded": utcnow()})
        if age_seconds(header.last_blob) < touch_after:
            return header

        def touch(row: Row) -> Row | None:
            if row["state"] != BatchState.OPEN or age_seconds(row.get("last_blob", "")) < touch_after:
                return None
            row["last_blob"] = utcnow()
            return row

        row, _ = self._table.mutate(_PK, encode_key(f"{kind}/{batch}"), touch)
        return _batch(row) if row else header

    def files(self, kind: str, batch: str) -> list[BatchFile]:
        rows = self._table.query(files_partition(kind, batch))
        return [BatchFile(r["name"], r["path"], r["etag"], optional_int(r.get("size")), r.get("recorded", ""))
                for r in rows]

    def all(self, *, state: BatchState | None = None) -> list[Batch]:
        """Every batch (in ``state``), newest first."""
        rows = self._table.query(_PK, "state eq @state", state=str(state)) if state else self._table.query(_PK)
        return sorted((_batch(r) for r in rows), key=lambda b: b.created, reverse=True)

    # ---------------------------------------------------------------- the closer's transitions

    def claim(self, kind: str, batch: str, *, token: str, manifest: bool, stale_after: float) -> Batch | None:
        """Move the batch to ``closing`` for ``token``; None when someone else holds or finished it.

        An ``open`` batch is claimed; a ``closing`` one only when its closer went quiet for
        ``stale_after`` seconds (it crashed): the new closer then finishes what it started.
        """
        def claim(row: Row) -> Row | None:
            state = row["state"]
            if state == BatchState.CLOSING and age_seconds(row.get("closing_since", "")) < stale_after:
                return None
            if state not in (BatchState.OPEN, BatchState.CLOSING):
                return None
            row.update(state=str(BatchState.CLOSING), token=token, closing_since=utcnow(),
                       manifest=bool(row.get("manifest")) or manifest)
            return row

        self.open(kind, batch)
        row, changed = self._table.mutate(_PK, encode_key(f"{kind}/{batch}"), claim)
        return _batch(row) if changed and row else None

    def record_dataset(self, kind: str, batch: str, *, token: str, dataset_name: str, dataset_version: int,
                       file_count: int, problems: Iterable[str]) -> Batch:
        """The dataset version registered from the batch's files (a closer taking over resumes from it)."""
        listed = list(problems)

        def change(row: Row) -> None:
            row.update(dataset_name=dataset_name, dataset_version=dataset_version, file_count=file_count)
            put_json(row, "problems", _capped(listed))

        return self._held(kind, batch, token, change)

    def close(self, kind: str, batch: str, *, token: str, run_id: str) -> Batch:
        """``closing -> closed``: the run started on the batch's dataset version is recorded."""
        return self._held(kind, batch, token, lambda row: row.update(
            state=str(BatchState.CLOSED), run_id=run_id, closed=utcnow()))

    def fail(self, kind: str, batch: str, *, token: str, reason: str) -> Batch:
        """``closing -> failed``: a problem with the data that a retry cannot fix."""
        return self._held(kind, batch, token, lambda row: row.update(
            state=str(BatchState.FAILED), reason=reason, closed=utcnow()))

    def reopen(self, kind: str, batch: str, *, token: str) -> Batch:
        """``closing -> open``: not ready yet (its upload has not written the manifest)."""
        return self._held(kind, batch, token, lambda row: row.update(state=str(BatchState.OPEN)))

    def _held(self, kind: str, batch: str, token: str, apply: Callable[[Row], None]) -> Batch:
        """Apply ``apply(row)`` to a batch this closer holds. Raises :class:`Conflict` when another
        closer took it over."""
        def change(row: Row) -> Row:
            if row.get("token") != token:
                raise Conflict(f"batch {kind}/{batch} is being closed by another instance")
            apply(row)
            row["closing_since"] = utcnow()  # progress keeps the claim fresh
            return row

        row, _ = self._table.mutate(_PK, encode_key(f"{kind}/{batch}"), change)
        if row is None:
            raise Conflict(f"batch {kind}/{batch} disappeared from the ledger while closing")
        return _batch(row)

    # ---------------------------------------------------------------- retention (shared/flows/retention.py)

    def prune_files(self, *, before: str, limit: int) -> tuple[int, int]:
        """Delete the blob lists of batches that closed or failed before ``before``; returns
        (batches, rows). The batch row itself stays (a late blob of a closed batch is still
        ignored, and status still shows it); open and closing batches are never touched."""
        batches = rows_deleted = 0
        for state in (BatchState.CLOSED, BatchState.FAILED):
            for row in self._table.query(_PK, "state eq @state", state=str(state)):
                if rows_deleted >= limit:
                    return batches, rows_deleted
                ended = row.get("closed") or row.get("created", "")
                if row.get("files_pruned") or not ended or ended >= before:
                    continue
                key, budget = row["RowKey"], limit - rows_deleted
                files: list[Row] = []
                for file_row in self._table.query(f"batchfile:{key}"):
                    files.append(file_row)
                    if len(files) > budget:  # one more than may go: the rest waits for the next pass
                        break
                rows_deleted += self._table.delete_rows(files[:budget])
                if len(files) <= budget:  # the whole list went: mark the batch so it is not read again
                    self._mark_files_pruned(key)
                    batches += 1
        return batches, rows_deleted

    def _mark_files_pruned(self, key: str) -> None:
        def change(row: Row) -> Row | None:
            if row["state"] not in (BatchState.CLOSED, BatchState.FAILED) or row.get("files_pruned"):
                return None
            row["files_pruned"] = True
            return row

        self._table.mutate(_PK, key, change)


def _capped(problems: list[str], *, keep: int = 100) -> list[str]:
    """At most ``keep`` problems (a row holds 1 MB): the rest are counted, not listed."""
    if len(problems) <= keep:
        return [p[:1000] for p in problems]
    return [p[:1000] for p in problems[:keep]] + [f"... and {len(problems) - keep} more problems"]


def _batch(row: Mapping[str, Any]) -> Batch:
    return Batch(kind=row["kind"], batch=row["batch"], state=BatchState(row["state"]), created=row.get("created", ""),
                 last_blob=row.get("last_blob", ""), manifest=bool(row.get("manifest")),
                 dataset_name=row.get("dataset_name", ""), dataset_version=optional_int(row.get("dataset_version")),
                 run_id=row.get("run_id", ""), reason=row.get("reason", ""), file_count=int(row.get("file_count") or 0),
                 closed=row.get("closed", ""), problems=tuple(get_json(row, "problems", [])),
                 token=row.get("token", ""), closing_since=row.get("closing_since", ""))

