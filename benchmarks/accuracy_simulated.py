"""Accuracy on simulated data, whose generating process is known: every model type and ``auto``.

``shared.data.simulate`` draws log sales = level + store effect + elasticity x log price (centred)
+ advert lift x advert + season + AR(1) noise, with per-brand parameters calibrated from the real
Dominick's data (``shared.data.calibration``). This trains each ``model_type`` with the product's
entry scripts on the ``train/`` files of N simulated series, forecasts the first ``horizon`` weeks
of the ``inference/`` files and reports, per type, the MAPE; next to it:

- ``oracle``: the MAPE a forecaster that knew every parameter would still make because of the
  noise alone - the expected absolute percentage error of the best point forecast of
  exp(AR(1) noise), by Monte Carlo with the calibrated noise sd and AR coefficient per brand;
- the elasticity and advert lift that ``loglog`` recovers (median over series) against the true ones.

    .venv/bin/python benchmarks/accuracy_simulated.py [--series 600 --seed 0]

The last line is JSON: ``{"series", "weeks", "mape": {type: MAPE}, "oracle_mape", "recovered": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make the checkout importable
from shared.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scoring"))
import forecast
import forecaster
import train

from shared.data.calibration import BRANDS, calibrate
from shared.data.simulate import write_simulated

TYPES = ("lr", "demand", "loglog", "snaive", "auto")


def run_type(model_type: str, raw: dict, sim: Path, work: Path) -> tuple[pd.DataFrame, Counter, dict[str, list]]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = work / "settings.json"
    settings.write_text(json.dumps({**raw, "model_type": model_type}))
    with contextlib.redirect_stdout(io.StringIO()):
        train.init(["--settings-file", str(settings), "--output-dir", str(work / "out")])
        rows = train.run(sorted(str(p) for p in (sim / "train").glob("*.csv")))
        coefs: dict[str, list] = {b: [] for b in BRANDS}
        for line in (work / "out" / "manifest").glob("*.jsonl"):
            for entry in map(json.loads, line.read_text().splitlines()):
                shutil.copytree(entry["path"], work / "models" / entry["name"] / "1")
                model = forecaster.load_model(entry["path"])
                if model.kind == "loglog":
                    coefs[model.ids["Brand"]].append(model.coef[: len(model.exog_columns)])
        horizon = int(raw["horizon"])
        inference = work / "inference"
        inference.mkdir()
        for path in (sim / "inference").glob("*.csv"):
            pd.read_csv(path).head(horizon).to_csv(inference / path.name, index=False)
        forecast.init(["--settings-file", str(settings), "--models-dir", str(work / "models"),
                       "--output-dir", str(work / "forecast")])
        out = forecast.run(sorted(str(p) for p in inference.glob("*.csv")))
    return out, Counter(rows.model_type), coefs


def oracle_mape(rng: np.random.Generator) -> dict[str, float]:
    """Per brand: min over c of E|exp(e) - c| / exp(e), e the stationary AR(1) noise."""
    cal = calibrate()
    out = {}
    for brand in BRANDS:
        b = cal.brands[brand]
        sd = b.noise_sd / np.sqrt(1 - b.noise_ar ** 2)
        e = rng.normal(0, sd, 200_000)
        grid = np.exp(np.linspace(-2 * sd * sd - 0.5, 0.5, 200))
        out[brand] = round(100 * float(min(np.mean(np.abs(np.exp(e) - c) / np.exp(e)) for c in grid)), 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    raw = json.loads((REPO_ROOT / "pipelines" / "configuration" / "script_settings.json").read_text())
    cal = calibrate()
    mapes: dict[str, float] = {}
    chosen: dict[str, int] = {}
    recovered: dict[str, dict[str, float]] = {}
    weeks = 0
    with tempfile.TemporaryDirectory(prefix="accuracy-sim-") as tmp:
        sim = Path(tmp) / "sim"
        write_simulated(sim, series=args.series, seed=args.seed)
        for model_type in TYPES:
            out, kinds, coefs = run_type(model_type, raw, sim, Path(tmp) / model_type)
            ok = out[(out.status == "ok") & (out.Quantity > 0)]
            weeks = len(ok)
            mapes[model_type] = round(float((100 * (ok.Prediction - ok.Quantity).abs() / ok.Quantity).mean()), 2)
            if model_type == "auto":
                chosen = dict(sorted(kinds.items()))
            if model_type == "loglog":
                for brand, items in coefs.items():
                    if items:  # exog order of the files: Advert, Price
                        stack = np.array(items)
                        recovered[brand] = {"advert_lift": round(float(np.median(stack[:, 0])), 3),
                                            "true_advert_lift": round(cal.brands[brand].advert_lift, 3),
                                            "elasticity": round(float(np.median(stack[:, 1])), 3),
                                            "true_elasticity": round(cal.brands[brand].elasticity, 3)}
    oracle = oracle_mape(np.random.default_rng(args.seed))
    print(f"{'':10} " + " ".join(f"{t:>8}" for t in TYPES) + f" {'oracle':>8}   (MAPE %, {weeks} weeks)")
    print(f"{'all':10} " + " ".join(f"{mapes[t]:8.1f}" for t in TYPES)
          + f" {float(np.mean(list(oracle.values()))):8.1f}")
    print(f"auto chose: {chosen}; oracle per brand: {oracle}")
    print(f"loglog recovers (median over series): {recovered}")
    result = {"series": args.series, "weeks": weeks, "mape": mapes, "oracle_mape": oracle, "chosen": chosen,
              "recovered": recovered}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
