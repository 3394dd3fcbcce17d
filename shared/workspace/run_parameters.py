"""Run parameters every backend accepts and checks the same way (the port is shared/workspace/base.py).

The PipelineParameters of a published pipeline: ``mode`` (training: ``changed`` | ``all``),
``settings_file`` (the dataset schema, docs/architecture.md §5), and the ParallelRunStep settings
Azure ML lets a PipelineParameter override. A bad parameter fails the submit, never the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.data.schema import DEFAULT_SETTINGS_FILE, DatasetSchema
from shared.errors import InvalidValue
from shared.run_parameters import TrainingMode
from shared.workspace.base import PipelineKind
from shared.workspace.parallel_config import ParallelRunConfig

MODES = tuple(TrainingMode)
# ParallelRunConfig fields a run may override (the SDK lets PipelineParameters set these)
RUN_OVERRIDABLE = ("mini_batch_size", "process_count_per_node", "node_count", "run_invocation_timeout",
                   "run_max_try", "error_threshold", "allowed_failed_count", "logging_level")
ALLOWED = ("mode", "settings_file", *RUN_OVERRIDABLE)


def run_parameters(kind: PipelineKind, given: Mapping[str, Any], *, base: Mapping[str, Any],
                    default_mode: str | None = None, pin_schema: bool = False,
                   allowed: tuple[str, ...] = ALLOWED, backend: str = "the local backend") -> dict[str, Any]:
    """Check parameters and merge them over the pipeline's defaults.

    ``allowed`` narrows what a backend accepts (Azure ML bakes the schema and ParallelRunStep
    settings in at publish). A run (``pin_schema``) always records the absolute schema file it ran
    with, and a training run its mode (``default_mode`` is TRAINING_MODE).
    """
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        known = sorted(set(given) & set(ALLOWED))
        why = (f" ({', '.join(map(repr, known))} cannot change a run on {backend}: the published pipeline "
               "fixes it; publish again with the new value)") if known else ""
        raise InvalidValue(f"unknown run parameter(s) {', '.join(map(repr, unknown))}; allowed: "
                           f"{', '.join(allowed)}{why}")
    merged = {k: v for k, v in base.items() if k != "parallel_run_config"}
    if kind == PipelineKind.TRAINING and (mode := given.get("mode", base.get("mode", default_mode))) is not None:
        if str(mode).strip().lower() not in MODES:
            raise InvalidValue(f"run parameter mode={mode!r} is not allowed: expected 'changed' or 'all'")
        merged["mode"] = str(mode).strip().lower()
    elif "mode" in given:
        raise InvalidValue("run parameter 'mode' is for training pipelines; a forecasting run uses every file")
    settings_file = given.get("settings_file", base.get("settings_file"))
    if settings_file or pin_schema:
        merged["settings_file"] = str(Path(settings_file or DEFAULT_SETTINGS_FILE).expanduser().resolve())
        DatasetSchema.load(merged["settings_file"])  # a bad schema fails the submit, not the run
    overrides = {k: given[k] for k in RUN_OVERRIDABLE if k in given}
    snapshot = base.get("parallel_run_config")
    if snapshot:
        config = ParallelRunConfig.from_dict(snapshot, source="published pipeline")
        merged["parallel_run_config"] = (config.replace(**overrides) if overrides else config).to_dict()
    elif overrides:
        raise InvalidValue("ParallelRunStep overrides need a published pipeline; publish it first")
    return merged
