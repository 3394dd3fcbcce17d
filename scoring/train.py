"""ParallelRunStep entry script: train one model per series of every file in a mini-batch.

Run like Azure ML's ParallelRunStep runs it: this directory first on ``sys.path``, ``sys.argv`` set
to ``[script, --settings-file PATH, --output-dir DIR, --run-id ID, --dataset-version N]``, ``init()``
once per worker process, then ``run(mini_batch)`` with a list of local file paths.

Every series of the whole mini-batch is fitted in one batched call. A file or series that cannot
be used gives a ``failed`` row with its reason; the rest of the mini-batch still trains. Each
trained model is written to ``<output-dir>/models/<name>/model.json`` and described by one JSON
line in ``<output-dir>/manifest/<host>-<pid>-<uuid>.jsonl`` (one file per process; the output dir is
a mount shared by several nodes, whose pids repeat), which the registration step registers in bulk.
The settings' ``model_type`` (or ``--model-type``) is one type for every series or ``auto``, which
chooses each series' type by a backtest (scoring/forecaster/selection.py); the row's ``model_type``
is the type trained, ``warnings`` lists target values that could not be used.
Model names, and so the artifact folders, come only from ``model_names.model_name``: an id value never
becomes a path by itself (``x/../../tmp`` stays one folder name inside ``models/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # imported from tests or tools rather than by the ParallelRunStep runner
    sys.path.insert(0, _HERE)

import forecaster  # noqa: E402
import model_names  # noqa: E402

COLUMNS = ("file", "series", "model_name", "status", "model_type", "reason", "path", "mse", "rmse", "mae", "mape",
           "warnings")
FILE_COLUMN = forecaster.FILE_COLUMN


@dataclass(frozen=True, slots=True)
class TrainConfig:
    settings: forecaster.ScriptSettings
    output_dir: Path
    run_id: str
    dataset_version: str


_config: TrainConfig | None = None
_manifest: tuple[int, str] | None = None  # (pid, file name): a forked worker gets its own file


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description="many-models training entry script")
    parser.add_argument("--settings-file", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--run-id", default="local")
    parser.add_argument("--dataset-version", default="")
    parser.add_argument("--model-type", default="", choices=["", *map(str, forecaster.ModelChoice)],
                        help="override the settings' model_type (TRAINING_METHOD=automl runs 'auto')")
    args, _ = parser.parse_known_args(argv)
    settings = forecaster.ScriptSettings.load(args.settings_file)
    if args.model_type:
        settings = dataclasses.replace(settings, model_type=args.model_type)
    return TrainConfig(settings, Path(args.output_dir).resolve(), args.run_id, str(args.dataset_version))


def init(argv: list[str] | None = None) -> None:
    """Read the arguments (``sys.argv`` unless given) and prepare the output folders."""
    global _config
    _config = parse_args(argv)
    (_config.output_dir / "models").mkdir(parents=True, exist_ok=True)
    (_config.output_dir / "manifest").mkdir(parents=True, exist_ok=True)


def run(mini_batch: list[str]) -> pd.DataFrame:
    """Train every series in ``mini_batch``; one result row per series or unusable file."""
    if _config is None:
        init()
    config = _config
    assert config is not None
    rows: list[tuple[object, ...]] = []  # in COLUMNS order
    tables = _read_files(mini_batch, config.settings, rows)
    results: list[forecaster.FitResult] = []
    for exog, frame in tables.items():
        try:
            series, failures = forecaster.split_series(frame, config.settings, exog_columns=list(exog),
                                                       file_column=FILE_COLUMN)
        except forecaster.SeriesError as e:
            rows.extend(_failed(f, "", str(e), config.settings) for f in dict.fromkeys(frame[FILE_COLUMN]))
            continue
        rows.extend(_failed(";".join(f.files), f.ids, f.reason, config.settings) for f in failures)
        series = _nameable(series, config.settings, rows)
        results.extend(forecaster.fit_many(series, config.settings, list(exog)))
    models_dir = str(config.output_dir / "models")
    manifest_lines = []
    for result in results:
        row, line = _save(result, config, models_dir)
        rows.append(row)
        if line:
            manifest_lines.append(line)
    if manifest_lines:
        with open(config.output_dir / "manifest" / manifest_file_name(), "a", encoding="utf-8") as f:
            f.write("".join(manifest_lines))
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.DataFrame(dict(zip(COLUMNS, map(list, zip(*rows, strict=True)), strict=True)))


def manifest_file_name() -> str:
    """This process's manifest file: unique across the nodes writing to the same mount."""
    global _manifest
    pid = os.getpid()
    if _manifest is None or _manifest[0] != pid:
        host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()).strip(".-")[:63] or "host"
        _manifest = (pid, f"{host}-{pid}-{uuid.uuid4().hex}.jsonl")
    return _manifest[1]


