"""SDK v2 environments and the command components of the pipelines' own steps.

The steps are the v1 pipelines' scripts, unchanged (pipelines/aml/steps/): ``register_models.py``
registers train.py's models manifest in bulk and fills the model store, ``copy_predictions.py`` turns
forecast.py's rows into the predictions CSV. ``TRAINING_METHOD=automl`` adds two (pipelines/amlv2/steps/):
``adopt_automl_models.py`` registers AutoML's models under the product's names and tags and fills the
model store, ``automl_predictions.py`` turns AutoML's forecasts into the same predictions CSV.
All read their inputs as folders and write their
counts on the pipeline job (``Run.get_context().parent``: the pipeline job of a v2 job too), so the
run store reads them the same way (shared/workspace/step_properties.py ``COUNT_PROPERTIES``).

Environments come from the same conda files as v1 (pipelines/configuration/environment-*.yml,
pipelines/aml/environments.py) on an Azure ML base image: ``azure.ai.ml.entities.Environment`` takes
the conda file and an image, not a pip requirements file.
"""

from __future__ import annotations

from pathlib import Path

from azure.ai.ml import Input, Output
from azure.ai.ml.constants import AssetTypes, InputOutputModes
from azure.ai.ml.entities import CommandComponent, Environment

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "pipelines" / "configuration"
SCORING_ENVIRONMENT = CONFIG_DIR / "environment-scoring.yml"
STEPS_ENVIRONMENT = CONFIG_DIR / "environment-steps.yml"
# Azure ML's CPU base image with MPI (the parallel job's runtime needs it), Ubuntu 22.04
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"

REGISTER_STEP = "register_models"
COPY_STEP = "copy_predictions"
ADOPT_STEP = "adopt_automl_models"
AUTOML_PREDICTIONS_STEP = "automl_predictions"


def environment(name: str, conda_file: str | Path, *, image: str = BASE_IMAGE) -> Environment:
    """An environment from a conda ``.yml`` (relative to the repository root, or absolute)."""
    path = Path(conda_file)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        raise InvalidValue(f"environment file {path} does not exist: give a conda .yml relative to the repository root")
    if path.suffix not in (".yml", ".yaml"):
        raise InvalidValue(f"environment file {path.name} is not allowed on SDK v2: expected a conda .yml "
                           "(azure.ai.ml Environment takes a conda file and a base image)")
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
    return Environment(name=name, image=image, conda_file=str(path), description=f"manymodels: {shown}")


def steps_environment(name: str = "manymodels-steps") -> Environment:
    return environment(name, STEPS_ENVIRONMENT)


def register_models_component(steps_dir: Path, *, append_row_file_name: str,
                              env: Environment | None = None) -> CommandComponent:
    """Training step 2 (pipelines/aml/steps/register_models.py): register the manifest, fill the model store."""
    return CommandComponent(
        name=REGISTER_STEP,
        display_name="register models",
        description="Register the models manifest of train.py in bulk and copy them into the model store",
        code=str(steps_dir),
        command=("python register_models.py --training-output ${{inputs.training_output}} "
                 "--model-store ${{outputs.model_store}} --dataset-version ${{inputs.dataset_version}} "
                 f"--append-row-file-name {append_row_file_name}"),
        environment=env or steps_environment(),
        inputs={
            "training_output": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT),
            "dataset_version": Input(type="string"),
        },
        outputs={"model_store": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        is_deterministic=False,  # registers models: never reuse an earlier run's result
    )


def copy_predictions_component(steps_dir: Path, *, settings_name: str, append_row_file_name: str,
                               predictions_container: str, env: Environment | None = None) -> CommandComponent:
    """Forecasting step 2 (pipelines/aml/steps/copy_predictions.py): the predictions CSV."""
    return CommandComponent(
        name=COPY_STEP,
        display_name="copy predictions",
        description="Write forecast.py's rows as forecasts_<date>_<run>.csv to the predictions container",
        code=str(steps_dir),
        command=("python copy_predictions.py --forecasting-output ${{inputs.forecasting_output}} "
                 f"--predictions ${{{{outputs.predictions}}}} --settings-file {settings_name} "
                 f"--append-row-file-name {append_row_file_name} --predictions-container {predictions_container}"),
        environment=env or steps_environment(),
        inputs={"forecasting_output": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT)},
        outputs={"predictions": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.UPLOAD)},
        is_deterministic=False,
    )


def adopt_automl_models_component(steps_dir: Path, *, settings_name: str,
                                  env: Environment | None = None) -> CommandComponent:
    """AutoML training step 2 (pipelines/amlv2/steps/adopt_automl_models.py): AutoML's models under the
    product's names and tags, copied into the model store. ``automl_output`` is the AutoML training's
    ``run_output``: the dependency that runs this step after it."""
    return CommandComponent(
        name=ADOPT_STEP,
        display_name="adopt AutoML models",
        description="Register the models AutoML many models trained in this job as the product's models",
        code=str(steps_dir),
        command=("python adopt_automl_models.py --automl-output ${{inputs.automl_output}} "
                 "--model-store ${{outputs.model_store}} --dataset-version ${{inputs.dataset_version}} "
                 f"--settings-file {settings_name}"),
        environment=env or steps_environment(),
        inputs={
            "automl_output": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT),
            "dataset_version": Input(type="string"),
        },
        outputs={"model_store": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)},
        is_deterministic=False,  # registers models: never reuse an earlier run's result
    )


def automl_predictions_component(steps_dir: Path, *, settings_name: str, predictions_container: str,
                                 input_type: str = AssetTypes.URI_FOLDER,
                                 env: Environment | None = None) -> CommandComponent:
    """AutoML forecasting step 2 (pipelines/amlv2/steps/automl_predictions.py): the predictions CSV.
    ``input_type``: a folder of per-file forecasts, or one collected file (``uri_file``)."""
    mode = InputOutputModes.RO_MOUNT if input_type == AssetTypes.URI_FOLDER else InputOutputModes.DOWNLOAD
    return CommandComponent(
        name=AUTOML_PREDICTIONS_STEP,
        display_name="AutoML predictions",
        description="Write AutoML many models' forecasts as forecasts_<date>_<run>.csv to the predictions container",
        code=str(steps_dir),
        command=("python automl_predictions.py --automl-predictions ${{inputs.automl_predictions}} "
                 f"--predictions ${{{{outputs.predictions}}}} --settings-file {settings_name} "
                 f"--predictions-container {predictions_container}"),
        environment=env or steps_environment(),
        inputs={"automl_predictions": Input(type=input_type, mode=mode)},
        outputs={"predictions": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.UPLOAD)},
        is_deterministic=False,
    )
