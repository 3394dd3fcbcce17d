"""Local published pipelines: records in the workspace database, runs executed by the local runner.

Like Azure ML: publishing snapshots the pipeline's ParallelRunStep settings (editing the yml later
needs a new publish) and disables older pipelines of the same name; ``submit`` records a queued
run and returns at once, while a detached runner process
(``python -m shared.workspace.local.runner``) executes it and publishes the run's events.

The two default pipelines (``TRAINING_PIPELINE_NAME``, ``FORECASTING_PIPELINE_NAME``) are
published on first submit when nobody published them, so a fresh local workspace just works.

Run parameters (PipelineParameters on Azure ML): ``mode`` (training: ``changed`` | ``all``),
``settings_file`` (the dataset schema, docs/architecture.md §5), and overrides of the ParallelRunStep
settings Azure ML lets a PipelineParameter set (``mini_batch_size``, ``process_count_per_node``,
``node_count``, ``run_invocation_timeout``, ``run_max_try``, ``error_threshold``,
``allowed_failed_count``, ``logging_level``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.errors import Conflict, InvalidValue, NotFound
from shared.paths import REPO_ROOT
from shared.processes import runs_command
from shared.settings import Settings
from shared.workspace.base import (
    DatasetVersion,
    EventSink,
    PipelineKind,
    PipelineStore,
    PublishedPipeline,
    Run,
    RunStatus,
    TrainingMode,
)
from shared.workspace.dataset_versions import changed_files
from shared.workspace.local import events as workspace_events
from shared.workspace.local.db import Database, dumps, loads, utc_now
from shared.workspace.local.run_folder import run_dir
from shared.workspace.local.runs import LocalRunStore
from shared.workspace.parallel_config import load_parallel_config
from shared.workspace.run_parameters import run_parameters as checked_run_parameters

log = logging.getLogger(__name__)

RUNNER_MODULE = "shared.workspace.local.runner"
RUNNER_LOG = "runner.log"
PID_FILE = "runner.pid"
NEVER_STARTED_SECONDS = 120.0  # a queued run with no runner pid this long after submit was never started
# environment the runner needs to see the same workspace and storage as the submitter
_PASSED_SETTINGS = {"AzureWebJobsStorage": "storage_connection", "PREDICTIONS_CONTAINER": "predictions_container",
                    "LANDING_CONTAINER": "landing_container"}


class LocalPipelineStore(PipelineStore):
    def __init__(self, db: Database, *, runs: LocalRunStore, events: EventSink, settings: Settings,
                 home: Path) -> None:
        self.db = db
        self.runs = runs
        self.events = events  # where a run's end is published (RunStatusChanged Failed for a dead runner)
        self.settings = settings
        self.home = home

    # ------------------------------------------------------------------ publish / get

    def publish(
        self,
        name: str,
        kind: PipelineKind,
        *,
        parameters: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> PublishedPipeline:
        """Publish ``name``; older published pipelines of that name are disabled.

        ``parameters`` may hold ``config_file`` (a ParallelRunStep yml other than the repository's),
        ``parallel_run_config`` (field overrides) and default run parameters (``mode``,
        ``settings_file``). The resolved ParallelRunStep settings are stored with the pipeline.

        Raises:
            InvalidValue: a bad config file or parameter.
        """
        kind = PipelineKind(kind)
        params = dict(parameters or {})
        config = load_parallel_config(kind, params.pop("config_file", None))
        overrides = params.pop("parallel_run_config", None) or {}
        if not isinstance(overrides, Mapping):
            raise InvalidValue("pipeline parameter 'parallel_run_config' must be a mapping of ParallelRunConfig fields")
        config = config.replace(**overrides) if overrides else config
        defaults = checked_run_parameters(kind, params, base={}) if params else {}
        stored = {**defaults, "parallel_run_config": config.to_dict()}
        pipeline_id = str(uuid.uuid4())
        created = utc_now()
        with self.db.transaction() as tx:
            version = tx.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM pipelines WHERE name = ?",
                                 (name,)).fetchone()[0]
            tx.execute("UPDATE pipelines SET enabled = 0 WHERE name = ? AND enabled = 1", (name,))
            tx.execute("INSERT INTO pipelines (pipeline_id, name, kind, version, created, parameters, description, "
                       "enabled) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                       (pipeline_id, name, str(kind), version, created, dumps(stored), description))
        log.info("published pipeline %s version %s (%s)", name, version, pipeline_id)
        return PublishedPipeline(name=name, kind=kind, pipeline_id=pipeline_id, version=version, created=created,
                                 parameters=stored, enabled=True)

    def get(self, name: str) -> PublishedPipeline:
        row = self.db.connection().execute(
            "SELECT * FROM pipelines WHERE name = ? AND enabled = 1 ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no published pipeline is called {name!r}; publish it first "
                           f"(the defaults {self._defaults_text()} are published on first submit)")
        return _pipeline(row)

    def list(self, *, name: str | None = None, enabled: bool | None = True) -> list[PublishedPipeline]:
        """Published pipelines, by name then newest version first."""
        where: list[str] = []
        args: list[str | int] = []
        if name is not None:
            where.append("name = ?")
            args.append(name)
        if enabled is not None:
            where.append("enabled = ?")
            args.append(int(enabled))
        sql = "SELECT * FROM pipelines" + (" WHERE " + " AND ".join(where) if where else "")
        return [_pipeline(r) for r in self.db.connection().execute(sql + " ORDER BY name, version DESC", args)]

    # ------------------------------------------------------------------ submit

    def submit(
        self,
        name: str,
        dataset: DatasetVersion,
        *,
        parameters: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Run:
        """Record a queued run of ``name`` on ``dataset`` and start its runner; returns at once.

        Raises:
            NotFound: ``name`` is not published (and is not a default pipeline).
            InvalidValue: a bad run parameter.
        """
        pipeline = self._published_or_default(name)
        run_parameters = checked_run_parameters(pipeline.kind, parameters or {}, base=pipeline.parameters,
                                         default_mode=self.settings.training_mode, pin_schema=True)
        if pipeline.kind == PipelineKind.TRAINING and run_parameters.get("mode") == TrainingMode.CHANGED:
            changed_files(dataset)  # refuses a version with nothing to train, before any run exists
        run_id = str(uuid.uuid4())
        run = Run(
            run_id=run_id, pipeline=name, kind=pipeline.kind, experiment=name, status=RunStatus.QUEUED,
            dataset_name=dataset.name, dataset_version=dataset.version, parameters=run_parameters,
            tags={**{str(k): str(v) for k, v in (tags or {}).items()}, "manymodels_kind": str(pipeline.kind),
                  "dataset_name": dataset.name, "dataset_version": str(dataset.version),
                  "pipeline_id": pipeline.pipeline_id},
            submitted=utc_now(), outputs={"run_dir": str(self.run_dir(run_id))},
        )
        created = self.runs.create(run)
        try:
            self._start_runner(created)
        except BaseException as e:  # a run nobody will execute must not stay queued
            self.runs.update(run_id, status=RunStatus.FAILED, ended=utc_now(),
                                error=f"the runner process could not start: {type(e).__name__}: {e}")
            raise
        return created

    def _published_or_default(self, name: str) -> PublishedPipeline:
        try:
            return self.get(name)
        except NotFound:
            kind = self._default_kind(name)
            if kind is None:
                raise
        log.warning("pipeline %s was never published in %s: publishing it now from %s", name, self.home,
                    "pipelines/configuration")
        return self.publish(name, kind, description=f"default {kind} pipeline (published on first submit)")

    def _default_kind(self, name: str) -> PipelineKind | None:
        settings = self.settings
        return {settings.training_pipeline_name: PipelineKind.TRAINING,
                settings.forecasting_pipeline_name: PipelineKind.FORECASTING}.get(name)

    def _defaults_text(self) -> str:
        s = self.settings
        return f"{s.training_pipeline_name!r} and {s.forecasting_pipeline_name!r}"

    # ------------------------------------------------------------------ runner processes

    def run_dir(self, run_id: str) -> Path:
        return run_dir(self.home, run_id)

    def _start_runner(self, run: Run) -> None:
        folder = self.run_dir(run.run_id)
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["MANYMODELS_HOME"] = str(self.home)
        env["MANYMODELS_BACKEND"] = "local"
        for variable, attribute in _PASSED_SETTINGS.items():
            env[variable] = str(getattr(self.settings, attribute))
        cmd = [sys.executable, "-m", RUNNER_MODULE, "--home", str(self.home), "--run-id", run.run_id]
        with open(folder / "logs" / RUNNER_LOG, "ab") as out:
            process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=REPO_ROOT, env=env, start_new_session=True)
        (folder / PID_FILE).write_text(str(process.pid))
        # reap the child when it ends, so a long-lived submitter (the Function host) keeps no zombies
        threading.Thread(target=process.wait, name=f"runner-{run.run_id[:8]}", daemon=True).start()
        log.info("run %s of %s started: runner pid %s, log %s", run.run_id, run.pipeline, process.pid,
                 folder / "logs" / RUNNER_LOG)

    def runner_pid(self, run_id: str) -> int | None:
        """The pid the runner of ``run_id`` recorded (None: it never started)."""
        return _runner_pid(self.run_dir(run_id))

    def runner_alive(self, run_id: str) -> bool | None:
        """Whether the runner process of ``run_id`` still runs (None: it never recorded a pid)."""
        pid = self.runner_pid(run_id)
        return None if pid is None else _pid_runs(pid, run_id)

    def notice_dead_runner(self, run: Run) -> Run:
        """``run`` failed (and ``RunStatusChanged`` Failed published) when it is not final and its
        runner process is gone, or never started; otherwise ``run`` as it is. The run store calls
        this from ``fail_lost`` (the reconcile flow) and ``wait``, never from a read."""
        if run.status.is_final:
            return run
        alive = self.runner_alive(run.run_id)
        if alive is None and _age_seconds(run.submitted) > NEVER_STARTED_SECONDS:
            error = "no runner process was ever started for this run (the submitter stopped?)"
        elif alive is False:
            error = ("the runner process ended without finishing the run (killed?); see "
                     f"{self.run_dir(run.run_id) / 'logs' / RUNNER_LOG}")
        else:
            return run
        try:
            final = self.runs.update(run.run_id, status=RunStatus.FAILED, ended=utc_now(), error=error)
        except Conflict:  # it ended meanwhile
            return self.runs.get(run.run_id)
        self.events.publish([workspace_events.run_failed(final)])
        return final

    def close(self) -> None:
        """Runners are detached: they keep running (and finish their runs) after this process ends."""


def _pipeline(row: sqlite3.Row) -> PublishedPipeline:
    return PublishedPipeline(name=row["name"], kind=PipelineKind(row["kind"]), pipeline_id=row["pipeline_id"],
                             version=row["version"], created=row["created"], parameters=loads(row["parameters"]),
                             enabled=bool(row["enabled"]))


def _age_seconds(timestamp: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds()


def _runner_pid(folder: Path) -> int | None:
    try:
        return int((folder / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _pid_runs(pid: int, run_id: str) -> bool:
    """True when ``pid`` is a live (not zombie) runner of ``run_id`` (a reused pid does not count)."""
    return runs_command(pid, run_id)  # the runner's command line holds --run-id <run_id>
