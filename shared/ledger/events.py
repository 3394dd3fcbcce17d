"""Processed event ids (partition ``event``): a replay is skipped early (handlers are idempotent anyway)."""

from __future__ import annotations

from shared.ledger.table import LedgerTable, Row, encode_key
from shared.ledger.times import utcnow

_PK = "event"


class ProcessedEvents:
    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def is_processed(self, event_id: str) -> bool:
        return self._table.get(_PK, encode_key(event_id)) is not None

    def mark_processed(self, event_id: str, *, event_type: str, outcome: str) -> None:
        """Remember a handled event so a replay is skipped early (handlers are idempotent anyway)."""
        self._table.create({"PartitionKey": _PK, "RowKey": encode_key(event_id), "type": event_type,
                            "outcome": outcome[:1000], "at": utcnow()})

    def prune(self, *, before: str, limit: int) -> int:
        """Forget processed-event ids recorded before ``before`` (ISO 8601); at most ``limit`` rows."""
        rows: list[Row] = []
        for row in self._table.query(_PK, "at lt @before", before=before):
            rows.append(row)
            if len(rows) >= limit:
                break
        return self._table.delete_rows(rows)
