"""The Function App's memory: idempotency and progress on Azure Table storage (Azurite locally).

Event Grid and queues deliver at least once, late and out of order, and several instances of a
function run at once. Everything a handler must do once goes through this ledger, with writes
that only one concurrent caller can win:

- create-if-absent (``create_entity`` raising ``ResourceExistsError``) for claims: a batch, a
  run, a plan;
- ETag-conditional replaces (``MatchConditions.IfNotModified``) for state transitions: a batch
  going ``open -> closing -> closed``, a run going ``submitted -> completed``, a group task going
  ``pending -> done``, a plan going ``executing -> finishing`` (the one caller that wins it
  updates the router). A loser re-reads and sees the state the winner left.

One table (``LEDGER_TABLE``), partitioned by record kind::

    event                 processed event ids (replays are skipped early)
    batch                 one row per landing batch: "<kind>/<batch>"
    batchfile:<kind>/<b>  one row per blob recorded in that batch
    run                   one row per pipeline run the app submitted
    target                one row per deployment target: active plan, queued request, newest run rolled out
    plan                  one row per deployment plan
    task:<plan id>        one row per group of that plan (its models are stored here, not in the queue)
    retention             what the last retention pass removed (shared/flows/retention.py)
    outbox                product events to publish, one row per event id (shared/flows/outbox.py)

Table keys may not hold ``/ \\ # ?`` or control characters, so keys are percent-encoded.

Every call to the table goes through :class:`LedgerTable`, the one place storage errors are
translated (shared/storage/errors.py, by HTTP status): the answers the protocol expects (exists,
not found, 409/412 on a conditional replace) become ``False``/``None``; anything else leaves as the
product's error, e.g. a 503 or 429 as :class:`shared.errors.Unavailable` (retryable).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.errors import Conflict
from shared.storage.errors import storage_call

Row = dict[str, Any]  # an entity as read, with its ETag under "_etag"
Change = Callable[[Row], Row | None]  # a row -> the row to write, or None to leave it as it is

_CHUNK = 30_000  # chars per string property: Table storage allows 64 KiB (UTF-16) per property
_MAX_TRIES = 50
_BATCH = 100  # operations per transaction (the service's limit)


def encode_key(value: str) -> str:
    """A table key for ``value``: ``/ \\ # ? %`` and control characters percent-encoded."""
    out = []
    for ch in value:
        if ch in "/\\#?%" or ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def put_json(entity: Row, name: str, value: Any) -> None:
    """Store ``value`` as JSON in ``name__0``, ``name__1``, ... (a property holds at most 64 KiB)."""
    text = json.dumps(value, separators=(",", ":"))
    for key in [k for k in entity if k.startswith(f"{name}__")]:
        del entity[key]
    chunks = [text[i:i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    for i, chunk in enumerate(chunks):
        entity[f"{name}__{i}"] = chunk


def get_json(entity: Mapping[str, Any], name: str, default: Any = None) -> Any:
    parts, i = [], 0
    while f"{name}__{i}" in entity:
        parts.append(entity[f"{name}__{i}"])
        i += 1
    return json.loads("".join(parts)) if parts else default


def optional_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


class LedgerTable:
    """The ledger's one table, and the concurrency protocol above. Every method raises
    :class:`shared.errors.Unavailable` when storage is down or busy."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self._ready = False

    @property
    def name(self) -> str:
        return self._client.table_name

    def _storage(self, action: str) -> AbstractContextManager[None]:
        """The error edge: an azure.core error raised inside leaves as the product's error."""
        return storage_call(f"{action} in ledger table {self.name}")

    def ensure(self) -> None:
        if self._ready:
            return
        with self._storage("create the table"), suppress(ResourceExistsError):  # it exists: nothing to do
            self._client.create_table()
        self._ready = True

    def get(self, pk: str, rk: str) -> Row | None:
        self.ensure()
        with self._storage(f"read row {pk}/{rk}"):
            try:
                entity = self._client.get_entity(pk, rk)
            except ResourceNotFoundError:
                return None
        row = dict(entity)
        row["_etag"] = entity.metadata["etag"]
        return row

    def create(self, entity: Row) -> bool:
        """Insert; False when the row already exists (someone else claimed it first)."""
        self.ensure()
        with self._storage(f"insert row {entity['PartitionKey']}/{entity['RowKey']}"):
            try:
                self._client.create_entity(entity)
            except ResourceExistsError:
                return False
        return True

    def upsert(self, entity: Row) -> None:
        """Insert or replace, unconditionally (rows only ever written whole by one kind of caller)."""
        self.ensure()
        with self._storage(f"write row {entity['PartitionKey']}/{entity['RowKey']}"):
            self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def replace(self, row: Row) -> bool:
        """Replace if nobody changed the row since it was read; False when someone did."""
        entity = {k: v for k, v in row.items() if k != "_etag"}
        with self._storage(f"replace row {entity['PartitionKey']}/{entity['RowKey']}"):
            try:
                self._client.update_entity(entity, mode=UpdateMode.REPLACE, etag=row["_etag"],
                                           match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
            except HttpResponseError as e:
                if e.status_code in (409, 412):
                    return False
                raise
        return True

    def mutate(self, pk: str, rk: str, change: Change) -> tuple[Row | None, bool]:
        """Read-change-write until the write wins. ``change`` returns the new row, or None to leave
        the row as it is. Returns (row as it is now, whether this call changed it)."""
        for attempt in range(_MAX_TRIES):
            row = self.get(pk, rk)
            if row is None:
                return None, False
            new = change(dict(row))
            if new is None:
                return row, False
            if self.replace(new):
                return self.get(pk, rk), True
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # someone else won: back off, re-read
        raise Conflict(f"ledger row {pk}/{rk} kept changing under {_MAX_TRIES} attempts; try again")

    def query(self, pk: str, extra: str = "", **params: Any) -> Iterator[Row]:
        """The rows of partition ``pk`` matching ``extra`` (an OData filter over ``@params``)."""
        self.ensure()
        flt = "PartitionKey eq @pk" + (f" and {extra}" if extra else "")
        with self._storage(f"query partition {pk}"):
            for entity in self._client.query_entities(flt, parameters={"pk": pk, **params}):
                row = dict(entity)
                row["_etag"] = entity.metadata["etag"]
                yield row

    def merge_all(self, entities: Sequence[Row]) -> bool:
        """Merge the properties of rows of one partition, at most 100 (one transaction); False
        when a row does not exist (nothing was written when there were several)."""
        self.ensure()
        with self._storage(f"merge {len(entities)} rows"):
            try:
                if len(entities) == 1:  # one plain merge costs half a one-operation transaction
                    self._client.update_entity(entities[0], mode=UpdateMode.MERGE)
                else:
                    self._client.submit_transaction(
                        [("update", e, {"mode": UpdateMode.MERGE}) for e in entities])
            except (ResourceNotFoundError, TableTransactionError):
                return False
        return True

    def delete_rows(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Delete rows (unconditionally; a missing row is fine), 100 per transaction of one partition."""
        by_partition: dict[str, list[Mapping[str, Any]]] = {}
        for row in rows:
            by_partition.setdefault(row["PartitionKey"], []).append(row)
        for partition in by_partition.values():
            for i in range(0, len(partition), _BATCH):
                chunk = partition[i:i + _BATCH]
                with self._storage(f"delete {len(chunk)} rows"):
                    try:
                        self._client.submit_transaction(
                            [("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}) for r in chunk])
                    except TableTransactionError:  # one row went meanwhile (another pruner): row by row
                        for r in chunk:
                            self.delete_one(r["PartitionKey"], r["RowKey"])
        return len(rows)

    def delete_one(self, pk: str, rk: str) -> None:
        with self._storage(f"delete row {pk}/{rk}"):
            self._client.delete_entity(pk, rk)  # a 404 is not raised
