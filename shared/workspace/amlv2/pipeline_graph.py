"""The SDK v2 pipeline graphs: pipeline components made of parallel jobs and command steps.

- training: a parallel job (``azure.ai.ml.parallel.parallel_run_function``) running ``scoring/train.py``
  over the dataset version's files, then ``register_models`` (pipelines/amlv2/components.py) registering
  the manifest and filling the model store ``<default datastore>/manymodels/models/``;
- forecasting: a parallel job running ``scoring/forecast.py`` with the model store mounted as
  ``--models-dir``, then ``copy_predictions`` writing ``forecasts_<date>_<runid>.csv`` to the predictions
  datastore;
- ``TRAINING_METHOD=automl``: the ``azureml`` registry's many-models components
  (``automl_many_models_training`` / ``automl_many_models_inference``), partitioned by the schema's id
  columns, with the settings of ``pipelines/configuration/automl-many-models-settings.yml``; training
  then runs ``adopt_automl_models`` (AutoML's models registered under the product's names and tags, and
  copied into the model store), forecasting ``automl_predictions`` (AutoML's forecasts as the product's
  ``forecasts_<date>_<runid>.csv``) - pipelines/amlv2/steps/.

The parallel job runs the v1 entry scripts unchanged (their ``init()``/``run(mini_batch)`` contract is the
v2 ``run_function`` task's) through the staged shim pipelines/amlv2/parallel_entry.py, which keeps the
dataset version's files only (shared/workspace/amlv2/datasets.py ``job_inputs``). Its settings are the
v1 ParallelRunStep files' (shared/workspace/parallel_config.py), mapped by :func:`parallel_settings`.

The graph belongs to its adapter (as shared/workspace/aml/pipeline_graph.py for v1): the store
(shared/workspace/amlv2/pipelines.py) builds it; pipelines/amlv2/ holds what is uploaded or run from a
shell (the environments and step components, the shim, the publish CLI), and imports no adapter module.

Every pipeline component takes the dataset version as two inputs, ``data`` (the ``uri_folder``) and
``only_files`` (the ``uri_file`` list); a training one also ``dataset_version`` (a string: models are
tagged with it).
"""

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from azure.ai.ml import Input, Output, dsl
from azure.ai.ml.constants import AssetTypes, InputOutputModes
from azure.ai.ml.entities import Component, Environment, PipelineComponent
from azure.ai.ml.parallel import RunFunction, parallel_run_function

from pipelines.amlv2.components import (
    adopt_automl_models_component,
    automl_predictions_component,
    copy_predictions_component,
    environment,
    register_models_component,
    steps_environment,
)
from shared.data.schema import DatasetSchema
from shared.errors import InvalidValue
from shared.paths import REPO_ROOT
from shared.workspace.amlv2.tags import INPUT_DATA, INPUT_ONLY_FILES
from shared.workspace.base import PipelineKind
from shared.workspace.parallel_config import OutputAction, ParallelRunConfig, load_parallel_config
from shared.workspace.step_sources import STAGED_SETTINGS_NAME, STEPS_DIR, stage_step_sources

AUTOML_STEPS_DIR = REPO_ROOT / "pipelines" / "amlv2" / "steps"
MODEL_NAMES = REPO_ROOT / "scoring" / "model_names.py"  # stdlib only: staged beside the AutoML steps
SHIM = REPO_ROOT / "pipelines" / "amlv2" / "parallel_entry.py"  # staged, never imported
STAGED_SHIM_NAME = "manymodels_parallel_entry.py"  # a name no scoring/ module has
SETTINGS_FILE = REPO_ROOT / "pipelines" / "configuration" / "script_settings.json"
AUTOML_SETTINGS_FILE = REPO_ROOT / "pipelines" / "configuration" / "automl-many-models-settings.yml"
MODEL_STORE_PATH = "manymodels/models"  # on the default datastore, in the registered-model layout
DEFAULT_APPEND_ROW_FILE_NAME = "parallel_run_step.txt"  # the parallel runtime's own default

