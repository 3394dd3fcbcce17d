"""``manymodels train`` and ``manymodels forecast``: run the pipelines on a local folder.

Always the local workspace (``MANYMODELS_HOME``): the folder is registered as a new version of the
``train`` or ``inference`` dataset (read in place), the published pipeline is submitted (the
defaults publish themselves on first use), and the command waits, showing progress on stderr.
With ``--json`` the last line is one JSON object (for scripts); the exit status is
0 only when the run completed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.commands.output import emit_json, info
from shared.data.manifest import MANIFEST_NAME
from shared.data.schema import DEFAULT_SETTINGS_FILE
from shared.errors import InvalidValue
from shared.settings import Settings, get_settings
from shared.storage.blobs import BlobStore
from shared.workspace.base import DatasetMode, PipelineKind, Run, RunStatus, TrainingMode
from shared.workspace.local.datasets import files_from_folder, folder_datastore
from shared.workspace.local.workspace import LocalWorkspace

POLL_SECONDS = 0.1
LINE_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal
DATASET_NAMES = {PipelineKind.TRAINING: "train", PipelineKind.FORECASTING: "inference"}


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train (and register) a model per series of a local folder")
    t.add_argument("--data", required=True, metavar="DIR", help="folder of training files (one series per file)")
    t.add_argument("--settings", metavar="FILE", help="dataset schema (default pipelines/configuration/"
                                                      "script_settings.json)")
    t.add_argument("--mode", choices=tuple(TrainingMode),
                   help="train only files changed since the previous version of the dataset, or all "
                        "(default: TRAINING_MODE)")
    t.add_argument("--json", action="store_true", help="print one JSON object last")
    t.set_defaults(func=_train)

    f = sub.add_parser("forecast", help="forecast every series of a local folder with the registered models")
    f.add_argument("--data", required=True, metavar="DIR", help="folder of inference files (future weeks)")
    f.add_argument("--settings", metavar="FILE", help="dataset schema (default pipelines/configuration/"
                                                      "script_settings.json)")
    f.add_argument("--out", metavar="FILE", help="also write the predictions CSV here")
    f.add_argument("--json", action="store_true", help="print one JSON object last")
    f.set_defaults(func=_forecast)


# --------------------------------------------------------------------------- the shared flow


def run_on_folder(
    workspace: Any,
    kind: PipelineKind,
    folder: str | Path,
    *,
    settings_file: str | None = None,
    mode: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = None,
    progress: Callable[[Run], None] | None = None,
) -> Run | None:
    """Register ``folder`` as a dataset version, run the default pipeline of ``kind`` on it, wait.

    Returns the final run, or None when ``mode="changed"`` finds nothing to train: the folder is a
    dataset version a training run already completed on. Raises InvalidValue for a bad folder or
    parameter, OperationTimeout when the run does not end within ``timeout`` seconds (default
    RUN_TIMEOUT_MINUTES).
    """
    settings: Settings = workspace.settings
    files = [f for f in files_from_folder(folder) if Path(f.name).name != MANIFEST_NAME]
    if not files:
        raise InvalidValue(f"--data {folder} holds no data files")
    dataset = workspace.datasets.register(DATASET_NAMES[kind], files, datastore=folder_datastore(folder),
                                          mode=DatasetMode.FULL, tags={"source": "manymodels-cli"})
    run_parameters = dict(parameters or {})
    if settings_file:
        run_parameters["settings_file"] = str(Path(settings_file).resolve())
    if kind == PipelineKind.TRAINING:
        run_parameters["mode"] = mode or settings.training_mode
        if run_parameters["mode"] == "changed" and _trained(workspace, dataset, settings_file):
            return None
    name = settings.training_pipeline_name if kind == PipelineKind.TRAINING else settings.forecasting_pipeline_name
    run: Run = workspace.pipelines.submit(name, dataset, parameters=run_parameters, tags={"submitted_by": "cli"})
    deadline = time.monotonic() + (timeout if timeout is not None else settings.run_timeout_minutes * 60)
    while not run.status.is_final:
        if time.monotonic() > deadline:
            timed_out: Run = workspace.runs.wait(run.run_id, timeout=0.01)  # raises OperationTimeout naming the logs
            return timed_out
        time.sleep(POLL_SECONDS)
        run = workspace.runs.get(run.run_id)
        if progress:
            progress(run)
    return run


def _trained(workspace: Any, dataset: Any, settings_file: str | None) -> bool:
    """Whether a training run already completed on exactly this dataset version and schema file."""
    wanted = (dataset.name, dataset.version, str(Path(settings_file or DEFAULT_SETTINGS_FILE).resolve()))
    return any(r.status == RunStatus.COMPLETED
               and (r.dataset_name, r.dataset_version, r.parameters.get("settings_file")) == wanted
               for r in workspace.runs.list(kind=PipelineKind.TRAINING))


def run_results(run: Run) -> dict[str, Any]:
    """The runner's ``results.json`` of a run (failures, fallbacks), or {} when it has none."""
    folder = run.outputs.get("run_dir")
    path = Path(folder) / "results.json" if folder else None
    if path is None or not path.exists():
        return {}
    results: dict[str, Any] = json.loads(path.read_text())  # written by the runner: a JSON object
    return results


