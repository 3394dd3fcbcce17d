"""ParallelRunStep entry script: batch forecasting with the latest model of every series.

Run like Azure ML's ParallelRunStep runs it (see ``train.py``) with the arguments
``--settings-file PATH --models-dir DIR --output-dir DIR``; ``--models-dir`` is in the
registered-model layout ``<name>/<version>/model.json`` and the highest version wins, unless
``<name>/NEWEST_VERSION`` names another one: the version trained on the newest data, when a late run
registered older data's models last (shared/workspace/newest.py).

Each inference file holds the future weeks of one or many series (exogenous values, optionally the
actual target for evaluation). The forecast of a series starts at its first inference week and runs
recursively to its last one. ``run()`` returns one row per forecast week:
``<timestamp>, Prediction, [<target>], <ids...>, file, status, reason``; a series or file that cannot
be forecast gives one ``failed`` row with its reason and a NaN prediction. A week missing inside a
series' inference weeks is not reported, but the recursion steps through it with the last known
exogenous values carried forward; the series' ``ok`` rows then say so in ``reason`` (the column
layout stays the one pipelines/aml/steps/copy_predictions.py reads). Forecasts of a
non-negative target (the default) are never below zero.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # imported from tests or tools rather than by the ParallelRunStep runner
    sys.path.insert(0, _HERE)

import forecaster  # noqa: E402

FILE_COLUMN = forecaster.FILE_COLUMN
NEWEST_VERSION_FILE = "NEWEST_VERSION"  # the same name as shared/workspace/newest.py (scoring never imports shared)


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    settings: forecaster.ScriptSettings
    models_dir: Path
    output_dir: Path


_config: ForecastConfig | None = None
_models: dict[str, forecaster.Forecaster | None] = {}  # per worker process: models are read once


def parse_args(argv: list[str] | None = None) -> ForecastConfig:
    parser = argparse.ArgumentParser(description="many-models batch forecasting entry script")
    parser.add_argument("--settings-file", required=True)
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--output-dir", default=".")
    args, _ = parser.parse_known_args(argv)
    return ForecastConfig(forecaster.ScriptSettings.load(args.settings_file), Path(args.models_dir),
                          Path(args.output_dir))


def init(argv: list[str] | None = None) -> None:
    """Read the arguments (``sys.argv`` unless given)."""
    global _config
    _config = parse_args(argv)
    _models.clear()
    _config.output_dir.mkdir(parents=True, exist_ok=True)


def run(mini_batch: list[str]) -> pd.DataFrame:
    """Forecast every series in ``mini_batch``; rows per forecast week, or one failed row per series/file."""
    if _config is None:
        init()
    config = _config
    assert config is not None
    settings = config.settings
    failed: list[dict[str, object]] = []
    has_target = False
    requests: list[tuple[forecaster.Series, forecaster.Forecaster, np.ndarray]] = []
    for frame in _read_files(mini_batch, settings, failed):
        has_target = has_target or settings.target_column in frame.columns
        exog = settings.exog_columns(c for c in frame.columns if c != FILE_COLUMN)
        try:
            series, failures = forecaster.split_series(frame, settings, exog_columns=exog, file_column=FILE_COLUMN,
                                                       require_target=settings.target_column in frame.columns)
        except forecaster.SeriesError as e:
            failed.extend(_failed(f, {}, str(e)) for f in dict.fromkeys(frame[FILE_COLUMN]))
            continue
        failed.extend(_failed(";".join(f.files), f.ids, f.reason) for f in failures)
        for s in series:
            try:
                model = _model(config, forecaster.model_name(settings.model_type, s.ids))
                requests.append((s, model, _exog_for(model, s, exog)))
            except forecaster.SeriesError as e:
                failed.append(_failed(";".join(s.files), s.ids, str(e)))
    results = forecaster.forecast_many([m for _, m, _ in requests], [s.start for s, _, _ in requests],
                                       steps=[len(s.target) for s, _, _ in requests],
                                       exog=[x for _, _, x in requests])
    parts: list[tuple[forecaster.Series, pd.DatetimeIndex, np.ndarray, str]] = []
    for (s, _, _), result in zip(requests, results, strict=True):
        if isinstance(result, forecaster.SeriesError):
            failed.append(_failed(";".join(s.files), s.ids, str(result)))
        else:
            parts.append((s, *result, "; ".join(result.warnings)))
    return _table(parts, failed, settings, has_target=has_target)


def _read_files(paths: list[str], settings: forecaster.ScriptSettings,
                failed: list[dict[str, object]]) -> list[pd.DataFrame]:
    tables, unreadable = forecaster.read_tables(paths, settings)
    failed.extend(_failed(path, {}, reason) for path, reason in unreadable)
    usable = []
    for frame in tables:
        missing = [c for c in (*settings.id_columns, settings.timestamp_column) if c not in frame.columns]
        if missing:
            reason = (f"missing column(s) {', '.join(missing)} required by the settings; columns found: "
                      f"{', '.join(str(c) for c in frame.columns if c != FILE_COLUMN)}")
            failed.extend(_failed(path, {}, reason) for path in dict.fromkeys(frame[FILE_COLUMN]))
        else:
            usable.append(frame)
    return usable


def _model(config: ForecastConfig, name: str) -> forecaster.Forecaster:
    if name not in _models:
        directory = _newest_dir(config.models_dir, name) or forecaster.latest_version_dir(config.models_dir, name)
        try:
            _models[name] = forecaster.load_model(directory) if directory else None
        except (OSError, ValueError, KeyError) as e:
            raise forecaster.SeriesError(f"model {name} in {directory} cannot be loaded: {e}") from e
    model = _models[name]
    if model is None:
        raise forecaster.SeriesError(f"no registered model {name} in {config.models_dir}")
    return model


def _newest_dir(models_dir: Path, name: str) -> Path | None:
    """The version ``<name>/NEWEST_VERSION`` names (written by shared/workspace/local/models.py), if it exists."""
    try:
        text = (models_dir / name / NEWEST_VERSION_FILE).read_text().strip()
    except OSError:
        return None
    directory = models_dir / name / text
    return directory if text.isdigit() and directory.is_dir() else None


def _exog_for(model: forecaster.Forecaster, s: forecaster.Series, exog: list[str]) -> np.ndarray:
    if not model.uses_exog:
        return np.zeros((len(s.target), 0))
    missing = [c for c in model.exog_columns if c not in exog]
    if missing:
        raise forecaster.SeriesError(f"inference data lacks {', '.join(missing)}, which model {model.name} needs")
    return s.exog[:, [exog.index(c) for c in model.exog_columns]]


def _failed(file: str, ids: dict[str, str], reason: str) -> dict[str, object]:
    return {"Prediction": np.nan, **ids, "file": file, "status": "failed", "reason": reason}


def _table(parts: list[tuple[forecaster.Series, pd.DatetimeIndex, np.ndarray, str]], failed: list[dict[str, object]],
           settings: forecaster.ScriptSettings, *, has_target: bool) -> pd.DataFrame:
    """One table for the whole mini-batch, built from concatenated arrays (not a frame per series)."""
    columns = [settings.timestamp_column, "Prediction", *([settings.target_column] if has_target else []),
               *settings.id_columns, "file", "status", "reason"]
    tables = []
    if parts:
        # Weeks the file did not hold (calendar gaps inside a series' inference range) are not reported.
        keep = [~np.isnan(s.exog).all(axis=1) if s.exog.shape[1] else np.ones(len(v), bool) for s, _, v, _ in parts]
        counts = [int(k.sum()) for k in keep]
        pairs = list(zip(parts, keep, strict=True))
        ok = {settings.timestamp_column: np.concatenate([stamps[k].to_numpy() for (_, stamps, _, _), k in pairs]),
              "Prediction": np.concatenate([v[k] for (_, _, v, _), k in pairs]),
              settings.target_column: np.concatenate([s.target[k] for (s, _, _, _), k in pairs])}
        for c in settings.id_columns:
            ok[c] = np.repeat([s.ids[c] for s, _, _, _ in parts], counts)
        ok["file"] = np.repeat([";".join(s.files) for s, _, _, _ in parts], counts)
        ok["status"] = "ok"
        ok["reason"] = np.repeat([w for *_, w in parts], counts)  # an ok row's reason: its series' warnings
        tables.append(pd.DataFrame(ok))
    if failed:
        tables.append(pd.DataFrame(failed))
    if not tables:
        return pd.DataFrame(columns=columns)
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    return table.reindex(columns=columns)
