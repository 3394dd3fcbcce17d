"""Training throughput: the local training pipeline vs the naive one-model-at-a-time loop.

    .venv/bin/python benchmarks/train_throughput.py --series 11973 --json
    .venv/bin/python benchmarks/train_throughput.py --series 11973 --model-type lr,auto --json

Simulates N series (``shared.data.simulate``), then on the same files:

- pipeline: ``manymodels train`` end to end on the local workspace: dataset version, runner process,
  ParallelRunStep workers running ``scoring/train.py`` (featurise, fit, hold-out metrics, save),
  bulk registration;
- baseline: what it replaces, in one process, one file at a time: pandas features, scikit-learn
  ``LinearRegression`` (hold-out fit + metrics, then a refit on every week), ``joblib.dump``, and
  one ``register_many([model])`` call per model on its own local workspace.

For big N the baseline runs on the first ``--baseline-series`` files (default 500) and its
per-series time is scaled to N (``baseline_series`` says how many were timed). ``--repeat K``
alternates the two K times and reports medians (the machine may be shared: ``load_average``).

Both sides create tens of thousands of folders and files, so the file system's state matters: the
workspaces are all removed at the end, not between repeats (deleting them makes the next run's
folder creation slower for a while on ext4 with ``discard``), and ``fs_create_us`` reports what
creating a folder with a small file cost before and after the runs. The last line is one JSON
object: ``{"series", "seconds", "models_per_s", "failed", "baseline_seconds", "speedup", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make the checkout importable

from shared.commands.pipelines import run_on_folder
from shared.data.schema import DatasetSchema
from shared.data.simulate import write_simulated
from shared.paths import REPO_ROOT
from shared.settings import Settings
from shared.workspace.base import NewModel, PipelineKind
from shared.workspace.local.workspace import LocalWorkspace

LAGS = 4


def _workspace(home: Path) -> LocalWorkspace:
    environ = {**os.environ, "MANYMODELS_HOME": str(home), "MANYMODELS_BACKEND": "local"}
    return LocalWorkspace(Settings.from_env(environ))


def run_pipeline(train_dir: Path, home: Path, settings_file: Path | None = None) -> dict:
    ws = _workspace(home)
    try:
        started = time.perf_counter()
        run = run_on_folder(ws, PipelineKind.TRAINING, train_dir, mode="all", timeout=4 * 3600,
                            settings_file=str(settings_file) if settings_file else None)
        assert run is not None  # mode=all always runs
        seconds = time.perf_counter() - started
    finally:
        ws.close()
    if run.error:
        print(f"pipeline run {run.run_id} {run.status}: {run.error}", file=sys.stderr)
    stages = {k[:-3]: v / 1000 for k, v in run.counts.items() if k.endswith("_ms")}
    return {"seconds": seconds, "status": str(run.status), "run_id": run.run_id,
            "models": int(run.counts.get("models_registered", 0)), "failed": len(run.failures),
            "fallback": int(run.counts.get("fallback", 0)), "stages": stages,
            "model_types": {k.removeprefix("model_type_"): v for k, v in run.counts.items()
                            if k.startswith("model_type_")}}


def settings_for(model_type: str, folder: Path) -> Path:
    """The default dataset settings with ``model_type`` replaced."""
    raw = json.loads((REPO_ROOT / "pipelines" / "configuration" / "script_settings.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"script_settings.{model_type}.json"
    path.write_text(json.dumps({**raw, "model_type": model_type}))
    return path


# --------------------------------------------------------------------------- the naive baseline


def _features(frame: pd.DataFrame, schema: DatasetSchema) -> tuple[pd.DataFrame, pd.Series]:
    frame = frame.sort_values(schema.timestamp_column).copy()
    stamps = pd.to_datetime(frame[schema.timestamp_column])
    features = frame[schema.feature_columns(frame.columns)].astype(float)
    features["week_of_year"] = stamps.dt.isocalendar().week.astype(float).to_numpy()
    for lag in range(1, LAGS + 1):
        features[f"lag_{lag}"] = frame[schema.target_column].shift(lag)
    target = frame[schema.target_column].astype(float)
    usable = features.notna().all(axis=1) & target.notna()
    return features[usable], target[usable]


def _train_one(path: Path, schema: DatasetSchema, out: Path) -> NewModel | None:
    frame = pd.read_csv(path)
    x, y = _features(frame, schema)
    if len(x) <= schema.test_size + 2:
        return None
    x_train, y_train = x.iloc[:-schema.test_size], y.iloc[:-schema.test_size]
    x_test, y_test = x.iloc[-schema.test_size:], y.iloc[-schema.test_size:]
    predicted = LinearRegression().fit(x_train, y_train).predict(x_test)
    error = y_test.to_numpy() - predicted
    mse = float(np.mean(error ** 2))
    metrics = {"mse": mse, "rmse": mse ** 0.5, "mae": float(np.mean(np.abs(error))),
               "mape": float(np.mean(np.abs(error / y_test.to_numpy())) * 100)}
    model = LinearRegression().fit(x, y)
    ids = {c: str(frame[c].iloc[0]) for c in schema.id_columns}
    name = f"{schema.model_type}_" + "_".join(ids[c] for c in sorted(schema.id_columns))
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.pkl")
    return NewModel(name=name, path=str(folder), tags={"ModelType": schema.model_type, **ids},
                    properties={k: str(v) for k, v in metrics.items()})


def run_baseline(files: list[Path], home: Path) -> dict:
    schema = DatasetSchema.load()
    ws = _workspace(home)
    try:
        started = time.perf_counter()
        registered = failed = 0
        for path in files:
            try:
                model = _train_one(path, schema, home / "outputs")
            except Exception:  # the naive loop skips what it cannot fit
                model = None
            if model is None:
                failed += 1
                continue
            ws.models.register_many([model])  # one registration call per model
            registered += 1
        seconds = time.perf_counter() - started
    finally:
        ws.close()
    return {"seconds": seconds, "models": registered, "failed": failed}


def fs_create_us(folder: Path, count: int = 1000) -> float:
    """Microseconds to create a folder holding one small file (what saving a model costs the file system)."""
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for i in range(count):
        (folder / str(i)).mkdir()
        (folder / str(i) / "model.json").write_bytes(b"{}")
    return round((time.perf_counter() - started) / count * 1e6, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=11973)
    parser.add_argument("--baseline-series", type=int, default=500,
                        help="series the naive baseline is timed on (scaled to --series); 0 = all")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run pipeline and baseline this many times, alternating; report the medians")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="keep data and workspaces here (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    parser.add_argument("--model-type", default="",
                        help="comma-separated model types (e.g. lr,auto) to time side by side, alternating, "
                             "without the naive baseline; default: the settings' type against the baseline")
    args = parser.parse_args(argv)

    root = Path(args.workdir or tempfile.mkdtemp(prefix="mm-bench-"))
    try:
        t = time.perf_counter()
        write_simulated(root / "sim", series=args.series, seed=args.seed, overwrite=True)
        simulate_seconds = time.perf_counter() - t
        train_dir = root / "sim" / "train"
        files = sorted(train_dir.glob("*.csv"))
        if args.model_type:
            return _compare_types(args, root, train_dir, simulate_seconds)
        sample = files if args.baseline_series <= 0 else files[:args.baseline_series]

        pipelines, baselines = [], []
        fs_before = fs_create_us(root / "fs-probe-before")
        for i in range(args.repeat):  # alternate the two so a change in machine load hits both
            pipelines.append(run_pipeline(train_dir, root / f"home-pipeline-{i}"))
            baselines.append(run_baseline(sample, root / f"home-baseline-{i}"))
        fs_after = fs_create_us(root / "fs-probe-after")
        pipeline = sorted(pipelines, key=lambda p: p["seconds"])[len(pipelines) // 2]
        baseline = sorted(baselines, key=lambda b: b["seconds"])[len(baselines) // 2]
        baseline_total = baseline["seconds"] * len(files) / len(sample)
        result = {
            "series": args.series,
            "seconds": round(pipeline["seconds"], 3),
            "models_per_s": round(pipeline["models"] / pipeline["seconds"], 1),
            "failed": pipeline["failed"],
            "baseline_seconds": round(baseline_total, 3),
            "speedup": round(baseline_total / pipeline["seconds"], 2),
            "baseline_series": len(sample),
            "baseline_measured_seconds": round(baseline["seconds"], 3),
            "repeat": args.repeat,
            "all_seconds": [round(p["seconds"], 3) for p in pipelines],
            "all_baseline_seconds": [round(b["seconds"], 3) for b in baselines],
            "models_registered": pipeline["models"],
            "fallback": pipeline["fallback"],
            "status": pipeline["status"],
            "stages": {k: round(v, 3) for k, v in pipeline["stages"].items()},
            "simulate_seconds": round(simulate_seconds, 3),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "fs_create_us": [fs_before, fs_after],
        }
        if not args.json:
            print(f"pipeline: {pipeline['models']} models in {pipeline['seconds']:.1f}s; baseline "
                  f"{baseline['models']} models in {baseline['seconds']:.1f}s on {len(sample)} series", file=sys.stderr)
        print(json.dumps(result))
        return 0 if all(p["status"] == "completed" for p in pipelines) else 1
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)


def _compare_types(args: argparse.Namespace, root: Path, train_dir: Path, simulate_seconds: float) -> int:
    """The pipeline with each ``--model-type`` on the same files, alternating per repeat."""
    types = [t.strip() for t in args.model_type.split(",") if t.strip()]
    runs: dict[str, list[dict]] = {t: [] for t in types}
    for i in range(args.repeat):
        for model_type in types:
            runs[model_type].append(run_pipeline(train_dir, root / f"home-{model_type}-{i}",
                                                 settings_for(model_type, root / "settings")))
            if not args.json:
                last = runs[model_type][-1]
                print(f"{model_type}: {last['models']} models in {last['seconds']:.1f}s "
                      f"(types {last['model_types']})", file=sys.stderr)
    by_type = {}
    for model_type, items in runs.items():
        median = sorted(items, key=lambda p: p["seconds"])[len(items) // 2]
        by_type[model_type] = {"seconds": round(median["seconds"], 3),
                               "models_per_s": round(median["models"] / median["seconds"], 1),
                               "all_seconds": [round(p["seconds"], 3) for p in items], "failed": median["failed"],
                               "fallback": median["fallback"], "status": median["status"],
                               "model_types": median["model_types"],
                               "stages": {k: round(v, 3) for k, v in median["stages"].items()}}
    first = types[0]
    result = {"series": args.series, "repeat": args.repeat, "by_type": by_type,
              "ratio_to_first": {t: round(by_type[t]["seconds"] / by_type[first]["seconds"], 2) for t in types},
              "simulate_seconds": round(simulate_seconds, 3), "cpus": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(result))
    return 0 if all(p["status"] == "completed" for items in runs.values() for p in items) else 1


if __name__ == "__main__":
    sys.exit(main())
