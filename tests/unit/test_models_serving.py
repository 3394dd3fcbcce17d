"""``auto`` through the entry scripts, and the serving paths (scoring/model_webservice.py docstring):
the original accelerator's request format, horizons past the trained one, non-negative answers on
the batch, webservice and router paths (the router calling the real model-service code in-process)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCORING = Path(__file__).resolve().parents[2] / "scoring"
import forecast  # noqa: E402
import forecaster as fc  # noqa: E402
import model_webservice as ws  # noqa: E402
import routing_webservice as rw  # noqa: E402
import train  # noqa: E402

SETTINGS = {"id_columns": ["Store", "Brand"], "target_column": "Quantity", "timestamp_column": "WeekStarting",
            "tag_columns": [], "drop_columns": ["Revenue"], "model_type": "auto", "test_size": 6, "freq": "W-THU",
            "horizon": 4}


def sales(store: int, weeks: int, *, seed: int, start: str = "1990-06-14") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, weeks).round(2)
    advert = rng.integers(0, 2, weeks)
    q = np.exp(9 - 2.5 * np.log(price) + 0.6 * advert + rng.normal(0, 0.2, weeks)).round()
    return pd.DataFrame({"WeekStarting": pd.date_range(start, periods=weeks, freq="W-THU").strftime("%Y-%m-%d"),
                         "Store": str(store), "Brand": "b", "Quantity": q, "Advert": advert, "Price": price,
                         "Revenue": q * price})


def write(folder: Path, name: str, frame: pd.DataFrame) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False)
    return str(folder / name)


@pytest.fixture
def trained(tmp_path: Path) -> tuple[pd.DataFrame, Path, Path]:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    bad = sales(3, 90, seed=3).astype({"Quantity": object})
    bad.loc[20, "Quantity"] = "??"
    files = [write(tmp_path / "train", f"Store{i}.csv", sales(i, 90, seed=i)) for i in (1, 2)]
    files += [write(tmp_path / "train", "Store3.csv", bad),
              write(tmp_path / "train", "Store4.csv", sales(4, 20, seed=4))]
    train.init(["--settings-file", str(settings), "--output-dir", str(tmp_path / "out")])
    rows = train.run(files)
    models = tmp_path / "models"
    for line in (tmp_path / "out" / "manifest").glob("*.jsonl"):
        for entry in map(json.loads, line.read_text().splitlines()):
            (models / entry["name"]).mkdir(parents=True)
            (models / entry["name"] / "1").symlink_to(entry["path"])
    return rows, settings, models


def test_auto_trains_through_the_entry_script_with_types_reasons_and_warnings(trained, tmp_path) -> None:
    rows, _, _ = trained
    by_file = rows.set_index(rows.file.map(lambda f: Path(f).name))
    assert Counter(rows.status) == {"ok": 3, "fallback": 1}
    assert set(by_file.loc[[f"Store{i}.csv" for i in (1, 2, 3)], "model_type"]) <= {"demand", "loglog"}
    short = by_file.loc["Store4.csv"]
    assert short.model_type in ("naive", "snaive", "mean") and "too short for a 4-fold backtest" in short.reason
    assert "1 row(s) with a missing, non-numeric or negative Quantity" in by_file.loc["Store3.csv", "warnings"]
    assert by_file.loc["Store1.csv", "warnings"] == ""
    manifest = [json.loads(line) for f in (tmp_path / "out" / "manifest").glob("*.jsonl")
                for line in f.read_text().splitlines()]
    entry = next(m for m in manifest if m["name"] == "auto_b_1")
    assert entry["tags"]["ModelSelection"] == "auto"
    assert entry["tags"]["ModelType"] == entry["properties"]["chosen_type"]
    assert set(json.loads(entry["properties"]["backtest_scores"])) == {str(k) for k in fc.DEFAULT_CANDIDATES}


def test_training_method_automl_overrides_the_settings_model_type(tmp_path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({**SETTINGS, "model_type": "lr"}))
    config = train.parse_args(["--settings-file", str(settings), "--output-dir", str(tmp_path),
                               "--model-type", "auto"])
    assert config.settings.model_type == "auto"
    default = train.parse_args(["--settings-file", str(settings), "--output-dir", str(tmp_path)])
    assert default.settings.model_type == "lr"


def test_batch_forecast_of_auto_models_is_non_negative_and_survives_a_gap(trained, tmp_path) -> None:
    _, settings, models = trained
    future = sales(1, 96, seed=1).iloc[90:].drop(index=[92]).drop(columns=["Quantity"])
    future.loc[future.index[0], "Price"] = 0.01  # a price cut that drives lr-like models far off
    forecast.init(["--settings-file", str(settings), "--models-dir", str(models), "--output-dir", str(tmp_path / "f")])
    out = forecast.run([write(tmp_path / "inf", "Store1.csv", future)])
    assert (out.status == "ok").all() and len(out) == 5
    assert (out.Prediction >= 0).all()
    assert out.reason.str.contains("lacks 1 of 6 forecast week").all()  # an ok row's reason: its warnings


# -- the webservice and the router --------------------------------------------------------------------------


@pytest.fixture
def served(trained, monkeypatch) -> dict[str, fc.Forecaster]:
    _, _, models = trained
    falling = _falling()
    falling.save(models / falling.name / "1")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(models))
    ws.init()
    return dict(ws._models)


def _falling() -> fc.Forecaster:
    coef = np.zeros(2 + 1 + fc.LAGS)
    coef[3] = 1.0  # y_t = y_{t-1} - 400: negative after a few weeks
    return fc.Forecaster(name="lr_b_9", kind=fc.ModelKind.LR, ids={"Brand": "b", "Store": "9"}, freq="W-THU",
                         horizon=4, target_column="Quantity", timestamp_column="WeekStarting",
                         exog_columns=("Advert", "Price"), intercept=-400.0, coef=coef,
                         tail_end=pd.Timestamp("1992-01-02"), tail=np.array([1000.0, 900.0, 800.0, 700.0]), mean=850.0)


def original(store: int, *, horizon: int, model_type: str = "auto", start: str | None = None,
             history: list[float] | None = None) -> dict:
    """The original accelerator's sample request: history as a bare list of the target, no timestamps."""
    rec = {"id": {"Store": store, "Brand": "b"}, "model_type": model_type, "forecast_freq": "W-THU",
           "forecast_horizon": horizon,
           "data": {"historical": {"Quantity": history or [8000.0, 9000.0, 7000.0, 8500.0]},
                    "future": {"Advert": [1, 0] * (horizon // 2) + [1] * (horizon % 2),
                               "Price": [2.0] * horizon}}}
    if start:
        rec["forecast_start"] = start
    return rec


def test_the_original_request_format_is_served_with_timestamps_implied(served) -> None:
    model = served["auto_b_1"]
    start = model.next_week()
    rec = original(1, horizon=3, start=start.date().isoformat())
    (answer,) = ws.run(json.dumps([rec]))
    weeks = fc.calendar(end=model.tail_end, periods=4, freq="W-THU")
    history = dict(zip(weeks, rec["data"]["historical"]["Quantity"], strict=True))
    exog = np.column_stack([rec["data"]["future"][c] for c in model.exog_columns]).astype(float)
    stamps, values = model.forecast(start, steps=3, exog=exog, history=history)
    assert answer["forecast"] == {"timestamps": [t.isoformat() for t in stamps], "values": values.tolist()}
    later = original(1, horizon=2, start=(start + pd.Timedelta(weeks=2)).date().isoformat())
    assert "forecast" in ws.run(json.dumps([later]))[0]  # history ends the week before the later start


def test_auto_models_take_the_fast_path_with_the_same_answer(served, monkeypatch) -> None:
    model = served["auto_b_2"]
    rec = {"id": {"Store": 2, "Brand": "b"}, "model_type": "auto", "forecast_horizon": 3,
           "data": {"future": {"Advert": [1, 0, 1], "Price": [2.5, 3.0, 1.9]}}}
    general: list[str] = []  # models the general path (forecaster.forecast_many) is asked for
    forecast_many = fc.forecast_many
    monkeypatch.setattr(fc, "forecast_many", lambda models, *a, **k: general.extend(m.name for m in models)
                        or forecast_many(models, *a, **k))
    (answer,) = ws.run(json.dumps([rec]))
    assert general == []  # it took the fast path
    exog = np.column_stack([rec["data"]["future"][c] for c in model.exog_columns]).astype(float)
    stamps, values = model.forecast(steps=3, exog=exog)
    assert answer["forecast"]["timestamps"] == [t.isoformat() for t in stamps]
    np.testing.assert_allclose(answer["forecast"]["values"], values, rtol=1e-12)


def test_horizons_past_the_trained_one_up_to_the_documented_maximum(served) -> None:
    ok, beyond = ws.run(json.dumps([original(1, horizon=fc.MAX_HORIZON), original(1, horizon=fc.MAX_HORIZON + 1)]))
    assert len(ok["forecast"]["values"]) == fc.MAX_HORIZON
    assert beyond["status"] == 400 and f"forecasts 1 to {fc.MAX_HORIZON} weeks" in beyond["error"]


def test_no_negative_answer_on_the_fast_and_general_paths_and_through_the_router(served, monkeypatch) -> None:
    fast = {"id": {"Store": 9, "Brand": "b"}, "model_type": "lr", "forecast_horizon": 4,
            "data": {"future": {"Advert": [0] * 4, "Price": [2.0] * 4}}}
    general = original(9, horizon=4, model_type="lr", start="1992-01-09", history=[1000.0, 900.0, 800.0, 700.0])
    answers = ws.run(json.dumps([fast, general]))
    assert answers[0]["forecast"]["values"] == [300.0, 0.0, 0.0, 0.0] == answers[1]["forecast"]["values"]
    state = {name: {"version": 1, "group": "g", "webservice": "svc", "endpoint": "http://127.0.0.1:9/score"}
             for name in served}
    routes = rw.load_routes(state, {})
    monkeypatch.setattr(rw, "call_service", lambda endpoint, body: (200, json.dumps(ws.run(body)).encode()))
    answers, raw = rw.route([fast, original(1, horizon=2, start=served["auto_b_1"].next_week().date().isoformat())],
                            routes)
    answers = answers if raw is None else json.loads(raw)
    assert answers[0]["forecast"]["values"] == [300.0, 0.0, 0.0, 0.0]
    assert all(v >= 0 for v in answers[1]["forecast"]["values"])
