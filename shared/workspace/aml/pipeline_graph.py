"""The Azure ML pipeline graphs (SDK v1), built the way the original accelerator built them.

- training: ``ParallelRunStep`` running ``scoring/train.py`` over the dataset version's files,
  then a ``PythonScriptStep`` that registers the models manifest in bulk and copies each model
  into the model store (``<name>/<version>/`` on the workspace's default datastore);
- forecasting: ``ParallelRunStep`` running ``scoring/forecast.py`` with the model store mounted
  as ``--models-dir``, then a ``PythonScriptStep`` writing ``forecasts_<date>_<runid>.csv`` to
  the predictions container.

The dataset is a pipeline parameter: a submission passes the registered ``FileDataset`` version.
ParallelRunStep settings come from ``pipelines/configuration/*-parallelrunstep-config.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azureml.core import Dataset, Datastore
from azureml.core import Workspace as SdkWorkspace
from azureml.core.runconfig import RunConfiguration
from azureml.data import OutputFileDatasetConfig
from azureml.data.dataset_consumption_config import DatasetConsumptionConfig
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from azureml.pipeline.steps import ParallelRunConfig as SdkParallelRunConfig
from azureml.pipeline.steps import ParallelRunStep, PythonScriptStep

from pipelines.aml.environments import SCORING_ENVIRONMENT, load_environment, steps_environment
from shared.errors import InvalidValue, NotFound
from shared.paths import REPO_ROOT
from shared.settings import Settings
from shared.workspace.aml.datasets import datastore_name
from shared.workspace.base import PipelineKind
from shared.workspace.parallel_config import ParallelRunConfig, load_parallel_config
from shared.workspace.step_sources import STAGED_SETTINGS_NAME, stage_step_sources

# The graph belongs to the adapter that publishes it; the scripts its steps run on compute stay in
# pipelines/aml/steps/ (uploaded alone), the publishing CLI in pipelines/aml/publish.py.
SETTINGS_FILE = REPO_ROOT / "pipelines" / "configuration" / "script_settings.json"
MODEL_STORE_PATH = "manymodels/models"  # on the default datastore, in the registered-model layout
DATASET_PARAMETER = "dataset"
DATASET_VERSION_PARAMETER = "dataset_version"
RUN_ID_PARAMETER = "run_id"
# Step names: lower-case letters, digits and dashes, 3-32 characters (the SDK's rule).
TRAIN_STEP = "train-models"
REGISTER_STEP = "register-models"
FORECAST_STEP = "forecast"
COPY_STEP = "copy-predictions"
DATASET_FOLDERS = {PipelineKind.TRAINING: "train", PipelineKind.FORECASTING: "inference"}


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Where a pipeline runs and what it reads: defaults from the settings and the repository."""

    compute_name: str
    landing_container: str
    predictions_container: str
    settings_file: Path = SETTINGS_FILE
    config_file: Path | None = None  # None -> pipelines/configuration/<kind>-parallelrunstep-config.yml

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> BuildOptions:
        """The settings' defaults; ``changes`` are publish parameters (``settings_file``, ``config_file``)."""
        allowed = ("settings_file", "config_file")
        unknown = sorted(set(changes) - set(allowed))
        if unknown:
            raise InvalidValue(f"unknown pipeline parameter(s) {', '.join(map(repr, unknown))}: Azure ML pipelines "
                               f"take {', '.join(allowed)} at publish")
        paths = {k: Path(v).expanduser().resolve() for k, v in changes.items() if v is not None}
        return cls(compute_name=settings.compute_name, landing_container=settings.landing_container,
                   predictions_container=settings.predictions_container, **paths)


def build_pipeline(ws: SdkWorkspace, kind: PipelineKind | str, options: BuildOptions, *, staging_dir: Path,
                   workflow_provider: Any = None) -> Pipeline:
    """The pipeline of ``kind``. ``staging_dir`` must live until the pipeline is published: the step
    sources (``scoring/`` + the settings file, ``steps/``) are copied there and uploaded from there.
    ``workflow_provider`` is the SDK's service client (None: the workspace's; tests pass a mock)."""
    kind = PipelineKind(kind)
    steps = build_steps(ws, kind, options, staging_dir=staging_dir)
    pipeline = Pipeline(workspace=ws, steps=steps, description=f"manymodels {kind} pipeline",
                        _workflow_provider=workflow_provider)
    errors = pipeline.validate()
    if errors:
        raise InvalidValue(f"the {kind} pipeline is not valid: {'; '.join(map(str, errors))}")
    return pipeline


def build_steps(ws: SdkWorkspace, kind: PipelineKind | str, options: BuildOptions, *,
                staging_dir: Path) -> list[Any]:
    """The steps of the pipeline of ``kind`` (see :func:`build_pipeline`)."""
    kind = PipelineKind(kind)
    config = load_parallel_config(kind, options.config_file)
    compute = _compute(ws, options.compute_name)
    scoring_dir, steps_dir = stage_step_sources(config, options.settings_file, staging_dir)
    if kind == PipelineKind.TRAINING:
        steps = _training_steps(ws, config, compute, options, scoring_dir, steps_dir)
    else:
        steps = _forecasting_steps(ws, config, compute, options, scoring_dir, steps_dir)
    return steps


# --------------------------------------------------------------------------- graphs