INPUT_DATASET_VERSION = "dataset_version"
INPUT_RUN_ID = "run_id"
INPUT_AUTOML_CONFIG = "automl_config"
# Node names in the pipeline (letters, digits and "_": the SDK's rule for node names)
TRAIN_STEP = "train_models"
REGISTER_STEP = "register_models"
FORECAST_STEP = "forecast"
COPY_STEP = "copy_predictions"
AUTOML_TRAIN_STEP = "automl_train"
AUTOML_FORECAST_STEP = "automl_forecast"
ADOPT_STEP = "adopt_automl_models"
AUTOML_PREDICTIONS_STEP = "automl_predictions"
AUTOML_TRAIN_OUTPUT = "run_output"  # the training component's output the adopt step waits for
# The inference component's forecasts, in order of preference: its per-file raw predictions folder, or the
# collected forecasts file the registry's docs wire to compute_metrics (``evaluation_data``, a uri_file).
AUTOML_PREDICTIONS_OUTPUTS = {"raw_predictions": AssetTypes.URI_FOLDER, "evaluation_data": AssetTypes.URI_FILE}
# the azureml registry's many-models pipeline components (docs: "AutoML many models" components)
AUTOML_REGISTRY = "azureml"
AUTOML_TRAINING_COMPONENT = "automl_many_models_training"
AUTOML_INFERENCE_COMPONENT = "automl_many_models_inference"


# Pipeline-input types of the dsl functions below (the dsl reads them from the annotations, so this
# module does not use ``from __future__ import annotations``).
_FOLDER = Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT)
_LIST = Input(type=AssetTypes.URI_FILE, mode=InputOutputModes.DOWNLOAD)
_FILE = Input(type=AssetTypes.URI_FILE)


@dataclass(frozen=True, slots=True)
class V2BuildOptions:
    """Where a pipeline runs and what it reads (the store fills it from the settings)."""

    compute_name: str
    landing_datastore: str  # Azure ML datastore names (shared/workspace/amlv2/datasets.py datastore_name)
    predictions_datastore: str
    predictions_container: str
    default_datastore: str = "workspaceblobstore"
    settings_file: Path = SETTINGS_FILE
    config_file: Path | None = None  # None -> pipelines/configuration/<kind>-parallelrunstep-config.yml
    automl_settings_file: Path = AUTOML_SETTINGS_FILE
    training_pipeline_name: str = "manymodels-training"  # the AutoML inference looks its training up by name

    def model_store_uri(self) -> str:
        return f"azureml://datastores/{self.default_datastore}/paths/{MODEL_STORE_PATH}/"

    def predictions_uri(self) -> str:
        return f"azureml://datastores/{self.predictions_datastore}/paths/"


# --------------------------------------------------------------------------- parallel settings


def parallel_settings(config: ParallelRunConfig) -> dict[str, Any]:
    """``parallel_run_function`` keywords from a v1 ParallelRunStep config (the same files both SDKs read).

    v1 ``node_count`` is v2 ``instance_count``, ``process_count_per_node`` is ``max_concurrency_per_instance``,
    ``allowed_failed_count`` is ``mini_batch_error_threshold``, ``run_max_try`` / ``run_invocation_timeout``
    are ``retry_settings.max_retries`` (the SDK: "the number of maximum tries") / ``retry_settings.timeout``.
    ``output_action: append_row`` is ``task.append_row_to`` (set by the caller: it names an output).
    """
    return {
        "mini_batch_size": str(config.mini_batch_size),
        "instance_count": config.node_count,
        "max_concurrency_per_instance": config.process_count_per_node,
        "error_threshold": config.error_threshold,
        "mini_batch_error_threshold": config.allowed_failed_count,
        "retry_settings": {"max_retries": config.run_max_try, "timeout": config.run_invocation_timeout},
        "logging_level": str(config.logging_level),
    }


