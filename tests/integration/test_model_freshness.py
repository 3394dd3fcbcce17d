"""Runs finishing out of order (real local runner, real entry scripts): what is deployed and what is
forecast is the model of the newest data, not the highest version (shared/workspace/newest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from test_flows_support import FakeServices, app_functions, drain_queue, event_grid_event, open_context

from shared.data.simulate import write_simulated
from shared.flows.context import Context
from shared.settings import Settings
from shared.workspace.base import PipelineKind, Run, RunStatus
from shared.workspace.local.datasets import files_from_folder, folder_datastore
from shared.workspace.local.events import run_completed
from shared.workspace.newest import NEWEST_VERSION_FILE

pytestmark = pytest.mark.integration
WAIT = 180.0
SCALE = 50  # the newer data's quantities: forecasts from its models are far from the old data's


@pytest.fixture(scope="module")
def functions():
    return app_functions()


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings, real_runner=True) as context:
        yield context


def _train(ctx: Context, folder: Path) -> Run:
    ws = ctx.workspace
    dataset = ws.datasets.register("train", files_from_folder(folder), datastore=folder_datastore(folder))
    run = ws.pipelines.submit(ctx.settings.training_pipeline_name, dataset, parameters={"mode": "all"})
    run = ws.runs.wait(run.run_id, timeout=WAIT)
    assert run.status == RunStatus.COMPLETED, run.error
    return run


def _deployed(ctx: Context) -> dict[str, int]:
    services: FakeServices = ctx.workspace.services  # type: ignore[assignment]
    return {name: int(version) for s in services.services.values() for name, version in
            (m.rsplit(":", 1) for m in s.models) if not name.startswith(ctx.settings.routing_model_name)}


def test_a_late_run_on_older_data_neither_deploys_nor_forecasts(functions, ctx: Context, tmp_path) -> None:
    ws = ctx.workspace
    write_simulated(tmp_path / "sim", series=3, seed=5)
    old, new = tmp_path / "sim" / "train", tmp_path / "new"
    new.mkdir()
    for path in old.glob("*.csv"):
        frame = pd.read_csv(path)
        frame.assign(Quantity=frame["Quantity"] * SCALE).to_csv(new / path.name, index=False)

    # The newer data's run is rolled out first; then a run on the older data (dataset v1, a retry
    # say) finishes last and registers its models with the higher version numbers.
    _train(ctx, old)  # dataset v1 (nothing rolled out: its event is not delivered)
    newer = _train(ctx, new)  # dataset v2 -> model versions 2
    functions["on_aml_event"](event_grid_event(run_completed(newer)))
    drain_queue(ctx, functions["deploy_group"])
    newest = {m.name: m.version for m in ws.models.list() if m.name.startswith("auto_")}
    assert set(newest.values()) == {2}, (newest, newer.counts, newer.failures)
    assert _deployed(ctx) == newest

    v1 = ws.datasets.get("train", 1)
    late = ws.pipelines.submit(ctx.settings.training_pipeline_name, v1, parameters={"mode": "all"})
    late = ws.runs.wait(late.run_id, timeout=WAIT)
    assert late.status == RunStatus.COMPLETED, late.error
    assert {m.version for m in ws.models.list() if m.name in newest} == {3}  # the older data, registered last
    functions["on_aml_event"](event_grid_event(run_completed(late)))
    drain_queue(ctx, functions["deploy_group"])
    assert _deployed(ctx) == newest

    # The next rollout plans from the newest data's models too.
    from shared.flows import deploy

    planned = {m.name: m.version for g in deploy.plan(ws, ctx.settings, "local").groups for m in g.models}
    assert planned == newest
    for name, version in newest.items():
        assert (ws.models_dir / name / NEWEST_VERSION_FILE).read_text().strip() == str(version)

    # The batch forecast serves them as well: forecasts at the newer data's scale.
    inference = tmp_path / "sim" / "inference"
    dataset = ws.datasets.register("inference", files_from_folder(inference), datastore=folder_datastore(inference))
    forecast = ws.pipelines.submit(ctx.settings.forecasting_pipeline_name, dataset)
    forecast = ws.runs.wait(forecast.run_id, timeout=WAIT)
    assert forecast.status == RunStatus.COMPLETED and forecast.kind == PipelineKind.FORECASTING, forecast.error
    predicted = pd.read_csv(forecast.outputs["predictions_file"])["Prediction"].mean()
    old_level = pd.concat(pd.read_csv(p) for p in old.glob("*.csv"))["Quantity"].mean()
    assert predicted > old_level * SCALE / 3, (predicted, old_level)
