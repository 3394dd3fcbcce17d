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
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.errors import Conflict, Unavailable

log = logging.getLogger(__name__)

_CHUNK = 30_000  # chars per string property: Table storage allows 64 KiB (UTF-16) per property
_MAX_TRIES = 50


class BatchState(StrEnum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class RunState(StrEnum):
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class PlanState(StrEnum):
    EXECUTING = "executing"
    FINISHING = "finishing"
    DONE = "done"
    FAILED = "failed"


class TaskState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # an unchanged group: nothing to execute


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def age_seconds(value: str, *, now: dt.datetime | None = None) -> float:
    """Seconds since ``value`` (ISO 8601); infinite when unknown, so stale checks fire."""
    parsed = parse_time(value)
    if parsed is None:
        return float("inf")
    return ((now or dt.datetime.now(dt.UTC)) - parsed).total_seconds()


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class BatchFile:
    name: str  # relative to the batch folder
    path: str  # blob path inside the landing container
    etag: str
    size: int | None
    recorded: str = ""


@dataclass(frozen=True, slots=True)
class Batch:
    kind: str  # "train" | "inference"
    batch: str
    state: BatchState
    created: str
    last_blob: str = ""  # when the last blob was recorded (throttled, see Ledger.record_file)
    manifest: bool = False
    dataset_name: str = ""
    dataset_version: int | None = None
    run_id: str = ""
    reason: str = ""
    file_count: int = 0
    closed: str = ""
    problems: tuple[str, ...] = ()
    token: str = ""  # who is closing it
    closing_since: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.batch}"


@dataclass(frozen=True, slots=True)
class RunEntry:
    run_id: str
    kind: str  # "training" | "forecasting"
    state: RunState
    submitted: str
    dataset_name: str = ""
    dataset_version: int | None = None
    batch: str = ""  # "<kind>/<batch>" when a batch started it
    source: str = ""  # "batch" | "http"
    ended: str = ""
    reason: str = ""
    predictions: str = ""
    experiment: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    target: str
    active_plan: str = ""
    active_since: str = ""
    queued: Mapping[str, Any] | None = None  # a rollout request waiting for the active plan
    last_run_id: str = ""
    last_run_submitted: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    plan_id: str
    target: str
    state: PlanState
    created: str
    run_id: str = ""
    source: str = ""
    groups: int = 0
    to_execute: int = 0
    updated: str = ""
    reason: str = ""
    reset: bool = False
    update: bool = False


@dataclass(frozen=True, slots=True)
class GroupTask:
    plan_id: str
    group: str
    service: str
    action: str
    models: tuple[tuple[str, int], ...]
    state: TaskState
    attempts: int = 0
    error: str = ""
    updated: str = ""
    enqueued: str = ""


# --------------------------------------------------------------------------- keys & encoding


