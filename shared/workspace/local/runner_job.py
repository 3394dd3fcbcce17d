"""One run's steps, after the runner has started its worker processes (see :mod:`runner`).

Inputs, the ParallelRunStep (on the pre-started :class:`LocalParallelRun`), registration or
predictions, then the run record and the workspace event. Whatever happens (an exception,
SIGTERM), the run ends as completed or failed: never left running.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from shared.data.schema import DatasetSchema
from shared.workspace.base import PipelineKind, Run, RunStatus, SeriesFailure
from shared.workspace.local import events as workspace_events
from shared.workspace.local import runner_inputs, runner_steps
from shared.workspace.local.db import utc_now
from shared.workspace.local.runner import RESULTS_FILE, run_dir
from shared.workspace.local.runner_pool import LocalParallelRun
from shared.workspace.local.runner_progress import ProgressReporter
from shared.workspace.local.workspace import LocalWorkspace
from shared.workspace.partition import partition

log = logging.getLogger("manymodels.runner")


class RunAborted(Exception):
    """The job stopped early (threshold, broken entry script): the run fails with this message."""


def predictions_file_name(run: Run, *, today: datetime | None = None) -> str:
    day = (today or datetime.now(UTC)).strftime("%Y%m%d")
    return f"forecasts_{day}_{run.run_id}.csv"


class RunExecution:
    """Executes one run and keeps its record up to date."""

    def __init__(self, workspace: LocalWorkspace, run: Run, pool: LocalParallelRun) -> None:
        self.ws = workspace
        self.run = run
        self.pool = pool
        self.dir = run_dir(workspace.home, run.run_id)
        self.outputs_dir = self.dir / "outputs"
        self.counts: dict[str, int] = {}
        self.outputs: dict[str, str] = {}
        self.failures: list[SeriesFailure] = []
        self.fallback: list[dict[str, str]] = []

    # ------------------------------------------------------------------ recording

    def record(self, **counts: int) -> None:
        self.counts.update(counts)
        self.ws.runs.update(self.run.run_id, counts=counts)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        log.info("step %s: started", name)
        try:
            yield
        finally:
            ms = int((time.perf_counter() - started) * 1000)
            log.info("step %s: %.1fs", name, ms / 1000)
            self.record(**{f"{name}_ms": ms})

    # ------------------------------------------------------------------ steps

    def execute(self) -> None:
        config = self.pool.config
        schema = DatasetSchema.load(self.run.parameters.get("settings_file") or None)
        with self.stage("inputs"):
            inputs = self._inputs()
        self.record(files=len(inputs.files))
        batches = partition(inputs.paths, mini_batch_size=config.mini_batch_size)
        log.info("%s files in %s mini-batches of up to %s; %s processes, run_invocation_timeout=%ss, "
                 "run_max_try=%s, error_threshold=%s", len(inputs.paths), len(batches), config.mini_batch_size,
                 config.process_count_per_node, config.run_invocation_timeout, config.run_max_try,
                 config.error_threshold)
        with self.stage("parallel"):
            self.pool.on_progress = ProgressReporter(lambda counts: self.record(**counts))
            outcome = self.pool.run(batches) if batches else None
        rows = self._rows(outcome, inputs, schema)
        if outcome is not None and outcome.aborted:
            raise RunAborted(outcome.aborted)
        if self.run.kind == PipelineKind.TRAINING:
            with self.stage("registration"):
                self._register(rows)
        else:
            with self.stage("predictions"):
                self._predictions(rows)

    def _inputs(self) -> runner_inputs.RunInputs:
        dataset = self.ws.datasets.get(self.run.dataset_name, self.run.dataset_version)
        mode = str(self.run.parameters.get("mode", "all")) if self.run.kind == PipelineKind.TRAINING else "all"
        files = runner_inputs.select(dataset, mode=mode)
        log.info("dataset %s:%s has %s files; mode=%s selects %s", dataset.name, dataset.version,
                 len(dataset.files), mode, len(files))
        return runner_inputs.resolve(files, datastore=dataset.datastore, storage=self.ws.storage,
                                     inputs_dir=self.dir / "inputs")

    def _rows(self, outcome, inputs, schema: DatasetSchema) -> runner_steps.RunRows:
        if outcome is None:
            rows = runner_steps.RunRows(frame=pd.DataFrame(),
                                        counts={"files": 0, "rows": 0, "succeeded": 0, "fallback": 0, "failed": 0})
        else:
            training = self.run.kind == PipelineKind.TRAINING
            series_of = runner_steps.training_series if training else _forecast_series(schema)
            rows = runner_steps.collect_rows(outcome, inputs, series_of=series_of)
        self.failures, self.fallback = rows.failures, rows.fallback
        self.record(**rows.counts)
        return rows

    def _register(self, rows: runner_steps.RunRows) -> None:
        models = runner_steps.read_manifest(self.outputs_dir, rows.frame)
        log.info("registering %s models", len(models))
        registered = runner_steps.register(self.ws.models, models,
                                           progress=lambda n: self.record(models_registered=n))
        self.record(models_registered=registered)

    def _predictions(self, rows: runner_steps.RunRows) -> None:
        predictions = runner_steps.prediction_rows(rows.frame)
        path = self.outputs_dir / predictions_file_name(self.run)
        runner_steps.write_predictions(predictions, path)
        self.outputs["predictions_file"] = str(path)
        self.record(predictions=len(predictions))
        self.outputs["predictions"] = runner_steps.upload_predictions(
            self.ws.storage, self.ws.settings.predictions_container, path)
        log.info("%s prediction rows uploaded to %s", len(predictions), self.outputs["predictions"])

    # ------------------------------------------------------------------ ending

    def write_results(self, status: RunStatus, error: str | None) -> None:
        body: dict[str, Any] = {"run_id": self.run.run_id, "status": str(status), "error": error,
                                "counts": self.counts, "outputs": self.outputs,
                                "failed": [{"file": f.file, "series": f.series, "reason": f.reason}
                                           for f in self.failures],
                                "fallback": self.fallback}
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{RESULTS_FILE}.tmp"
        tmp.write_text(json.dumps(body, indent=1, default=str))
        tmp.replace(self.dir / RESULTS_FILE)


def _forecast_series(schema: DatasetSchema):
    def series_of(record: Mapping[str, Any]) -> str:
        try:
            return schema.series_id(record)
        except Exception:  # a file that never parsed has no ids
            return ""

    return series_of


def execute(workspace: LocalWorkspace, run: Run, pool: LocalParallelRun) -> Run:
    """Run ``run`` to its end on ``pool`` (already started); returns the final run."""
    run_id = run.run_id
    job = RunExecution(workspace, run, pool)
    status, error = RunStatus.FAILED, "the runner stopped before the run ended"
    try:
        job.execute()
        status, error = RunStatus.COMPLETED, None
    except RunAborted as e:
        error = str(e)
    except SystemExit as e:
        error = f"the runner was stopped (exit status {e.code})"
        raise
    except KeyboardInterrupt:
        error = "the runner was interrupted"
        raise
    except Exception as e:
        log.exception("run %s failed", run_id)
        error = f"{type(e).__name__}: {getattr(e, 'message', None) or e}"
    finally:
        pool.close()
        final = _finish(workspace, job, status, error)
    return final


def _finish(workspace: LocalWorkspace, job: RunExecution, status: RunStatus, error: str | None) -> Run:
    if error:
        log.error("run %s failed: %s", job.run.run_id, error)
    job.write_results(status, error)
    final = workspace.runs.update(job.run.run_id, status=status, ended=utc_now(), counts=job.counts,
                                  failures=job.failures, outputs=job.outputs, error=error)
    build = workspace_events.run_completed if status == RunStatus.COMPLETED else workspace_events.run_failed
    workspace.events.publish([build(final)])
    log.info("run %s %s: %s", final.run_id, final.status, json.dumps(dict(final.counts), sort_keys=True))
    return final