class _ProgressLine:
    """Run progress on stderr: a rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last_line = 0.0

    def __call__(self, run: Run) -> None:
        c = run.counts
        text = (f"{self.verb}: {run.status}, {c.get('files_done', 0)}/{c.get('files', '?')} files, "
                f"{c.get('failed_items', 0)} failed")
        if "models_registered" in c:
            text += f", {c['models_registered']} models registered"
        text += f", {time.monotonic() - self.started:.0f}s"
        if self.tty:
            print(f"\r{text}\033[K", end="" if not run.status.is_final else "\n", file=sys.stderr, flush=True)
        elif run.status.is_final or time.monotonic() - self.last_line >= LINE_EVERY:
            self.last_line = time.monotonic()
            info(text)


def _workspace() -> LocalWorkspace:
    return LocalWorkspace(get_settings())


def _log_hint(run: Run) -> str:
    return f"{run.outputs.get('run_dir', '')}/logs"


# --------------------------------------------------------------------------- commands


def _train(args: argparse.Namespace) -> int:
    workspace = _workspace()
    started = time.monotonic()
    try:
        run = run_on_folder(workspace, PipelineKind.TRAINING, args.data, settings_file=args.settings,
                            mode=args.mode, progress=_ProgressLine("training"))
    finally:
        workspace.close()
    if run is None:
        info(f"nothing changed in {args.data} since the last training run on it: no model to train "
             "(use --mode all to retrain every series)")
        if args.json:
            emit_json({"run_id": None, "status": "unchanged", "models_registered": 0, "failed": [], "fallback": [],
                       "seconds": round(time.monotonic() - started, 3)})
        return 0
    results = run_results(run)
    failed = [{"file": f.file, "series": f.series, "reason": f.reason} for f in run.failures]
    fallback = [{"series": f.get("series", ""), "reason": f.get("reason", "")} for f in results.get("fallback", [])]
    warnings = [{"series": w.get("series", ""), "warnings": w.get("warnings", "")} for w in results.get("warnings", [])]
    model_types = {k.removeprefix("model_type_"): int(v) for k, v in run.counts.items() if k.startswith("model_type_")}
    body = {"run_id": run.run_id, "status": str(run.status),
            "models_registered": int(run.counts.get("models_registered", 0)), "failed": failed,
            "fallback": fallback, "warnings": warnings, "model_types": model_types,
            "seconds": round(time.monotonic() - started, 3)}
    _report(args, run, body, lambda: [
        f"run {run.run_id}: {run.status}",
        f"{body['models_registered']} models registered, {len(fallback)} fallback, {len(failed)} failed, "
        f"{len(warnings)} with warnings in {body['seconds']:.1f}s"
        + (f"; model types: {', '.join(f'{k} {v}' for k, v in model_types.items())}" if model_types else ""),
        *(f"  failed {f['file']} {f['series']}: {f['reason']}" for f in failed[:20]),
        *([f"  ... {len(failed) - 20} more failures"] if len(failed) > 20 else []),
    ])
    return 0 if run.status == RunStatus.COMPLETED else 1


def _forecast(args: argparse.Namespace) -> int:
    workspace = _workspace()
    started = time.monotonic()
    try:
        _check_storage(workspace)
        run = run_on_folder(workspace, PipelineKind.FORECASTING, args.data, settings_file=args.settings,
                            progress=_ProgressLine("forecasting"))
    finally:
        workspace.close()
    assert run is not None  # only training skips
    produced = run.outputs.get("predictions_file", "")
    out = produced
    if args.out and produced and Path(produced).exists():
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(produced, args.out)
        out = str(Path(args.out).resolve())
    failed = [{"file": f.file, "series": f.series, "reason": f.reason} for f in run.failures]
    body = {"run_id": run.run_id, "status": str(run.status), "rows": int(run.counts.get("predictions", 0)),
            "failed": failed, "out": out, "seconds": round(time.monotonic() - started, 3)}
    _report(args, run, body, lambda: [
        f"run {run.run_id}: {run.status}",
        f"{body['rows']} prediction rows, {len(failed)} failed, in {body['seconds']:.1f}s",
        *([f"predictions: {out} (uploaded to {run.outputs['predictions']})"] if "predictions" in run.outputs
          else []),
        *(f"  failed {f['file']} {f['series']}: {f['reason']}" for f in failed[:20]),
    ])
    return 0 if run.status == RunStatus.COMPLETED else 1


def _check_storage(workspace: Any) -> None:
    """Forecasts are uploaded to the predictions container: fail before the run when storage is down."""
    BlobStore(workspace.storage, workspace.settings.predictions_container).ensure_container()


def _report(args: argparse.Namespace, run: Run, body: dict[str, Any], lines: Callable[[], list[str]]) -> None:
    if run.status != RunStatus.COMPLETED:
        info(f"run {run.run_id} {run.status}: {run.error or 'no error recorded'} (logs: {_log_hint(run)})")
    if args.json:
        emit_json(body)
    else:
        print("\n".join(lines()))
