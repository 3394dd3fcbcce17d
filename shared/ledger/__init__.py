"""The Function App's memory on Azure Table storage (Azurite locally): one store per record kind over
one table. The concurrency protocol (create-if-absent claims, ETag-conditional transitions) and the
table's layout are described in shared/ledger/table.py; docs/architecture.md §3.2 says why.

    ledger.events      processed event ids                    shared/ledger/events.py
    ledger.batches     landing batches and their blobs        shared/ledger/batches.py
    ledger.runs        pipeline runs the app submitted        shared/ledger/runs.py
    ledger.targets     deployment targets                     shared/ledger/rollouts.py
    ledger.plans       deployment plans and group tasks       shared/ledger/rollouts.py
    ledger.outbox      product events to publish              shared/ledger/outbox.py
    ledger.retention   what the last retention pass removed   shared/ledger/retention.py
"""

from __future__ import annotations

from azure.data.tables import TableClient

from shared.ledger.batches import Batches
from shared.ledger.events import ProcessedEvents
from shared.ledger.outbox import Outbox
from shared.ledger.records import (
    Batch,
    BatchFile,
    BatchState,
    GroupTask,
    OutboxEvent,
    OutboxState,
    Plan,
    PlanState,
    RunEntry,
    RunState,
    Target,
    TaskState,
    records_as_dict,
)
from shared.ledger.retention import RetentionSummary
from shared.ledger.rollouts import Plans, Targets
from shared.ledger.runs import Runs
from shared.ledger.table import LedgerTable, encode_key
from shared.ledger.times import age_seconds, parse_time, timestamp, utcnow

__all__ = [
    "Batch", "BatchFile", "BatchState", "GroupTask", "Ledger", "LedgerTable", "OutboxEvent", "OutboxState", "Plan",
    "PlanState", "RunEntry", "RunState", "Target", "TaskState", "age_seconds", "encode_key", "parse_time",
    "records_as_dict", "timestamp", "utcnow",
]


class Ledger:
    """The ledger over one table. Every method of its stores raises :class:`shared.errors.Unavailable`
    when storage is down or busy."""

    def __init__(self, table: TableClient) -> None:
        self.table = LedgerTable(table)
        self.events = ProcessedEvents(self.table)
        self.batches = Batches(self.table)
        self.runs = Runs(self.table)
        self.targets = Targets(self.table)
        self.plans = Plans(self.table, self.targets)
        self.outbox = Outbox(self.table)
        self.retention = RetentionSummary(self.table)

    @property
    def table_name(self) -> str:
        return self.table.name

    def ensure(self) -> None:
        """Create the table when it does not exist (once per instance)."""
        self.table.ensure()
