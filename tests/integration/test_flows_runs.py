"""Run events, rollouts and reconciliation through the functions (services recorded, not started)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_flows_support import (
    app_functions,
    drain_queue,
    event_grid_event,
    http_request,
    make_run,
    open_context,
    register_models,
    timer,
)

from shared.flows import rollout
from shared.flows.context import Context
from shared.ledger import PlanState, RunEntry, RunState, TaskState
from shared.settings import Settings
from shared.workspace.base import PipelineKind, RunStatus
from shared.workspace.local.events import run_completed, run_failed
from tests.support.fakes import FakeServices

pytestmark = pytest.mark.integration
NAMES = ("lr_a_1000", "lr_b_1001", "lr_c_1002")


@pytest.fixture(scope="module")
def functions():
    return app_functions()


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings) as context:
        yield context


def deployed_versions(ctx: Context) -> dict[str, int]:
    services: FakeServices = ctx.workspace.services  # type: ignore[assignment]
    out = {}
    for service in services.services.values():
        for model in service.models:
            name, version = model.rsplit(":", 1)
            if name.startswith(ctx.settings.routing_model_name):  # the router's deployment state
                continue
            out[name] = int(version)
    return out


def complete_training(functions, ctx: Context, tmp_path: Path, *, submitted: str | None = None):
    run = make_run(ctx.workspace, PipelineKind.TRAINING, submitted=submitted)
    register_models(ctx.workspace, NAMES, tmp_path, run_id=run.run_id)
    run = ctx.workspace.runs.update(run.run_id, status=RunStatus.COMPLETED)
    functions["on_aml_event"](event_grid_event(run_completed(run)))
    return run


def test_older_run_completing_after_a_newer_one_does_not_roll_back(functions, ctx: Context, tmp_path) -> None:
    older = make_run(ctx.workspace, PipelineKind.TRAINING, submitted="2026-11-27T09:00:00+00:00")
    newer = make_run(ctx.workspace, PipelineKind.TRAINING, submitted="2026-11-27T10:00:00+00:00")
    register_models(ctx.workspace, NAMES, tmp_path, run_id=newer.run_id)  # v1: the newer data
    newer = ctx.workspace.runs.update(newer.run_id, status=RunStatus.COMPLETED)
    functions["on_aml_event"](event_grid_event(run_completed(newer)))
    drain_queue(ctx, functions["deploy_group"])
    assert deployed_versions(ctx) == dict.fromkeys(NAMES, 1)

    # The older run finishes last: its models (older data) get higher version numbers.
    register_models(ctx.workspace, NAMES, tmp_path, run_id=older.run_id)
    older = ctx.workspace.runs.update(older.run_id, status=RunStatus.COMPLETED)
    functions["on_aml_event"](event_grid_event(run_completed(older)))
    drain_queue(ctx, functions["deploy_group"])

    assert deployed_versions(ctx) == dict.fromkeys(NAMES, 1)
    assert [p.run_id for p in ctx.ledger.plans.all()] == [newer.run_id]
    assert ctx.ledger.runs.get(older.run_id).state == RunState.COMPLETED


def test_failed_run_is_recorded_with_its_reason(functions, ctx: Context) -> None:
    run = make_run(ctx.workspace, PipelineKind.TRAINING, status=RunStatus.FAILED,
                   error="mini-batch 3 failed: out of memory")
    ctx.ledger.runs.record(RunEntry(run.run_id, "training", RunState.SUBMITTED, submitted=run.submitted))
    for _ in range(2):
        functions["on_aml_event"](event_grid_event(run_failed(run)))
    entry = ctx.ledger.runs.get(run.run_id)
    assert entry.state == RunState.FAILED and "out of memory" in entry.reason
    assert ctx.ledger.plans.all() == []


def test_runs_of_other_experiments_are_ignored(functions, ctx: Context) -> None:
    other = {"topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.MachineLearningServices/workspaces/z",
             "subject": "experiments/0fa9/runs/AutoML_1", "eventType": "Microsoft.MachineLearningServices.RunCompleted",
             "eventTime": "2026-11-27T10:00:00Z", "id": "other-1", "dataVersion": "", "metadataVersion": "1",
             "data": {"experimentId": "0fa9", "experimentName": "automl-local-regression", "runId": "AutoML_1",
                      "runType": None, "runTags": {}, "runProperties": {}}}
    functions["on_aml_event"](event_grid_event(other))
    assert ctx.ledger.runs.all() == [] and ctx.ledger.plans.all() == []


def test_forecasting_run_records_its_predictions(functions, ctx: Context) -> None:
    run = make_run(ctx.workspace, PipelineKind.FORECASTING, status=RunStatus.COMPLETED,
                   outputs={"predictions": "predictions/forecasts_20261127_abc.csv"})
    functions["on_aml_event"](event_grid_event(run_completed(run)))
    entry = ctx.ledger.runs.get(run.run_id)
    assert entry.state == RunState.COMPLETED and entry.predictions == "predictions/forecasts_20261127_abc.csv"
    assert ctx.ledger.plans.all() == []


def test_a_rollout_asked_for_during_another_waits_its_turn(functions, ctx: Context, tmp_path) -> None:
    first = complete_training(functions, ctx, tmp_path)
    second = complete_training(functions, ctx, tmp_path)  # while the first plan's groups are still queued
    assert [p.run_id for p in ctx.ledger.plans.all()] == [first.run_id]
    assert ctx.ledger.targets.get("local").queued["run_id"] == second.run_id
    drain_queue(ctx, functions["deploy_group"])  # first plan done -> the second starts -> done
    states = {p.run_id: p.state for p in ctx.ledger.plans.all()}
    assert states == {first.run_id: PlanState.DONE, second.run_id: PlanState.DONE}
    assert deployed_versions(ctx) == dict.fromkeys(NAMES, 2)


def test_reconcile_polls_silent_runs_and_reenqueues_stuck_tasks(functions, ctx: Context, tmp_path,
                                                                monkeypatch) -> None:
    failed = make_run(ctx.workspace, PipelineKind.TRAINING, status=RunStatus.FAILED, error="node preempted")
    done = make_run(ctx.workspace, PipelineKind.TRAINING)
    register_models(ctx.workspace, NAMES, tmp_path, run_id=done.run_id)
    ctx.workspace.runs.update(done.run_id, status=RunStatus.COMPLETED)
    for run in (failed, done):
        ctx.ledger.runs.record(RunEntry(run.run_id, "training", RunState.SUBMITTED, submitted="2026-01-01T00:00:00Z"))
    ctx.deploy_queue.create_queue()
    functions["reconcile"](timer())  # no events ever came: polled
    assert ctx.ledger.runs.get(failed.run_id).state == RunState.FAILED
    assert "preempted" in ctx.ledger.runs.get(failed.run_id).reason
    plan = ctx.ledger.plans.get(f"local-{done.run_id}")
    assert plan is not None and plan.state == PlanState.EXECUTING

    ctx.deploy_queue.clear_messages()  # the messages were lost
    monkeypatch.setattr(rollout, "TASK_STUCK_SECONDS", 0.0)
    functions["reconcile"](timer())
    drain_queue(ctx, functions["deploy_group"])
    assert ctx.ledger.plans.get(plan.plan_id).state == PlanState.DONE


def test_group_failures_retry_then_fail_the_plan(functions, ctx: Context, tmp_path, monkeypatch) -> None:
    services: FakeServices = ctx.workspace.services  # type: ignore[assignment]

    def broken(*args, **kwargs):
        raise RuntimeError("container registry unavailable")

    monkeypatch.setattr(services, "deploy", broken)
    run = complete_training(functions, ctx, tmp_path)
    plan_id = f"local-{run.run_id}"
    task = ctx.ledger.plans.tasks(plan_id)[0]
    message = rollout.GroupMessage(plan_id, task.group, "local")
    with pytest.raises(RuntimeError):
        rollout.deploy_group(ctx, message, dequeue_count=1)  # the queue retries it
    assert ctx.ledger.plans.get_task(plan_id, task.group).state == TaskState.PENDING
    assert rollout.deploy_group(ctx, message, dequeue_count=rollout.MAX_ATTEMPTS).endswith("failed")
    plan = ctx.ledger.plans.get(plan_id)
    assert plan.state == PlanState.FAILED and "container registry unavailable" in plan.reason
    assert ctx.ledger.targets.get("local").active_plan == ""  # the target is free for the next rollout


def test_http_deploy_dry_run_then_unchanged_plan_finishes_at_once(functions, ctx: Context, tmp_path) -> None:
    complete_training(functions, ctx, tmp_path)
    drain_queue(ctx, functions["deploy_group"])
    services: FakeServices = ctx.workspace.services  # type: ignore[assignment]
    calls = len(services.calls)

    dry = functions["deploy"](http_request("POST", "deploy", {"dry_run": True}))
    assert dry.status_code == 200
    body = json.loads(dry.get_body())
    assert body["dry_run"] is True and body["counts"]["unchanged"] == len(body["groups"]) >= 1

    answer = functions["deploy"](http_request("POST", "deploy", {"target": "local"}))
    assert answer.status_code == 202
    started = json.loads(answer.get_body())
    assert started["state"] == "done" and started["groups"]
    assert ctx.ledger.plans.get(started["plan_id"]).state == PlanState.DONE
    assert len(services.calls) == calls  # nothing redeployed, the router left as it was


def test_http_train_and_forecast_submit_on_the_latest_dataset(functions, ctx: Context) -> None:
    from shared.workspace.base import DatasetFile
    from tests.support.fakes import RecordingPipelines

    pipelines = RecordingPipelines(ctx.workspace)
    ctx.workspace.pipelines = pipelines
    missing = functions["train"](http_request("POST", "train", {}))
    assert missing.status_code == 404 and "train" in json.loads(missing.get_body())["error"]

    store = "azureblob://" + ctx.settings.landing_container
    ctx.workspace.datasets.register("train", [DatasetFile("a.csv", "train/b/a.csv", "e1", 3)], datastore=store)
    ctx.workspace.datasets.register("inference", [DatasetFile("a.csv", "inference/b/a.csv", "e2", 3)], datastore=store)
    trained = functions["train"](http_request("POST", "train", {"mode": "all"}))
    assert trained.status_code == 202
    answer = json.loads(trained.get_body())
    assert answer["parameters"]["mode"] == "all" and answer["dataset"]["version"] == 1
    forecast = functions["forecast"](http_request("POST", "forecast", {"dataset_version": 1}))
    assert forecast.status_code == 202
    assert [r.kind for r in pipelines.submitted] == [PipelineKind.TRAINING, PipelineKind.FORECASTING]
    assert {r.source for r in ctx.ledger.runs.all()} == {"http"}


def test_a_plan_the_planner_refuses_is_recorded_not_retried(functions, ctx: Context, tmp_path, monkeypatch) -> None:
    from shared.errors import InvalidValue
    from shared.flows import deploy

    def refuse(*args, **kwargs):
        raise InvalidValue("MAX_CONTAINER_SIZE=2 is smaller than the deployed groups (500): set RESET_DEPLOYMENT")

    monkeypatch.setattr(deploy, "plan", refuse)
    run = complete_training(functions, ctx, tmp_path)  # acknowledged: no exception
    plan = ctx.ledger.plans.get(f"local-{run.run_id}")
    assert plan.state == PlanState.FAILED and "RESET_DEPLOYMENT" in plan.reason
    assert ctx.ledger.targets.get("local").active_plan == ""
    answer = functions["deploy"](http_request("POST", "deploy", {}))
    assert answer.status_code == 400 and "RESET_DEPLOYMENT" in json.loads(answer.get_body())["error"]


def test_an_early_run_completed_leaves_the_rollout_to_the_real_completion(functions, ctx: Context, tmp_path) -> None:
    # Event Grid may deliver RunCompleted while the workspace still reads the run as running
    # (Azure ML's Finalizing state maps to running, shared/workspace/aml/runs.py).
    run = make_run(ctx.workspace, PipelineKind.TRAINING, status=RunStatus.RUNNING)
    register_models(ctx.workspace, NAMES[:1], tmp_path, run_id=run.run_id)  # only part of its models so far
    early = run_completed(run)
    assert functions["on_aml_event"](event_grid_event(early)) is None
    entry = ctx.ledger.runs.get(run.run_id)
    assert entry is not None and entry.state == RunState.SUBMITTED  # reconcile polls it later
    assert ctx.ledger.plans.all() == []
    assert not ctx.ledger.events.is_processed(early["id"])  # a redelivery of the same event is handled again

    register_models(ctx.workspace, NAMES[1:], tmp_path, run_id=run.run_id)
    run = ctx.workspace.runs.update(run.run_id, status=RunStatus.COMPLETED)
    functions["on_aml_event"](event_grid_event(early))  # the redelivery, now that the run is done
    drain_queue(ctx, functions["deploy_group"])
    assert deployed_versions(ctx) == dict.fromkeys(NAMES, 1)
    assert ctx.ledger.runs.get(run.run_id).state == RunState.COMPLETED
    assert ctx.ledger.events.is_processed(early["id"])


def test_reconcile_completes_a_run_whose_only_event_came_early(functions, ctx: Context, tmp_path) -> None:
    run = make_run(ctx.workspace, PipelineKind.TRAINING, status=RunStatus.RUNNING,
                   submitted="2026-01-01T00:00:00+00:00")
    functions["on_aml_event"](event_grid_event(run_completed(run)))
    assert ctx.ledger.runs.get(run.run_id).state == RunState.SUBMITTED
    register_models(ctx.workspace, NAMES, tmp_path, run_id=run.run_id)
    ctx.workspace.runs.update(run.run_id, status=RunStatus.COMPLETED)
    ctx.deploy_queue.create_queue()
    functions["reconcile"](timer())  # no later event: the timer finds it completed
    drain_queue(ctx, functions["deploy_group"])
    assert deployed_versions(ctx) == dict.fromkeys(NAMES, 1)
    assert ctx.ledger.runs.get(run.run_id).state == RunState.COMPLETED


def test_a_completed_event_for_a_run_the_workspace_reads_as_failed_records_the_failure(functions, ctx: Context,
                                                                                       tmp_path) -> None:
    run = make_run(ctx.workspace, PipelineKind.TRAINING, status=RunStatus.FAILED, error="step train failed")
    register_models(ctx.workspace, NAMES[:1], tmp_path, run_id=run.run_id)
    functions["on_aml_event"](event_grid_event(run_completed(run)))
    entry = ctx.ledger.runs.get(run.run_id)
    assert entry.state == RunState.FAILED and "step train failed" in entry.reason
    assert ctx.ledger.plans.all() == []


def test_the_next_rollout_after_a_late_old_run_keeps_the_newest_data_models(functions, ctx: Context,
                                                                            tmp_path) -> None:
    older = make_run(ctx.workspace, PipelineKind.TRAINING, submitted="2026-11-27T09:00:00+00:00")
    newer = make_run(ctx.workspace, PipelineKind.TRAINING, submitted="2026-11-27T10:00:00+00:00")
    register_models(ctx.workspace, NAMES, tmp_path, run_id=newer.run_id)  # v1: the newer data
    newer = ctx.workspace.runs.update(newer.run_id, status=RunStatus.COMPLETED)
    functions["on_aml_event"](event_grid_event(run_completed(newer)))
    drain_queue(ctx, functions["deploy_group"])
    register_models(ctx.workspace, NAMES, tmp_path, run_id=older.run_id)  # v2: older data, registered last
    older = ctx.workspace.runs.update(older.run_id, status=RunStatus.COMPLETED)
    functions["on_aml_event"](event_grid_event(run_completed(older)))

    # Any later rollout (by hand here; or the next run's) plans from "latest" = the newest data.
    dry = json.loads(functions["deploy"](http_request("POST", "deploy", {"dry_run": True})).get_body())
    assert {m["name"]: m["version"] for g in dry["groups"] for m in g["models"]} == dict.fromkeys(NAMES, 1)
    answer = functions["deploy"](http_request("POST", "deploy", {}))
    assert answer.status_code == 202
    drain_queue(ctx, functions["deploy_group"])
    assert deployed_versions(ctx) == dict.fromkeys(NAMES, 1)


def test_a_newer_dataset_version_wins_over_a_later_submission(functions, ctx: Context, tmp_path) -> None:
    v2 = make_run(ctx.workspace, PipelineKind.TRAINING, dataset_version=2, submitted="2026-11-27T09:00:00+00:00")
    v1 = make_run(ctx.workspace, PipelineKind.TRAINING, dataset_version=1, submitted="2026-11-27T10:00:00+00:00")
    register_models(ctx.workspace, NAMES, tmp_path, run_id=v2.run_id, dataset_version=2)  # version 1
    register_models(ctx.workspace, NAMES, tmp_path, run_id=v1.run_id, dataset_version=1)  # v2: old data
    dry = json.loads(functions["deploy"](http_request("POST", "deploy", {"dry_run": True})).get_body())
    assert {m["name"]: m["version"] for g in dry["groups"] for m in g["models"]} == dict.fromkeys(NAMES, 1)
