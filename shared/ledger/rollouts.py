"""Rollouts: deployment targets (partition ``target``), plans (``plan``) and their group tasks
(``task:<plan id>``), driven by shared/flows/rollout.py.

A target runs one plan at a time (``Targets.claim``, a lease kept fresh by progress); a plan goes
``executing -> finishing -> done`` (or ``failed``) and a task ``pending -> done | failed``, each
transition conditional on the state it leaves (``expect``), so one caller wins it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from enum import StrEnum
from typing import Any

from shared.ledger.records import GroupTask, Plan, PlanState, Target, TaskState
from shared.ledger.table import Change, LedgerTable, Row, encode_key, get_json, put_json
from shared.ledger.times import age_seconds, parse_time, utcnow

_TARGET = "target"
_PLAN = "plan"


def _tasks_partition(plan_id: str) -> str:
    return "task:" + encode_key(plan_id)


class _Superseded(Exception):
    pass


class Targets:
    def __init__(self, table: LedgerTable) -> None:
        self._table = table

    def get(self, target: str) -> Target:
        row = self._table.get(_TARGET, encode_key(target))
        return _target(row) if row else Target(target)

    def all(self) -> list[Target]:
        return [_target(r) for r in self._table.query(_TARGET)]

    def _mutate(self, target: str, change: Change) -> tuple[Target, bool]:
        self._table.create({"PartitionKey": _TARGET, "RowKey": encode_key(target), "target": target})
        row, changed = self._table.mutate(_TARGET, encode_key(target), change)
        assert row is not None
        return _target(row), changed

    def supersedes(self, target: str, *, run_id: str, submitted: str) -> bool:
        """Record ``run_id`` as the newest run rolled out to ``target``; False when a run submitted
        later was already rolled out (rolling this one out would put older models back)."""
        def change(row: Row) -> Row | None:
            if row.get("last_run_id") == run_id:
                return None
            this, last = parse_time(submitted), parse_time(row.get("last_run_submitted", ""))
            if this and last and this < last:
                raise _Superseded()
            row.update(last_run_id=run_id, last_run_submitted=submitted)
            return row

        try:
            self._mutate(target, change)
        except _Superseded:
            return False
        return True

    def claim(self, target: str, plan_id: str, *, stale_after: float) -> bool:
        """Make ``plan_id`` the target's one active plan. False when another plan is active (and
        not stale): plans for one target never run side by side."""
        def change(row: Row) -> Row | None:
            active = row.get("active_plan", "")
            if active and active != plan_id and age_seconds(row.get("active_since", "")) < stale_after:
                return None
            row.update(active_plan=plan_id, active_since=utcnow())
            return row

        state, _ = self._mutate(target, change)
        return state.active_plan == plan_id

    def touch(self, target: str, plan_id: str) -> None:
        """Progress on the active plan keeps its claim fresh."""
        def change(row: Row) -> Row | None:
            if row.get("active_plan") != plan_id:
                return None
            row["active_since"] = utcnow()
            return row

        self._mutate(target, change)

    def queue_request(self, target: str, request: Mapping[str, Any]) -> Target:
        """Remember a rollout request for when the active plan ends (newer requests replace older)."""
        def change(row: Row) -> Row:
            queued = get_json(row, "queued") or {}
            merged = {**request, "reset": bool(queued.get("reset")) or bool(request.get("reset")),
                      "update": bool(queued.get("update")) or bool(request.get("update"))}
            put_json(row, "queued", merged)
            return row

        state, _ = self._mutate(target, change)
        return state

    def release(self, target: str, plan_id: str) -> Mapping[str, Any] | None:
        """End ``plan_id``'s turn; returns the queued request (taken off the target), if any."""
        taken: list[Mapping[str, Any] | None] = [None]

        def change(row: Row) -> Row | None:
            if row.get("active_plan") != plan_id:
                return None
            taken[0] = get_json(row, "queued")
            row.update(active_plan="", active_since="")
            put_json(row, "queued", None)
            return row

        self._mutate(target, change)
        return taken[0]


