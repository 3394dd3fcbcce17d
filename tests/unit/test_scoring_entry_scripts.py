"""train.py and forecast.py under the ParallelRunStep contract: init() once, run(mini_batch) per batch."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import forecast  # scoring/ is on pytest's pythonpath (pyproject.toml)
import forecaster as fc
import numpy as np
import pandas as pd
import pytest
import train

SCORING = Path(__file__).resolve().parents[2] / "scoring"

# these tests pin the seed's `lr` model's behaviour; the repo's file (model_type auto) differs only in
# model_type, which test_the_lr_settings_are_the_repo_settings_with_lr keeps so
REPO_SETTINGS = Path(__file__).with_name("script_settings.lr.json")
TRAIN_COLUMNS = ["file", "series", "model_name", "status", "model_type", "reason", "path", "mse", "rmse", "mae",
                 "mape", "warnings"]


def sales(store: int, brand: str, weeks: int, *, seed: int, start: str = "1990-06-14", freq: str = "W-THU",
          names: dict[str, str] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, weeks).round(2)
    advert = rng.integers(0, 2, weeks)
    quantity = (9000 - 1500 * price + 900 * advert + rng.normal(0, 200, weeks)).round()
    frame = pd.DataFrame({"WeekStarting": pd.date_range(start, periods=weeks, freq=freq).strftime("%Y-%m-%d"),
                          "Store": store, "Brand": brand, "Quantity": quantity, "Advert": advert, "Price": price,
                          "Revenue": quantity * price, "StoreGroup10": f"100{store % 10}",
                          "StoreGroup100": f"10{store % 100:02d}", "StoreGroup1000": str(store)})
    return frame.rename(columns=names or {})


def write(directory: Path, name: str, frame: pd.DataFrame) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_csv(directory / name, index=False)
    return str(directory / name)


def register(output_dir: Path, models_dir: Path, version: int) -> None:
    """What the registration step does: copy each manifest entry to <name>/<version>/."""
    for manifest in (output_dir / "manifest").glob("*.jsonl"):
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            shutil.copytree(entry["path"], models_dir / entry["name"] / str(version), dirs_exist_ok=True)


@pytest.fixture
def train_files(tmp_path: Path) -> list[str]:
    data = tmp_path / "train"
    many = pd.concat([sales(1001, b, 90, seed=i) for i, b in enumerate(["dominicks", "tropicana", "minute.maid"])])
    nans = sales(1003, "dominicks", 90, seed=7)
    nans["Quantity"] = np.nan
    garbage = data / "Store1004_garbage.csv"
    data.mkdir(parents=True)
    garbage.write_bytes(b"\x00\x01\xff\xfe not a csv \x00")
    return [
        write(data, "Store1001_all.csv", many),
        write(data, "Store1002_dominicks.csv", sales(1002, "dominicks", 90, seed=5)),
        write(data, "Store1005_short.csv", sales(1005, "dominicks", 9, seed=6)),
        write(data, "Store1003_nans.csv", nans),
        write(data, "Store1006_constant.csv", sales(1006, "dominicks", 90, seed=8).assign(Quantity=128)),
        str(garbage),
        write(data, "Store1007_nocolumns.csv", sales(1007, "x", 90, seed=9).drop(columns=["Quantity"])),
        malformed(data / "Store1008_malformed.csv"),
    ]


def malformed(path: Path) -> str:
    """Same header as the good files (so it is parsed together with them first), one row with extra fields."""
    sales(1008, "dominicks", 90, seed=10).to_csv(path, index=False)
    with path.open("a") as f:
        f.write("1992-03-05,1008,dominicks,1,2,3,4,5,6,7,8,9,10\n")
    return str(path)


def run_training(tmp_path: Path, files: list[str], settings: Path = REPO_SETTINGS) -> pd.DataFrame:
    train.init(["--settings-file", str(settings), "--output-dir", str(tmp_path / "out"), "--run-id", "run-1",
                "--dataset-version", "4"])
    return train.run(files)


def test_train_run_trains_good_series_and_gives_bad_ones_a_reason(tmp_path: Path, train_files: list[str]) -> None:
    rows = run_training(tmp_path, train_files)
    assert list(rows.columns) == TRAIN_COLUMNS
    by_series = {r.series or Path(r.file).name: r for r in rows.itertuples()}
    for brand in ("dominicks", "tropicana", "minute.maid"):
        row = by_series[f"Store=1001,Brand={brand}"]
        assert (row.status, row.model_type, row.model_name) == ("ok", "lr", f"lr_{brand}_1001")
        assert row.mape < 20 and Path(row.path, "model.json").is_file()
    assert by_series["Store=1002,Brand=dominicks"].status == "ok"
    short = by_series["Store=1005,Brand=dominicks"]
    assert (short.status, short.model_type) == ("fallback", "mean") and "too short" in short.reason
    constant = by_series["Store=1006,Brand=dominicks"]
    assert constant.status == "fallback" and "constant" in constant.reason
    nans = by_series["Store=1003,Brand=dominicks"]
    assert nans.status == "failed" and "no usable Quantity" in nans.reason and nans.path == ""
    assert by_series["Store1004_garbage.csv"].status == "failed"
    assert "missing column(s) Quantity" in by_series["Store1007_nocolumns.csv"].reason
    assert "cannot be read as CSV" in by_series["Store1008_malformed.csv"].reason
    assert (rows["reason"] != "").sum() == 6

    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest" / train.manifest_file_name()).open()]
    assert sorted(m["name"] for m in manifest) == sorted(rows.loc[rows.status != "failed", "model_name"])
    entry = next(m for m in manifest if m["name"] == "lr_dominicks_1001")
    assert entry["tags"] == {"ModelType": "lr", "ModelSelection": "lr", "Store": "1001", "Brand": "dominicks",
                             "StoreGroup10": "1001", "StoreGroup100": "1001", "StoreGroup1000": "1001",
                             "DatasetVersion": "4", "RunId": "run-1"}
    assert set(entry["properties"]) == {"mse", "rmse", "mae", "mape"}
    fallback = next(m for m in manifest if m["name"] == "lr_dominicks_1005")
    assert fallback["tags"]["ModelType"] == "mean" and "too short" in fallback["properties"]["fallback_reason"]


def test_init_reads_sys_argv_like_parallel_run_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py", "--settings-file", str(REPO_SETTINGS), "--output-dir",
                                      str(tmp_path / "o"), "--run-id", "r", "--dataset-version", "1",
                                      "--logging_level", "INFO"])  # ParallelRunStep adds arguments of its own
    train.init()
    assert (tmp_path / "o" / "manifest").is_dir()
    assert train.run([]).empty


def test_forecast_run_uses_the_highest_version_and_fails_only_bad_series(tmp_path: Path,
                                                                         train_files: list[str]) -> None:
    run_training(tmp_path, train_files)
    models = tmp_path / "models"
    register(tmp_path / "out", models, 9)
    shutil.copytree(models / "lr_tropicana_1001" / "9", models / "lr_tropicana_1001" / "10")
    stale = fc.load_model(models / "lr_tropicana_1001" / "9")
    payload = json.loads((models / "lr_tropicana_1001" / "9" / "model.json").read_text())
    payload["intercept"] = stale.intercept + 1e6  # version 9 would give absurd forecasts
    (models / "lr_tropicana_1001" / "9" / "model.json").write_text(json.dumps(payload))

    inference = tmp_path / "inference"
    future = pd.concat([sales(1001, b, 95, seed=i).iloc[90:] for i, b in enumerate(["dominicks", "tropicana"])])
    files = [write(inference, "Store1001.csv", future.drop(columns=["Quantity"])),
             write(inference, "Store1005_short.csv", sales(1005, "dominicks", 12, seed=6).iloc[9:]),
             write(inference, "Store2000_unknown.csv", sales(2000, "dominicks", 3, seed=1)),
             write(inference, "Store1002_gap.csv", sales(1002, "dominicks", 95, seed=5).iloc[[90, 92]])]
    (inference / "broken.csv").write_text("")
    forecast.init(["--settings-file", str(REPO_SETTINGS), "--models-dir", str(models), "--output-dir",
                   str(tmp_path / "fout")])
    rows = forecast.run([*files, str(inference / "broken.csv")])
    assert list(rows.columns) == ["WeekStarting", "Prediction", "Quantity", "Store", "Brand", "file", "status",
                                  "reason"]
    ok = rows[rows.status == "ok"]
    assert len(ok) == 5 + 5 + 3 + 2  # the gap file's two weeks too (scoring/forecast.py: gaps are stepped through)
    tropicana = ok[ok.Brand == "tropicana"]
    assert tropicana["WeekStarting"].iloc[0] == pd.Timestamp("1990-06-14") + pd.Timedelta(weeks=90)
    assert tropicana["Prediction"].between(0, 20000).all()  # version 10, not the bumped 9
    assert ok[ok.Store == "1005"]["Prediction"].nunique() == 1  # the mean fallback
    assert ok["Quantity"].isna().sum() == 10  # the first file has no target column
    failed = rows[rows.status == "failed"].set_index(rows[rows.status == "failed"].file.map(lambda f: Path(f).name))
    assert "no registered model lr_dominicks_2000" in failed.loc["Store2000_unknown.csv", "reason"]
    gap = ok[ok.Store == "1002"]
    assert len(gap) == 2 and gap["reason"].str.contains("lacks 1 of 3 forecast week").all()
    assert "Store1002_gap.csv" not in failed.index
    assert "cannot be read" in failed.loc["broken.csv", "reason"]
    assert failed["Prediction"].isna().all()


def test_a_second_schema_set_only_in_a_settings_file_trains_and_forecasts(tmp_path: Path) -> None:
    names = {"WeekStarting": "period", "Store": "shop", "Brand": "sku", "Quantity": "units", "Advert": "promo",
             "Price": "unit_cost", "StoreGroup10": "region"}
    settings = tmp_path / "other_settings.json"
    settings.write_text(json.dumps({
        "id_columns": ["sku", "shop"], "target_column": "units", "timestamp_column": "period",
        "tag_columns": ["region"], "drop_columns": ["Revenue", "StoreGroup100", "StoreGroup1000"],
        "model_type": "lr", "test_size": 5, "freq": "W-MON", "horizon": 4}))
    history = [sales(7, sku, 80, seed=i, start="2021-01-04", freq="W-MON", names=names)
               for i, sku in enumerate(["apples", "pears"])]
    files = [write(tmp_path / "train", f"{f['sku'].iloc[0]}.csv", f.iloc[:76]) for f in history]
    rows = run_training(tmp_path, files, settings)
    assert rows.status.tolist() == ["ok", "ok"]
    assert sorted(rows.model_name) == ["lr_7_apples", "lr_7_pears"]  # ids sorted by column name: shop, sku
    model = fc.load_model(rows.path.iloc[0])
    assert model.exog_columns == ("promo", "unit_cost") and model.tags == {"region": "1007"}

    register(tmp_path / "out", tmp_path / "models", 1)
    future = write(tmp_path / "inference", "future.csv", pd.concat([f.iloc[76:] for f in history]))
    forecast.init(["--settings-file", str(settings), "--models-dir", str(tmp_path / "models")])
    out = forecast.run([future])
    assert list(out.columns) == ["period", "Prediction", "units", "sku", "shop", "file", "status", "reason"]
    assert (out.status == "ok").all() and len(out) == 8
    error = (out["Prediction"] - out["units"]).abs() / out["units"]
    assert error.mean() < 0.2


UNUSUAL_BRANDS = ["minute maid", "café", "A&W", '=HYPERLINK("x")']
# with the old names these resolved outside <output-dir> (but inside tmp_path)
HOSTILE_BRANDS = ["x/../../../tmp/y", "..", "a\\b", "nul\x00x", "z" * 300, "../../../escaped"]


def _tree(root: Path, skip: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip}


def test_unusual_ids_train_forecast_and_are_found_by_their_raw_values(tmp_path: Path) -> None:
    history = [sales(1001, b, 90, seed=i) for i, b in enumerate(UNUSUAL_BRANDS)]
    files = [write(tmp_path / "train", "many.csv", pd.concat([f.iloc[:80] for f in history]))]
    rows = run_training(tmp_path, files)
    assert rows.status.tolist() == ["ok"] * 4, rows.reason.tolist()
    names = dict(zip(rows.series, rows.model_name, strict=True))
    for brand in UNUSUAL_BRANDS:
        assert names[f"Store=1001,Brand={brand}"] == fc.model_name("lr", {"Store": 1001, "Brand": brand})
    register(tmp_path / "out", tmp_path / "models", 1)
    future = write(tmp_path / "inference", "future.csv", pd.concat([f.iloc[80:] for f in history]))
    forecast.init(["--settings-file", str(REPO_SETTINGS), "--models-dir", str(tmp_path / "models")])
    out = forecast.run([future])
    assert (out.status == "ok").all() and sorted(set(out.Brand)) == sorted(UNUSUAL_BRANDS)


def test_no_id_value_makes_training_write_outside_its_output_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    history = [sales(1001, b, 90, seed=i) for i, b in enumerate(HOSTILE_BRANDS)]
    files = [write(work / "train", "many.csv", pd.concat(history))]
    before = _tree(tmp_path, work / "out")
    rows = run_training(work, files)
    assert _tree(tmp_path, work / "out") == before  # nothing new outside <output-dir>
    written = sorted((work / "out" / "models").iterdir())
    assert len(written) == len(rows) == len(HOSTILE_BRANDS) and (rows.status == "ok").all(), rows.reason.tolist()
    for folder in written:  # one plain folder per model, directly under models/
        assert (folder / "model.json").is_file() and len(folder.name) <= 255
    assert {Path(p).parent for p in rows.path} == {work / "out" / "models"}


def test_a_series_whose_ids_cannot_name_a_model_fails_alone(tmp_path: Path) -> None:
    frames = [sales(1001, "dominicks", 90, seed=1), sales(1001, "   ", 90, seed=2)]
    rows = run_training(tmp_path, [write(tmp_path / "train", "many.csv", pd.concat(frames))])
    by_series = {r.series: r for r in rows.itertuples()}
    assert by_series["Store=1001,Brand=dominicks"].status == "ok"
    blank = by_series["Store=1001,Brand=   "]
    assert blank.status == "failed" and "Brand" in blank.reason and "empty" in blank.reason and blank.path == ""


def test_manifest_files_are_unique_across_nodes_whose_pids_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getpid", lambda: 42)
    names = set()
    for host in ("node-a", "node-a", "bad/host name"):  # two nodes may even share a host name
        monkeypatch.setattr(train, "_manifest", None)
        monkeypatch.setattr(train.socket, "gethostname", lambda h=host: h)
        names.add(train.manifest_file_name())
        assert train.manifest_file_name() in names  # stable within the process
    assert len(names) == 3 and all(n.endswith(".jsonl") and "/" not in n and " " not in n for n in names)


def test_the_lr_settings_are_the_repo_settings_with_lr() -> None:
    repo = json.loads((SCORING.parent / "pipelines" / "configuration" / "script_settings.json").read_text())
    assert repo["model_type"] == "auto"  # the product's default: per-series selection
    assert json.loads(REPO_SETTINGS.read_text()) == {**repo, "model_type": "lr"}