def _program_arguments(config: ParallelRunConfig, entry_arguments: str) -> str:
    shim = (f"--entry-script {config.entry_script} --data-dir ${{{{inputs.{INPUT_DATA}}}}} "
            f"--only-files ${{{{inputs.{INPUT_ONLY_FILES}}}}}")
    arguments = f"{shim} {entry_arguments}"
    if config.output_action == OutputAction.APPEND_ROW and config.append_row_file_name != DEFAULT_APPEND_ROW_FILE_NAME:
        # the parallel runtime's driver reads its own options from the program arguments
        arguments += f" --append_row_file_name {config.append_row_file_name}"
    return arguments


def _parallel_step(config: ParallelRunConfig, *, name: str, scoring_dir: Path, env: Environment,
                   inputs: Mapping[str, Input], output: str, entry_arguments: str, description: str) -> Any:
    append_row = config.output_action == OutputAction.APPEND_ROW
    return parallel_run_function(
        name=name,
        display_name=name.replace("_", " "),
        description=config.description or description,
        inputs=dict(inputs),
        outputs={output: Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        input_data=f"${{{{inputs.{INPUT_DATA}}}}}",
        task=RunFunction(
            code=str(scoring_dir),
            entry_script=STAGED_SHIM_NAME,
            environment=env,
            program_arguments=_program_arguments(config, entry_arguments),
            append_row_to=f"${{{{outputs.{output}}}}}" if append_row else None,
        ),
        is_deterministic=False,  # trains/forecasts on data a version number names: never reuse a result
        **parallel_settings(config),
    )


def _dataset_inputs() -> dict[str, Input]:
    return {
        INPUT_DATA: Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT,
                          description="the dataset version's folder"),
        INPUT_ONLY_FILES: Input(type=AssetTypes.URI_FILE, mode=InputOutputModes.DOWNLOAD,
                                description="JSON list of the files (relative to data) to process"),
    }


# --------------------------------------------------------------------------- custom-script graphs


def build_pipeline_component(kind: PipelineKind | str, options: V2BuildOptions, *, staging_dir: Path,
                             name: str | None = None) -> PipelineComponent:
    """The pipeline of ``kind`` as a pipeline component. ``staging_dir`` must live until the component is
    registered: the code folders (``scoring/`` + the schema + the shim, ``steps/``) are uploaded from it."""
    kind = PipelineKind(kind)
    config = load_parallel_config(kind, options.config_file)
    scoring_dir, steps_dir = stage(config, options.settings_file, staging_dir)
    env = environment(config.environment, config.environment_file or "pipelines/configuration/environment-scoring.yml")
    steps_env = steps_environment()
    if kind == PipelineKind.TRAINING:
        job = _training_graph(config, options, scoring_dir, steps_dir, env, steps_env)
    else:
        job = _forecasting_graph(config, options, scoring_dir, steps_dir, env, steps_env)
    return _as_component(job, name=name or f"manymodels_{kind}", kind=kind)


def _training_graph(config: ParallelRunConfig, options: V2BuildOptions, scoring_dir: Path, steps_dir: Path,
                    env: Environment, steps_env: Environment) -> Any:
    train = _parallel_step(
        config, name=TRAIN_STEP, scoring_dir=scoring_dir, env=env,
        inputs={**_dataset_inputs(), INPUT_DATASET_VERSION: Input(type="string"),
                INPUT_RUN_ID: Input(type="string", default="pipeline")},
        output="training_output",
        entry_arguments=(f"--settings-file {STAGED_SETTINGS_NAME} --output-dir ${{{{outputs.training_output}}}} "
                         f"--run-id ${{{{inputs.{INPUT_RUN_ID}}}}} "
                         f"--dataset-version ${{{{inputs.{INPUT_DATASET_VERSION}}}}}"),
        description="Train one model per series with scoring/train.py",
    )
    register = register_models_component(steps_dir, append_row_file_name=config.append_row_file_name, env=steps_env)

    @dsl.pipeline(name="manymodels_training", description="manymodels training pipeline (SDK v2)",
                  default_compute=options.compute_name)
    def training(data: _FOLDER, only_files: _LIST, dataset_version: str, run_id: str = "pipeline") -> dict[str, Any]:
        train_node = train(data=data, only_files=only_files, dataset_version=dataset_version, run_id=run_id)
        train_node.name = TRAIN_STEP
        register_node = register(training_output=train_node.outputs.training_output, dataset_version=dataset_version)
        register_node.name = REGISTER_STEP
        register_node.outputs.model_store = Output(type=AssetTypes.URI_FOLDER, path=options.model_store_uri(),
                                                   mode=InputOutputModes.RW_MOUNT)
        return {}

    return training(data=_placeholder(AssetTypes.URI_FOLDER), only_files=_placeholder(AssetTypes.URI_FILE),
                    dataset_version="0")


