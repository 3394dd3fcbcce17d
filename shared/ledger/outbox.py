"""The outbox (partition ``outbox``, one row per event id): product events written before the fact
they announce is marked done, published by shared/flows/outbox.py. ``pending -> sent | refused``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.ledger.records import OutboxEvent, OutboxState
from shared.ledger.table import LedgerTable, Row, encode_key, get_json, put_json
from shared.ledger.times import utcnow

_PK = "outbox"
_BATCH = 100  # rows per transaction (the service's limit)


class Outbox:
    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def add(self, event: OutboxEvent) -> bool:
        """Write a product event to publish (create-if-absent on its id, which is derived from its
        fact): False when it is already there, pending or sent, so a retried flow adds nothing."""
        row: Row = {"PartitionKey": _PK, "RowKey": encode_key(event.event_id),
                    "event_id": event.event_id, "type": event.type, "subject": event.subject,
                    "source": event.source, "time": event.time, "state": str(OutboxState.PENDING),
                    "created": utcnow(), "attempts": 0, "error": "", "sent": ""}
        put_json(row, "data", dict(event.data))
        return self._table.create(row)

    def get(self, event_id: str) -> OutboxEvent | None:
        row = self._table.get(_PK, encode_key(event_id))
        return _outbox(row) if row else None

    def all(self, *, state: OutboxState | None = None, limit: int = 1000) -> list[OutboxEvent]:
        """Outbox rows, oldest first (``created``); at most ``limit``."""
        rows = self._table.query(_PK, "state eq @state", state=str(state)) if state else self._table.query(_PK)
        found = []
        for row in rows:
            found.append(_outbox(row))
            if len(found) >= limit:
                break
        return sorted(found, key=lambda e: e.created)

    def mark_sent(self, event_id: str) -> bool:
        """``pending -> sent``; False when it was not pending (another drain sent it)."""
        def change(row: Row) -> Row | None:
            if row["state"] != OutboxState.PENDING:
                return None
            row.update(state=str(OutboxState.SENT), sent=utcnow(), attempts=int(row.get("attempts") or 0) + 1,
                       error="")
            return row

        _, changed = self._table.mutate(_PK, encode_key(event_id), change)
        return changed

    def mark_sent_many(self, event_ids: Iterable[str]) -> None:
        """Mark published rows sent, 100 per transaction (one partition). Unconditional merges:
        ``sent`` is final, so two drains marking the same row leave the same row."""
        ids, now = list(event_ids), utcnow()
        for i in range(0, len(ids), _BATCH):
            chunk = ids[i:i + _BATCH]
            merges = [{"PartitionKey": _PK, "RowKey": encode_key(e), "state": str(OutboxState.SENT), "sent": now,
                       "error": ""} for e in chunk]
            if not self._table.merge_all(merges):  # a row went meanwhile (pruned): the others one by one
                for e in chunk:
                    if self.get(e) is not None:
                        self.mark_sent(e)

    def mark_refused(self, event_id: str, error: str) -> bool:
        """``pending -> refused``: the topic will never take this event (it stays, for status)."""
        def change(row: Row) -> Row | None:
            if row["state"] != OutboxState.PENDING:
                return None
            row.update(state=str(OutboxState.REFUSED), error=error[:2000], last_attempt=utcnow(),
                       attempts=int(row.get("attempts") or 0) + 1)
            return row

        _, changed = self._table.mutate(_PK, encode_key(event_id), change)
        return changed

    def note_failure(self, event_id: str, error: str) -> None:
        """A publish attempt failed: count it and keep the reason (the row stays pending)."""
        def change(row: Row) -> Row | None:
            if row["state"] != OutboxState.PENDING:
                return None
            row.update(attempts=int(row.get("attempts") or 0) + 1, error=error[:2000], last_attempt=utcnow())
            return row

        self._table.mutate(_PK, encode_key(event_id), change)

    def prune(self, *, before: str, limit: int) -> int:
        """Delete sent outbox rows sent before ``before``; pending rows are never deleted."""
        rows: list[Row] = []
        for row in self._table.query(_PK, "state eq @state", state=str(OutboxState.SENT)):
            if (row.get("sent") or "") < before:
                rows.append(row)
                if len(rows) >= limit:
                    break
        return self._table.delete_rows(rows)


def _outbox(row: Mapping[str, Any]) -> OutboxEvent:
    return OutboxEvent(event_id=row["event_id"], type=row.get("type", ""), subject=row.get("subject", ""),
                       source=row.get("source", ""), time=row.get("time", ""), data=get_json(row, "data", {}),
                       state=OutboxState(row["state"]), created=row.get("created", ""),
                       attempts=int(row.get("attempts") or 0), error=row.get("error", ""), sent=row.get("sent", ""))
