"""SDK v2 pipelines: the graphs built with the real azure-ai-ml entities (checked through their REST
form), the parallel-entry shim, and the pipeline store on the fake MLClient (SDK mocked at its boundary)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from azure.ai.ml import Input, Output
from azure.ai.ml.entities import CommandComponent, PipelineJob

from pipelines.amlv2.components import BASE_IMAGE
from pipelines.amlv2.parallel_entry import kept, read_list
from shared.data.schema import DatasetSchema
from shared.errors import InvalidValue, NotFound
from shared.settings import Settings
from shared.workspace.amlv2 import pipeline_graph as build
from shared.workspace.amlv2.pipeline_graph import (
    STAGED_SETTINGS_NAME,
    STAGED_SHIM_NAME,
    V2BuildOptions,
    automl_settings,
    build_pipeline_component,
    parallel_settings,
)
from shared.workspace.base import DatasetFile, DatasetMode, PipelineKind, RunStatus
from shared.workspace.parallel_config import load_parallel_config

sys.path.insert(0, str(Path(__file__).resolve().parent / "workspace_contract"))
from amlv2_backend import FakeMLClient, MemoryBlobs

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "pipelines" / "configuration" / "script_settings.json"


def options(**changes) -> V2BuildOptions:
    values = {"compute_name": "cpu-compute", "landing_datastore": "landing", "predictions_datastore": "predictions",
              "predictions_container": "predictions", **changes}
    return V2BuildOptions(**values)


def rest_jobs(component) -> dict:
    return component._to_rest_object().as_dict()["properties"]["componentSpec"]["jobs"]


def spec(node: dict) -> dict:
    """The step's component as the REST body carries it before registration (YAML text or the entity)."""
    component = node["componentId"]
    return yaml.safe_load(component) if isinstance(component, str) else component._to_dict()


# --------------------------------------------------------------------------- graphs


@pytest.mark.parametrize("kind, step", [(PipelineKind.TRAINING, build.TRAIN_STEP),
                                        (PipelineKind.FORECASTING, build.FORECAST_STEP)])
def test_parallel_step_takes_every_setting_from_the_config_file(tmp_path, kind, step):
    config = load_parallel_config(kind)
    node = rest_jobs(build_pipeline_component(kind, options(), staging_dir=tmp_path))[step]
    assert node["type"] == "parallel"
    assert node["mini_batch_size"] == config.mini_batch_size
    assert node["resources"]["instance_count"] == config.node_count
    assert node["max_concurrency_per_instance"] == config.process_count_per_node
    assert node["retry_settings"] == {"max_retries": config.run_max_try, "timeout": config.run_invocation_timeout}
    assert node["error_threshold"] == config.error_threshold
    assert node["mini_batch_error_threshold"] == config.allowed_failed_count
    assert node["logging_level"] == str(config.logging_level)
    assert node["input_data"] == "${{inputs.data}}"
    task = node["task"]
    assert task["type"] == "run_function" and task["entry_script"] == STAGED_SHIM_NAME
    assert task["program_arguments"].startswith(f"--entry-script {config.entry_script} --data-dir ${{{{inputs.data}}}}"
                                                " --only-files ${{inputs.only_files}} ")
    assert task["append_row_to"].startswith("${{outputs.")
    assert task["environment"]["conda_file"]["name"] == "manymodels-scoring"
    assert task["environment"]["image"] == BASE_IMAGE


def test_a_changed_config_file_changes_the_parallel_step(tmp_path):
    config = tmp_path / "train.yml"
    config.write_text(yaml.safe_dump({"entry_script": "train.py", "mini_batch_size": 7, "node_count": 3,
                                      "process_count_per_node": 5, "run_max_try": 4, "run_invocation_timeout": 99,
                                      "error_threshold": 11, "allowed_failed_count": 2, "logging_level": "debug",
                                      "append_row_file_name": "rows.txt"}))
    node = rest_jobs(build_pipeline_component(PipelineKind.TRAINING, options(config_file=config),
                                              staging_dir=tmp_path / "staging"))[build.TRAIN_STEP]
    assert node["mini_batch_size"] == 7
    assert (node["resources"]["instance_count"], node["max_concurrency_per_instance"]) == (3, 5)
    assert node["retry_settings"] == {"max_retries": 4, "timeout": 99}
    assert (node["error_threshold"], node["mini_batch_error_threshold"], node["logging_level"]) == (11, 2, "DEBUG")
    assert node["task"]["program_arguments"].endswith("--append_row_file_name rows.txt")
    register = spec(rest_jobs(build_pipeline_component(PipelineKind.TRAINING, options(config_file=config),
                                                       staging_dir=tmp_path / "again"))[build.REGISTER_STEP])
    assert "--append-row-file-name rows.txt" in register["command"]


