"""What the last retention pass removed (partition ``retention``, one row): shared/flows/retention.py
writes it, ``manymodels status`` shows it. Each kind prunes its own rows (``prune`` on its store)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.ledger.table import LedgerTable, Row, get_json, put_json
from shared.ledger.times import utcnow

_PK, _RK = "retention", "last"


class RetentionSummary:
    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def record(self, summary: Mapping[str, Any]) -> None:
        """Keep what the last retention pass removed (``manymodels status`` shows it)."""
        row: Row = {"PartitionKey": _PK, "RowKey": _RK, "at": utcnow()}
        put_json(row, "summary", dict(summary))
        self._table.upsert(row)

    def last(self) -> dict[str, Any] | None:
        row = self._table.get(_PK, _RK)
        return get_json(row, "summary") if row else None
