"""``POST /api/train``: train on a registered dataset version by hand (the latest by default)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.flows.context import Context, json_object, known_fields, optional_choice, optional_int
from shared.ledger import RunEntry, RunState
from shared.workspace.base import PipelineKind, TrainingMode

log = logging.getLogger(__name__)

TRAIN_DATASET = "train"
MODES = tuple(TrainingMode)


@dataclass(frozen=True, slots=True)
class TrainRequest:
    dataset_version: int | None = None  # None: the latest version of "train"
    mode: str | None = None  # None: TRAINING_MODE

    @classmethod
    def parse(cls, body: bytes | str | None) -> TrainRequest:
        """Raises InvalidValue naming the field."""
        data = json_object(body)
        known_fields(data, ("dataset_version", "mode"))
        return cls(dataset_version=optional_int(data, "dataset_version"), mode=optional_choice(data, "mode", MODES))


def start_training(ctx: Context, request: TrainRequest) -> dict[str, Any]:
    """Submit the training pipeline; returns the run (it finishes on its RunCompleted event)."""
    return submit(ctx, PipelineKind.TRAINING, TRAIN_DATASET, request.dataset_version,
                  parameters={"mode": request.mode or ctx.settings.training_mode})


def submit(ctx: Context, kind: PipelineKind, dataset_name: str, version: int | None, *,
           parameters: dict[str, Any]) -> dict[str, Any]:
    """Submit ``kind``'s pipeline on a dataset version and record the run in the ledger."""
    dataset = ctx.workspace.datasets.get(dataset_name, version if version is not None else "latest")
    pipeline = (ctx.settings.training_pipeline_name if kind == PipelineKind.TRAINING
                else ctx.settings.forecasting_pipeline_name)
    run = ctx.workspace.pipelines.submit(pipeline, dataset, parameters=parameters,
                                         tags={"manymodels_source": "http"})
    ctx.ledger.runs.record(RunEntry(run.run_id, str(run.kind), RunState.SUBMITTED, submitted=run.submitted,
                                    dataset_name=dataset.name, dataset_version=dataset.version, source="http",
                                    experiment=run.experiment))
    log.info("%s run %s submitted by hand on %s v%d", kind, run.run_id, dataset.name, dataset.version)
    return {"run_id": run.run_id, "status": str(run.status), "kind": str(run.kind), "pipeline": pipeline,
            "dataset": {"name": dataset.name, "version": dataset.version}, "parameters": dict(run.parameters)}
