"""The local pipeline runner: one detached process per run, Azure ML's pipeline run on one machine.

``python -m shared.workspace.local.runner --home HOME --run-id ID`` (spawned by
:meth:`LocalPipelineStore.submit`) executes the run's steps (:mod:`runner_job`):

1. inputs: the dataset version's files (only the changed ones with ``mode=changed``), downloaded
   from Azurite when the datastore is a blob container;
2. ParallelRunStep: :func:`partition` into mini-batches, worker processes running the entry script
   (:mod:`runner_pool`), rows appended to ``parallel_run_step.txt``;
3. training: bulk registration of the models manifest; forecasting: the predictions CSV, uploaded
   to the predictions container;
4. the run record (status, timings, counts, per-series failures) and the workspace events:
   ``RunCompleted``, or ``RunStatusChanged`` with ``runStatus: Failed``. No ``ModelRegistered``
   per model: thousands of them would flood the Function App, and ``RunCompleted`` already says
   which models changed (the run id is a tag of each).

This module (and the first steps) stay light on purpose: the fork server of the worker processes
starts at once (it spends a second or more importing the entry script's libraries) and workers get
mini-batches as soon as they are ready, while the runner imports what its later steps need in the
background.

The runner's pid is in ``run.outputs["runner_pid"]`` (and ``runner.pid`` in the run folder) so a
reconciler can tell a dead runner. Run folder: ``<home>/runs/<id>/`` with ``logs/``
(``runner.log`` + Azure ML's layout), ``outputs/``, ``inputs/``, ``parallel_run_step.txt`` and
``results.json`` (failures and fallbacks).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from shared.errors import Conflict
from shared.settings import Settings
from shared.workspace.base import PipelineKind, Run, RunStatus
from shared.workspace.local.db import connect, utc_now
from shared.workspace.local.run_folder import run_dir
from shared.workspace.local.runner_pool import LocalParallelRun
from shared.workspace.local.runs import LocalRunStore
from shared.workspace.parallel_config import CONFIG_DIR, ParallelRunConfig, load_parallel_config

log = logging.getLogger(__name__)

DEFAULT_SETTINGS_FILE = CONFIG_DIR / "script_settings.json"


def run_config(run: Run) -> ParallelRunConfig:
    """The ParallelRunStep settings the run was submitted with (published snapshot + overrides)."""
    snapshot = run.parameters.get("parallel_run_config")
    if snapshot:
        return ParallelRunConfig.from_dict(snapshot, source=f"run {run.run_id} parameters")
    return load_parallel_config(run.kind)


AUTOML = "automl"


def job_arguments(run: Run, home: Path, *, training_method: str = "customscript") -> list[str]:
    """The entry script's arguments (docs/architecture.md §4). ``TRAINING_METHOD=automl`` on the local backend is
    the built-in per-series model search: ``scoring/train.py --model-type auto``
    (scoring/forecaster/selection.py); Azure AutoML itself comes with the Azure ML v2 backend."""
    settings_file = str(run.parameters.get("settings_file") or DEFAULT_SETTINGS_FILE)
    common = ["--settings-file", settings_file, "--output-dir", str(run_dir(home, run.run_id) / "outputs")]
    if run.kind == PipelineKind.TRAINING:
        automl = ["--model-type", "auto"] if training_method == AUTOML else []
        return [*common, "--run-id", run.run_id, "--dataset-version", str(run.dataset_version), *automl]
    return [*common, "--models-dir", str(Path(home) / "models")]


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _start(runs: LocalRunStore, home: Path, run_id: str, *, training_method: str = "customscript",
           ) -> tuple[Run, LocalParallelRun] | None:
    """Mark the run running and start its worker processes; None when it is already final."""
    run = runs.get(run_id)
    if run.status.is_final:
        log.warning("run %s is already %s; nothing to do", run_id, run.status)
        return None
    config = run_config(run)
    automl = run.kind == PipelineKind.TRAINING and training_method == AUTOML
    if automl:
        log.info("TRAINING_METHOD=automl: running the built-in per-series model search (model_type auto: a "
                 "rolling-origin backtest of every model type per series) instead of the settings' model_type")
    pool = LocalParallelRun(config, script=config.entry_script_path(),
                            arguments=job_arguments(run, home, training_method=training_method),
                            run_dir=run_dir(home, run_id))
    pool.start()  # first: its fork server spends a second importing the entry script's libraries
    try:
        run = runs.update(run_id, status=RunStatus.RUNNING, started=utc_now(),
                          outputs={"runner_pid": str(os.getpid()), "run_dir": str(run_dir(home, run_id)),
                                   **({"training_method": "automl (local: built-in model search, model_type auto)"}
                                      if automl else {})})
    except Conflict:  # it ended meanwhile (canceled, reconciled)
        pool.close()
        return None
    return run, pool


def _log_cpu() -> None:
    # On a shared machine, wall time alone cannot tell a slow step from a busy neighbour.
    own = resource.getrusage(resource.RUSAGE_SELF)
    log.info("cpu seconds of the runner process: %.2f user + %.2f system", own.ru_utime, own.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.workspace.local.runner",
                                     description="Execute one local pipeline run (started by pipelines.submit).")
    parser.add_argument("--home", required=True, help="the local workspace directory (MANYMODELS_HOME)")
    parser.add_argument("--run-id", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    home = Path(args.home).expanduser().resolve()
    settings = Settings.from_env().replace(home=home)
    runs = LocalRunStore(connect(home))
    started = _start(runs, home, args.run_id, training_method=settings.training_method)
    if started is None:
        return 0
    run, pool = started
    from shared.workspace.local import runner_job  # after the pool started: it imports the later steps' modules

    threading.Thread(target=runner_job.warm_up, args=(run.kind,), name="warm-up", daemon=True).start()
    final = runner_job.execute(settings, runs, run, pool)
    _log_cpu()
    return 0 if final.status == RunStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