def _forecasting_graph(config: ParallelRunConfig, options: V2BuildOptions, scoring_dir: Path, steps_dir: Path,
                       env: Environment, steps_env: Environment) -> Any:
    forecast = _parallel_step(
        config, name=FORECAST_STEP, scoring_dir=scoring_dir, env=env,
        inputs={**_dataset_inputs(), "models": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT)},
        output="forecasting_output",
        entry_arguments=(f"--settings-file {STAGED_SETTINGS_NAME} --models-dir ${{{{inputs.models}}}} "
                         "--output-dir ${{outputs.forecasting_output}}"),
        description="Forecast every series with its newest model (scoring/forecast.py)",
    )
    copy = copy_predictions_component(steps_dir, settings_name=STAGED_SETTINGS_NAME,
                                      append_row_file_name=config.append_row_file_name,
                                      predictions_container=options.predictions_container, env=steps_env)

    @dsl.pipeline(name="manymodels_forecasting", description="manymodels forecasting pipeline (SDK v2)",
                  default_compute=options.compute_name)
    def forecasting(data: _FOLDER, only_files: _LIST) -> dict[str, Any]:
        models = Input(type=AssetTypes.URI_FOLDER, path=options.model_store_uri(), mode=InputOutputModes.RO_MOUNT)
        forecast_node = forecast(data=data, only_files=only_files, models=models)
        forecast_node.name = FORECAST_STEP
        copy_node = copy(forecasting_output=forecast_node.outputs.forecasting_output)
        copy_node.name = COPY_STEP
        copy_node.outputs.predictions = Output(type=AssetTypes.URI_FOLDER, path=options.predictions_uri(),
                                               mode=InputOutputModes.UPLOAD)
        return {}

    return forecasting(data=_placeholder(AssetTypes.URI_FOLDER), only_files=_placeholder(AssetTypes.URI_FILE))


def _placeholder(kind: str) -> Input:
    # The graph is built once to become a component: its input values are never submitted.
    return Input(type=kind, path="azureml://datastores/workspaceblobstore/paths/manymodels/placeholder/")


def _as_component(job: Any, *, name: str, kind: PipelineKind) -> PipelineComponent:
    component = job.component
    if not isinstance(component, PipelineComponent):  # the SDK's dsl always builds one; a guard, not a branch
        raise InvalidValue(f"the {kind} graph did not build a pipeline component")
    component.name = name
    return component


def component_name(pipeline_name: str) -> str:
    """The component name of a pipeline name: Azure ML component names are Python-identifier-like
    (lower-case letters, digits, ``_``), so ``manymodels-training`` is ``manymodels_training``."""
    name = re.sub(r"[^a-z0-9_]", "_", pipeline_name.strip().lower())
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"mm_{name}"
    return name


