"""Training pipeline step 2: register the models manifest in bulk.

``scoring/train.py`` writes, per worker process, ``<output>/manifest/<host>-<pid>-<uuid>.jsonl`` lines
``{"name", "path", "tags", "properties"}`` and the artifact dirs ``<output>/models/<name>/``.
This step registers every model (a thread pool: SDK v1 has no bulk call), copies each one into
the model store in the registered-model layout ``<store>/<name>/<version>/`` (what the
forecasting pipeline mounts as ``--models-dir``), and records counts on the pipeline run, so
the ``RunCompleted`` event carries them. A model that fails to register is reported and the
step fails after registering all the others: nothing good is lost. An entry whose name is not an
allowed model name (or whose folder is missing) is a per-series failure in the ``failures``
property, not a failed step: retrying would not change it.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORKERS = 16
# the columns of train.py's run() rows, as ParallelRunStep appends them (space-separated, no header)
TRAIN_COLUMNS = ("file", "series", "model_name", "status", "model_type", "reason", "path", "mse", "rmse", "mae",
                 "mape", "warnings")
REGISTRABLE_STATUSES = ("ok", "fallback")  # train.py rows whose model is registered
MAX_RECORDED_FAILURES = 100  # run properties are small: the full list stays in parallel_run_step.txt
# Azure ML's model-name rule (model_name_validation in azureml/_model_management/_util.py, the same as
# scoring/model_names.py); a valid name is also one plain folder name (no "/", no "..").
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def summarise_training(path: Path) -> tuple[dict[str, int], list[dict[str, str]]]:
    """(counts by status, failed/fallback series) from train.py's append_row output."""
    counts = {"series": 0, "failed": 0, "fallback": 0}
    failures: list[dict[str, str]] = []
    if not path.is_file():
        return counts, failures
    with path.open(newline="") as f:
        for fields in csv.reader(f, delimiter=" ", quotechar='"'):
            if len(fields) == len(TRAIN_COLUMNS) - 1:  # a train.py from before the warnings column
                fields = [*fields, ""]
            if len(fields) != len(TRAIN_COLUMNS):
                continue
            row = dict(zip(TRAIN_COLUMNS, fields, strict=True))
            counts["series"] += 1
            if row["status"] in ("failed", "fallback"):
                counts[row["status"]] += 1
                if row["status"] == "failed" and len(failures) < MAX_RECORDED_FAILURES:
                    failures.append({"file": row["file"], "series": row["series"], "reason": row["reason"]})
    return counts, failures


def registrable_names(path: Path) -> set[str] | None:
    """Model names of the ok/fallback rows in train.py's append_row output (None: no rows file)."""
    if not path.is_file():
        return None
    names: set[str] = set()
    parsed = False
    with path.open(newline="") as f:
        for fields in csv.reader(f, delimiter=" ", quotechar='"'):
            if len(fields) in (len(TRAIN_COLUMNS), len(TRAIN_COLUMNS) - 1):  # before the warnings column
                parsed = True
                row = dict(zip(TRAIN_COLUMNS, fields, strict=False))
                if row["status"] in REGISTRABLE_STATUSES and row["model_name"]:
                    names.add(row["model_name"])
    return names if parsed else None  # rows in another layout do not say: never drop every model


def read_manifest(training_output: Path, *, wanted: Collection[str] | None = None,
                  skipped: Callable[[str], object] | None = None) -> list[dict]:
    """The models to register, one entry per name, sorted by name.

    The one manifest rule of both backends (shared/workspace/local/runner_steps.py reads through
    it too, since this directory is all the Azure ML step gets, shared/workspace/step_sources.py):
    a mini-batch retried after a timeout writes its lines again, so the last complete line of a
    name wins; a broken line (half written by a killed process) is skipped with a message to
    ``skipped`` (default: stderr); with ``wanted`` (the names of the ok/fallback rows) only those.
    Pure: no SDK, stdlib only.
    """
    def report(message: str) -> None:
        if skipped is None:
            print(message, file=sys.stderr)
        else:
            skipped(message)

    found: dict[str, dict] = {}
    for file in sorted((training_output / "manifest").glob("*.jsonl")):
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                    raise ValueError("no model name")
            except ValueError as e:
                report(f"skipping {file.name}:{number}: not a manifest entry ({e})")
                continue
            if wanted is None or entry["name"] in wanted:
                found[entry["name"]] = entry
    return [found[name] for name in sorted(found)]


def entry_problem(entry: dict) -> str | None:
    """Why ``entry`` cannot be registered by name (checked before any path is built from it), or None."""
    name = entry.get("name")
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        return (f"model name {name!r} is not allowed: expected 1-255 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit")
    return None


def artifact_dir(entry: dict, training_output: Path) -> Path:
    """The artifact dir on this node: the path train.py wrote is on another node's mount, so
    fall back to ``<output>/models/<name>``. Only a folder named after the (checked) model name
    is used: train.py writes ``<output>/models/<name>``."""
    problem = entry_problem(entry)
    if problem:
        raise ValueError(problem)
    name = str(entry["name"])
    written = Path(str(entry.get("path") or ""))
    if written.name == name and written.is_dir():
        return written
    return training_output / "models" / name