def test_parallel_settings_maps_every_v1_name():
    config = load_parallel_config(PipelineKind.TRAINING).replace(mini_batch_size=3, node_count=4)
    assert parallel_settings(config)["mini_batch_size"] == "3"  # the SDK's type for it is a string
    assert parallel_settings(config)["instance_count"] == 4


def test_training_graph_wires_the_steps_and_the_model_store(tmp_path):
    component = build_pipeline_component(PipelineKind.TRAINING, options(default_datastore="blobstore1"),
                                         staging_dir=tmp_path)
    assert set(component.inputs) == {"data", "only_files", "dataset_version", "run_id"}
    jobs = rest_jobs(component)
    train = jobs[build.TRAIN_STEP]
    assert {k: v["value"] for k, v in train["inputs"].items()} == {
        "data": "${{parent.inputs.data}}", "only_files": "${{parent.inputs.only_files}}",
        "dataset_version": "${{parent.inputs.dataset_version}}", "run_id": "${{parent.inputs.run_id}}"}
    assert ("--output-dir ${{outputs.training_output}} --run-id ${{inputs.run_id}} "
            "--dataset-version ${{inputs.dataset_version}}") in train["task"]["program_arguments"]
    register = jobs[build.REGISTER_STEP]
    assert register["inputs"]["training_output"]["value"] == "${{parent.jobs.train_models.outputs.training_output}}"
    assert register["inputs"]["dataset_version"]["value"] == "${{parent.inputs.dataset_version}}"
    assert register["outputs"]["model_store"]["uri"] == "azureml://datastores/blobstore1/paths/manymodels/models/"
    command = spec(register)["command"]
    assert command.startswith("python register_models.py --training-output ${{inputs.training_output}} "
                              "--model-store ${{outputs.model_store}} --dataset-version ${{inputs.dataset_version}}")


def test_forecasting_graph_mounts_the_model_store_and_uploads_predictions(tmp_path):
    jobs = rest_jobs(build_pipeline_component(PipelineKind.FORECASTING, options(predictions_datastore="preds_1"),
                                              staging_dir=tmp_path))
    forecast = jobs[build.FORECAST_STEP]
    assert forecast["inputs"]["models"]["uri"] == "azureml://datastores/workspaceblobstore/paths/manymodels/models/"
    assert "--models-dir ${{inputs.models}} --output-dir ${{outputs.forecasting_output}}" in \
        forecast["task"]["program_arguments"]
    copy = jobs[build.COPY_STEP]
    assert copy["inputs"]["forecasting_output"]["value"] == "${{parent.jobs.forecast.outputs.forecasting_output}}"
    assert copy["outputs"]["predictions"]["uri"] == "azureml://datastores/preds_1/paths/"
    assert copy["outputs"]["predictions"]["mode"] == "Upload"
    assert f"--settings-file {STAGED_SETTINGS_NAME}" in spec(copy)["command"]


def test_code_folder_is_scoring_with_the_schema_and_the_shim(tmp_path):
    component = build_pipeline_component(PipelineKind.TRAINING, options(), staging_dir=tmp_path)
    code = Path(rest_jobs(component)[build.TRAIN_STEP]["task"]["code"])
    assert code == tmp_path / "scoring"
    assert (code / "train.py").read_text() == (REPO / "scoring" / "train.py").read_text()
    assert (code / "forecaster").is_dir() and not list(code.rglob("__pycache__"))
    assert json.loads((code / STAGED_SETTINGS_NAME).read_text()) == json.loads(SCHEMA_FILE.read_text())
    assert (code / STAGED_SHIM_NAME).read_text() == (REPO / "pipelines" / "amlv2" / "parallel_entry.py").read_text()
    steps = tmp_path / "steps"
    assert (steps / "register_models.py").is_file() and (steps / STAGED_SETTINGS_NAME).is_file()