def _nameable(series: list[forecaster.Series], settings: forecaster.ScriptSettings,
              rows: list[tuple[object, ...]]) -> list[forecaster.Series]:
    """The series a model name can be made for; the others (an empty id value) become failed rows."""
    kept = []
    for s in series:
        try:
            forecaster.model_name(settings.model_type, s.ids)
        except forecaster.SeriesError as e:
            rows.append(_failed(";".join(s.files), s.ids, f"no model name can be made: {e}", settings))
        else:
            kept.append(s)
    return kept


def _read_files(paths: list[str], settings: forecaster.ScriptSettings,
                rows: list[tuple[object, ...]]) -> dict[tuple[str, ...], pd.DataFrame]:
    """Read the files and stack those with the same feature columns (so one split and one fit serve them)."""
    tables, unreadable = forecaster.read_tables(paths, settings)
    rows.extend(_failed(path, "", reason, settings) for path, reason in unreadable)
    groups: dict[tuple[str, ...], list[pd.DataFrame]] = {}
    for frame in tables:
        missing = [c for c in (*settings.id_columns, settings.timestamp_column, settings.target_column)
                   if c not in frame.columns]
        if missing:
            reason = (f"missing column(s) {', '.join(missing)} required by the settings; columns found: "
                      f"{', '.join(str(c) for c in frame.columns if c != FILE_COLUMN)}")
            rows.extend(_failed(path, "", reason, settings) for path in dict.fromkeys(frame[FILE_COLUMN]))
            continue
        exog = tuple(settings.exog_columns(c for c in frame.columns if c != FILE_COLUMN))
        groups.setdefault(exog, []).append(frame)
    return {exog: pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            for exog, frames in groups.items()}


def _failed(file: str, ids: dict[str, str] | str, reason: str, settings: forecaster.ScriptSettings,
            ) -> tuple[object, ...]:
    name = ""
    if isinstance(ids, dict) and ids and all(c in ids for c in settings.id_columns):
        try:
            name = forecaster.model_name(settings.model_type, ids)
        except forecaster.SeriesError:
            name = ""  # the reason already says why (see _nameable)
    return (file, forecaster.series_label(ids) if isinstance(ids, dict) else ids, name, "failed", "", reason, "",
            np.nan, np.nan, np.nan, np.nan, "")


def _save(result: forecaster.FitResult, config: TrainConfig, models_dir: str) -> tuple[tuple[object, ...], str]:
    series = result.series
    file = ";".join(series.files)
    if result.model is None:
        return _failed(file, series.ids, result.error, config.settings), ""
    model = result.model
    if not model_names.is_valid(model.name):  # names come from model_names; never a path from raw data
        return _failed(file, series.ids, f"model name {model.name!r} is not allowed as a folder name",
                       config.settings), ""
    try:
        path = str(model.save(os.path.join(models_dir, model.name)))
    except OSError as e:
        return _failed(file, series.ids, f"cannot write the model artifact: {e}", config.settings), ""
    tags = {"ModelType": str(model.kind), "ModelSelection": str(config.settings.model_type), **series.ids,
            **series.tags, "DatasetVersion": config.dataset_version, "RunId": config.run_id}
    line = json.dumps({"name": model.name, "path": path, "tags": tags,
                       "properties": model.properties()}) + "\n"
    scores = model.metrics
    row = (file, forecaster.series_label(series.ids), model.name, "fallback" if model.is_fallback else "ok",
           str(model.kind), model.fallback_reason, path, scores.get("mse", np.nan), scores.get("rmse", np.nan),
           scores.get("mae", np.nan), scores.get("mape", np.nan), "; ".join(model.warnings))
    return row, line