def model_tags(entry: dict, *, run_id: str, dataset_version: str) -> dict[str, str]:
    tags = {str(k): str(v) for k, v in (entry.get("tags") or {}).items()}
    # train.py only knows the pipeline parameter; the pipeline run's id is known here
    tags["RunId"] = run_id
    tags.setdefault("DatasetVersion", dataset_version)
    return tags


def register_all(entries: Iterable[dict], register: Callable[[dict], int], *,
                 workers: int = WORKERS) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """Register each entry with ``register(entry) -> version``; returns (registered, failed)."""

    def one(entry: dict) -> tuple[str, int | None, str]:
        try:
            return entry["name"], register(entry), ""
        except Exception as e:  # one model's failure must not stop the others
            return entry["name"], None, f"{type(e).__name__}: {e}"

    registered, failed = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for name, version, error in pool.map(one, list(entries)):
            if version is None:
                failed.append((name, error))
            else:
                registered.append((name, version))
    return registered, failed


DATASET_VERSION_FILE = "DATASET_VERSION"  # in <store>/<name>/<version>/: the data the version was trained on
NEWEST_VERSION_FILE = "NEWEST_VERSION"  # in <store>/<name>/: scoring/forecast.py serves the version it names


def copy_to_store(source: Path, store: Path, name: str, version: int, *, dataset_version: str = "") -> None:
    """Copy a registered model to ``<store>/<name>/<version>/`` and point ``<name>/NEWEST_VERSION``
    at the version trained on the newest data when that is not the highest number (a late run on
    older data registers last): the rule of shared/workspace/newest.py, by dataset version then
    version number, so the batch forecast serves what the rollouts deploy."""
    target = store / name / str(version)
    shutil.copytree(source, target, dirs_exist_ok=True)
    (target / DATASET_VERSION_FILE).write_text(dataset_version.strip())
    point_newest(store / name)


def _freshness(version_dir: Path) -> tuple[int, int]:
    try:
        text = (version_dir / DATASET_VERSION_FILE).read_text().strip()
    except OSError:
        text = ""
    return (int(text) if text.isdigit() else -1), int(version_dir.name)


def point_newest(name_dir: Path) -> None:
    versions = [d for d in name_dir.iterdir() if d.is_dir() and d.name.isdigit()]
    if not versions:
        return
    newest = max(versions, key=_freshness)
    pointer = name_dir / NEWEST_VERSION_FILE
    if newest == max(versions, key=lambda d: int(d.name)):
        pointer.unlink(missing_ok=True)
        return
    temporary = name_dir / f".{NEWEST_VERSION_FILE}.{newest.name}.tmp"
    temporary.write_text(newest.name)
    temporary.replace(pointer)  # atomic: a forecast reading it sees the old or the new version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--training-output", required=True, type=Path)
    parser.add_argument("--model-store", required=True, type=Path)
    parser.add_argument("--dataset-version", default="")
    parser.add_argument("--append-row-file-name", default="parallel_run_step.txt")
    args, _ = parser.parse_known_args(argv)

    from azureml.core import Model, Run  # only on Azure ML compute

    run = Run.get_context()
    pipeline_run = run.parent or run
    workspace = run.experiment.workspace
    entries, rejected = [], []
    wanted = registrable_names(args.training_output / args.append_row_file_name)
    for entry in read_manifest(args.training_output, wanted=wanted):
        problem = entry_problem(entry)
        if problem:
            rejected.append({"file": "", "series": str(entry.get("name")), "reason": f"not registered: {problem}"})
        else:
            entries.append(entry)

    def register(entry: dict) -> int:
        source = artifact_dir(entry, args.training_output)
        model = Model.register(
            workspace=workspace, model_path=str(source), model_name=entry["name"],
            tags=model_tags(entry, run_id=pipeline_run.id, dataset_version=args.dataset_version),
            properties={str(k): str(v) for k, v in (entry.get("properties") or {}).items()},
        )
        copy_to_store(source, args.model_store, model.name, int(model.version), dataset_version=args.dataset_version)
        return int(model.version)

    registered, failed = register_all(entries, register)
    for name, error in failed:
        print(f"model {name} was not registered: {error}", file=sys.stderr)
    for entry in rejected:
        print(f"model {entry['series']!r} was not registered: {entry['reason']}", file=sys.stderr)
    counts, failures = summarise_training(args.training_output / args.append_row_file_name)
    counts["failed"] += len(rejected)
    failures = (rejected + failures)[:MAX_RECORDED_FAILURES]
    pipeline_run.add_properties({"models_registered": str(len(registered)),
                                 "models_not_registered": str(len(failed) + len(rejected)),
                                 **{k: str(v) for k, v in counts.items()},
                                 "failures": json.dumps(failures)})
    print(json.dumps({"registered": len(registered), "failed": len(failed)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
