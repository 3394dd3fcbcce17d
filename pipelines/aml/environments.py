"""Azure ML environments of the pipelines and webservices, from ``pipelines/configuration``."""

from __future__ import annotations

from pathlib import Path

from azureml.core import Environment

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "pipelines" / "configuration"
SCORING_ENVIRONMENT = CONFIG_DIR / "environment-scoring.yml"
STEPS_ENVIRONMENT = CONFIG_DIR / "environment-steps.yml"
# ParallelRunStep's driver runs inside the entry scripts' environment and needs these.
PRS_RUNTIME = ("azureml-core", "azureml-dataset-runtime[fuse]")


def load_environment(name: str, file: str | Path) -> Environment:
    """An Environment from a conda spec (``.yml``) or a pip requirements file (``.txt``)."""
    path = Path(file)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        raise InvalidValue(f"environment file {path} does not exist: give a conda .yml or a pip requirements "
                           "file relative to the repository root")
    if path.suffix in (".yml", ".yaml"):
        return Environment.from_conda_specification(name, str(path))
    if path.suffix == ".txt":
        env = Environment.from_pip_requirements(name, str(path))
        packages = " ".join(list(env.python.conda_dependencies.pip_packages))
        for package in PRS_RUNTIME:
            if package.split("[")[0] not in packages:
                env.python.conda_dependencies.add_pip_package(package)
        return env
    raise InvalidValue(f"environment file {path.name} is not allowed: expected a conda .yml or a pip .txt file")


def scoring_environment(name: str = "manymodels-scoring") -> Environment:
    return load_environment(name, SCORING_ENVIRONMENT)


def steps_environment(name: str = "manymodels-steps") -> Environment:
    return load_environment(name, STEPS_ENVIRONMENT)