def name_steps(component: PipelineComponent, *, version: str) -> dict[str, str]:
    """Name the pipeline's own step components ``<pipeline>_<step>`` at ``version``: registering the
    pipeline component registers them as versioned assets too (the SDK registers a pipeline's
    unregistered components first). Registry components (they have an id) keep theirs.
    Returns ``{node: "name:version"}``."""
    named = {}
    for node_name, node in (component.jobs or {}).items():
        child = node.component
        if isinstance(child, Component) and not child.id:
            child.name = f"{component.name}_{node_name}"
            child.version = version
        if isinstance(child, Component):
            named[node_name] = f"{child.name}:{child.version}"
    return named


def stage(config: ParallelRunConfig, settings_file: Path, staging_dir: Path) -> tuple[Path, Path]:
    """The v1 layout (shared/workspace/step_sources.py) plus the parallel-job shim beside the entry scripts."""
    return stage_step_sources(config, settings_file, staging_dir, extra_scoring_files={STAGED_SHIM_NAME: SHIM})


# --------------------------------------------------------------------------- AutoML many models


def stage_automl_steps(settings_file: Path, staging_dir: Path) -> Path:
    """The AutoML steps' code folder: pipelines/amlv2/steps/ beside pipelines/aml/steps/ (whose helpers
    they reuse), ``scoring/model_names.py`` (the one naming rule) and the dataset schema."""
    if not Path(settings_file).is_file():
        raise InvalidValue(f"settings file {settings_file} does not exist")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "__init__.py")
    steps_dir = staging_dir / "automl_steps"
    shutil.copytree(STEPS_DIR, steps_dir, ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(AUTOML_STEPS_DIR, steps_dir, ignore=ignore, dirs_exist_ok=True)
    shutil.copyfile(MODEL_NAMES, steps_dir / MODEL_NAMES.name)
    shutil.copyfile(settings_file, steps_dir / STAGED_SETTINGS_NAME)
    return steps_dir


def _declared_output(component: Component, names: tuple[str, ...] | str, *, needed_by: str) -> str:
    """The first of ``names`` the registry component declares as an output (refused when none is)."""
    wanted = (names,) if isinstance(names, str) else names
    outputs = set((component.outputs or {}).keys())
    found = next((n for n in wanted if n in outputs), None)
    if found is None:
        raise InvalidValue(f"registry component {component.name}:{component.version} has no output "
                           f"{' or '.join(map(repr, wanted))}, which {needed_by} reads; its outputs are "
                           f"{', '.join(sorted(outputs)) or '(none)'}")
    return found


# Keys of the settings file that are the components' inputs; everything else is AutoML's config.
AUTOML_PIPELINE_KEYS = ("max_nodes", "max_concurrency_per_node", "parallel_step_timeout_in_seconds",
                        "retrain_failed_model", "forecast_mode", "forecast_step")
# Keys the dataset schema decides: a settings file that sets them is refused (one source of truth).
AUTOML_SCHEMA_KEYS = ("label_column_name", "time_column_name", "time_series_id_column_names",
                      "partition_column_names", "forecast_horizon", "freq")
AUTOML_REQUIRED = ("task", "primary_metric")


@dataclass(frozen=True, slots=True)
class AutoMLSettings:
    config: Mapping[str, Any]  # the automl_config document the training component reads
    pipeline: Mapping[str, Any]  # the components' own inputs (nodes, concurrency, timeouts, forecast mode)


def automl_settings(schema: DatasetSchema, path: Path = AUTOML_SETTINGS_FILE) -> AutoMLSettings:
    """The AutoML settings file merged with the dataset schema: partition and series-id columns are the
    schema's id columns, the label / time columns, horizon and frequency the schema's."""
    try:
        body = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidValue(f"AutoML settings file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise InvalidValue(f"{Path(path).name}: not valid YAML ({e})") from None
    if not isinstance(body, dict):
        raise InvalidValue(f"{Path(path).name}: expected a mapping of AutoML settings")
    decided = sorted(set(body) & set(AUTOML_SCHEMA_KEYS))
    if decided:
        raise InvalidValue(f"{Path(path).name}: field(s) {', '.join(map(repr, decided))} come from the dataset "
                           f"schema ({schema.source or 'script_settings.json'}); remove them from the AutoML settings")
    missing = [k for k in AUTOML_REQUIRED if not body.get(k)]
    if missing:
        raise InvalidValue(f"{Path(path).name}: field(s) {', '.join(map(repr, missing))} are missing")
    if str(body["task"]) != "forecasting":
        raise InvalidValue(f"{Path(path).name}: field 'task' is {body['task']!r}: expected 'forecasting'")
    # what the product's steps after AutoML's can take (pipelines/amlv2/steps/): one model per series (its
    # name comes from the series' ids) and the batch forecast of the next horizon (rolling is an evaluation)
    for key, allowed, why in (
            ("allow_multi_partitions", False, "the adopted models are one per series, named by its ids"),
            ("forecast_mode", "recursive", "the batch forecast is the next horizon; 'rolling' evaluates on "
                                           "known actuals, which the predictions CSV does not hold")):
        if key in body and body[key] != allowed:
            raise InvalidValue(f"{Path(path).name}: field {key!r} is {body[key]!r}: expected {allowed!r} "
                               f"({why})")
    pipeline = {k: body[k] for k in AUTOML_PIPELINE_KEYS if k in body}
    for key in ("max_nodes", "max_concurrency_per_node", "parallel_step_timeout_in_seconds"):
        value = pipeline.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidValue(f"{Path(path).name}: field {key!r} is {value!r}: expected a whole number >= 1")
    config = {k: v for k, v in body.items() if k not in AUTOML_PIPELINE_KEYS}
    ids = list(schema.id_columns)
    config.update({
        "label_column_name": schema.target_column,
        "time_column_name": schema.timestamp_column,
        "time_series_id_column_names": ids,
        "partition_column_names": ids,  # one model per series, named by its ids, as the custom script trains
        "forecast_horizon": int(schema.horizon),
        "freq": schema.freq,
    })
    if schema.drop_columns:
        config.setdefault("drop_column_names", list(schema.drop_columns))
    return AutoMLSettings(config=config, pipeline=pipeline)


def write_automl_config(settings: AutoMLSettings, staging_dir: Path) -> Path:
    """The ``automl_config`` file the training component reads (uploaded as a data asset at publish)."""
    staging_dir.mkdir(parents=True, exist_ok=True)
    target = staging_dir / "automl_config.yml"
    target.write_text(yaml.safe_dump(dict(settings.config), sort_keys=True))
    return target


def _declared(component: Component, values: Mapping[str, Any], *, required: tuple[str, ...]) -> dict[str, Any]:
    """The ``values`` the registry component declares as inputs (its versions add and drop optional ones);
    a required one it does not declare is refused: the component changed under us."""
    inputs = set((component.inputs or {}).keys())
    lacking = [k for k in required if k not in inputs]
    if lacking:
        raise InvalidValue(f"registry component {component.name}:{component.version} has no input(s) "
                           f"{', '.join(lacking)}; its inputs are {', '.join(sorted(inputs)) or '(none)'}")
    return {k: v for k, v in values.items() if k in inputs and v is not None}


def build_automl_component(kind: PipelineKind | str, options: V2BuildOptions, registry_component: Component, *,
                           settings: AutoMLSettings, staging_dir: Path, name: str | None = None) -> PipelineComponent:
    """The AutoML many-models pipeline of ``kind`` around the registry's component.

    Training: ``raw_data`` = the version's folder; ``automl_config`` = the settings file merged with the
    schema, written to ``staging_dir`` and uploaded when the component is registered (baked in at publish,
    like every other setting of a published pipeline); then ``adopt_automl_models`` after its
    ``run_output``, with the ``dataset_version`` input and the model store. Forecasting: the inference
    component finds the models of the training pipeline's experiment; its raw predictions go to
    ``<predictions datastore>/automl/<job name>/`` and ``automl_predictions`` writes the product's CSV."""
    kind = PipelineKind(kind)
    common = {"compute_name": options.compute_name, **settings.pipeline}
    if kind == PipelineKind.TRAINING:
        config_file = write_automl_config(settings, staging_dir)
        values = _declared(registry_component, {k: v for k, v in common.items()
                                                if k not in ("forecast_mode", "forecast_step")},
                           required=("raw_data", INPUT_AUTOML_CONFIG))

        _declared_output(registry_component, AUTOML_TRAIN_OUTPUT, needed_by=ADOPT_STEP)
        adopt = adopt_automl_models_component(stage_automl_steps(options.settings_file, staging_dir),
                                              settings_name=STAGED_SETTINGS_NAME, env=steps_environment())

        @dsl.pipeline(name="manymodels_automl_training", description="manymodels AutoML many-models training",
                      default_compute=options.compute_name)
        def automl_training(data: _FOLDER, dataset_version: str) -> dict[str, Any]:
            node = registry_component(raw_data=data, automl_config=Input(type=AssetTypes.URI_FILE,
                                                                         path=str(config_file)), **values)
            node.name = AUTOML_TRAIN_STEP
            adopt_node = adopt(automl_output=getattr(node.outputs, AUTOML_TRAIN_OUTPUT),
                               dataset_version=dataset_version)
            adopt_node.name = ADOPT_STEP
            # its MLClient authenticates as the cluster's managed identity (adopt_automl_models.py); the job
            # keeps the default identity, so its mounts use the datastores' credentials like the other steps
            adopt_node.outputs.model_store = Output(type=AssetTypes.URI_FOLDER, path=options.model_store_uri(),
                                                    mode=InputOutputModes.RW_MOUNT)
            return {}

        job = automl_training(data=_placeholder(AssetTypes.URI_FOLDER), dataset_version="0")
    else:
        values = _declared(registry_component, {
            **{k: v for k, v in common.items() if k != "retrain_failed_model"},
            "partition_column_names": " ".join(settings.config["partition_column_names"]),
            "train_experiment_name": options.training_pipeline_name,
            "target_column_name": settings.config["label_column_name"],
            "time_column_name": settings.config["time_column_name"],
            "inference_type": "forecast",
        }, required=("raw_data",))

        forecasts = _declared_output(registry_component, tuple(AUTOML_PREDICTIONS_OUTPUTS),
                                     needed_by=AUTOML_PREDICTIONS_STEP)
        convert = automl_predictions_component(stage_automl_steps(options.settings_file, staging_dir),
                                               settings_name=STAGED_SETTINGS_NAME,
                                               predictions_container=options.predictions_container,
                                               input_type=AUTOML_PREDICTIONS_OUTPUTS[forecasts],
                                               env=steps_environment())

        @dsl.pipeline(name="manymodels_automl_forecasting", description="manymodels AutoML many-models forecasting",
                      default_compute=options.compute_name)
        def automl_forecasting(data: _FOLDER) -> dict[str, Any]:
            node = registry_component(raw_data=data, **values)
            node.name = AUTOML_FORECAST_STEP
            if AUTOML_PREDICTIONS_OUTPUTS[forecasts] == AssetTypes.URI_FOLDER:  # kept beside the CSVs
                setattr(node.outputs, forecasts, Output(
                    type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT,
                    path=f"{options.predictions_uri()}automl/${{{{name}}}}/"))
            convert_node = convert(automl_predictions=getattr(node.outputs, forecasts))
            convert_node.name = AUTOML_PREDICTIONS_STEP
            convert_node.outputs.predictions = Output(type=AssetTypes.URI_FOLDER, path=options.predictions_uri(),
                                                      mode=InputOutputModes.UPLOAD)
            return {}

        job = automl_forecasting(data=_placeholder(AssetTypes.URI_FOLDER))
    return _as_component(job, name=name or f"manymodels_automl_{kind}", kind=kind)
