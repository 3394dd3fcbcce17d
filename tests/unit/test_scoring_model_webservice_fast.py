"""The model webservice's fast path (no history, forecast from the week after training) answers exactly
like the general ``forecaster`` path, and everything else still takes the general path."""

from __future__ import annotations

import json
from pathlib import Path

import forecaster as fc
import model_webservice as ws
import numpy as np
import pandas as pd
import pytest

SETTINGS = fc.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity", timestamp_column="WeekStarting",
                             test_size=5, freq="W-THU", horizon=4)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, fc.Forecaster]:
    rng = np.random.default_rng(7)
    frames = []
    for store, weeks in ((1, 60), (2, 45), (3, 8)):  # store 3 is too short: a fallback model
        price = rng.uniform(1.5, 3.5, weeks).round(2)
        advert = rng.integers(0, 2, weeks)
        frames.append(pd.DataFrame({"WeekStarting": pd.date_range("1991-01-03", periods=weeks, freq="W-THU"),
                                    "Store": str(store), "Brand": "dominicks", "Advert": advert, "Price": price,
                                    "Quantity": (9000 - 1500 * price + rng.normal(0, 200, weeks)).round()}))
    series, _ = fc.split_series(pd.concat(frames), SETTINGS)
    models = {r.model.name: r.model for r in fc.fit_many(series, SETTINGS, ["Advert", "Price"])}
    for name, model in models.items():
        model.save(tmp_path / name / "1")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    ws.init()
    return models


def record(store: int, horizon: int, **extra: object) -> dict:
    future = {"Advert": [1, 0, 1, 1][:horizon], "Price": [2.1, 2.9, 3.3, 1.7][:horizon]}
    return {"id": {"Store": store, "Brand": "dominicks"}, "model_type": "lr", "forecast_horizon": horizon,
            "data": {"future": future}, **extra}


def expected(model: fc.Forecaster, rec: dict) -> dict:
    future = rec["data"]["future"]
    exog = np.column_stack([np.array(future[c], dtype=float) for c in model.exog_columns]) if model.exog_columns \
        else None
    start = pd.Timestamp(rec["forecast_start"]) if "forecast_start" in rec else None
    stamps, values = model.forecast(start, steps=rec["forecast_horizon"], exog=None if model.is_fallback else exog)
    return {"timestamps": [t.isoformat() for t in stamps], "values": [float(v) for v in values]}


def general_path_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the models ``forecaster.forecast_many`` (the general path) is asked to forecast."""
    asked: list[str] = []
    general = fc.forecast_many

    def spy(models, *args, **kwargs):
        asked.extend(m.name for m in models)
        return general(models, *args, **kwargs)

    monkeypatch.setattr(fc, "forecast_many", spy)
    return asked


def test_fast_answers_equal_the_general_path_in_one_batch(served, monkeypatch):
    one = served["lr_dominicks_1"]
    records = [record(1, 4), record(2, 1), record(1, 2, forecast_start=one.next_week().date().isoformat()),
               record(3, 3), record(2, 3), record(1, 1)]
    general = general_path_models(monkeypatch)
    answers = ws.run(json.dumps(records))
    for rec, answer in zip(records, answers, strict=True):
        assert answer["forecast"] == expected(served[f"lr_dominicks_{rec['id']['Store']}"], rec)
    assert general == ["lr_dominicks_3"]  # only the fallback model's record: 1 and 2 took the fast path


def test_other_requests_take_the_general_path_and_errors_stay_per_record(served):
    one = served["lr_dominicks_1"]
    earlier = (one.next_week() - pd.Timedelta(weeks=2)).date().isoformat()
    missing = record(1, 2)
    missing["data"]["future"]["Price"] = [2.0, None]
    short = record(1, 3)
    short["data"]["future"] = {"Advert": [1], "Price": [2.0]}
    records = [record(1, 2, forecast_start=earlier), missing, short, record(1, 2)]
    answers = ws.run(json.dumps(records))
    assert answers[0]["forecast"] == expected(one, records[0])  # from an earlier week: the stored tail's lags
    # a missing week is carried forward (scoring/model_webservice.py): the answer of [2.0, 2.0] with a warning
    filled = record(1, 2)
    filled["data"]["future"]["Price"] = [2.0, 2.0]
    assert answers[1]["forecast"] == expected(one, filled) and "carried forward" in answers[1]["warnings"][0]
    assert answers[2]["status"] == 400 and "1 row(s)" in answers[2]["error"]
    assert answers[3]["forecast"] == expected(one, records[3])


def test_bad_dates_are_still_per_record_errors_with_the_parsed_dates_cached(served):
    for _ in range(2):  # the second time from the cache of parsed dates
        answers = ws.run(json.dumps([record(1, 1, forecast_start="not a date"), record(1, 1, forecast_start="NaT")]))
        assert all(a["status"] == 400 and "is not a date" in a["error"] for a in answers)


def test_a_surprise_on_the_fast_path_leaves_the_records_to_the_general_path(served, monkeypatch):
    def boom(fast, answers):
        raise FloatingPointError("surprise")

    monkeypatch.setattr(ws, "_forecast_fast", boom)
    records = [record(1, 2), record(2, 1)]
    answers = ws.run(json.dumps(records))
    for rec, answer in zip(records, answers, strict=True):
        assert answer["forecast"] == expected(served[f"lr_dominicks_{rec['id']['Store']}"], rec)
