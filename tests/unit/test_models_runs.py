"""Issue 12 at the run level: TRAINING_METHOD=automl runs the built-in search on the local backend,
and a run counts series per chosen model type and series with warnings (for --json and status)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shared.flows.status import _model_types
from shared.workspace.base import PipelineKind, Run, RunStatus
from shared.workspace.local.runner import job_arguments
from shared.workspace.local.runner_steps import _warned, model_type_counts
from shared.workspace.local.runner_worker import row_batch


def _run(kind: PipelineKind) -> Run:
    return Run(run_id="r1", pipeline="p", kind=kind, experiment="e", status=RunStatus.QUEUED, dataset_name="d",
               dataset_version=3, parameters={"settings_file": "/s.json"}, tags={}, submitted="now")


def test_training_method_automl_asks_train_py_for_model_type_auto(tmp_path: Path) -> None:
    custom = job_arguments(_run(PipelineKind.TRAINING), tmp_path)
    automl = job_arguments(_run(PipelineKind.TRAINING), tmp_path, training_method="automl")
    assert "--model-type" not in custom
    assert automl == [*custom, "--model-type", "auto"]
    forecasting = job_arguments(_run(PipelineKind.FORECASTING), tmp_path, training_method="automl")
    assert "--model-type" not in forecasting


def test_rows_count_series_per_chosen_type_and_series_with_warnings() -> None:
    train_rows = row_batch(pd.DataFrame({"series": ["a", "b", "c", "d"], "status": ["ok", "ok", "fallback", "failed"],
                                         "model_type": ["loglog", "demand", "mean", ""],
                                         "reason": ["", "", "too short", "bad"],
                                         "warnings": ["", "2 row(s) with a missing Quantity", "", ""]}))
    counts = model_type_counts([train_rows])
    assert counts == {"model_type_demand": 1, "model_type_loglog": 1, "model_type_mean": 1}
    assert _model_types({**counts, "failed": 1}) == {"demand": 1, "loglog": 1, "mean": 1}
    assert _warned([train_rows], lambda r: r["series"]) == [
        {"series": "b", "warnings": "2 row(s) with a missing Quantity"}]
    # forecast.py has no warnings column: an ok row's reason is its series' warning, once per series
    forecast_rows = row_batch(pd.DataFrame({"series": ["x", "x", "y", "z"], "status": ["ok", "ok", "ok", "failed"],
                                            "reason": ["gap filled", "gap filled", "", "no"]}))
    assert _warned([forecast_rows], lambda r: r["series"]) == [{"series": "x", "warnings": "gap filled"}]