class Plans:
    """Plans and their group tasks (a plan's models are stored in its tasks, not in the queue)."""

    def __init__(self, table: LedgerTable, targets: Targets) -> None:
        self._table = table
        self._targets = targets  # a plan a target names as active is never pruned

    def create(self, plan: Plan, tasks: Iterable[GroupTask]) -> bool:
        """Save a plan and its group tasks; False when a plan with this id exists (a replay).

        Tasks are written first (replacing leftovers of an attempt that died before its plan row),
        so a plan row is only ever seen with all its tasks.
        """
        if self.get(plan.plan_id) is not None:
            return False
        for task in tasks:
            self._table.upsert(_task_row(task))
        return self._table.create(_plan_row(plan))

    def get(self, plan_id: str) -> Plan | None:
        row = self._table.get(_PLAN, encode_key(plan_id))
        return _plan(row) if row else None

    def all(self, *, state: PlanState | None = None) -> list[Plan]:
        """Every plan (in ``state``), newest first."""
        rows = self._table.query(_PLAN, "state eq @state", state=str(state)) if state else self._table.query(_PLAN)
        return sorted((_plan(r) for r in rows), key=lambda p: p.created, reverse=True)

    def update(self, plan_id: str, *, expect: Iterable[PlanState] | None = None, state: PlanState | None = None,
               reason: str | None = None) -> tuple[Plan | None, bool]:
        """Change a plan if its state is one of ``expect`` (any state when None); a field left None
        stays as it is. Returns (plan, whether this call changed it)."""
        changes: Row = {}
        if state is not None:
            changes["state"] = str(PlanState(state))
        if reason is not None:
            changes["reason"] = reason
        row, changed = self._update(_PLAN, encode_key(plan_id), expect, changes)
        return (_plan(row) if row else None), changed

    def get_task(self, plan_id: str, group: str) -> GroupTask | None:
        row = self._table.get(_tasks_partition(plan_id), encode_key(group))
        return _task(row) if row else None

    def tasks(self, plan_id: str) -> list[GroupTask]:
        return sorted((_task(r) for r in self._table.query(_tasks_partition(plan_id))), key=lambda t: t.group)

    def update_task(self, plan_id: str, group: str, *, expect: Iterable[TaskState] | None = None,
                    state: TaskState | None = None, attempts: int | None = None, error: str | None = None,
                    enqueued: str | None = None) -> tuple[GroupTask | None, bool]:
        """Change a group task if its state is one of ``expect`` (any state when None); a field left
        None stays as it is. Returns (task, whether this call changed it)."""
        changes: Row = {}
        if state is not None:
            changes["state"] = str(TaskState(state))
        if attempts is not None:
            changes["attempts"] = attempts
        if error is not None:
            changes["error"] = error
        if enqueued is not None:
            changes["enqueued"] = enqueued
        row, changed = self._update(_tasks_partition(plan_id), encode_key(group), expect, changes)
        return (_task(row) if row else None), changed

    def _update(self, pk: str, rk: str, expect: Iterable[StrEnum] | None, changes: Row) -> tuple[Row | None, bool]:
        allowed = {str(s) for s in expect} if expect is not None else None

        def change(row: Row) -> Row | None:
            if allowed is not None and row["state"] not in allowed:
                return None
            row.update(changes)
            row["updated"] = utcnow()
            return row

        return self._table.mutate(pk, rk, change)

    def prune(self, *, before: str, keep: int, limit: int) -> int:
        """Delete finished (done/failed) plans last changed before ``before``, tasks first, then
        the plan row (a crash in between leaves a finished plan without tasks, never orphan tasks).
        The newest ``keep`` plans stay for status, and so does any plan a target names as active."""
        active = {t.active_plan for t in self._targets.all() if t.active_plan}
        deleted = 0
        for plan in self.all()[keep:]:
            if deleted >= limit:
                break
            if plan.state not in (PlanState.DONE, PlanState.FAILED) or plan.plan_id in active:
                continue
            if (plan.updated or plan.created) >= before:
                continue
            self._table.delete_rows(list(self._table.query(_tasks_partition(plan.plan_id))))
            self._table.delete_one(_PLAN, encode_key(plan.plan_id))
            deleted += 1
        return deleted


def _target(row: Mapping[str, Any]) -> Target:
    return Target(target=row["target"], active_plan=row.get("active_plan", ""),
                  active_since=row.get("active_since", ""), queued=get_json(row, "queued"),
                  last_run_id=row.get("last_run_id", ""), last_run_submitted=row.get("last_run_submitted", ""))


def _plan_row(plan: Plan) -> Row:
    row: Row = {"PartitionKey": _PLAN, "RowKey": encode_key(plan.plan_id)}
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


def _task_row(task: GroupTask) -> Row:
    row: Row = {"PartitionKey": _tasks_partition(task.plan_id), "RowKey": encode_key(task.group),
                "plan_id": task.plan_id, "group": task.group, "service": task.service,
                "action": task.action, "state": str(task.state), "attempts": task.attempts,
                "error": task.error, "updated": task.updated, "enqueued": task.enqueued}
    put_json(row, "models", [[n, v] for n, v in task.models])
    return row


def _task(row: Mapping[str, Any]) -> GroupTask:
    return GroupTask(plan_id=row["plan_id"], group=row["group"], service=row.get("service", ""),
                     action=row.get("action", ""), models=tuple((n, int(v)) for n, v in get_json(row, "models", [])),
                     state=TaskState(row["state"]), attempts=int(row.get("attempts") or 0),
                     error=row.get("error", ""), updated=row.get("updated", ""), enqueued=row.get("enqueued", ""))
