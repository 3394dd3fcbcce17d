"""Accuracy on the real Dominick's orange-juice series: lr against seasonal-naive and naive baselines.

Trains ``lr`` with the product's own entry scripts (``scoring/train.py`` then ``scoring/forecast.py``,
the ParallelRunStep contract) on the train file, forecasts the weeks of the test file, and reports
the MAPE (percent) per series and over every test week, next to two baselines computed from the
same train file:

- seasonal naive: the value 52 weeks before each test week (the latest known value at or before
  that week where the data has a gap);
- naive: the last known train value, repeated.

    .venv/bin/python benchmarks/accuracy_dominicks.py [--train CSV --test CSV --settings JSON]

The last line is JSON: ``{"series", "weeks", "mape_lr", "mape_snaive", "mape_naive", "per_series"}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scoring"))
import forecast
import forecaster
import train

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "shared" / "data" / "samples" / "dominicks_oj"


def train_and_forecast(train_file: Path, test_file: Path, settings: Path, work: Path) -> pd.DataFrame:
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
        raise SystemExit(f"forecasting failed: {failed[['Store', 'Brand', 'reason']].to_dict('records')}")
    return out


def baselines(train_file: Path, out: pd.DataFrame, settings: forecaster.ScriptSettings) -> pd.DataFrame:
    history = forecaster.read_table(train_file, settings)
    history[settings.timestamp_column] = pd.to_datetime(history[settings.timestamp_column])
    snaive, naive = [], []
    for row in out.itertuples(index=False):
        ids = {c: getattr(row, c) for c in settings.id_columns}
        mask = np.logical_and.reduce([history[c] == v for c, v in ids.items()])
        series = history[mask].set_index(settings.timestamp_column)[settings.target_column].sort_index()
        when = getattr(row, settings.timestamp_column) - pd.Timedelta(weeks=forecaster.SEASON)
        snaive.append(float(series[:when].iloc[-1]))
        naive.append(float(series.iloc[-1]))
    return out.assign(snaive=snaive, naive=naive)


def mape(actual: pd.Series, predicted: pd.Series) -> float:
    return float((100 * (predicted - actual).abs() / actual.abs()).mean())


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, default=SAMPLES / "dominicks_OJ_2_5_8_train.csv")
    parser.add_argument("--test", type=Path, default=SAMPLES / "dominicks_OJ_2_5_8_test.csv")
    parser.add_argument("--settings", type=Path,
                        default=REPO / "pipelines" / "configuration" / "script_settings.dominicks.json")
    args = parser.parse_args(argv)
    settings = forecaster.ScriptSettings.load(args.settings)
    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        out = train_and_forecast(args.train, args.test, args.settings, Path(tmp))
    out = baselines(args.train, out, settings)
    target = settings.target_column
    per_series = {}
    print(f"{'series':32} {'weeks':>5} {'lr':>8} {'snaive':>8} {'naive':>8}   (MAPE %)")
    for key, group in out.groupby(list(settings.id_columns), sort=True):
        label = forecaster.series_label(dict(zip(settings.id_columns, key, strict=True)))
        scores = {m: round(mape(group[target], group[col]), 2)
                  for m, col in (("lr", "Prediction"), ("snaive", "snaive"), ("naive", "naive"))}
        per_series[label] = scores
        print(f"{label:32} {len(group):5d} {scores['lr']:8.1f} {scores['snaive']:8.1f} {scores['naive']:8.1f}")
    result = {"series": len(per_series), "weeks": len(out),
              "mape_lr": round(mape(out[target], out["Prediction"]), 2),
              "mape_snaive": round(mape(out[target], out["snaive"]), 2),
              "mape_naive": round(mape(out[target], out["naive"]), 2), "per_series": per_series}
    print(f"{'all test weeks':32} {len(out):5d} {result['mape_lr']:8.1f} {result['mape_snaive']:8.1f} "
          f"{result['mape_naive']:8.1f}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
