"""Training pipeline step 2: register the models manifest in bulk.

``scoring/train.py`` writes, per worker process, ``<output>/manifest/<pid>.jsonl`` lines
``{"name", "path", "tags", "properties"}`` and the artifact dirs ``<output>/models/<name>/``.
This step registers every model (a thread pool: SDK v1 has no bulk call), copies each one into
the model store in the registered-model layout ``<store>/<name>/<version>/`` (what the
forecasting pipeline mounts as ``--models-dir``), and records counts on the pipeline run, so
the ``RunCompleted`` event carries them. A model that fails to register is reported and the
step fails after registering all the others: nothing good is lost.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WORKERS = 16
# the columns of train.py's run() rows, as ParallelRunStep appends them (space-separated, no header)
TRAIN_COLUMNS = ("file", "series", "model_name", "status", "model_type", "reason", "path", "mse", "rmse", "mae",
                 "mape")
MAX_RECORDED_FAILURES = 100  # run properties are small: the full list stays in parallel_run_step.txt


def summarise_training(path: Path) -> tuple[dict[str, int], list[dict[str, str]]]:
    """(counts by status, failed/fallback series) from train.py's append_row output."""
    counts = {"series": 0, "failed": 0, "fallback": 0}
    failures: list[dict[str, str]] = []
    if not path.is_file():
        return counts, failures
    with path.open(newline="") as f:
        for fields in csv.reader(f, delimiter=" ", quotechar='"'):
            if len(fields) != len(TRAIN_COLUMNS):
                continue
            row = dict(zip(TRAIN_COLUMNS, fields, strict=True))
            counts["series"] += 1
            if row["status"] in ("failed", "fallback"):
                counts[row["status"]] += 1
                if row["status"] == "failed" and len(failures) < MAX_RECORDED_FAILURES:
                    failures.append({"file": row["file"], "series": row["series"], "reason": row["reason"]})
    return counts, failures


def read_manifest(training_output: Path) -> list[dict]:
    """Every manifest line, in file then line order; a bad line is skipped with a message."""
    entries = []
    for file in sorted((training_output / "manifest").glob("*.jsonl")):
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not entry.get("name"):
                    raise ValueError("no model name")
            except ValueError as e:
                print(f"skipping {file.name}:{number}: not a manifest entry ({e})", file=sys.stderr)
                continue
            entries.append(entry)
    return entries


def artifact_dir(entry: dict, training_output: Path) -> Path:
    """The artifact dir on this node: the path train.py wrote is on another node's mount, so
    fall back to ``<output>/models/<name>``."""
    written = Path(str(entry.get("path") or ""))
    if written.is_dir():
        return written
    return training_output / "models" / entry["name"]


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


def copy_to_store(source: Path, store: Path, name: str, version: int) -> None:
    target = store / name / str(version)
    shutil.copytree(source, target, dirs_exist_ok=True)


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
    entries = read_manifest(args.training_output)

    def register(entry: dict) -> int:
        source = artifact_dir(entry, args.training_output)
        model = Model.register(
            workspace=workspace, model_path=str(source), model_name=entry["name"],
            tags=model_tags(entry, run_id=pipeline_run.id, dataset_version=args.dataset_version),
            properties={str(k): str(v) for k, v in (entry.get("properties") or {}).items()},
        )
        copy_to_store(source, args.model_store, model.name, int(model.version))
        return int(model.version)

    registered, failed = register_all(entries, register)
    for name, error in failed:
        print(f"model {name} was not registered: {error}", file=sys.stderr)
    counts, failures = summarise_training(args.training_output / args.append_row_file_name)
    pipeline_run.add_properties({"models_registered": str(len(registered)),
                                 "models_not_registered": str(len(failed)),
                                 **{k: str(v) for k, v in counts.items()},
                                 "failures": json.dumps(failures)})
    print(json.dumps({"registered": len(registered), "failed": len(failed)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
