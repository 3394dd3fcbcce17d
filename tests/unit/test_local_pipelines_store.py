"""Publishing local pipelines and checking run parameters (no runner process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InvalidValue, NotFound
from shared.settings import Settings
from shared.workspace.base import DatasetMode, DatasetVersion, PipelineKind
from shared.workspace.local.workspace import LocalWorkspace


@pytest.fixture
def workspace(tmp_path: Path):
    ws = LocalWorkspace(Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")}))
    try:
        yield ws
    finally:
        ws.close()


def _dataset() -> DatasetVersion:
    return DatasetVersion("train", 1, "file:///nowhere", (), (), DatasetMode.FULL, {}, "")


def test_publish_snapshots_the_config_and_disables_older_versions(workspace, tmp_path) -> None:
    pipelines = workspace.pipelines
    first = pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    config = tmp_path / "prs.yml"
    config.write_text("entry_script: train.py\nmini_batch_size: 7\nrun_invocation_timeout: 30\n")
    second = pipelines.publish("manymodels-training", PipelineKind.TRAINING, parameters={
        "config_file": str(config), "parallel_run_config": {"process_count_per_node": 3}, "mode": "all"})

    assert (first.version, second.version) == (1, 2)
    assert pipelines.get("manymodels-training").pipeline_id == second.pipeline_id
    assert [p.version for p in pipelines.list(name="manymodels-training", enabled=None)] == [2, 1]
    assert [p.enabled for p in pipelines.list(name="manymodels-training", enabled=None)] == [True, False]
    snapshot = second.parameters["parallel_run_config"]
    assert (snapshot["mini_batch_size"], snapshot["process_count_per_node"], snapshot["run_invocation_timeout"]) == (
        7, 3, 30)
    assert second.parameters["mode"] == "all"


def test_get_of_an_unpublished_pipeline_says_what_to_do(workspace) -> None:
    with pytest.raises(NotFound, match="no published pipeline is called 'mine'; publish it first"):
        workspace.pipelines.get("mine")
    with pytest.raises(NotFound):
        workspace.pipelines.submit("mine", _dataset())  # not a default name: never auto-published


@pytest.mark.parametrize(("parameters", "message"), [
    ({"mode": "some"}, "mode='some' is not allowed: expected 'changed' or 'all'"),
    ({"batch_size": 5}, "unknown run parameter(s) 'batch_size'; allowed: mode, settings_file, mini_batch_size"),
    ({"run_max_try": 0}, "'run_max_try' is 0"),
    ({"settings_file": "/no/such/settings.json"}, "cannot read dataset settings file"),
])
def test_bad_run_parameters_fail_the_submit_before_any_run_exists(workspace, parameters, message) -> None:
    with pytest.raises(InvalidValue) as caught:
        workspace.pipelines.submit("manymodels-training", _dataset(), parameters=parameters)
    assert message in caught.value.message
    assert workspace.runs.list() == []
    assert workspace.pipelines.get("manymodels-training").version == 1  # auto-published, once


def test_forecasting_runs_take_no_mode(workspace) -> None:
    with pytest.raises(InvalidValue, match="'mode' is for training pipelines"):
        workspace.pipelines.submit("manymodels-forecasting", _dataset(), parameters={"mode": "all"})
