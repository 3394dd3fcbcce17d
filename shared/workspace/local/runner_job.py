"""One run's steps, after the runner has started its worker processes (see :mod:`runner`).

Inputs and the ParallelRunStep run first, with light modules only: the worker processes get their
mini-batches as soon as they are ready, while what the steps after it need (rows, registration
or predictions, the event) is imported in the background (:func:`warm_up`). Whatever happens (an
exception, SIGTERM), the run ends as completed or failed: never left running.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.settings import Settings
from shared.workspace.base import PipelineKind, Run, RunStatus, SeriesFailure
from shared.workspace.local import events as workspace_events
from shared.workspace.local import runner_inputs
from shared.workspace.local.datasets import LocalDatasetStore
from shared.workspace.local.db import connect, utc_now
from shared.workspace.local.run_folder import RESULTS_FILE, run_dir
from shared.workspace.local.runner_pool import LocalParallelRun, ParallelOutcome
from shared.workspace.local.runner_progress import ProgressReporter
from shared.workspace.local.runs import LocalRunStore
from shared.workspace.partition import partition

if TYPE_CHECKING:
    from shared.data.schema import DatasetSchema
    from shared.workspace.local.runner_steps import RunRows
    from shared.workspace.local.workspace import LocalWorkspace

log = logging.getLogger(__name__)

# Linux <linux/fs.h>: get/set inode flags, and the "top of a directory hierarchy" flag
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS, _FS_TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


def warm_up(kind: PipelineKind) -> None:
    """Import what the steps after the ParallelRunStep need (run in a background thread).

    Training needs no pandas here (the rows arrive as plain columns); forecasting writes and
    uploads its predictions with pandas and the storage SDK.
    """
    import shared.workspace.local.runner_steps
    import shared.workspace.local.workspace

    if kind == PipelineKind.FORECASTING:
        import pandas  # noqa: F401

        import shared.data.schema
        import shared.storage.account  # noqa: F401


class RunAborted(Exception):
    """The job stopped early (threshold, broken entry script): the run fails with this message."""


def predictions_file_name(run: Run, *, today: datetime | None = None) -> str:
    day = (today or datetime.now(UTC)).strftime("%Y%m%d")
    return f"forecasts_{day}_{run.run_id}.csv"


class RunExecution:
    """Executes one run and keeps its record up to date."""

    def __init__(self, settings: Settings, runs: LocalRunStore, run: Run, pool: LocalParallelRun) -> None:
        self.settings = settings
        self.home = Path(settings.home)
        self.runs = runs
        self.run = run
        self.pool = pool
        self.dir = run_dir(self.home, run.run_id)
        self.outputs_dir = self.dir / "outputs"
        self.counts: dict[str, int] = {}
        self.outputs: dict[str, str] = {}
        self.failures: list[SeriesFailure] = []
        self.fallback: list[dict[str, str]] = []
        self.warnings: list[dict[str, str]] = []

    @functools.cached_property
    def workspace(self) -> LocalWorkspace:
        from shared.workspace.local.workspace import LocalWorkspace

        return LocalWorkspace(self.settings)

    # ------------------------------------------------------------------ recording

    def record(self, **counts: int) -> None:
        self.counts.update(counts)
        self.runs.update(self.run.run_id, counts=counts)

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
        with self.stage("inputs"):
            inputs = self._inputs()
        self.record(files=len(inputs.files))
        batches = partition(inputs.paths, mini_batch_size=config.mini_batch_size)
        log.info("%s files in %s mini-batches of up to %s; %s processes, run_invocation_timeout=%ss, "
                 "run_max_try=%s, error_threshold=%s", len(inputs.paths), len(batches), config.mini_batch_size,
                 config.process_count_per_node, config.run_invocation_timeout, config.run_max_try,
                 config.error_threshold)
        if self.run.kind == PipelineKind.TRAINING:
            # train.py writes a folder per model there (docs/architecture.md §4): thousands of them
            (self.outputs_dir / "models").mkdir(parents=True, exist_ok=True)
            spread_subfolders(self.outputs_dir / "models")
        with self.stage("parallel"):
            self.pool.on_progress = ProgressReporter(lambda counts: self.record(**counts))
            outcome = self.pool.run(batches) if batches else None
        rows = self._rows(outcome, inputs)
        if outcome is not None and outcome.aborted:
            raise RunAborted(outcome.aborted)
        if self.run.kind == PipelineKind.TRAINING:
            with self.stage("registration"):
                self._register(rows)
        else:
            with self.stage("predictions"):
                self._predictions(rows)

    def _inputs(self) -> runner_inputs.RunInputs:
        dataset = LocalDatasetStore(self.runs.db).get(self.run.dataset_name, self.run.dataset_version)
        mode = str(self.run.parameters.get("mode", "all")) if self.run.kind == PipelineKind.TRAINING else "all"
        files = runner_inputs.select(dataset, mode=mode)
        log.info("dataset %s:%s has %s files; mode=%s selects %s", dataset.name, dataset.version,
                 len(dataset.files), mode, len(files))
        return runner_inputs.resolve(files, datastore=dataset.datastore,
                                     storage_connection=self.settings.storage_connection,
                                     inputs_dir=self.dir / "inputs")

    def _rows(self, outcome: ParallelOutcome | None, inputs: runner_inputs.RunInputs) -> RunRows:
        from shared.workspace.local import runner_steps

        if outcome is None:
            rows = runner_steps.RunRows(counts={"files": 0, "rows": 0, "succeeded": 0, "fallback": 0, "failed": 0})
        elif self.run.kind == PipelineKind.TRAINING:
            rows = runner_steps.collect_rows(outcome, inputs, series_of=runner_steps.training_series)
        else:
            from shared.data.schema import DatasetSchema  # imports pandas: forecasting needs it anyway

            schema = DatasetSchema.load(self.run.parameters.get("settings_file") or None)
            rows = runner_steps.collect_rows(outcome, inputs, series_of=_forecast_series(schema))
        self.failures, self.fallback, self.warnings = rows.failures, rows.fallback, rows.warnings
        self.record(**rows.counts)
        return rows

    def _register(self, rows: RunRows) -> None:
        from shared.workspace.local import runner_steps

        models = runner_steps.read_manifest(self.outputs_dir, rows.batches)
        log.info("registering %s models", len(models))
        registered = runner_steps.register(self.workspace.models, models, failures=self.failures,
                                           progress=lambda n: self.record(models_registered=n))
        self.record(models_registered=registered, failed=len(self.failures))

    def _predictions(self, rows: RunRows) -> None:
        from shared.workspace.local import runner_steps

        predictions = runner_steps.prediction_rows(rows.frame())
        path = self.outputs_dir / predictions_file_name(self.run)
        runner_steps.write_predictions(predictions, path)
        self.outputs["predictions_file"] = str(path)
        self.record(predictions=len(predictions))
        self.outputs["predictions"] = runner_steps.upload_predictions(
            self.workspace.storage, self.settings.predictions_container, path)
        log.info("%s prediction rows uploaded to %s", len(predictions), self.outputs["predictions"])

    # ------------------------------------------------------------------ ending

    def write_results(self, status: RunStatus, error: str | None) -> None:
        body: dict[str, Any] = {"run_id": self.run.run_id, "status": str(status), "error": error,
                                "counts": self.counts, "outputs": self.outputs,
                                "failed": [{"file": f.file, "series": f.series, "reason": f.reason}
                                           for f in self.failures],
                                "fallback": self.fallback, "warnings": self.warnings}
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{RESULTS_FILE}.tmp"
        tmp.write_text(json.dumps(body, indent=1, default=str))
        tmp.replace(self.dir / RESULTS_FILE)

    def close(self) -> None:
        if "workspace" in self.__dict__:
            self.workspace.close()


def spread_subfolders(folder: str | os.PathLike[str]) -> None:
    """Ask the file system to spread ``folder``'s subfolders over the disk (ext4's "T" attribute, chattr(1)).

    ext4 puts a new folder next to its parent: thousands of model folders (each with its file)
    under one parent fill that part of the disk, and every further mkdir and file searches for
    room (several times slower on a busy, fragmented disk). A no-op where the attribute does not
    exist. (Not for the registry's models dir: its name folders get no file of their own, and
    spreading them costs a search per folder.)
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        (flags,) = struct.unpack("I", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("I", 0)))
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("I", flags | _FS_TOPDIR_FL))
    except OSError:  # not ext2/3/4, or not allowed: folders are just placed the default way
        pass
    finally:
        os.close(fd)


