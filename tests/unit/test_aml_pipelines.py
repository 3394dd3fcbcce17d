"""The Azure ML pipeline graphs, built with the SDK's real classes on a mocked workspace.

The workspace is a mock with compute targets, real ``AzureBlobDatastore`` objects and a mocked
workflow provider (the SDK's service client); saving an anonymous dataset (a service call) is
patched. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from unittest import mock

import pytest
import yaml
from azureml.core.compute import AmlCompute
from azureml.data.azure_storage_datastore import AzureBlobDatastore
from azureml.pipeline.core import PipelineData, PipelineParameter
from azureml.pipeline.steps import ParallelRunStep, PythonScriptStep

from shared.errors import InvalidValue, NotFound
from shared.settings import Settings
from shared.workspace.aml import pipeline_graph
from shared.workspace.parallel_config import config_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sdk_ws():
    ws = mock.MagicMock(name="Workspace")
    stores = {n: AzureBlobDatastore(ws, n, n.replace("_", "-"), "nssa")
              for n in ("workspaceblobstore", "landing", "predictions")}
    ws.get_default_datastore.return_value = stores["workspaceblobstore"]
    compute = mock.MagicMock(spec=AmlCompute)
    compute.name, compute.type = "cpu-compute", "AmlCompute"
    compute.scale_settings = mock.Mock(maximum_node_count=4)
    ws.compute_targets = {"cpu-compute": compute}

    def get_datastore(_ws, name):
        if name not in stores:
            raise Exception(f"DatastoreNotFound: {name}")  # what the SDK raises, loosely
        return stores[name]

    with mock.patch("shared.workspace.aml.pipeline_graph.Datastore.get", side_effect=get_datastore), \
            mock.patch("azureml.data.abstract_dataset.AbstractDataset._ensure_saved", return_value="saved-id"):
        yield ws


@pytest.fixture
def options(tmp_path: Path) -> dict:
    """The repository's ParallelRunStep configs, pointed at a stand-in source directory when the
    real entry scripts are not there (they are uploaded from a staging copy either way)."""
    files = {}
    for kind in ("training", "forecasting"):
        body = yaml.safe_load(config_path(kind).read_text())
        script = REPO / body.get("source_directory", "scoring") / body["entry_script"]
        if not script.is_file():
            source = tmp_path / "scoring"
            source.mkdir(exist_ok=True)
            (source / body["entry_script"]).write_text("def init():\n    pass\n")
            body["source_directory"] = str(source)
        path = tmp_path / f"{kind}.yml"
        path.write_text(yaml.safe_dump(body))
        files[kind] = pipeline_graph.BuildOptions(compute_name="cpu-compute", landing_container="landing",
                                         predictions_container="predictions", config_file=path)
    return files


def _build(ws, kind, options, tmp_path):
    return pipeline_graph.build_pipeline(ws, kind, options[kind], staging_dir=tmp_path / f"stage-{kind}",
                                workflow_provider=mock.MagicMock(name="workflow_provider"))


def _node(pipeline, name):
    return next(n for n in pipeline.graph.nodes if n.name == name)


def _user_arguments(step) -> list:
    """The entry script's own arguments: ParallelRunStep puts its reserved ones first."""
    args = list(step._arguments)
    args = args[args.index("--settings-file"):]
    end = next((i for i in range(0, len(args), 2) if str(args[i]).startswith("--input_")), len(args))
    return args[:end]


def _metadata(node) -> dict:
    return json.loads(node.get_param("BatchInferencingMetaData").value)


def test_training_pipeline_graph_is_valid_with_steps_inputs_and_outputs(sdk_ws, options, tmp_path):
    pipeline = _build(sdk_ws, "training", options, tmp_path)

    assert pipeline.validate() == []
    assert {n.name for n in pipeline.graph.nodes} == {"train-models", "train_files", "register-models"}
    train, register = _node(pipeline, "train-models"), _node(pipeline, "register-models")
    assert [i.name for i in train.inputs] == ["train_files"]
    assert "training_output" in [o.name for o in train.outputs]
    assert [i.name for i in register.inputs] == ["training_output"]
    assert "model_store" in [o.name for o in register.outputs]
    assert {p.name for p in pipeline.graph.params.values()} >= {"dataset", "dataset_version", "run_id"}


def test_training_step_settings_come_from_the_parallelrunstep_config(sdk_ws, options, tmp_path):
    config = yaml.safe_load(options["training"].config_file.read_text())
    pipeline = _build(sdk_ws, "training", options, tmp_path)

    meta = _metadata(_node(pipeline, "train-models"))
    assert meta["EntryScript"] == config["entry_script"]
    assert meta["MiniBatchSize"] == int(config["mini_batch_size"])
    assert meta["NodeCount"] == config["node_count"]
    assert meta["ProcessCountPerNode"] == config["process_count_per_node"]
    assert meta["ErrorThreshold"] == config["error_threshold"]
    assert meta["ComputeName"] == "cpu-compute"


