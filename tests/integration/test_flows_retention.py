"""Retention on Azurite + the local workspace: old ledger ids, batch blob lists, model versions and
runs go; what is deployed, planned, open or in progress stays; a second pass removes nothing.
The clock is injected (``now=``): everything recorded by the test is "old" three weeks ahead."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_flows_support import app_functions, make_run, open_context, register_models, timer

from shared.commands.status import render
from shared.errors import NotFound
from shared.flows import retention
from shared.flows.context import Context
from shared.flows.status import collect_status
from shared.ledger import (
    BatchFile,
    BatchState,
    GroupTask,
    Plan,
    PlanState,
    RunEntry,
    RunState,
    TaskState,
    timestamp,
    utcnow,
)
from shared.settings import Settings
from shared.workspace.base import NewModel, PipelineKind, RunStatus, ServiceConfig, ServiceKind

pytestmark = pytest.mark.integration
LATER = dt.timedelta(days=21)  # past every default limit (48 h, 14 days)


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings) as context:
        yield context


def versions(ctx: Context, name: str) -> list[int]:
    return [r.version for r in ctx.workspace.models.list(latest=False, name=name)]


def closed_batch(ctx: Context, batch: str) -> None:
    ledger = ctx.ledger
    ledger.batches.record_file("train", batch, BatchFile("a.csv", f"train/{batch}/a.csv", "0x1", 10))
    token = uuid.uuid4().hex
    ledger.batches.claim("train", batch, token=token, manifest=True, stale_after=300)
    ledger.batches.close("train", batch, token=token, run_id=f"run-{batch}")


def test_old_items_go_protected_ones_stay_and_a_second_pass_removes_nothing(ctx: Context, tmp_path: Path):
    ws, ledger = ctx.workspace, ctx.ledger
    for i in range(6):  # six versions of each model
        register_models(ws, ["lr_a_1", "lr_b_2"], tmp_path / str(i), run_id=f"r{i}")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "model.pkl").write_text("not ours")
    for _ in range(5):  # no ModelType tag: not registered by the product
        ws.models.register_many([NewModel(name="other_team_model", path=str(foreign), tags={"team": "x"})])
    deployed = ws.models.get("lr_a_1", 1)
    ws.services.deploy("manymodels-g-1", [deployed], ServiceConfig(ServiceKind.LOCAL, "scoring/model_webservice.py"))
    ledger.plans.create(Plan("local-busy", "local", PlanState.EXECUTING, created=utcnow()),
                        [GroupTask("local-busy", "g-2", "manymodels-g-2", "update", (("lr_b_2", 2),),
                                  TaskState.PENDING)])
    ledger.plans.create(Plan("local-old", "local", PlanState.DONE, created=utcnow()),
                        [GroupTask("local-old", "g-2", "manymodels-g-2", "deploy", (("lr_b_2", 1),),
                                  TaskState.DONE)])
    ledger.events.mark_processed("event-1", event_type="BlobCreated", outcome="recorded")
    ledger.batches.record_file("train", "still-open", BatchFile("a.csv", "train/still-open/a.csv", "0x1", 10))
    closed_batch(ctx, "done")
    finished = make_run(ws, PipelineKind.TRAINING, status=RunStatus.COMPLETED)
    awaited = make_run(ws, PipelineKind.TRAINING, status=RunStatus.COMPLETED)  # its event not handled yet
    ledger.runs.record(RunEntry(awaited.run_id, "training", RunState.SUBMITTED, submitted=awaited.submitted))
    running = make_run(ws, PipelineKind.FORECASTING, status=RunStatus.RUNNING)
    for run in (finished, awaited, running):
        (ws.runs_dir / run.run_id / "logs").mkdir(parents=True)
    old_paths = {v: Path(ws.models.get("lr_a_1", v).path) for v in (1, 2, 3)}

    # today: only model versions are over their limit (they have no age limit)
    today = retention.apply(ctx)
    assert (today.event_ids, today.batch_file_rows, today.runs) == (0, 0, 0)
    assert today.model_versions == 4 and today.kept_deployed == 1 and today.kept_planned == 1
    assert ledger.events.is_processed("event-1") and len(ledger.batches.files("train", "done")) == 1

    later = retention.apply(ctx, now=dt.datetime.now(dt.UTC) + LATER)

    assert versions(ctx, "lr_a_1") == [1, 4, 5, 6]  # v1 is deployed
    assert versions(ctx, "lr_b_2") == [2, 4, 5, 6]  # v2 is in an executing plan; v1's plan is done
    assert ws.models.get("lr_a_1").version == 6
    assert versions(ctx, "other_team_model") == [1, 2, 3, 4, 5]
    assert old_paths[1].is_dir() and not old_paths[2].exists() and not old_paths[3].exists()
    assert not ledger.events.is_processed("event-1")
    assert ledger.batches.files("train", "done") == []
    assert ledger.batches.get("train", "done").state == BatchState.CLOSED
    assert len(ledger.batches.files("train", "still-open")) == 1
    with pytest.raises(NotFound):
        ws.runs.get(finished.run_id)
    assert not (ws.runs_dir / finished.run_id).exists()
    assert {r.run_id for r in ws.runs.list()} == {awaited.run_id, running.run_id}
    assert (ws.runs_dir / running.run_id).is_dir() and (ws.runs_dir / awaited.run_id).is_dir()
    assert (later.event_ids, later.batch_file_rows, later.batches_pruned, later.runs) == (1, 1, 1, 1)
    assert later.model_versions == 0 and later.kept_in_progress == 2 and later.skipped == {}

    again = retention.apply(ctx, now=dt.datetime.now(dt.UTC) + LATER)
    assert (again.event_ids, again.batch_file_rows, again.batches_pruned, again.model_versions, again.runs) == (
        0, 0, 0, 0, 0)
    assert versions(ctx, "lr_a_1") == [1, 4, 5, 6] and versions(ctx, "lr_b_2") == [2, 4, 5, 6]

    report = collect_status(ctx)
    assert report["retention"]["last"] == again.to_dict()
    assert report["retention"]["limits"] == {"ledger_hours": 48, "model_versions": 3, "run_days": 14}
    assert f"last pass {again.at} removed 0 event ids" in render(report)


def test_no_model_version_goes_while_a_rollout_is_being_planned(ctx: Context, tmp_path: Path):
    for i in range(5):
        register_models(ctx.workspace, ["lr_a_1"], tmp_path / str(i), run_id=f"r{i}")
    assert ctx.ledger.targets.claim("local", "local-planning", stale_after=3600)  # plan row not written yet

    summary = retention.apply(ctx)

    assert summary.model_versions == 0 and "rollout is being planned on local" in summary.skipped["models"]
    assert versions(ctx, "lr_a_1") == [1, 2, 3, 4, 5]
    # a claim past the rollout lease is a planner that died: it holds nothing back
    stale = retention.apply(ctx, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    assert stale.model_versions == 2 and versions(ctx, "lr_a_1") == [3, 4, 5]


def test_settings_zero_keeps_every_version_and_run(storage_settings: Settings, tmp_path: Path):
    settings = storage_settings.replace(retention_model_versions=0, retention_run_days=0)
    with open_context(settings) as ctx:
        for i in range(5):
            register_models(ctx.workspace, ["lr_a_1"], tmp_path / str(i), run_id=f"r{i}")
        make_run(ctx.workspace, PipelineKind.TRAINING, status=RunStatus.COMPLETED)
        summary = retention.apply(ctx, now=dt.datetime.now(dt.UTC) + LATER)
        assert summary.skipped == {"models": "RETENTION_MODEL_VERSIONS=0 keeps every version",
                                   "runs": "RETENTION_RUN_DAYS=0 keeps every run"}
        assert versions(ctx, "lr_a_1") == [1, 2, 3, 4, 5] and len(ctx.workspace.runs.list()) == 1


def test_the_reconcile_timer_applies_retention_at_most_hourly(ctx: Context, tmp_path: Path):
    functions = app_functions()
    for i in range(5):
        register_models(ctx.workspace, ["lr_a_1"], tmp_path / str(i), run_id=f"r{i}")
    functions["reconcile"](timer())
    first = ctx.ledger.retention.last()
    assert first is not None and first["model_versions"] == 2 and versions(ctx, "lr_a_1") == [3, 4, 5]

    register_models(ctx.workspace, ["lr_a_1"], tmp_path / "6", run_id="r6")
    functions["reconcile"](timer())  # within the hour: no pass
    assert ctx.ledger.retention.last() == first and versions(ctx, "lr_a_1") == [3, 4, 5, 6]
    assert retention.apply_if_due(ctx) is None
    due = retention.apply_if_due(ctx, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1, minutes=1))
    assert due is not None and due.model_versions == 1 and versions(ctx, "lr_a_1") == [4, 5, 6]


def _future(hours: float = 49) -> str:
    return timestamp(dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours))


def _event_count(ctx: Context) -> int:
    return len(list(ctx.ledger.table.query("event")))


def test_ledger_prunes_in_chunks_and_two_pruners_at_once_delete_each_row_once(ctx: Context):
    ledger = ctx.ledger
    for i in range(250):
        ledger.events.mark_processed(f"e-{i}", event_type="BlobCreated", outcome="ok")
    assert ledger.events.prune(before=_future(), limit=120) == 120  # a pass removes at most its limit
    assert _event_count(ctx) == 130
    assert ledger.events.prune(before=timestamp(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)),
                               limit=1000) == 0  # nothing is that old
    errors: list[BaseException] = []

    def prune() -> None:
        try:
            ledger.events.prune(before=_future(), limit=1000)
        except BaseException as e:  # surfaced below
            errors.append(e)

    import threading

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and _event_count(ctx) == 0
    # a transaction with a row another pruner already deleted fails as a whole: row by row then
    ledger.events.mark_processed("e-last", event_type="BlobCreated", outcome="ok")
    rows = [{"PartitionKey": "event", "RowKey": "e-gone"}, {"PartitionKey": "event", "RowKey": "e-last"}]
    assert ledger.table.delete_rows(rows) == 2 and not ledger.events.is_processed("e-last")


def test_ledger_prunes_finished_plans_and_ended_runs_only(ctx: Context):
    ledger = ctx.ledger

    def plan(plan_id: str, state: PlanState, tasks: int = 2) -> None:
        ledger.plans.create(Plan(plan_id, "local", state, created=utcnow()),
                            [GroupTask(plan_id, f"g-{i}", f"svc-{i}", "deploy", (("lr_a_1", 1),), TaskState.DONE)
                            for i in range(tasks)])

    plan("p-done", PlanState.DONE)
    plan("p-failed", PlanState.FAILED)
    plan("p-executing", PlanState.EXECUTING)
    plan("p-active", PlanState.DONE)
    assert ledger.targets.claim("local", "p-active", stale_after=3600)  # a target still names it
    plan("p-newest", PlanState.DONE)
    ledger.runs.record(RunEntry("run-submitted", "training", RunState.SUBMITTED, submitted=utcnow()))
    ledger.runs.record(RunEntry("run-done", "training", RunState.SUBMITTED, submitted=utcnow()))
    ledger.runs.finish(ledger.runs.get("run-done"), state=RunState.COMPLETED)

    assert ledger.plans.prune(before=_future(), keep=1, limit=100) == 2
    assert {p.plan_id for p in ledger.plans.all()} == {"p-executing", "p-active", "p-newest"}
    assert ledger.plans.tasks("p-done") == [] and len(ledger.plans.tasks("p-executing")) == 2
    assert ledger.runs.prune(before=_future(), limit=100) == 1
    assert ledger.runs.get("run-done") is None and ledger.runs.get("run-submitted") is not None
    assert ledger.plans.prune(before=_future(), keep=1, limit=100) == 0  # idempotent
    assert ledger.runs.prune(before=_future(), limit=100) == 0


def test_the_newest_data_version_stays_when_late_runs_registered_higher_numbers(ctx: Context, tmp_path: Path):
    # v1 holds dataset version 5; v2-v5 came from late runs on older data (shared/workspace/newest.py)
    register_models(ctx.workspace, ["lr_a_1"], tmp_path / "new", run_id="r-new", dataset_version=5)
    for i in range(4):
        register_models(ctx.workspace, ["lr_a_1"], tmp_path / str(i), run_id=f"r{i}", dataset_version=1)

    summary = retention.apply(ctx)

    assert versions(ctx, "lr_a_1") == [1, 3, 4, 5]
    assert summary.model_versions == 1 and summary.kept_deployed == 1