def test_missing_entry_script_is_refused(tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("entry_script: nothere.py\n")
    with pytest.raises(InvalidValue, match=r"nothere\.py does not exist"):
        build_pipeline_component(PipelineKind.TRAINING, options(config_file=config), staging_dir=tmp_path / "s")


# --------------------------------------------------------------------------- the shim


def test_shim_keeps_only_the_listed_files(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    files = [data / "a.csv", data / "b.csv", data / "sub" / "c.csv"]
    for f in files:
        f.write_text("x")
    listing = tmp_path / "only.json"
    listing.write_text(json.dumps(["a.csv", "sub/c.csv"]))
    keep = read_list(str(listing))
    assert kept([str(f) for f in files], data_dir=data, keep=keep) == [str(files[0]), str(files[2])]
    assert kept([str(f) for f in files], data_dir=data, keep=None) == [str(f) for f in files]
    listing.write_text("[]")
    assert read_list(str(listing)) is None  # an empty list: every file


def test_shim_runs_the_real_entry_script_contract(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / STAGED_SHIM_NAME).write_text((REPO / "pipelines" / "amlv2" / "parallel_entry.py").read_text())
    (code / "echo_entry.py").write_text(
        "import sys\nseen = {}\n"
        "def init(argv=None):\n    seen['argv'] = list(argv if argv is not None else sys.argv)\n"
        "def run(mini_batch):\n    return [f'row {p}' for p in mini_batch]\n")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("keep.csv", "drop.csv"):
        (data / name).write_text("x")
    listing = tmp_path / "only.json"
    listing.write_text(json.dumps(["keep.csv"]))
    monkeypatch.syspath_prepend(str(code))
    import importlib.util

    spec_ = importlib.util.spec_from_file_location("staged_shim", code / STAGED_SHIM_NAME)
    shim = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(shim)
    argv = ["--entry-script", "echo_entry.py", "--data-dir", str(data), "--only-files", str(listing),
            "--settings-file", "script_settings.json"]
    shim.init(argv)
    assert sys.modules["echo_entry"].seen["argv"] == argv  # the entry script gets its own arguments too
    assert shim.run([str(data / "drop.csv"), str(data / "keep.csv")]) == [f"row {data / 'keep.csv'}"]
    assert shim.run([str(data / "drop.csv")]) == []  # nothing to do: no rows, not a failure
    with pytest.raises(ValueError, match="not an entry script"):
        shim.init(["--entry-script", "../escape.py"])


# --------------------------------------------------------------------------- the store


def settings(**env) -> Settings:
    return Settings.from_env({"MANYMODELS_BACKEND": "amlv2", "AZURE_SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg",
                              "AML_WORKSPACE_NAME": "ws", "AzureWebJobsStorage": "https://sa.blob.core.windows.net",
                              **env})


def workspace(tmp_path, registry=None, **env):
    from shared.workspace.amlv2.pipelines import AmlV2PipelineStore
    from shared.workspace.amlv2.workspace import AmlV2Workspace

    client = FakeMLClient(tmp_path / "fake")
    ws = AmlV2Workspace(settings(**env), client, metadata=MemoryBlobs())  # type: ignore[arg-type]
    ws.pipelines = AmlV2PipelineStore(client, ws.settings, datasets=ws.datasets, registry=registry)
    return ws, client


def dataset(ws, mode=DatasetMode.FULL, names=("Store1000_dominicks.csv", "Store1001_dominicks.csv"), batch="b1"):
    files = [DatasetFile(name=n, path=f"train/{batch}/{n}", etag=f"e-{n}-{batch}", size=10) for n in names]
    return ws.datasets.register("train", files, datastore="azureblob://landing", mode=mode)


def selection(ws, job) -> list[str]:
    """The file list the job's ``only_files`` input names (a JSON blob in the datasets container)."""
    uri = str(job.inputs["only_files"].path)
    assert uri.startswith("azureml://datastores/datasets/paths/")
    return json.loads(ws.metadata.blobs[uri.split("/paths/", 1)[1]])


def test_publish_registers_the_next_version_and_get_reads_the_latest(tmp_path):
    ws, client = workspace(tmp_path)
    first = ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    second = ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    assert (first.version, second.version) == (1, 2)
    assert set(client.components.versions["manymodels_training"]) == {"1", "2"}
    got = ws.pipelines.get("manymodels-training")
    assert (got.name, got.kind, got.version, got.enabled) == ("manymodels-training", PipelineKind.TRAINING, 2, True)
    registered = client.components.versions["manymodels_training"]["2"]
    steps = {name: (node.component.name, node.component.version) for name, node in registered.jobs.items()}
    assert steps == {"train_models": ("manymodels_training_train_models", "2"),
                     "register_models": ("manymodels_training_register_models", "2")}
    assert registered.tags["manymodels_kind"] == "training"
    with pytest.raises(NotFound, match="no published pipeline is called 'other'"):
        ws.pipelines.get("other")


def test_publish_refuses_unknown_parameters(tmp_path):
    ws, _ = workspace(tmp_path)
    with pytest.raises(InvalidValue, match=r"unknown publish parameter.*'mini_batch'"):
        ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING, parameters={"mini_batch": 3})


def test_submit_creates_a_pipeline_job_with_the_dataset_inputs_and_run_tags(tmp_path):
    ws, client = workspace(tmp_path, TRAINING_MODE="all")
    ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    version = dataset(ws)
    run = ws.pipelines.submit("manymodels-training", version, tags={"batch": "b1"})
    assert run.status == RunStatus.QUEUED and run.kind == PipelineKind.TRAINING
    assert (run.dataset_name, run.dataset_version, run.parameters) == ("train", 1, {"mode": "all"})
    job = client.jobs.submitted[run.run_id]
    assert isinstance(job, PipelineJob)
    assert job.tags == {"batch": "b1", "manymodels_kind": "training", "dataset_name": "train", "dataset_version": "1",
                        "manymodels_pipeline": "manymodels-training", "manymodels_pipeline_version": "1",
                        "param_mode": "all"}
    assert job.experiment_name == "manymodels-training" and job.settings.default_compute == "cpu-compute"
    assert job.inputs["data"].path == "azureml:train:1"
    assert selection(ws, job) == ["Store1000_dominicks.csv", "Store1001_dominicks.csv"]
    assert job.inputs["dataset_version"]._data == "1"
    rest = job._to_rest_object().as_dict()["properties"]
    assert rest["inputs"]["dataset_version"]["value"] == "1"
    assert rest["inputs"]["data"]["uri"] == "azureml:train:1"
    assert ws.runs.get(run.run_id).dataset_version == 1  # the run store reads the tags back


def test_submit_changed_mode_lists_only_the_changed_files(tmp_path):
    ws, client = workspace(tmp_path)  # TRAINING_MODE=changed (the default)
    ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    dataset(ws)
    second = dataset(ws, mode=DatasetMode.PARTIAL, names=("Store1001_dominicks.csv",), batch="b2")
    run = ws.pipelines.submit("manymodels-training", second)
    job = client.jobs.submitted[run.run_id]
    assert selection(ws, job) == ["b2/Store1001_dominicks.csv"]
    assert run.parameters == {"mode": "changed"}


def test_submit_refuses_parameters_a_v2_run_cannot_take(tmp_path):
    ws, _ = workspace(tmp_path)
    ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    ws.pipelines.publish("manymodels-forecasting", PipelineKind.FORECASTING)
    version = dataset(ws)
    with pytest.raises(InvalidValue, match="'mini_batch_size' cannot change a run on Azure ML \\(SDK v2\\)"):
        ws.pipelines.submit("manymodels-training", version, parameters={"mini_batch_size": 5})
    with pytest.raises(InvalidValue, match="unknown run parameter"):
        ws.pipelines.submit("manymodels-forecasting", version, parameters={"mode": "all"})
    with pytest.raises(InvalidValue, match="mode='sometimes' is not allowed"):
        ws.pipelines.submit("manymodels-training", version, parameters={"mode": "sometimes"})


def test_forecasting_submit_has_no_dataset_version_input(tmp_path):
    ws, client = workspace(tmp_path)
    ws.pipelines.publish("manymodels-forecasting", PipelineKind.FORECASTING)
    run = ws.pipelines.submit("manymodels-forecasting", dataset(ws))
    job = client.jobs.submitted[run.run_id]
    assert set(job.inputs) == {"data", "only_files"} and run.parameters == {}
    assert run.kind == PipelineKind.FORECASTING


# --------------------------------------------------------------------------- AutoML many models

AUTOML_TRAIN_INPUTS = ("raw_data", "automl_config", "compute_name", "max_nodes", "max_concurrency_per_node",
                       "parallel_step_timeout_in_seconds", "retrain_failed_model")
AUTOML_INFER_INPUTS = ("raw_data", "compute_name", "max_nodes", "max_concurrency_per_node",
                       "parallel_step_timeout_in_seconds", "forecast_mode", "forecast_step", "partition_column_names",
                       "train_experiment_name")


def registry_component(name: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> CommandComponent:
    """A registry component as ``MLClient(registry_name="azureml").components.get`` answers: an entity with an id."""
    types = {"raw_data": "uri_folder", "automl_config": "uri_file", "max_nodes": "integer",
             "max_concurrency_per_node": "integer", "parallel_step_timeout_in_seconds": "integer",
             "forecast_step": "integer", "retrain_failed_model": "boolean"}
    component = CommandComponent(name=name, version="0.0.9", command="echo",
                                 environment="azureml:AzureML-AutoML@latest",
                                 inputs={k: Input(type=types.get(k, "string")) for k in inputs},
                                 outputs={k: Output(type="uri_folder") for k in outputs})
    component._id = f"azureml://registries/azureml/components/{name}/versions/0.0.9"
    return component


class FakeRegistry:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.components = self

    def get(self, name: str, version: str | None = None, label: str | None = None):
        self.asked.append((name, label))
        if name == build.AUTOML_TRAINING_COMPONENT:
            return registry_component(name, AUTOML_TRAIN_INPUTS, ("run_output",))
        return registry_component(name, AUTOML_INFER_INPUTS, ("raw_predictions",))


def test_automl_settings_take_columns_and_horizon_from_the_schema():
    schema = DatasetSchema.load(SCHEMA_FILE)
    merged = automl_settings(schema)
    assert merged.config["partition_column_names"] == list(schema.id_columns) == ["Store", "Brand"]
    assert merged.config["time_series_id_column_names"] == list(schema.id_columns)
    assert merged.config["forecast_horizon"] == schema.horizon
    assert (merged.config["label_column_name"], merged.config["time_column_name"]) == ("Quantity", "WeekStarting")
    source = yaml.safe_load(build.AUTOML_SETTINGS_FILE.read_text())
    assert merged.config["primary_metric"] == source["primary_metric"]
    assert merged.pipeline["max_nodes"] == source["max_nodes"] and "max_nodes" not in merged.config


def test_automl_settings_refuse_what_the_schema_decides(tmp_path):
    path = tmp_path / "automl.yml"
    path.write_text("task: forecasting\nprimary_metric: r2_score\nforecast_horizon: 3\n")
    with pytest.raises(InvalidValue, match="'forecast_horizon' come from the dataset schema"):
        automl_settings(DatasetSchema.load(SCHEMA_FILE), path)
    path.write_text("task: classification\nprimary_metric: accuracy\n")
    with pytest.raises(InvalidValue, match="field 'task' is 'classification'"):
        automl_settings(DatasetSchema.load(SCHEMA_FILE), path)


def test_automl_training_pipeline_wraps_the_registry_component(tmp_path):
    registry = FakeRegistry()
    ws, client = workspace(tmp_path, registry=registry, TRAINING_METHOD="automl", TRAINING_MODE="all")
    published = ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    assert registry.asked == [(build.AUTOML_TRAINING_COMPONENT, "latest")]
    assert published.parameters == {"training_method": "automl"}
    registered = client.components.versions["manymodels_training"]["1"]
    node = registered.jobs[build.AUTOML_TRAIN_STEP]
    assert node.component.name == build.AUTOML_TRAINING_COMPONENT  # a registry component keeps its name
    source = yaml.safe_load(build.AUTOML_SETTINGS_FILE.read_text())
    rest = rest_jobs(registered)[build.AUTOML_TRAIN_STEP]
    assert rest["componentId"] == "azureml://registries/azureml/components/automl_many_models_training/versions/0.0.9"
    values = {k: v.get("value", v.get("uri")) for k, v in rest["inputs"].items()}
    assert values["raw_data"] == "${{parent.inputs.data}}"
    assert values["compute_name"] == "cpu-compute"
    assert (values["max_nodes"], values["max_concurrency_per_node"], values["parallel_step_timeout_in_seconds"]) == (
        str(source["max_nodes"]), str(source["max_concurrency_per_node"]),
        str(source["parallel_step_timeout_in_seconds"]))
    config_input = node.inputs["automl_config"]._data  # a local file the SDK uploads at registration
    assert (config_input.type, Path(config_input.path).name) == ("uri_file", "automl_config.yml")

    run = ws.pipelines.submit("manymodels-training", dataset(ws))
    submitted = client.jobs.submitted[run.run_id].inputs
    assert set(submitted) == {"data", "dataset_version"} and run.parameters == {"mode": "all"}
    assert submitted["dataset_version"]._data == str(run.dataset_version)  # the adopted models' DatasetVersion tag


def test_automl_config_written_at_publish_partitions_by_the_id_columns(tmp_path):
    schema = DatasetSchema.load(SCHEMA_FILE)
    written = build.write_automl_config(automl_settings(schema), tmp_path)
    config = yaml.safe_load(written.read_text())
    assert config["partition_column_names"] == ["Store", "Brand"] and config["task"] == "forecasting"
    component = build.build_automl_component(PipelineKind.TRAINING, options(),
                                             FakeRegistry().get(build.AUTOML_TRAINING_COMPONENT),
                                             settings=automl_settings(schema), staging_dir=tmp_path / "s")
    node = component.jobs[build.AUTOML_TRAIN_STEP]
    assert yaml.safe_load(Path(node.inputs["automl_config"]._data.path).read_text()) == config


def test_automl_refuses_changed_mode_and_partial_versions(tmp_path):
    ws, _ = workspace(tmp_path, registry=FakeRegistry(), TRAINING_METHOD="automl", TRAINING_MODE="all")
    ws.pipelines.publish("manymodels-training", PipelineKind.TRAINING)
    first = dataset(ws)
    with pytest.raises(InvalidValue, match=r"mode='changed'.*cannot apply to TRAINING_METHOD=automl.*"
                                           r"set TRAINING_MODE=all"):
        ws.pipelines.submit("manymodels-training", first, parameters={"mode": "changed"})
    partial = dataset(ws, mode=DatasetMode.PARTIAL, names=("Store1001_dominicks.csv",), batch="b2")
    with pytest.raises(InvalidValue, match="is partial: AutoML many models reads every file of one folder"):
        ws.pipelines.submit("manymodels-training", partial, parameters={"mode": "all"})


def test_automl_forecasting_passes_the_partition_columns_and_writes_predictions(tmp_path):
    ws, client = workspace(tmp_path, registry=FakeRegistry(), TRAINING_METHOD="automl", TRAINING_MODE="all")
    ws.pipelines.publish("manymodels-forecasting", PipelineKind.FORECASTING)
    rest = rest_jobs(client.components.versions["manymodels_forecasting"]["1"])[build.AUTOML_FORECAST_STEP]
    values = {k: v.get("value", v.get("uri")) for k, v in rest["inputs"].items()}
    assert values["partition_column_names"] == "Store Brand"
    assert values["train_experiment_name"] == "manymodels-training"
    assert values["forecast_mode"] == "recursive"
    assert rest["outputs"]["raw_predictions"]["uri"] == "azureml://datastores/predictions/paths/automl/${{name}}/"


def test_a_registry_component_without_a_required_input_is_refused(tmp_path):
    broken = registry_component(build.AUTOML_TRAINING_COMPONENT, ("raw_data",), ("run_output",))
    with pytest.raises(InvalidValue, match="has no input\\(s\\) automl_config"):
        build.build_automl_component(PipelineKind.TRAINING, options(), broken,
                                     settings=automl_settings(DatasetSchema.load(SCHEMA_FILE)), staging_dir=tmp_path)


# --------------------------------------------------------------------------- the CLI


def test_publish_cli_registers_through_the_store(tmp_path, capsys):
    from pipelines.amlv2 import publish as cli

    args = cli.parse_args(["--kind", "forecasting", "--compute", "gpu-1", "--subscription-id", "s2"])
    env = {"AzureWebJobsStorage": "https://sa.blob.core.windows.net", "RESOURCE_GROUP": "rg",
           "AML_WORKSPACE_NAME": "ws", "MANYMODELS_BACKEND": "local"}
    chosen = cli.settings_for(args, env)
    assert (chosen.backend, chosen.compute_name, chosen.subscription_id) == ("amlv2", "gpu-1", "s2")
    ws, client = workspace(tmp_path)
    result = cli.publish(args, chosen, workspace=ws)
    assert result == {"name": "manymodels-forecasting", "kind": "forecasting",
                      "pipeline_id": "azureml:manymodels_forecasting:1", "version": 1,
                      "training_method": "customscript"}
    assert "manymodels_forecasting" in client.components.versions
