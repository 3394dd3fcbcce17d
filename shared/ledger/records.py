"""The ledger's records: what a row of each kind holds, as frozen dataclasses with StrEnum states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


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


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    REFUSED = "refused"  # the topic refused this event itself (400/413): retrying cannot help


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
    last_blob: str = ""  # when the last blob was recorded (throttled, see Batches.record_file)
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
