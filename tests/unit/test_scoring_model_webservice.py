"""The multi-model scoring script called in-process: per-record answers, lags, versions, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scoring"))
import forecaster as fc
import model_webservice as ws

SETTINGS = fc.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity", timestamp_column="WeekStarting",
                             test_size=5, freq="W-THU", horizon=4)


def frame(store: int, weeks: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, weeks).round(2)
    advert = rng.integers(0, 2, weeks)
    return pd.DataFrame({"WeekStarting": pd.date_range("1991-01-03", periods=weeks, freq="W-THU"),
                         "Store": str(store), "Brand": "dominicks", "Advert": advert, "Price": price,
                         "Quantity": (9000 - 1500 * price + 900 * advert + rng.normal(0, 200, weeks)).round()})


def train_models(root: Path, versions: dict[int, str]) -> dict[str, fc.Forecaster]:
    """Models of stores 1-3 under root/<name>/<version>/, plus an extra nested AML-style folder level."""
    data = pd.concat([frame(1, 60, 1), frame(2, 60, 2), frame(3, 8, 3)])
    series, _ = fc.split_series(data, SETTINGS)
    models = {r.model.name: r.model for r in fc.fit_many(series, SETTINGS, ["Advert", "Price"])}
    for name, model in models.items():
        model.save(root / name / versions.get(int(model.ids["Store"]), "1"))
    return models


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, fc.Forecaster]:
    models = train_models(tmp_path, {1: "10"})
    stale = fc.load_model(tmp_path / "lr_dominicks_1" / "10").to_dict()
    stale["intercept"] += 1e6
    (tmp_path / "lr_dominicks_1" / "9").mkdir()
    (tmp_path / "lr_dominicks_1" / "9" / "model.json").write_text(json.dumps(stale))  # 9 < 10 by number
    (tmp_path / "deployed_models_info" / "3").mkdir(parents=True)  # a meta model: not a forecaster, skipped
    (tmp_path / "deployed_models_info" / "3" / "deployed_models_info.json").write_text("{}")
    nested = tmp_path / "lr_dominicks_2" / "1"
    (nested / "lr_dominicks_2").mkdir()
    (nested / "model.json").rename(nested / "lr_dominicks_2" / "model.json")  # AML keeps the folder name
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    ws.init()
    return models


def record(store: int, horizon: int = 2, **extra: object) -> dict[str, object]:
    return {"id": {"Store": store, "Brand": "dominicks"}, "model_type": "lr", "forecast_freq": "W-THU",
            "forecast_horizon": horizon, "data": {"future": {"Advert": [0, 1, 0, 1][:horizon],
                                                             "Price": [2.0, 2.5, 3.0, 2.2][:horizon]}}, **extra}


def test_answers_each_record_in_order_with_its_own_error(served: dict[str, fc.Forecaster]) -> None:
    bad_value = record(2)
    bad_value["data"]["future"]["Price"] = ["cheap", 2.0]
    records = [record(1), record(99), record(2, horizon=9), bad_value, record(2, forecast_freq="D"), "junk",
               record(3, horizon=3)]
    answers = ws.run(json.dumps(records))
    assert [a.get("status") for a in answers] == [None, 404, 400, 400, 400, 400, None]
    assert answers[0]["id"] == records[0]["id"] and answers[0]["data"] == records[0]["data"]  # echoed
    expected = served["lr_dominicks_1"].forecast(steps=2, exog=np.array([[0, 2.0], [1, 2.5]]))
    assert answers[0]["forecast"] == {"timestamps": [t.isoformat() for t in expected[0]],
                                      "values": expected[1].tolist()}
    assert answers[0]["forecast"]["timestamps"][0] == "1992-02-27T00:00:00"
    assert "unknown model lr_dominicks_99" in answers[1]["error"]
    assert "forecast_horizon 9 is not allowed" in answers[2]["error"]
    assert "not a number" in answers[3]["error"]
    assert "forecast_freq 'D' is not allowed" in answers[4]["error"]
    assert answers[6]["forecast"]["values"] == [served["lr_dominicks_3"].mean] * 3  # a fallback answers too


def test_historical_data_gives_the_lags_and_future_rows_align_by_date(served: dict[str, fc.Forecaster]) -> None:
    model = served["lr_dominicks_1"]
    history = {"WeekStarting": ["1992-02-27", "1992-03-05"], "Quantity": [5000, 7000]}
    future = {"WeekStarting": ["1992-03-19", "1992-03-12"], "Advert": [1, 0], "Price": [2.5, 2.0]}
    rec = record(1, forecast_start="1992-03-12", data={"historical": history, "future": future})
    got = ws.run(json.dumps([rec]))[0]["forecast"]
    known = {pd.Timestamp("1992-02-27"): 5000.0, pd.Timestamp("1992-03-05"): 7000.0}
    stamps, values = model.forecast(pd.Timestamp("1992-03-12"), steps=2, exog=np.array([[0, 2.0], [1, 2.5]]),
                                    history=known)
    assert got == {"timestamps": [t.isoformat() for t in stamps], "values": values.tolist()}
    too_late = record(1, forecast_start="1992-06-04")
    assert "no history was sent" in ws.run(json.dumps([too_late]))[0]["error"]


def test_get_lists_the_models_and_a_bad_body_is_one_error(served: dict[str, fc.Forecaster]) -> None:
    class Get:
        method = "GET"

    assert ws.run(Get()) == ["lr_dominicks_1", "lr_dominicks_2", "lr_dominicks_3"]
    response = ws.run("{not json")
    assert response.status_code == 400 and "not JSON" in response.get_json()["error"]
    assert "JSON array" in ws.run(json.dumps({"id": 1})).get_json()["error"]


def test_init_without_a_model_dir_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="--model_dir"):
        ws.init()
