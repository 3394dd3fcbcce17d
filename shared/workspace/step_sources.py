"""What an Azure ML pipeline uploads as its steps' code (SDK v1 and v2 alike): the entry scripts' folder
(``scoring/`` as the ParallelRunStep config names it) and ``pipelines/aml/steps/``, each with a copy of the
dataset schema, staged into a folder that lives until the pipeline is published."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT
from shared.workspace.parallel_config import ParallelRunConfig

STEPS_DIR = REPO_ROOT / "pipelines" / "aml" / "steps"
STAGED_SETTINGS_NAME = "script_settings.json"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")


def stage_step_sources(config: ParallelRunConfig, settings_file: Path, staging_dir: Path, *,
                       extra_scoring_files: Mapping[str, Path] | None = None) -> tuple[Path, Path]:
    """Copy the entry scripts (+ the schema, + ``extra_scoring_files`` as {staged name: source}) and the
    step scripts (+ the schema) into ``staging_dir``; returns (scoring_dir, steps_dir)."""
    source = config.source_path()
    if not (source / config.entry_script).is_file():
        raise InvalidValue(f"entry script {source / config.entry_script} does not exist: check entry_script and "
                           "source_directory in the ParallelRunStep config")
    if not Path(settings_file).is_file():
        raise InvalidValue(f"settings file {settings_file} does not exist")
    scoring_dir = staging_dir / "scoring"
    steps_dir = staging_dir / "steps"
    shutil.copytree(source, scoring_dir, ignore=_IGNORE, dirs_exist_ok=True)
    shutil.copytree(STEPS_DIR, steps_dir, ignore=_IGNORE, dirs_exist_ok=True)
    for name, extra in (extra_scoring_files or {}).items():
        shutil.copyfile(extra, scoring_dir / name)
    for target in (scoring_dir, steps_dir):
        shutil.copyfile(settings_file, target / STAGED_SETTINGS_NAME)
    return scoring_dir, steps_dir