def _training_steps(ws: SdkWorkspace, config: ParallelRunConfig, compute: Any, options: BuildOptions,
                    scoring_dir: Path, steps_dir: Path) -> list[Any]:
    default_store = ws.get_default_datastore()
    files = _dataset_input(ws, PipelineKind.TRAINING, options)
    version = PipelineParameter(name=DATASET_VERSION_PARAMETER, default_value="0")
    run_id = PipelineParameter(name=RUN_ID_PARAMETER, default_value="pipeline")
    output = PipelineData(name="training_output", datastore=default_store, is_directory=True)
    train = ParallelRunStep(
        name=TRAIN_STEP,
        parallel_run_config=_parallel_run_config(config, compute, scoring_dir, config.environment),
        inputs=[files],
        output=output,
        arguments=["--settings-file", STAGED_SETTINGS_NAME, "--output-dir", output,
                   "--run-id", run_id, "--dataset-version", version],
        allow_reuse=False,
    )
    model_store = OutputFileDatasetConfig(name="model_store", destination=(default_store, MODEL_STORE_PATH))
    register = PythonScriptStep(
        name=REGISTER_STEP,
        script_name="register_models.py",
        source_directory=str(steps_dir),
        arguments=["--training-output", output, "--model-store", model_store.as_mount(),
                   "--dataset-version", version, "--append-row-file-name", config.append_row_file_name],
        inputs=[output],
        compute_target=compute,
        runconfig=_steps_runconfig(),
        allow_reuse=False,
    )
    return [train, register]


def _forecasting_steps(ws: SdkWorkspace, config: ParallelRunConfig, compute: Any, options: BuildOptions,
                       scoring_dir: Path, steps_dir: Path) -> list[Any]:
    default_store = ws.get_default_datastore()
    files = _dataset_input(ws, PipelineKind.FORECASTING, options)
    models = DatasetConsumptionConfig(
        "models", Dataset.File.from_files(path=[(default_store, MODEL_STORE_PATH)], validate=False)).as_mount()
    output = PipelineData(name="forecasting_output", datastore=default_store, is_directory=True)
    forecast = ParallelRunStep(
        name=FORECAST_STEP,
        parallel_run_config=_parallel_run_config(config, compute, scoring_dir, config.environment),
        inputs=[files],
        side_inputs=[models],
        output=output,
        arguments=["--settings-file", STAGED_SETTINGS_NAME, "--models-dir", models, "--output-dir", output],
        allow_reuse=False,
    )
    predictions_store = _datastore(ws, options.predictions_container)
    predictions = OutputFileDatasetConfig(name="predictions", destination=(predictions_store, "/")).as_upload(
        overwrite=False)
    copy = PythonScriptStep(
        name=COPY_STEP,
        script_name="copy_predictions.py",
        source_directory=str(steps_dir),
        arguments=["--forecasting-output", output, "--predictions", predictions,
                   "--settings-file", STAGED_SETTINGS_NAME,
                   "--append-row-file-name", config.append_row_file_name,
                   "--predictions-container", options.predictions_container],
        inputs=[output],
        compute_target=compute,
        runconfig=_steps_runconfig(),
        allow_reuse=False,
    )
    return [forecast, copy]


# --------------------------------------------------------------------------- pieces


def _parallel_run_config(config: ParallelRunConfig, compute: Any, source_dir: Path,
                         env_name: str) -> SdkParallelRunConfig:
    environment = load_environment(env_name, config.environment_file or SCORING_ENVIRONMENT)
    return SdkParallelRunConfig(
        source_directory=str(source_dir),
        entry_script=config.entry_script,
        mini_batch_size=str(config.mini_batch_size),
        error_threshold=config.error_threshold,
        allowed_failed_count=config.allowed_failed_count,
        output_action=str(config.output_action),
        append_row_file_name=config.append_row_file_name,
        environment=environment,
        compute_target=compute,
        node_count=config.node_count,
        process_count_per_node=config.process_count_per_node,
        run_invocation_timeout=config.run_invocation_timeout,
        run_max_try=config.run_max_try,
        logging_level=str(config.logging_level),
        description=config.description or None,
    )


def _steps_runconfig() -> RunConfiguration:
    runconfig = RunConfiguration()
    runconfig.environment = steps_environment()
    return runconfig


def _dataset_input(ws: SdkWorkspace, kind: PipelineKind, options: BuildOptions) -> DatasetConsumptionConfig:
    """The dataset pipeline parameter. Its default (the whole landing folder of the kind) only makes
    the graph valid: every submission passes the registered dataset version instead."""
    landing = _datastore(ws, options.landing_container)
    default = Dataset.File.from_files(path=[(landing, f"{DATASET_FOLDERS[kind]}/")], validate=False)
    parameter = PipelineParameter(name=DATASET_PARAMETER, default_value=default)
    return DatasetConsumptionConfig(f"{DATASET_FOLDERS[kind]}_files", parameter).as_mount()


def _datastore(ws: SdkWorkspace, container: str) -> Datastore:
    name = datastore_name(f"azureblob://{container}")
    try:
        return Datastore.get(ws, name)
    except Exception as e:
        raise NotFound(f"Azure ML datastore {name!r} (container {container!r}) is not registered in the "
                       "workspace: infra/main.bicep registers it; redeploy the infrastructure") from e


def _compute(ws: SdkWorkspace, name: str) -> Any:
    try:
        return ws.compute_targets[name]
    except KeyError:
        raise NotFound(f"compute target {name!r} does not exist in the workspace: set AML_COMPUTE_NAME to one of "
                       f"{', '.join(sorted(ws.compute_targets)) or '(none)'} or deploy infra/main.bicep") from None