def encode_key(value: str) -> str:
    """A table key for ``value``: ``/ \\ # ? %`` and control characters percent-encoded."""
    out = []
    for ch in value:
        if ch in "/\\#?%" or ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def _put_json(entity: dict[str, Any], name: str, value: Any) -> None:
    text = json.dumps(value, separators=(",", ":"))
    for key in [k for k in entity if k.startswith(f"{name}__")]:
        del entity[key]
    chunks = [text[i:i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
    for i, chunk in enumerate(chunks):
        entity[f"{name}__{i}"] = chunk


def _get_json(entity: Mapping[str, Any], name: str, default: Any = None) -> Any:
    parts, i = [], 0
    while f"{name}__{i}" in entity:
        parts.append(entity[f"{name}__{i}"])
        i += 1
    return json.loads("".join(parts)) if parts else default


def _int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


# --------------------------------------------------------------------------- ledger


class Ledger:
    """The ledger over one table. Every method raises :class:`Unavailable` when storage is down."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._ready = False

    @property
    def table_name(self) -> str:
        return self._table.table_name

    def ensure(self) -> None:
        if self._ready:
            return
        try:
            self._table.create_table()
        except ResourceExistsError:
            pass
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable ({e}); is Azurite running? "
                              "Start it with `manymodels storage start`") from e
        self._ready = True

    # ---------------------------------------------------------------- low level

    def _get(self, pk: str, rk: str) -> dict[str, Any] | None:
        self.ensure()
        try:
            entity = self._table.get_entity(pk, rk)
        except ResourceNotFoundError:
            return None
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e
        row = dict(entity)
        row["_etag"] = entity.metadata["etag"]
        return row

    def _create(self, entity: dict[str, Any]) -> bool:
        """Insert; False when the row already exists (someone else claimed it first)."""
        self.ensure()
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            return False
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e
        return True

    def _replace(self, row: dict[str, Any]) -> bool:
        """Replace if nobody changed the row since it was read; False when someone did."""
        entity = {k: v for k, v in row.items() if k != "_etag"}
        try:
            self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=row["_etag"],
                                      match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except HttpResponseError as e:
            if e.status_code in (409, 412):
                return False
            raise
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e
        return True

    def _mutate(self, pk: str, rk: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
                ) -> tuple[dict[str, Any] | None, bool]:
        """Read-change-write until the write wins. ``change`` returns the new row, or None to leave
        the row as it is. Returns (row as it is now, whether this call changed it)."""
        for attempt in range(_MAX_TRIES):
            row = self._get(pk, rk)
            if row is None:
                return None, False
            new = change(dict(row))
            if new is None:
                return row, False
            if self._replace(new):
                return self._get(pk, rk), True
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # someone else won: back off, re-read
        raise Conflict(f"ledger row {pk}/{rk} kept changing under {_MAX_TRIES} attempts; try again")

    def _query(self, pk: str, extra: str = "", **params: Any) -> Iterable[dict[str, Any]]:
        self.ensure()
        flt = "PartitionKey eq @pk" + (f" and {extra}" if extra else "")
        try:
            for entity in self._table.query_entities(flt, parameters={"pk": pk, **params}):
                row = dict(entity)
                row["_etag"] = entity.metadata["etag"]
                yield row
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e

    # ---------------------------------------------------------------- events

    def is_processed(self, event_id: str) -> bool:
        return self._get("event", encode_key(event_id)) is not None

    def mark_processed(self, event_id: str, *, event_type: str, outcome: str) -> None:
        """Remember a handled event so a replay is skipped early (handlers are idempotent anyway)."""
        self._create({"PartitionKey": "event", "RowKey": encode_key(event_id), "type": event_type,
                      "outcome": outcome[:1000], "at": utcnow()})

    # ---------------------------------------------------------------- batches

    def get_batch(self, kind: str, batch: str) -> Batch | None:
        row = self._get("batch", encode_key(f"{kind}/{batch}"))
        return _batch(row) if row else None

    def open_batch(self, kind: str, batch: str) -> Batch:
        """The batch's row, created ``open`` when it does not exist."""
        found = self.get_batch(kind, batch)
        if found is not None:  # the common case: one read, no failed insert
            return found
        now = utcnow()
        self._create({"PartitionKey": "batch", "RowKey": encode_key(f"{kind}/{batch}"), "kind": kind,
                      "batch": batch, "state": str(BatchState.OPEN), "created": now, "last_blob": now})
        found = self.get_batch(kind, batch)
        assert found is not None
        return found

    def record_file(self, kind: str, batch: str, file: BatchFile, *, touch_after: float = 1.0) -> Batch:
        """Record a blob of an open batch; returns the batch (unchanged when it is not open).

        ``last_blob`` is refreshed only when older than ``touch_after`` seconds: thousands of blobs
        landing at once then cost thousands of row inserts but only a few writes to the batch row.
        """
        header = self.open_batch(kind, batch)
        if header.state != BatchState.OPEN:
            return header
        pk = "batchfile:" + encode_key(f"{kind}/{batch}")
        entity = {"PartitionKey": pk, "RowKey": encode_key(file.name), "name": file.name, "path": file.path,
                  "etag": file.etag, "size": "" if file.size is None else str(file.size), "recorded": utcnow()}
        self.ensure()
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e
        if age_seconds(header.last_blob) < touch_after:
            return header

        def touch(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] != BatchState.OPEN or age_seconds(row.get("last_blob", "")) < touch_after:
                return None
            row["last_blob"] = utcnow()
            return row

        row, _ = self._mutate("batch", encode_key(f"{kind}/{batch}"), touch)
        return _batch(row) if row else header

    def batch_files(self, kind: str, batch: str) -> list[BatchFile]:
        rows = self._query("batchfile:" + encode_key(f"{kind}/{batch}"))
        return [BatchFile(r["name"], r["path"], r["etag"], _int(r.get("size")), r.get("recorded", "")) for r in rows]

    def list_batches(self, *, state: BatchState | None = None) -> list[Batch]:
        rows = self._query("batch", "state eq @state", state=str(state)) if state else self._query("batch")
        return sorted((_batch(r) for r in rows), key=lambda b: b.created, reverse=True)

    def claim_batch(self, kind: str, batch: str, *, token: str, manifest: bool, stale_after: float) -> Batch | None:
        """Move the batch to ``closing`` for ``token``; None when someone else holds or finished it.

        An ``open`` batch is claimed; a ``closing`` one only when its closer went quiet for
        ``stale_after`` seconds (it crashed): the new closer then finishes what it started.
        """
        def claim(row: dict[str, Any]) -> dict[str, Any] | None:
            state = row["state"]
            if state == BatchState.CLOSING and age_seconds(row.get("closing_since", "")) < stale_after:
                return None
            if state not in (BatchState.OPEN, BatchState.CLOSING):
                return None
            row.update(state=str(BatchState.CLOSING), token=token, closing_since=utcnow(),
                       manifest=bool(row.get("manifest")) or manifest)
            return row

        self.open_batch(kind, batch)
        row, changed = self._mutate("batch", encode_key(f"{kind}/{batch}"), claim)
        return _batch(row) if changed and row else None

    def update_batch(self, kind: str, batch: str, *, token: str, **changes: Any) -> Batch:
        """Change a batch this closer holds. Raises :class:`Conflict` when another closer took it over."""
        def change(row: dict[str, Any]) -> dict[str, Any]:
            if row.get("token") != token:
                raise Conflict(f"batch {kind}/{batch} is being closed by another instance")
            for key, value in changes.items():
                if key == "problems":
                    _put_json(row, "problems", _capped(list(value)))
                elif key == "state":
                    row[key] = str(value)
                else:
                    row[key] = "" if value is None else value
            row["closing_since"] = utcnow()  # progress keeps the claim fresh
            return row

        row, _ = self._mutate("batch", encode_key(f"{kind}/{batch}"), change)
        if row is None:
            raise Conflict(f"batch {kind}/{batch} disappeared from the ledger while closing")
        return _batch(row)

    # ---------------------------------------------------------------- runs

    def record_run(self, entry: RunEntry) -> RunEntry:
        """Record a submitted run (first writer wins); returns what the ledger holds."""
        self._create(_run_row(entry))
        found = self.get_run(entry.run_id)
        assert found is not None
        return found

    def get_run(self, run_id: str) -> RunEntry | None:
        row = self._get("run", encode_key(run_id))
        return _run(row) if row else None

    def list_runs(self, *, state: RunState | None = None) -> list[RunEntry]:
        rows = self._query("run", "state eq @state", state=str(state)) if state else self._query("run")
        return sorted((_run(r) for r in rows), key=lambda r: r.submitted, reverse=True)

    def finish_run(self, entry: RunEntry, *, state: RunState, reason: str = "", predictions: str = "",
                   ended: str = "") -> tuple[RunEntry, bool]:
        """Move a run from ``submitted`` to a final state, creating its row if the app never saw it
        submitted (a run started by hand). Returns (the run, whether this call made the change):
        only the caller that gets True acts on the completion."""
        self._create(_run_row(entry))

        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] != RunState.SUBMITTED:
                return None
            row.update(state=str(state), reason=reason[:4000], predictions=predictions, ended=ended or utcnow())
            return row

        row, changed = self._mutate("run", encode_key(entry.run_id), change)
        assert row is not None
        return _run(row), changed

    # ---------------------------------------------------------------- targets

    def get_target(self, target: str) -> Target:
        row = self._get("target", encode_key(target))
        return _target(row) if row else Target(target)

    def _mutate_target(self, target: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
                       ) -> tuple[Target, bool]:
        self._create({"PartitionKey": "target", "RowKey": encode_key(target), "target": target})
        row, changed = self._mutate("target", encode_key(target), change)
        assert row is not None
        return _target(row), changed

    def supersedes(self, target: str, *, run_id: str, submitted: str) -> bool:
        """Record ``run_id`` as the newest run rolled out to ``target``; False when a run submitted
        later was already rolled out (rolling this one out would put older models back)."""
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            last = row.get("last_run_submitted", "")
            if row.get("last_run_id") == run_id:
                return None
            if last and parse_time(submitted) and parse_time(last) and parse_time(submitted) < parse_time(last):
                raise _Superseded()
            row.update(last_run_id=run_id, last_run_submitted=submitted)
            return row

        try:
            self._mutate_target(target, change)
        except _Superseded:
            return False
        return True

    def claim_target(self, target: str, plan_id: str, *, stale_after: float) -> bool:
        """Make ``plan_id`` the target's one active plan. False when another plan is active (and
        not stale): plans for one target never run side by side."""
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            active = row.get("active_plan", "")
            if active and active != plan_id and age_seconds(row.get("active_since", "")) < stale_after:
                return None
            row.update(active_plan=plan_id, active_since=utcnow())
            return row

        state, _ = self._mutate_target(target, change)
        return state.active_plan == plan_id

    def touch_target(self, target: str, plan_id: str) -> None:
        """Progress on the active plan keeps its claim fresh."""
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row.get("active_plan") != plan_id:
                return None
            row["active_since"] = utcnow()
            return row

        self._mutate_target(target, change)

    def queue_request(self, target: str, request: Mapping[str, Any]) -> Target:
        """Remember a rollout request for when the active plan ends (newer requests replace older)."""
        def change(row: dict[str, Any]) -> dict[str, Any]:
            queued = _get_json(row, "queued") or {}
            merged = {**request, "reset": bool(queued.get("reset")) or bool(request.get("reset")),
                      "update": bool(queued.get("update")) or bool(request.get("update"))}
            _put_json(row, "queued", merged)
            return row

        state, _ = self._mutate_target(target, change)
        return state

    def release_target(self, target: str, plan_id: str) -> Mapping[str, Any] | None:
        """End ``plan_id``'s turn; returns the queued request (taken off the target), if any."""
        taken: list[Mapping[str, Any] | None] = [None]

        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row.get("active_plan") != plan_id:
                return None
            taken[0] = _get_json(row, "queued")
            row.update(active_plan="", active_since="")
            _put_json(row, "queued", None)
            return row

        self._mutate_target(target, change)
        return taken[0]

    def list_targets(self) -> list[Target]:
        return [_target(r) for r in self._query("target")]

    # ---------------------------------------------------------------- plans & tasks

    def create_plan(self, plan: Plan, tasks: Iterable[GroupTask]) -> bool:
        """Save a plan and its group tasks; False when a plan with this id exists (a replay).

        Tasks are written first (replacing leftovers of an attempt that died before its plan row),
        so a plan row is only ever seen with all its tasks.
        """
        if self.get_plan(plan.plan_id) is not None:
            return False
        self.ensure()
        for task in tasks:
            try:
                self._table.upsert_entity(_task_row(task), mode=UpdateMode.REPLACE)
            except ServiceRequestError as e:
                raise Unavailable(f"table storage is not reachable: {e}") from e
        return self._create(_plan_row(plan))

    def get_plan(self, plan_id: str) -> Plan | None:
        row = self._get("plan", encode_key(plan_id))
        return _plan(row) if row else None

    def list_plans(self, *, state: PlanState | None = None) -> list[Plan]:
        rows = self._query("plan", "state eq @state", state=str(state)) if state else self._query("plan")
        return sorted((_plan(r) for r in rows), key=lambda p: p.created, reverse=True)

    def update_plan(self, plan_id: str, *, expect: Iterable[PlanState] | None = None, **changes: Any
                    ) -> tuple[Plan | None, bool]:
        """Change a plan if its state is one of ``expect``; (plan, whether this call changed it)."""
        allowed = {str(s) for s in expect} if expect is not None else None

        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if allowed is not None and row["state"] not in allowed:
                return None
            row.update({k: str(v) if isinstance(v, StrEnum) else v for k, v in changes.items()})
            row["updated"] = utcnow()
            return row

        row, changed = self._mutate("plan", encode_key(plan_id), change)
        return (_plan(row) if row else None), changed

    def get_task(self, plan_id: str, group: str) -> GroupTask | None:
        row = self._get("task:" + encode_key(plan_id), encode_key(group))
        return _task(row) if row else None

    def list_tasks(self, plan_id: str) -> list[GroupTask]:
        return sorted((_task(r) for r in self._query("task:" + encode_key(plan_id))), key=lambda t: t.group)

    def update_task(self, plan_id: str, group: str, *, expect: Iterable[TaskState] | None = None,
                    **changes: Any) -> tuple[GroupTask | None, bool]:
        allowed = {str(s) for s in expect} if expect is not None else None

        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if allowed is not None and row["state"] not in allowed:
                return None
            row.update({k: str(v) if isinstance(v, StrEnum) else v for k, v in changes.items()})
            row["updated"] = utcnow()
            return row

        row, changed = self._mutate("task:" + encode_key(plan_id), encode_key(group), change)
        return (_task(row) if row else None), changed

    # ---------------------------------------------------------------- retention (shared/flows/retention.py)

    def _delete_rows(self, rows: list[dict[str, Any]]) -> int:
        """Delete rows (unconditionally; a missing row is fine), 100 per transaction of one partition."""
        from azure.data.tables import TableTransactionError

        by_partition: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_partition.setdefault(row["PartitionKey"], []).append(row)
        for partition in by_partition.values():
            for i in range(0, len(partition), 100):
                chunk = partition[i:i + 100]
                try:
                    self._table.submit_transaction(
                        [("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}) for r in chunk])
                except TableTransactionError:  # one row went meanwhile (another pruner): row by row
                    for r in chunk:
                        self._delete_one(r)
                except ServiceRequestError as e:
                    raise Unavailable(f"table storage is not reachable: {e}") from e
        return len(rows)

    def _delete_one(self, row: Mapping[str, Any]) -> None:
        try:
            self._table.delete_entity(row["PartitionKey"], row["RowKey"])  # a 404 is not raised
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e

    def prune_events(self, *, before: str, limit: int) -> int:
        """Forget processed-event ids recorded before ``before`` (ISO 8601); at most ``limit`` rows."""
        rows = []
        for row in self._query("event", "at lt @before", before=before):
            rows.append(row)
            if len(rows) >= limit:
                break
        return self._delete_rows(rows)

    def prune_batch_files(self, *, before: str, limit: int) -> tuple[int, int]:
        """Delete the blob lists of batches that closed or failed before ``before``; returns
        (batches, rows). The batch row itself stays (a late blob of a closed batch is still
        ignored, and status still shows it); open and closing batches are never touched."""
        batches = rows_deleted = 0
        for state in (BatchState.CLOSED, BatchState.FAILED):
            for row in self._query("batch", "state eq @state", state=str(state)):
                if rows_deleted >= limit:
                    return batches, rows_deleted
                ended = row.get("closed") or row.get("created", "")
                if row.get("files_pruned") or not ended or ended >= before:
                    continue
                key, budget = row["RowKey"], limit - rows_deleted
                files: list[dict[str, Any]] = []
                for file_row in self._query(f"batchfile:{key}"):
                    files.append(file_row)
                    if len(files) > budget:  # one more than may go: the rest waits for the next pass
                        break
                rows_deleted += self._delete_rows(files[:budget])
                if len(files) <= budget:  # the whole list went: mark the batch so it is not read again
                    self._mark_files_pruned(key)
                    batches += 1
        return batches, rows_deleted

    def _mark_files_pruned(self, key: str) -> None:
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] not in (BatchState.CLOSED, BatchState.FAILED) or row.get("files_pruned"):
                return None
            row["files_pruned"] = True
            return row

        self._mutate("batch", key, change)

    def prune_plans(self, *, before: str, keep: int, limit: int) -> int:
        """Delete finished (done/failed) plans last changed before ``before``, tasks first, then
        the plan row (a crash in between leaves a finished plan without tasks, never orphan tasks).
        The newest ``keep`` plans stay for status, and so does any plan a target names as active."""
        active = {t.active_plan for t in self.list_targets() if t.active_plan}
        deleted = 0
        for plan in self.list_plans()[keep:]:
            if deleted >= limit:
                break
            if plan.state not in (PlanState.DONE, PlanState.FAILED) or plan.plan_id in active:
                continue
            if (plan.updated or plan.created) >= before:
                continue
            self._delete_rows(list(self._query("task:" + encode_key(plan.plan_id))))
            self._delete_one({"PartitionKey": "plan", "RowKey": encode_key(plan.plan_id)})
            deleted += 1
        return deleted

    def prune_runs(self, *, before: str, limit: int) -> int:
        """Delete the rows of runs that ended (completed/failed/canceled) before ``before``; a run
        still ``submitted`` is never deleted (reconcile has yet to act on it)."""
        rows = []
        for row in self._query("run", "state ne @state", state=str(RunState.SUBMITTED)):
            if (row.get("ended") or row.get("submitted") or "") < before:
                rows.append(row)
                if len(rows) >= limit:
                    break
        return self._delete_rows(rows)

    def record_retention(self, summary: Mapping[str, Any]) -> None:
        """Keep what the last retention pass removed (``manymodels status`` shows it)."""
        row: dict[str, Any] = {"PartitionKey": "retention", "RowKey": "last", "at": utcnow()}
        _put_json(row, "summary", dict(summary))
        self.ensure()
        try:
            self._table.upsert_entity(row, mode=UpdateMode.REPLACE)
        except ServiceRequestError as e:
            raise Unavailable(f"table storage is not reachable: {e}") from e

    def last_retention(self) -> dict[str, Any] | None:
        row = self._get("retention", "last")
        return _get_json(row, "summary") if row else None

    # ---------------------------------------------------------------- outbox (shared/flows/outbox.py)

    def add_outbox(self, event: OutboxEvent) -> bool:
        """Write a product event to publish (create-if-absent on its id, which is derived from its
        fact): False when it is already there, pending or sent, so a retried flow adds nothing."""
        row: dict[str, Any] = {"PartitionKey": "outbox", "RowKey": encode_key(event.event_id),
                               "event_id": event.event_id, "type": event.type, "subject": event.subject,
                               "source": event.source, "time": event.time, "state": str(OutboxState.PENDING),
                               "created": utcnow(), "attempts": 0, "error": "", "sent": ""}
        _put_json(row, "data", dict(event.data))
        return self._create(row)

    def get_outbox(self, event_id: str) -> OutboxEvent | None:
        row = self._get("outbox", encode_key(event_id))
        return _outbox(row) if row else None

    def list_outbox(self, *, state: OutboxState | None = None, limit: int = 1000) -> list[OutboxEvent]:
        """Outbox rows, oldest first (``created``); at most ``limit``."""
        rows = self._query("outbox", "state eq @state", state=str(state)) if state else self._query("outbox")
        found = []
        for row in rows:
            found.append(_outbox(row))
            if len(found) >= limit:
                break
        return sorted(found, key=lambda e: e.created)

    def mark_outbox_sent(self, event_id: str) -> bool:
        """``pending -> sent``; False when it was not pending (another drain sent it)."""
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] != OutboxState.PENDING:
                return None
            row.update(state=str(OutboxState.SENT), sent=utcnow(), attempts=int(row.get("attempts") or 0) + 1,
                       error="")
            return row

        _, changed = self._mutate("outbox", encode_key(event_id), change)
        return changed

    def mark_outbox_sent_many(self, event_ids: Iterable[str]) -> None:
        """Mark published rows sent, 100 per transaction (one partition). Unconditional merges:
        ``sent`` is final, so two drains marking the same row leave the same row."""
        from azure.data.tables import TableTransactionError

        self.ensure()
        ids, now = list(event_ids), utcnow()
        for i in range(0, len(ids), 100):
            ops = [("update", {"PartitionKey": "outbox", "RowKey": encode_key(e), "state": str(OutboxState.SENT),
                               "sent": now, "error": ""}, {"mode": UpdateMode.MERGE}) for e in ids[i:i + 100]]
            try:
                if len(ops) == 1:  # one plain merge costs half a one-operation transaction
                    self._table.update_entity(ops[0][1], mode=UpdateMode.MERGE)
                else:
                    self._table.submit_transaction(ops)
            except ResourceNotFoundError:  # the one row went meanwhile (pruned): nothing to mark
                pass
            except TableTransactionError:  # a row went meanwhile (pruned): the others one by one
                for e in ids[i:i + 100]:
                    if self.get_outbox(e) is not None:
                        self.mark_outbox_sent(e)
            except ServiceRequestError as e:
                raise Unavailable(f"table storage is not reachable: {e}") from e

    def mark_outbox_refused(self, event_id: str, error: str) -> bool:
        """``pending -> refused``: the topic will never take this event (it stays, for status)."""
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] != OutboxState.PENDING:
                return None
            row.update(state=str(OutboxState.REFUSED), error=error[:2000], last_attempt=utcnow(),
                       attempts=int(row.get("attempts") or 0) + 1)
            return row

        _, changed = self._mutate("outbox", encode_key(event_id), change)
        return changed

    def note_outbox_failure(self, event_id: str, error: str) -> None:
        """A publish attempt failed: count it and keep the reason (the row stays pending)."""
        def change(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] != OutboxState.PENDING:
                return None
            row.update(attempts=int(row.get("attempts") or 0) + 1, error=error[:2000], last_attempt=utcnow())
            return row

        self._mutate("outbox", encode_key(event_id), change)

    def prune_outbox(self, *, before: str, limit: int) -> int:
        """Delete sent outbox rows sent before ``before``; pending rows are never deleted."""
        rows = []
        for row in self._query("outbox", "state eq @state", state=str(OutboxState.SENT)):
            if (row.get("sent") or "") < before:
                rows.append(row)
                if len(rows) >= limit:
                    break
        return self._delete_rows(rows)


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    REFUSED = "refused"  # the topic refused this event itself (400/413): retrying cannot help


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One product event in the outbox (shared/product_events.py builds them)."""

    event_id: str
    type: str
    subject: str
    source: str
    time: str
    data: Mapping[str, Any]
    state: OutboxState = OutboxState.PENDING
    created: str = ""
    attempts: int = 0
    error: str = ""
    sent: str = ""


def _outbox(row: Mapping[str, Any]) -> OutboxEvent:
    return OutboxEvent(event_id=row["event_id"], type=row.get("type", ""), subject=row.get("subject", ""),
                       source=row.get("source", ""), time=row.get("time", ""), data=_get_json(row, "data", {}),
                       state=OutboxState(row["state"]), created=row.get("created", ""),
                       attempts=int(row.get("attempts") or 0), error=row.get("error", ""), sent=row.get("sent", ""))


class _Superseded(Exception):
    pass


def _capped(problems: list[str], *, keep: int = 100) -> list[str]:
    """At most ``keep`` problems (a row holds 1 MB): the rest are counted, not listed."""
    if len(problems) <= keep:
        return [p[:1000] for p in problems]
    return [p[:1000] for p in problems[:keep]] + [f"... and {len(problems) - keep} more problems"]


# --------------------------------------------------------------------------- row <-> record


def _batch(row: Mapping[str, Any]) -> Batch:
    return Batch(kind=row["kind"], batch=row["batch"], state=BatchState(row["state"]), created=row.get("created", ""),
                 last_blob=row.get("last_blob", ""), manifest=bool(row.get("manifest")),
                 dataset_name=row.get("dataset_name", ""), dataset_version=_int(row.get("dataset_version")),
                 run_id=row.get("run_id", ""), reason=row.get("reason", ""), file_count=int(row.get("file_count") or 0),
                 closed=row.get("closed", ""), problems=tuple(_get_json(row, "problems", [])),
                 token=row.get("token", ""), closing_since=row.get("closing_since", ""))


def _run_row(entry: RunEntry) -> dict[str, Any]:
    row: dict[str, Any] = {"PartitionKey": "run", "RowKey": encode_key(entry.run_id)}
    for f in fields(entry):
        value = getattr(entry, f.name)
        row[f.name] = "" if value is None else (str(value) if isinstance(value, StrEnum | int) else value)
    return row


def _run(row: Mapping[str, Any]) -> RunEntry:
    return RunEntry(run_id=row["run_id"], kind=row.get("kind", ""), state=RunState(row["state"]),
                    submitted=row.get("submitted", ""), dataset_name=row.get("dataset_name", ""),
                    dataset_version=_int(row.get("dataset_version")), batch=row.get("batch", ""),
                    source=row.get("source", ""), ended=row.get("ended", ""), reason=row.get("reason", ""),
                    predictions=row.get("predictions", ""), experiment=row.get("experiment", ""))


def _target(row: Mapping[str, Any]) -> Target:
    return Target(target=row["target"], active_plan=row.get("active_plan", ""),
                  active_since=row.get("active_since", ""), queued=_get_json(row, "queued"),
                  last_run_id=row.get("last_run_id", ""), last_run_submitted=row.get("last_run_submitted", ""))


def _plan_row(plan: Plan) -> dict[str, Any]:
    row: dict[str, Any] = {"PartitionKey": "plan", "RowKey": encode_key(plan.plan_id)}
    for f in fields(plan):
        value = getattr(plan, f.name)
        row[f.name] = str(value) if isinstance(value, StrEnum) else value
    return row


def _plan(row: Mapping[str, Any]) -> Plan:
    return Plan(plan_id=row["plan_id"], target=row["target"], state=PlanState(row["state"]),
                created=row.get("created", ""), run_id=row.get("run_id", ""), source=row.get("source", ""),
                groups=int(row.get("groups") or 0), to_execute=int(row.get("to_execute") or 0),
                updated=row.get("updated", ""), reason=row.get("reason", ""), reset=bool(row.get("reset")),
                update=bool(row.get("update")))


def _task_row(task: GroupTask) -> dict[str, Any]:
    row: dict[str, Any] = {"PartitionKey": "task:" + encode_key(task.plan_id), "RowKey": encode_key(task.group),
                           "plan_id": task.plan_id, "group": task.group, "service": task.service,
                           "action": task.action, "state": str(task.state), "attempts": task.attempts,
                           "error": task.error, "updated": task.updated, "enqueued": task.enqueued}
    _put_json(row, "models", [[n, v] for n, v in task.models])
    return row


def _task(row: Mapping[str, Any]) -> GroupTask:
    return GroupTask(plan_id=row["plan_id"], group=row["group"], service=row.get("service", ""),
                     action=row.get("action", ""), models=tuple((n, int(v)) for n, v in _get_json(row, "models", [])),
                     state=TaskState(row["state"]), attempts=int(row.get("attempts") or 0),
                     error=row.get("error", ""), updated=row.get("updated", ""), enqueued=row.get("enqueued", ""))


def records_as_dict(record: Any) -> dict[str, Any]:
    """A ledger record as plain JSON-able data (status output)."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out

