"""Accuracy on the real Dominick's orange-juice series: every model type and ``auto`` side by side.

Trains each ``model_type`` (``lr``, ``demand``, ``loglog``, the baselines ``naive``, ``snaive``,
``mean``, and ``auto``, which chooses per series) with the product's own entry scripts
(``scoring/train.py`` then ``scoring/forecast.py``, the ParallelRunStep contract) and reports the
MAPE (percent) over every forecast week:

- on the shipped split (train file -> test file);
- at ``--origins`` other forecast origins inside the train file (the last N weeks of the train
  file become the test weeks, ``horizon`` weeks each), so no result rests on one split.

Next to them: ``reference``, the per-series log-log regression log sales ~ log price + advert
fitted with numpy (no seasonality, lags or bias correction) - the bar of
``docs/benchmarks.md``. With ``--statsforecast`` (if installed) AutoETS/AutoARIMA/AutoTheta too.

    .venv/bin/python benchmarks/accuracy_dominicks.py [--train CSV --test CSV --settings JSON --origins 7,14,21,28,35]

The last line is JSON: ``{"series", "weeks", "mape": {type: MAPE}, "origins": {N: {type: MAPE}},
"chosen": {type: series}, "per_series": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scoring"))
import forecast
import forecaster
import train

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "shared" / "data" / "samples" / "dominicks_oj"
TYPES = ("lr", "demand", "loglog", "naive", "snaive", "mean", "auto")


def train_and_forecast(train_file: Path, test_file: Path, settings: Path, work: Path) -> tuple[pd.DataFrame, Counter]:
    shutil.rmtree(work, ignore_errors=True)
    train.init(["--settings-file", str(settings), "--output-dir", str(work / "out"), "--run-id", "accuracy"])
    rows = train.run([str(train_file)])
    bad = rows[rows.status == "failed"]
    if len(bad):
        raise SystemExit(f"training failed for {len(bad)} series: {bad[['series', 'reason']].to_dict('records')}")
    for line in (work / "out" / "manifest").glob("*.jsonl"):
        for entry in map(json.loads, line.read_text().splitlines()):
            shutil.copytree(entry["path"], work / "models" / entry["name"] / "1")
    forecast.init(["--settings-file", str(settings), "--models-dir", str(work / "models"), "--output-dir",
                   str(work / "forecast")])
    out = forecast.run([str(test_file)])
    failed = out[out.status == "failed"]
    if len(failed):
        raise SystemExit(f"forecasting failed: {failed.to_dict('records')}")
    return out, Counter(rows.model_type)


def mape(actual: pd.Series, predicted: pd.Series) -> float:
    return float((100 * (predicted - actual).abs() / actual.abs()).mean())


def reference(train_frame: pd.DataFrame, test_frame: pd.DataFrame, settings: forecaster.ScriptSettings) -> pd.Series:
    """Per series OLS of log(target) on log(Price) and Advert (numpy lstsq), back-transformed by exp."""
    preds = pd.Series(np.nan, index=test_frame.index)
    keys = list(settings.id_columns)
    for key, hist in train_frame.groupby(keys):
        mask = np.logical_and.reduce([test_frame[c] == v for c, v in zip(keys, key, strict=True)])
        fut = test_frame[mask]
        design = np.column_stack([np.ones(len(hist)), np.log(hist["Price"].astype(float)),
                                  hist["Advert"].astype(float)])
        coef, *_ = np.linalg.lstsq(design, np.log(hist[settings.target_column].astype(float)), rcond=None)
        x = np.column_stack([np.ones(len(fut)), np.log(fut["Price"].astype(float)), fut["Advert"].astype(float)])
        preds[fut.index] = np.exp(x @ coef)
    return preds


def statsforecast_mape(train_frame: pd.DataFrame, test_frame: pd.DataFrame,
                       settings: forecaster.ScriptSettings) -> dict[str, float]:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

    keys, ts, y = list(settings.id_columns), settings.timestamp_column, settings.target_column
    out: dict[str, float] = {}
    for name, model in (("AutoETS", AutoETS(season_length=52)), ("AutoTheta", AutoTheta(season_length=52)),
                        ("AutoARIMA", AutoARIMA(season_length=1))):
        started = time.perf_counter()
        errors = []
        for key, hist in train_frame.groupby(keys):
            mask = np.logical_and.reduce([test_frame[c] == v for c, v in zip(keys, key, strict=True)])
            fut = test_frame[mask].sort_values(ts)
            h = hist.assign(ds=pd.to_datetime(hist[ts])).set_index("ds")[y].astype(float)
            h = h.reindex(pd.date_range(h.index.min(), h.index.max(), freq=settings.freq)).interpolate()
            df = pd.DataFrame({"unique_id": "s", "ds": h.index, "y": h.to_numpy()})
            fc = StatsForecast(models=[model], freq=settings.freq).forecast(df=df, h=len(fut))
            pred = fc.iloc[:, -1].to_numpy()
            errors.extend(np.abs(pred - fut[y].to_numpy()) / fut[y].to_numpy())
        out[name] = round(100 * float(np.mean(errors)), 2)
        out[f"{name}_seconds"] = round(time.perf_counter() - started, 2)
    return out


def score_all(train_file: Path, test_file: Path, raw: dict, settings: forecaster.ScriptSettings, work: Path,
              ) -> tuple[dict[str, float], dict[str, dict[str, float]], dict[str, int], int]:
    target = settings.target_column
    totals: dict[str, float] = {}
    per_series: dict[str, dict[str, float]] = {}
    chosen: dict[str, int] = {}
    weeks = 0
    work.mkdir(parents=True, exist_ok=True)
    for model_type in TYPES:
        path = work / f"settings.{model_type}.json"
        path.write_text(json.dumps({**raw, "model_type": model_type}))
        with contextlib.redirect_stdout(io.StringIO()):
            out, kinds = train_and_forecast(train_file, test_file, path, work / model_type)
        totals[model_type] = round(mape(out[target], out["Prediction"]), 2)
        weeks = len(out)
        if model_type == "auto":
            chosen = dict(sorted(kinds.items()))
        for key, group in out.groupby(list(settings.id_columns), sort=True):
            label = forecaster.series_label(dict(zip(settings.id_columns, key, strict=True)))
            per_series.setdefault(label, {})[model_type] = round(mape(group[target], group["Prediction"]), 2)
    tr = forecaster.read_table(train_file, settings)
    te = forecaster.read_table(test_file, settings)
    ref = reference(tr, te, settings)
    totals["reference"] = round(mape(te[target].astype(float), ref), 2)
    return totals, per_series, chosen, weeks


def split_at(train_file: Path, weeks_back: int, horizon: int, settings: forecaster.ScriptSettings,
             work: Path) -> tuple[Path, Path]:
    """The train file cut ``weeks_back`` weeks before its last week: (train part, next ``horizon`` weeks)."""
    frame = forecaster.read_table(train_file, settings)
    stamps = pd.to_datetime(frame[settings.timestamp_column])
    last = stamps.max()
    cut = last - pd.Timedelta(weeks=weeks_back)
    head, tail = frame[stamps <= cut], frame[(stamps > cut) & (stamps <= cut + pd.Timedelta(weeks=horizon))]
    work.mkdir(parents=True, exist_ok=True)
    head.to_csv(work / "train.csv", index=False)
    tail.to_csv(work / "test.csv", index=False)
    return work / "train.csv", work / "test.csv"


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=SAMPLES / "dominicks_OJ_2_5_8_train.csv")
    parser.add_argument("--test", type=Path, default=SAMPLES / "dominicks_OJ_2_5_8_test.csv")
    parser.add_argument("--settings", type=Path,
                        default=REPO / "pipelines" / "configuration" / "script_settings.dominicks.json")
    parser.add_argument("--origins", default="7,14,21,28,35",
                        help="other forecast origins: weeks before the end of the train file (empty: none)")
    parser.add_argument("--statsforecast", action="store_true", help="also AutoETS/AutoTheta/AutoARIMA (if installed)")
    args = parser.parse_args(argv)
    raw = json.loads(args.settings.read_text())
    settings = forecaster.ScriptSettings.from_dict(raw)
    columns = [*TYPES, "reference"]
    header = f"{'split':24} {'weeks':>5} " + " ".join(f"{c:>9}" for c in columns) + "   (MAPE %)"
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        work = Path(tmp)
        totals, per_series, chosen, weeks = score_all(args.train, args.test, raw, settings, work / "shipped")
        print(header)
        for label, scores in per_series.items():
            print(f"{label:24} {'':>5} " + " ".join(f"{scores.get(c, float('nan')):9.1f}" for c in columns))
        print(f"{'shipped split':24} {weeks:5d} " + " ".join(f"{totals[c]:9.1f}" for c in columns))
        origins: dict[str, dict[str, float]] = {}
        for weeks_back in [int(w) for w in args.origins.split(",") if w.strip()]:
            train_part, test_part = split_at(args.train, weeks_back, settings.horizon, settings,
                                             work / f"origin{weeks_back}")
            scores, _, _, n = score_all(train_part, test_part, raw, settings, work / f"origin{weeks_back}" / "run")
            origins[str(weeks_back)] = scores
            print(f"{f'train file -{weeks_back} weeks':24} {n:5d} " + " ".join(f"{scores[c]:9.1f}" for c in columns))
        if origins:
            mean = {c: round(float(np.mean([o[c] for o in origins.values()])), 2) for c in columns}
            print(f"{'mean of those origins':24} {'':5} " + " ".join(f"{mean[c]:9.1f}" for c in columns))
            origins["mean"] = mean
        print(f"auto chose: {chosen}")
        extra = {}
        if args.statsforecast:
            extra = statsforecast_mape(forecaster.read_table(args.train, settings),
                                       forecaster.read_table(args.test, settings), settings)
            print(f"statsforecast on the shipped split: {extra}")
    result = {"series": len(per_series), "weeks": weeks, "mape": totals, "origins": origins, "chosen": chosen,
              "per_series": per_series, **({"statsforecast": extra} if extra else {})}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
