"""Azure ML run events: completed training starts rollouts, completed forecasting records its
predictions, failed runs are recorded with their reason.

The event says *which* run; the workspace says what the run *is* (``workspace.runs.get``: kind,
submission time, outputs, error). Runs of other experiments, and step runs of a pipeline, are
ignored with a log line. Each run is acted on once: the ledger's ``submitted -> final`` transition
has one winner, and rollouts are idempotent per (target, run).

Early delivery: Event Grid may deliver ``RunCompleted`` while the workspace still reads the run
as running (Azure ML's ``Finalizing`` maps to running, shared/workspace/aml/runs.py), before every
model is registered. A run event is therefore checked against the run's own status: for an
unfinished run it only records the run as submitted and returns a
:class:`~shared.flows.context.Deferred` outcome (the event is not remembered as handled), so a
later event or :func:`reconcile` acts on the completion with every model there.

Out-of-order delivery: a training run submitted *before* a run that was already rolled out to a
target is not rolled out there (its models would replace newer ones), see
:meth:`shared.ledger.rollouts.Targets.supersedes`.

Azure ML raises no event for failed or cancelled runs in some cases, so :func:`reconcile` polls
runs the ledger still holds as submitted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from shared import product_events
from shared.errors import NotFound
from shared.events import ModelDeployed, ModelRegistered, RunCompleted, RunStatusChanged
from shared.flows import outbox, rollout
from shared.flows.context import Context, Deferred, handle_event
from shared.ledger import RunEntry, RunState, age_seconds
from shared.workspace.base import PipelineKind, Run, RunStatus

log = logging.getLogger(__name__)

POLL_AFTER_SECONDS = 600.0  # a submitted run silent this long is polled by reconcile
_FAILED = {"failed": RunState.FAILED, "canceled": RunState.CANCELED, "cancelled": RunState.CANCELED}


def handle_aml_event(ctx: Context, delivery: Any) -> str:
    """``on_aml_event``: one Event Grid delivery of the workspace (a binding or its dict)."""
    return handle_event(ctx, delivery, {RunCompleted: on_run_completed, RunStatusChanged: on_run_status_changed,
                                       ModelRegistered: on_model_event, ModelDeployed: on_model_event},
                        function="on_aml_event", forget=(ModelRegistered, ModelDeployed))


def on_run_completed(ctx: Context, event: RunCompleted) -> str:
    run = _our_run(ctx, event.run_id, event.experiment_name, event.run_type, event.run_tags)
    if run is None:
        return "ignored: not a manymodels pipeline run"
    return _act_on_status(ctx, run, claimed="completed")


def on_run_status_changed(ctx: Context, event: RunStatusChanged) -> str:
    if event.run_status == "completed":
        return on_run_completed(ctx, RunCompleted(event.id, event.source, event.subject, event.time, event.run_id,
                                                  event.experiment_id, event.experiment_name, event.run_type,
                                                  event.run_tags, event.run_properties))
    if event.run_status not in _FAILED:
        return f"ignored: status {event.run_status}"
    run = _our_run(ctx, event.run_id, event.experiment_name, event.run_type, event.run_tags)
    if run is None:
        return "ignored: not a manymodels pipeline run"
    reason = run.error or str(event.run_properties.get("error") or "") or f"the run ended {event.run_status}"
    return _act_on_status(ctx, run, claimed=event.run_status, reason=reason)


def _act_on_status(ctx: Context, run: Run, *, claimed: str, reason: str = "") -> str:
    """Act on what the workspace says the run is, not on what the event claims."""
    if run.status == RunStatus.COMPLETED:
        return run_completed(ctx, run)
    if run.status in (RunStatus.FAILED, RunStatus.CANCELED):
        why = run.error or reason or f"the run ended {run.status}"
        return run_failed(ctx, run, RunState(str(run.status)), why)
    # Not final yet: remember the run so reconcile polls it, and act on a later event.
    ctx.ledger.runs.record(_entry(run))
    log.info("%s event for run %s, which the workspace still reads as %s: left to a later event or reconcile",
             claimed, run.run_id, run.status)
    return Deferred(f"deferred: the event says {claimed} but run {run.run_id} is still {run.status}")


def on_model_event(ctx: Context, event: ModelRegistered | ModelDeployed) -> str:
    # Rollouts follow the training run's completion (all its models at once), not each model.
    if isinstance(event, ModelRegistered):
        return f"noted: model {event.model_name}:{event.model_version} registered"
    return f"noted: service {event.service_name} deployed"


def _our_run(ctx: Context, run_id: str, experiment: str, run_type: str | None, tags: Mapping[str, str]
             ) -> Run | None:
    ours = (ctx.settings.training_pipeline_name, ctx.settings.forecasting_pipeline_name)
    known = ctx.ledger.runs.get(run_id) is not None
    if not known and "manymodels_kind" not in tags:
        if experiment not in ours:
            log.info("run %s of experiment %r ignored: not a manymodels pipeline", run_id, experiment)
            return None
        if run_type and "pipelinerun" not in run_type.lower():
            log.info("run %s (%s) ignored: a step of a pipeline run, not the pipeline run", run_id, run_type)
            return None
    try:
        return ctx.workspace.runs.get(run_id)
    except NotFound:
        log.warning("run %s of experiment %r is not in the workspace; event ignored", run_id, experiment)
        return None


def _entry(run: Run) -> RunEntry:
    return RunEntry(run.run_id, str(run.kind), RunState.SUBMITTED, submitted=run.submitted,
                    dataset_name=run.dataset_name, dataset_version=run.dataset_version,
                    batch=str(run.tags.get("manymodels_batch", "")), source=str(run.tags.get("manymodels_source", "")),
                    experiment=run.experiment)


def run_completed(ctx: Context, run: Run) -> str:
    """Act on a completed run (event or poll)."""
    if run.kind == PipelineKind.FORECASTING:
        predictions = str(run.outputs.get("predictions", ""))
        if predictions:  # the outbox row first: a crash before finish_run must not lose the event
            outbox.record(ctx, _forecasts_ready(ctx, run, predictions))
        _, changed = ctx.ledger.runs.finish(_entry(run), state=RunState.COMPLETED, predictions=predictions,
                                            ended=run.ended or "")
        if changed:
            log.info("forecasting run %s completed: predictions at %s", run.run_id, predictions or "(none)")
        outbox.drain_after(ctx, f"run {run.run_id}")
        return f"forecasting run completed: {predictions or 'no predictions output'}"
    outbox.record(ctx, product_events.training_finished(
        namespace=ctx.settings.namespace, run_id=run.run_id, dataset_name=run.dataset_name,
        dataset_version=run.dataset_version, counts=run.counts, ended=run.ended,
        failures=[{"file": f.file, "series": f.series, "reason": f.reason} for f in run.failures]))
    ctx.ledger.runs.finish(_entry(run), state=RunState.COMPLETED, ended=run.ended or "")
    # Rollouts are idempotent per (target, run): a replay after a crash restarts what is missing.
    started = []
    for target in ctx.settings.enabled_targets:
        if not ctx.ledger.targets.supersedes(target, run_id=run.run_id, submitted=run.submitted):
            log.warning("training run %s (submitted %s) completed after a newer run was rolled out to %s; "
                        "not rolled out there, so deployed models stay at their newer versions",
                        run.run_id, run.submitted, target)
            started.append(f"{target}: superseded")
            continue
        result = rollout.start_rollout(ctx, target, plan_id=f"{target}-{run.run_id}", run_id=run.run_id,
                                       source="run")
        started.append(f"{target}: {result.state}")
    outbox.drain_after(ctx, f"run {run.run_id}")
    return "training run completed; rollouts: " + (", ".join(started) or "no target enabled")


def run_failed(ctx: Context, run: Run, state: RunState, reason: str) -> str:
    outbox.record(ctx, product_events.run_failed(namespace=ctx.settings.namespace, run_id=run.run_id,
                                                 kind=str(run.kind), state=str(state), reason=reason,
                                                 ended=run.ended))
    _, changed = ctx.ledger.runs.finish(_entry(run), state=state, reason=reason, ended=run.ended or "")
    if changed:
        log.error("%s run %s %s: %s", run.kind, run.run_id, state, reason)
    outbox.drain_after(ctx, f"run {run.run_id}")
    return f"run {state}: {reason}"


def _forecasts_ready(ctx: Context, run: Run, predictions: str) -> product_events.ProductEvent:
    """Rows, series and window from the predictions file when it is on this machine (the local
    runner keeps it, shared/workspace/local/runner_job.py); otherwise rows as the run counted them."""
    local_file = run.outputs.get("predictions_file", "")
    summary = None
    if local_file:
        try:
            from shared.data.schema import DatasetSchema  # pandas: the Function App needs it only here

            schema = DatasetSchema.load()
            ids, ts = schema.id_columns, schema.timestamp_column
        except Exception:  # no schema here: the window from the first column, no series count
            ids, ts = (), ""
        summary = product_events.summarize_predictions(local_file, id_columns=ids, timestamp_column=ts)
    counted = run.counts.get("predictions", run.counts.get("rows"))  # apart: mypy misreads it inside the ternary
    rows = summary.rows if summary else counted
    return product_events.forecasts_ready(
        namespace=ctx.settings.namespace, run_id=run.run_id, dataset_name=run.dataset_name,
        dataset_version=run.dataset_version, predictions=predictions, rows=rows,
        series=summary.series if summary else run.counts.get("series"),
        window=summary.window if summary else None, ended=run.ended)


# --------------------------------------------------------------------------- reconcile


def reconcile(ctx: Context, *, poll_after: float | None = None) -> dict[str, int]:
    """``reconcile``: poll silent runs, then repair rollouts (re-enqueue stuck deploy tasks)."""
    wait = min(POLL_AFTER_SECONDS, ctx.settings.run_timeout_minutes * 60) if poll_after is None else poll_after
    counts = {"polled": 0, "completed": 0, "failed": 0}
    try:  # runs whose executor is gone end now (the local runner's process; Azure ML does it itself)
        ctx.workspace.runs.fail_lost()
    except Exception:
        log.exception("could not fail the lost runs; the next reconcile tries again")
    for entry in ctx.ledger.runs.all(state=RunState.SUBMITTED):
        if age_seconds(entry.submitted) < wait:
            continue
        counts["polled"] += 1
        try:
            run = ctx.workspace.runs.get(entry.run_id)
        except NotFound:
            run_state, reason = RunState.FAILED, "the run no longer exists in the workspace"
            outbox.record(ctx, product_events.run_failed(namespace=ctx.settings.namespace, run_id=entry.run_id,
                                                         kind=entry.kind, state=str(run_state), reason=reason,
                                                         ended=None))
            ctx.ledger.runs.finish(entry, state=run_state, reason=reason)
            counts["failed"] += 1
            continue
        except Exception:
            log.exception("could not poll run %s; the next reconcile tries again", entry.run_id)
            continue
        if run.status == RunStatus.COMPLETED:
            run_completed(ctx, run)
            counts["completed"] += 1
        elif run.status in (RunStatus.FAILED, RunStatus.CANCELED):
            run_failed(ctx, run, RunState(str(run.status)), run.error or f"the run ended {run.status}")
            counts["failed"] += 1
        elif age_seconds(entry.submitted) >= ctx.settings.run_timeout_minutes * 60:
            log.warning("run %s is still %s after RUN_TIMEOUT_MINUTES=%d", run.run_id, run.status,
                        ctx.settings.run_timeout_minutes)
    counts.update(rollout.reconcile_plans(ctx))
    return counts