def test_training_steps_pass_the_entry_script_contract_arguments(sdk_ws, options, tmp_path):
    train, register = pipeline_graph.build_steps(sdk_ws, "training", options["training"], staging_dir=tmp_path / "s")

    assert isinstance(train, ParallelRunStep) and isinstance(register, PythonScriptStep)
    args = _user_arguments(train)
    flags = [a for a in args if isinstance(a, str) and a.startswith("--")]
    assert flags == ["--settings-file", "--output-dir", "--run-id", "--dataset-version"]
    value = dict(zip(args[::2], args[1::2], strict=True))
    assert value["--settings-file"] == pipeline_graph.STAGED_SETTINGS_NAME
    assert isinstance(value["--output-dir"], PipelineData) and value["--output-dir"] is train._output[0]
    assert isinstance(value["--dataset-version"], PipelineParameter)
    assert train._allow_reuse is False and register._allow_reuse is False
    staged = tmp_path / "s"
    assert (staged / "scoring" / pipeline_graph.STAGED_SETTINGS_NAME).is_file()
    assert (staged / "steps" / "register_models.py").is_file()
    assert register._script_name == "register_models.py"
    store = next(o for o in register._outputs if o.name == "model_store")
    assert store.destination[0].name == "workspaceblobstore" and store.destination[1] == pipeline_graph.MODEL_STORE_PATH


def test_forecasting_pipeline_mounts_models_and_copies_predictions(sdk_ws, options, tmp_path):
    pipeline = _build(sdk_ws, "forecasting", options, tmp_path)

    assert pipeline.validate() == []
    assert {n.name for n in pipeline.graph.nodes} == {"forecast", "inference_files", "models", "copy-predictions"}
    forecast, copy = _node(pipeline, "forecast"), _node(pipeline, "copy-predictions")
    assert sorted(i.name for i in forecast.inputs) == ["inference_files", "models"]
    assert [i.name for i in copy.inputs] == ["forecasting_output"]
    assert "predictions" in [o.name for o in copy.outputs]
    assert _metadata(forecast)["EntryScript"] == "forecast.py"


def test_forecasting_steps_arguments_and_destinations(sdk_ws, options, tmp_path):
    forecast, copy = pipeline_graph.build_steps(sdk_ws, "forecasting", options["forecasting"],
                                                staging_dir=tmp_path / "s")

    args = _user_arguments(forecast)
    value = dict(zip(args[::2], args[1::2], strict=True))
    assert set(value) == {"--settings-file", "--models-dir", "--output-dir"}
    copy_args = dict(zip(copy._arguments[::2], copy._arguments[1::2], strict=True))
    predictions = next(o for o in copy._outputs if o.name == "predictions")
    assert predictions.destination[0].name == "predictions"
    assert copy_args["--predictions-container"] == "predictions"
    steps_env = copy._runconfig.environment
    packages = " ".join(steps_env.python.conda_dependencies.pip_packages)
    assert "azureml-core" in packages and "pandas" in packages


def test_missing_compute_target_is_a_clear_not_found(sdk_ws, options, tmp_path):
    bad = pipeline_graph.BuildOptions(compute_name="gpu-nope", landing_container="landing",
                             predictions_container="predictions", config_file=options["training"].config_file)
    with pytest.raises(NotFound, match=r"gpu-nope.*cpu-compute"):
        pipeline_graph.build_steps(sdk_ws, "training", bad, staging_dir=tmp_path / "s")


def test_unregistered_landing_datastore_is_a_clear_not_found(sdk_ws, options, tmp_path):
    bad = pipeline_graph.BuildOptions(compute_name="cpu-compute", landing_container="elsewhere",
                             predictions_container="predictions", config_file=options["training"].config_file)
    with pytest.raises(NotFound, match="elsewhere"):
        pipeline_graph.build_steps(sdk_ws, "training", bad, staging_dir=tmp_path / "s")


def test_invalid_parallelrunstep_config_fails_with_the_field(sdk_ws, options, tmp_path):
    path = options["training"].config_file
    path.write_text(re.sub(r"mini_batch_size: \d+", "mini_batch_size: 0", path.read_text()))
    with pytest.raises(InvalidValue, match="mini_batch_size"):
        pipeline_graph.build_steps(sdk_ws, "training", options["training"], staging_dir=tmp_path / "s")


def test_an_unknown_publish_parameter_is_refused_by_name_not_a_type_error() -> None:
    settings = Settings.from_env({})
    with pytest.raises(InvalidValue, match=r"'mini_batch_size'.*settings_file, config_file"):
        pipeline_graph.BuildOptions.from_settings(settings, mini_batch_size=3)
    options = pipeline_graph.BuildOptions.from_settings(settings, settings_file="pipelines/configuration/"
                                                        "script_settings.dominicks.json")
    assert options.settings_file.is_absolute() and options.settings_file.name == "script_settings.dominicks.json"
