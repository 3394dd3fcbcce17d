"""Retention: what a deployment keeps, so nothing grows without bound (docs/reliability.md, Growth).

One pass (:func:`apply`, run at most hourly by the ``reconcile`` timer through :func:`apply_if_due`)
removes, each part on its own so one that cannot run does not stop the others:

- ledger rows older than ``RETENTION_LEDGER_HOURS`` (never below 24: Event Grid redelivers for up
  to 24 hours): processed-event ids; the blob lists of batches that closed or failed (the batch
  rows stay, see :meth:`shared.ledger.batches.Batches.prune_files`); finished plans with their group
  tasks (the newest ``KEEP_PLANS`` stay); records of runs that ended (never a ``submitted`` one);
- model versions beyond the newest ``RETENTION_MODEL_VERSIONS`` of each name, except a version a
  service serves, one in a deployment-state model, one a plan still executing references, or one
  the product did not register (no ``ModelType`` tag: another team's model in a shared workspace);
- finished runs (record and folder) ended more than ``RETENTION_RUN_DAYS`` ago, except runs the
  ledger still holds as submitted (reconcile has yet to act on them). A run in progress is never
  deleted (the run store refuses it too).

Nothing is deleted on uncertainty: when what is deployed or planned cannot be read, or a rollout
is being planned right now (its target is claimed but its plan not written yet), no model version
goes this pass. What a pass removed is kept in the ledger and shown by ``manymodels status``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.deploy_config import TARGETS
from shared.flows import deploy
from shared.flows.context import Context
from shared.flows.rollout import TARGET_LEASE_SECONDS
from shared.grouping import MODEL_TYPE_TAG
from shared.ledger import PlanState, RunState, age_seconds, parse_time, timestamp
from shared.workspace.newest import newest_models

log = logging.getLogger(__name__)

EVERY_SECONDS = 3600.0  # apply_if_due: one pass an hour is plenty (the limits are hours and days)
LIMIT = 5000  # items of each kind removed per pass: a long backlog is worked off over several passes
_ACTIVE_PLANS = (PlanState.EXECUTING, PlanState.FINISHING)
KEEP_PLANS = 10  # the newest plans always stay: status shows them (shared/flows/status.py RECENT)


@dataclass(frozen=True, slots=True)
class RetentionSummary:
    """What one pass removed and kept, and the parts it skipped (part -> why)."""

    at: str
    event_ids: int = 0
    batch_file_rows: int = 0
    batches_pruned: int = 0
    plans: int = 0
    run_records: int = 0
    model_versions: int = 0
    runs: int = 0
    kept_deployed: int = 0
    kept_planned: int = 0
    kept_in_progress: int = 0
    skipped: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped"] = dict(self.skipped)
        return out


def apply_if_due(ctx: Context, *, now: dt.datetime | None = None, every: float = EVERY_SECONDS
                 ) -> RetentionSummary | None:
    """A pass when the last one is ``every`` seconds old (or there was none); None otherwise."""
    now = now or dt.datetime.now(dt.UTC)
    last = ctx.ledger.retention.last()
    when = parse_time(str(last.get("at", ""))) if last else None
    if when is not None and (now - when).total_seconds() < every:
        return None
    return apply(ctx, now=now)


def apply(ctx: Context, *, now: dt.datetime | None = None, limit: int = LIMIT) -> RetentionSummary:
    """One retention pass at ``now`` (injectable for tests); the summary is saved in the ledger."""
    now = now or dt.datetime.now(dt.UTC)
    counts: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for part, work in (("ledger", _ledger), ("models", _models), ("runs", _runs)):
        try:
            why = work(ctx, now, limit, counts)
        except Exception as e:  # one part failing must not stop the others; the next pass retries
            why = f"failed: {getattr(e, 'message', None) or f'{type(e).__name__}: {e}'}"
            log.exception("retention: %s part failed", part)
        if why:
            skipped[part] = why
    summary = RetentionSummary(at=timestamp(now), skipped=skipped, **counts)
    ctx.ledger.retention.record(summary.to_dict())
    log.info("retention: %s", summary.to_dict())
    return summary


# --------------------------------------------------------------------------- parts


def _ledger(ctx: Context, now: dt.datetime, limit: int, counts: dict[str, int]) -> str:
    before = timestamp(now - dt.timedelta(hours=ctx.settings.retention_ledger_hours))
    counts["event_ids"] = ctx.ledger.events.prune(before=before, limit=limit)
    counts["batches_pruned"], counts["batch_file_rows"] = ctx.ledger.batches.prune_files(before=before, limit=limit)
    counts["plans"] = ctx.ledger.plans.prune(before=before, keep=KEEP_PLANS, limit=limit)
    counts["run_records"] = ctx.ledger.runs.prune(before=before, limit=limit)
    return ""


def _models(ctx: Context, now: dt.datetime, limit: int, counts: dict[str, int]) -> str:
    keep = ctx.settings.retention_model_versions
    if keep == 0:
        return "RETENTION_MODEL_VERSIONS=0 keeps every version"
    registry = ctx.workspace.models
    if not registry.supports_delete:
        return f"the {ctx.settings.backend} backend does not delete model versions"
    planning = _planning_targets(ctx, now)
    if planning:
        return f"a rollout is being planned on {', '.join(planning)}; model versions are pruned next pass"
    deployed = deployed_versions(ctx)
    planned = planned_versions(ctx)
    records = list(registry.list(latest=False))
    # the newest-data version of a name is what the next rollout and batch forecast serve
    # (shared/workspace/newest.py), even when a late run on older data registered higher numbers
    serving = {(r.name, r.version) for r in newest_models(records, ctx.workspace.runs)}
    by_name: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for record in records:
        # only versions the product registered (training and deploy tag ModelType): an Azure ML
        # workspace may hold other teams' models, which are not this product's to delete
        by_name[record.name].append((record.version, MODEL_TYPE_TAG in record.tags))
    doomed: list[tuple[str, int]] = []
    kept_deployed = kept_planned = 0
    for name, versions in sorted(by_name.items()):
        for version, ours in sorted(versions, reverse=True)[keep:]:
            if not ours:
                continue
            if (name, version) in deployed or (name, version) in serving:
                kept_deployed += 1
            elif (name, version) in planned:
                kept_planned += 1
            else:
                doomed.append((name, version))
    counts["kept_deployed"], counts["kept_planned"] = kept_deployed, kept_planned
    counts["model_versions"] = len(registry.delete_versions(doomed[:limit])) if doomed else 0
    return ""


def _runs(ctx: Context, now: dt.datetime, limit: int, counts: dict[str, int]) -> str:
    days = ctx.settings.retention_run_days
    if days == 0:
        return "RETENTION_RUN_DAYS=0 keeps every run"
    store = ctx.workspace.runs
    if not store.supports_delete:
        return f"the {ctx.settings.backend} backend keeps run history itself"
    awaited = {e.run_id for e in ctx.ledger.runs.all(state=RunState.SUBMITTED)}
    cutoff = now - dt.timedelta(days=days)
    doomed: list[str] = []
    in_progress = 0
    for run in store.list():
        if not run.status.is_final or run.run_id in awaited:
            in_progress += 1
            continue
        ended = parse_time(run.ended or "") or parse_time(run.submitted)
        if ended is not None and ended < cutoff:
            doomed.append(run.run_id)
    counts["kept_in_progress"] = in_progress
    counts["runs"] = len(store.delete_runs(doomed[:limit])) if doomed else 0
    return ""


# --------------------------------------------------------------------------- what must stay


def _versions(refs: Iterable[str]) -> set[tuple[str, int]]:
    """("name", version) of ``"name:version"`` strings (Service.models); others are ignored."""
    out = set()
    for ref in refs:
        name, _, version = str(ref).rpartition(":")
        if name and version.isdigit():
            out.add((name, int(version)))
    return out


def deployed_versions(ctx: Context) -> set[tuple[str, int]]:
    """Every model version a service serves or a target's deployment state lists. Raises when
    either cannot be read: the caller then deletes nothing."""
    services = ctx.workspace.services.list()
    found = _versions(ref for s in services for ref in s.models)
    for target in TARGETS:
        state = deploy.current_state(ctx.workspace, ctx.settings, target, services=services)
        found |= {(name, int(info["version"])) for name, info in state.items()
                  if isinstance(info, Mapping) and str(info.get("version", "")).isdigit()}
    return found


def planned_versions(ctx: Context) -> set[tuple[str, int]]:
    """Every model version a group task of an unfinished plan references."""
    found: set[tuple[str, int]] = set()
    for plan in ctx.ledger.plans.all():
        if plan.state in _ACTIVE_PLANS:
            for task in ctx.ledger.plans.tasks(plan.plan_id):
                found |= {(name, int(version)) for name, version in task.models}
    return found


def _planning_targets(ctx: Context, now: dt.datetime) -> list[str]:
    """Targets claimed by a plan whose row is not written yet: shared/flows/rollout.py
    ``start_rollout`` claims the target, then plans from the registered models, then saves the
    plan; a version it picked is in no plan the ledger could show yet. A claim older than the
    rollout lease is a planner that died: it no longer holds retention back."""
    planning = []
    for target in ctx.ledger.targets.all():
        if (target.active_plan and age_seconds(target.active_since, now=now) < TARGET_LEASE_SECONDS
                and ctx.ledger.plans.get(target.active_plan) is None):
            planning.append(target.target)
    return planning
