"""Rollouts: a deployment plan executed as queue tasks, one group per message, finished once.

1. :func:`start_rollout` plans (``shared.flows.deploy.plan``), saves the plan and one task per
   group in the ledger, and enqueues one message per group to deploy or update. Only one plan per
   target is active at a time: a rollout asked for meanwhile is queued on the target (newer
   requests replace older ones) and starts when the active plan ends.
2. ``deploy_group`` (:func:`deploy_group`) executes its group (``execute_group`` is idempotent),
   marks the task done, and calls :func:`maybe_finish`.
3. :func:`maybe_finish`: when no group is left, one caller wins the ``executing -> finishing``
   transition and runs ``finish`` (state model + router), then deletes emptied groups, marks the
   plan done and starts the queued rollout, if any. A plan with nothing to deploy finishes at once.

Messages carry only ``{"plan_id", "group", "target"}``: the models of a group live in the ledger
(a group of 1,000 models would not fit a 64 KB queue message).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import product_events
from shared.errors import InvalidValue, ManyModelsError
from shared.flows import deploy, outbox
from shared.flows.context import Context, json_object, known_fields, optional_bool, optional_choice
from shared.grouping import DeploymentPlan, GroupAction, PlannedGroup, PlannedModel
from shared.ledger import GroupTask, Plan, PlanState, TaskState, age_seconds, utcnow

log = logging.getLogger(__name__)

TARGETS = deploy.TARGETS  # shared/deploy_config.py: local, aci, managed, aks
MAX_ATTEMPTS = 5  # the Functions host moves a message to the poison queue after 5 dequeues
TASK_STUCK_SECONDS = 900.0  # a pending task not done this long after its message is enqueued again
TARGET_LEASE_SECONDS = 3600.0  # an active plan without progress this long no longer blocks its target
_WORK = (GroupAction.NEW, GroupAction.UPDATE)


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """One deploy-queue message."""

    plan_id: str
    group: str
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"plan_id": self.plan_id, "group": self.group, "target": self.target}

    @classmethod
    def parse(cls, body: bytes | str) -> GroupMessage:
        """Raises InvalidValue naming what is missing."""
        data = json_object(body)
        values: dict[str, Any] = {k: data.get(k) for k in ("plan_id", "group", "target")}  # checked below
        for key, value in values.items():
            if not isinstance(value, str) or not value:
                raise InvalidValue(f"deploy task message: field '{key}' must be a non-empty string, got {value!r}")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DeployRequest:
    target: str | None = None  # None: the first enabled target
    reset: bool = False
    update: bool = False
    dry_run: bool = False

    @classmethod
    def parse(cls, body: bytes | str | None) -> DeployRequest:
        """Raises InvalidValue naming the field."""
        data = json_object(body)
        known_fields(data, ("target", "reset", "update", "dry_run"))
        return cls(target=optional_choice(data, "target", TARGETS), reset=optional_bool(data, "reset"),
                   update=optional_bool(data, "update"), dry_run=optional_bool(data, "dry_run"))


@dataclass(frozen=True, slots=True)
class Rollout:
    plan_id: str
    target: str
    state: str  # executing | done | failed | queued | replayed
    plan: DeploymentPlan | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"plan_id": self.plan_id, "target": self.target, "state": self.state}
        if self.reason:
            body["reason"] = self.reason
        if self.plan is not None:
            body["counts"] = self.plan.counts()
            body.update(self.plan.to_dict())
        return body


# --------------------------------------------------------------------------- start


def start_rollout(ctx: Context, target: str, *, plan_id: str, run_id: str = "", source: str = "",
                  reset: bool = False, update: bool = False, record_refusal: bool = True) -> Rollout:
    """Plan and start a rollout (idempotent on ``plan_id``).

    A plan the planner refuses (e.g. a smaller ``MAX_CONTAINER_SIZE`` without reset) is recorded
    as a failed plan with the planner's reason when ``record_refusal`` (event-driven rollouts:
    retrying the event cannot help); otherwise the error is raised (the HTTP API answers it).
    """
    existing = ctx.ledger.plans.get(plan_id)
    if existing is not None:
        log.info("rollout %s already started (%s)", plan_id, existing.state)
        return Rollout(plan_id, target, "replayed")
    if not ctx.ledger.targets.claim(target, plan_id, stale_after=TARGET_LEASE_SECONDS):
        queued = {"plan_id": plan_id, "run_id": run_id, "source": source, "reset": reset, "update": update}
        active = ctx.ledger.targets.queue_request(target, queued).active_plan
        log.info("rollout %s queued: plan %s is still active on %s", plan_id, active, target)
        return Rollout(plan_id, target, "queued")
    try:
        the_plan = deploy.plan(ctx.workspace, ctx.settings, target, reset=reset, update=update)
    except ManyModelsError as e:
        if not (record_refusal and not e.retryable):
            _end_turn(ctx, target, plan_id, start_next=False)
            raise
        ctx.ledger.plans.create(Plan(plan_id, target, PlanState.FAILED, created=utcnow(), run_id=run_id,
                                     source=source, reason=e.message[:4000], reset=reset, update=update), [])
        log.error("rollout %s on %s refused by the planner: %s", plan_id, target, e.message)
        _end_turn(ctx, target, plan_id)
        return Rollout(plan_id, target, str(PlanState.FAILED), reason=e.message)
    except Exception:
        _end_turn(ctx, target, plan_id, start_next=False)
        raise
    try:
        tasks = [_task(plan_id, g) for g in the_plan.groups]
        work = [t for t in tasks if t.state == TaskState.PENDING and GroupAction(t.action) in _WORK]
        record = Plan(plan_id, target, PlanState.EXECUTING, created=utcnow(), run_id=run_id, source=source,
                      groups=len(tasks), to_execute=len(work), reset=reset, update=update)
        created = ctx.ledger.plans.create(record, tasks)
    except Exception:
        _end_turn(ctx, target, plan_id, start_next=False)
        raise
    if not created:  # a concurrent delivery of the same request saved it first and enqueues it
        return Rollout(plan_id, target, "replayed")
    log.info("rollout %s on %s: %s", plan_id, target, the_plan.counts())
    for task in work:
        _enqueue(ctx, task, target)
    if not work:
        maybe_finish(ctx, plan_id)
    current = ctx.ledger.plans.get(plan_id)
    return Rollout(plan_id, target, str(current.state) if current else "executing", the_plan)


def _task(plan_id: str, group: PlannedGroup) -> GroupTask:
    state = TaskState.SKIPPED if group.action == GroupAction.UNCHANGED else TaskState.PENDING
    return GroupTask(plan_id, group.group, group.service, str(group.action),
                     tuple((m.name, m.version) for m in group.models), state, updated=utcnow())


def _enqueue(ctx: Context, task: GroupTask, target: str) -> None:
    ctx.enqueue(GroupMessage(task.plan_id, task.group, target).to_dict())
    ctx.ledger.plans.update_task(task.plan_id, task.group, enqueued=utcnow())


def request_deployment(ctx: Context, request: DeployRequest) -> tuple[int, dict[str, Any]]:
    """``POST /api/deploy``: the plan (``dry_run``), or a rollout started (202) with its plan."""
    enabled = ctx.settings.enabled_targets
    if not enabled:
        raise InvalidValue("no deployment target is enabled: set DEPLOY_LOCAL, DEPLOY_ACI, DEPLOY_MANAGED or "
                           "DEPLOY_AKS to true")
    target = request.target or enabled[0]
    if target not in enabled:
        raise InvalidValue(f"field 'target' is {target!r} but that target is not enabled; enabled: "
                           f"{', '.join(enabled)}")
    if request.dry_run:
        the_plan = deploy.plan(ctx.workspace, ctx.settings, target, reset=request.reset, update=request.update)
        return 200, {"target": target, "dry_run": True, "counts": the_plan.counts(), **the_plan.to_dict()}
    result = start_rollout(ctx, target, plan_id=f"{target}-manual-{uuid.uuid4().hex[:12]}", source="http",
                           reset=request.reset, update=request.update, record_refusal=False)
    return 202, result.to_dict()


# --------------------------------------------------------------------------- groups


def deploy_group(ctx: Context, message: GroupMessage, *, dequeue_count: int = 1) -> str:
    """``deploy_group``: execute one group of a plan (again, harmlessly, on a replay)."""
    plan = ctx.ledger.plans.get(message.plan_id)
    task = ctx.ledger.plans.get_task(message.plan_id, message.group)
    if plan is None or task is None:
        log.error("deploy task %s/%s is not in the ledger; acknowledged without action",
                  message.plan_id, message.group)
        return "unknown"
    if plan.state in (PlanState.DONE, PlanState.FAILED):
        log.info("deploy task %s/%s: plan is already %s", plan.plan_id, task.group, plan.state)
        return f"plan {plan.state}"
    if task.state == TaskState.PENDING:
        try:
            deploy.execute_group(ctx.workspace, ctx.settings, plan.target, _group(task),
                                 force=plan.reset or plan.update)
        except Exception as e:
            return _group_failed(ctx, plan, task, e, dequeue_count=dequeue_count)
        ctx.ledger.plans.update_task(plan.plan_id, task.group, expect=[TaskState.PENDING], state=TaskState.DONE,
                                     error="", attempts=task.attempts + 1)
        ctx.ledger.targets.touch(plan.target, plan.plan_id)
        log.info("plan %s: group %s (%s, %d models) done", plan.plan_id, task.group, task.action, len(task.models))
    maybe_finish(ctx, plan.plan_id)
    return f"group {task.group} done"


def _group_failed(ctx: Context, plan: Plan, task: GroupTask, error: Exception, *, dequeue_count: int) -> str:
    message = error.message if isinstance(error, ManyModelsError) else f"{type(error).__name__}: {error}"
    permanent = isinstance(error, ManyModelsError) and not error.retryable  # shared/errors.py decides
    if not permanent and dequeue_count < MAX_ATTEMPTS:
        ctx.ledger.plans.update_task(plan.plan_id, task.group, attempts=task.attempts + 1, error=message[:4000])
        log.warning("plan %s: group %s failed (attempt %d of %d), retried: %s", plan.plan_id, task.group,
                    dequeue_count, MAX_ATTEMPTS, message)
        raise error
    ctx.ledger.plans.update_task(plan.plan_id, task.group, expect=[TaskState.PENDING], state=TaskState.FAILED,
                                 attempts=task.attempts + 1, error=message[:4000])
    log.error("plan %s: group %s failed for good: %s", plan.plan_id, task.group, message)
    _fail(ctx, plan.plan_id, f"group {task.group} ({task.service}) failed: {message}")
    return f"group {task.group} failed"


def _group(task: GroupTask) -> PlannedGroup:
    return PlannedGroup(task.group, task.service, GroupAction(task.action),
                        tuple(PlannedModel(n, v) for n, v in task.models))


# --------------------------------------------------------------------------- finish


def maybe_finish(ctx: Context, plan_id: str) -> bool:
    """Finish the plan if every group is done; True for the one caller that finished it."""
    plan = ctx.ledger.plans.get(plan_id)
    if plan is None or plan.state != PlanState.EXECUTING:
        return False
    tasks = ctx.ledger.plans.tasks(plan_id)
    work = [t for t in tasks if GroupAction(t.action) in _WORK]
    if any(t.state == TaskState.PENDING for t in work):
        return False
    if any(t.state == TaskState.FAILED for t in work):
        _fail(ctx, plan_id, "a group failed: " + "; ".join(f"{t.group}: {t.error}" for t in work
                                                             if t.state == TaskState.FAILED)[:2000])
        return False
    _, won = ctx.ledger.plans.update(plan_id, expect=[PlanState.EXECUTING], state=PlanState.FINISHING)
    if not won:
        return False
    the_plan = DeploymentPlan(tuple(_group(t) for t in tasks))
    force = plan.reset or plan.update
    try:
        kept = [g for g in the_plan.groups if g.action != GroupAction.DELETE]
        if kept or deploy.router_endpoint(ctx.workspace, ctx.settings, plan.target) is not None:
            deploy.finish(ctx.workspace, ctx.settings, plan.target, the_plan, force=force)
    except Exception:
        ctx.ledger.plans.update(plan_id, expect=[PlanState.FINISHING], state=PlanState.EXECUTING)
        raise
    _delete_emptied(ctx, plan, tasks)
    try:  # before DONE: a crash in between must not lose the event
        _record_completed(ctx, plan, tasks)
    except Exception:
        ctx.ledger.plans.update(plan_id, expect=[PlanState.FINISHING], state=PlanState.EXECUTING)
        raise
    ctx.ledger.plans.update(plan_id, expect=[PlanState.FINISHING], state=PlanState.DONE)
    log.info("plan %s on %s done: router updated", plan_id, plan.target)
    _end_turn(ctx, plan.target, plan_id)
    outbox.drain_after(ctx, f"plan {plan_id}")
    return True


def _record_completed(ctx: Context, plan: Plan, tasks: list[GroupTask]) -> None:
    if not outbox.enabled(ctx.settings):
        return
    changed = [{"group": t.group, "service": t.service, "action": t.action, "models": len(t.models)}
               for t in tasks if GroupAction(t.action) != GroupAction.UNCHANGED]
    served = sum(len(t.models) for t in tasks if GroupAction(t.action) != GroupAction.DELETE)
    endpoint = deploy.router_endpoint(ctx.workspace, ctx.settings, plan.target)  # the URI only, never keys
    outbox.record(ctx, product_events.deployment_completed(
        namespace=ctx.settings.namespace, plan_id=plan.plan_id, target=plan.target, run_id=plan.run_id,
        groups=changed, models=served, router_endpoint=endpoint))


def _delete_emptied(ctx: Context, plan: Plan, tasks: list[GroupTask]) -> None:
    # After the router stopped pointing at them; a failed delete leaves an idle service, logged.
    for task in (t for t in tasks if GroupAction(t.action) == GroupAction.DELETE and t.state == TaskState.PENDING):
        try:
            deploy.execute_group(ctx.workspace, ctx.settings, plan.target, _group(task))
        except Exception as e:
            log.warning("plan %s: could not delete emptied service %s: %s", plan.plan_id, task.service, e)
            ctx.ledger.plans.update_task(plan.plan_id, task.group, state=TaskState.FAILED, error=str(e)[:4000])
            continue
        ctx.ledger.plans.update_task(plan.plan_id, task.group, state=TaskState.DONE)


def _fail(ctx: Context, plan_id: str, reason: str) -> None:
    plan, won = ctx.ledger.plans.update(plan_id, expect=[PlanState.EXECUTING], state=PlanState.FAILED,
                                        reason=reason[:4000])
    if won and plan is not None:
        log.error("plan %s on %s failed: %s", plan_id, plan.target, reason)
        _end_turn(ctx, plan.target, plan_id)


def _end_turn(ctx: Context, target: str, plan_id: str, *, start_next: bool = True) -> None:
    queued = ctx.ledger.targets.release(target, plan_id)
    if queued and start_next:
        _start_queued(ctx, target, queued)
    elif queued:
        ctx.ledger.targets.queue_request(target, queued)


def _start_queued(ctx: Context, target: str, queued: Mapping[str, Any]) -> None:
    log.info("starting the rollout queued on %s: %s", target, queued.get("plan_id"))
    try:
        start_rollout(ctx, target, plan_id=str(queued.get("plan_id") or f"{target}-queued-{uuid.uuid4().hex[:12]}"),
                      run_id=str(queued.get("run_id", "")), source=str(queued.get("source", "")),
                      reset=bool(queued.get("reset")), update=bool(queued.get("update")))
    except Exception:
        log.exception("the queued rollout on %s could not start; reconcile retries it", target)
        ctx.ledger.targets.queue_request(target, queued)


# --------------------------------------------------------------------------- reconcile


def reconcile_plans(ctx: Context) -> dict[str, int]:
    """Re-enqueue stuck tasks, finish plans whose finisher died, start rollouts left queued."""
    counts = {"reenqueued": 0, "finished": 0, "started": 0}
    for plan in ctx.ledger.plans.all(state=PlanState.FINISHING):
        if age_seconds(plan.updated) >= TASK_STUCK_SECONDS:
            ctx.ledger.plans.update(plan.plan_id, expect=[PlanState.FINISHING], state=PlanState.EXECUTING)
    for plan in ctx.ledger.plans.all(state=PlanState.EXECUTING):
        pending = [t for t in ctx.ledger.plans.tasks(plan.plan_id)
                   if t.state == TaskState.PENDING and GroupAction(t.action) in _WORK]
        if not pending:
            counts["finished"] += int(maybe_finish(ctx, plan.plan_id))
            continue
        for task in pending:
            if age_seconds(task.enqueued or task.updated) >= TASK_STUCK_SECONDS:
                log.warning("plan %s: group %s stuck since %s; enqueued again", plan.plan_id, task.group,
                            task.enqueued)
                _enqueue(ctx, task, plan.target)
                counts["reenqueued"] += 1
    for target in ctx.ledger.targets.all():
        if not target.queued:
            continue
        active = ctx.ledger.plans.get(target.active_plan) if target.active_plan else None
        if target.active_plan and active is not None and active.state in (PlanState.EXECUTING, PlanState.FINISHING):
            continue
        _end_turn(ctx, target.target, target.active_plan)
        counts["started"] += 1
    return counts


def message_body(message: GroupMessage) -> str:
    """The JSON text of a message (what the queue holds, Base64-encoded)."""
    return json.dumps(message.to_dict())