def _forecast_series(schema: DatasetSchema) -> Callable[[Mapping[str, Any]], str]:
    def series_of(record: Mapping[str, Any]) -> str:
        try:
            return schema.series_id(record)
        except Exception:  # a file that never parsed has no ids
            return ""

    return series_of


def execute(settings: Settings, runs: LocalRunStore, run: Run, pool: LocalParallelRun) -> Run:
    """Run ``run`` to its end on ``pool`` (already started); returns the final run."""
    job = RunExecution(settings, runs, run, pool)
    error: str | None
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
        log.exception("run %s failed", run.run_id)
        error = f"{type(e).__name__}: {getattr(e, 'message', None) or e}"
    finally:
        pool.close()
        try:
            final = _finish(job, status, error)
        finally:
            job.close()
    return final


def _finish(job: RunExecution, status: RunStatus, error: str | None) -> Run:
    if error:
        log.error("run %s failed: %s", job.run.run_id, error)
    job.write_results(status, error)
    ended = utc_now()

    def record_end(runs: LocalRunStore) -> Run:
        return runs.update(job.run.run_id, status=status, ended=ended, counts=job.counts, failures=job.failures,
                           outputs=job.outputs, error=error)

    try:
        final = record_end(job.runs)
    except RuntimeError:  # SIGTERM landed inside a transaction on this connection: use a fresh one
        final = record_end(LocalRunStore(connect(job.home)))
    build = workspace_events.run_completed if status == RunStatus.COMPLETED else workspace_events.run_failed
    job.workspace.events.publish([build(final)])
    log.info("run %s %s: %s", final.run_id, final.status, json.dumps(dict(final.counts), sort_keys=True))
    return final
