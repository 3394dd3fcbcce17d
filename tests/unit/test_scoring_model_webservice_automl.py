"""AutoML many-models models in the model webservice: a pickled pipeline with AutoML's ``forecast(X)``
signature (returns ``(y_pred, X_trans)``), served beside ``model.json`` models, loaded on its first
request, with its errors per record."""

from __future__ import annotations

import json
from pathlib import Path

import forecaster as fc
import joblib
import model_webservice as ws
import numpy as np
import pandas as pd
import pytest

SETTINGS = fc.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity", timestamp_column="WeekStarting",
                             test_size=5, freq="W-THU", horizon=4)
UNPICKLED: list[str] = []  # one entry per pipeline unpickled in this process (see DemandPipeline.__setstate__)


class DemandPipeline:
    """Stands for AutoML's ForecastingPipelineWrapper: a level plus a price effect per row of X."""

    time_column_name = "WeekStarting"

    def __init__(self, level: float, *, fail_on: float | None = None) -> None:
        self.level = level
        self.fail_on = fail_on

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        UNPICKLED.append(f"level {self.level}")

    def forecast(self, X_pred: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        if self.fail_on is not None and (X_pred["Price"] == self.fail_on).any():
            raise ValueError(f"Price {self.fail_on} was never seen in training")
        weeks = pd.DatetimeIndex(X_pred[self.time_column_name])
        if (weeks.dayofweek != 3).any():
            raise ValueError("the time column is not on the training frequency W-THU")
        y = self.level - 100.0 * X_pred["Price"].to_numpy(dtype=float) + X_pred["Store"].astype(float).to_numpy()
        return y, X_pred.set_index(self.time_column_name)


def expected(level: float, store: int, prices: list[float]) -> list[float]:
    return [max(level - 100.0 * p + store, 0.0) for p in prices]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, fc.Forecaster]:
    rng = np.random.default_rng(3)
    price = rng.uniform(1.5, 3.5, 60).round(2)
    frame = pd.DataFrame({"WeekStarting": pd.date_range("1991-01-03", periods=60, freq="W-THU"), "Store": "1",
                          "Brand": "dominicks", "Advert": rng.integers(0, 2, 60), "Price": price,
                          "Quantity": (9000 - 1500 * price + rng.normal(0, 200, 60)).round()})
    series, _ = fc.split_series(frame, SETTINGS)
    models = {r.model.name: r.model for r in fc.fit_many(series, SETTINGS, ["Advert", "Price"])}
    for name, model in models.items():
        model.save(tmp_path / name / "1")
    (tmp_path / "automl_dominicks_1" / "1").mkdir(parents=True)
    joblib.dump(DemandPipeline(900.0), tmp_path / "automl_dominicks_1" / "1" / "model.pkl")
    mlflow = tmp_path / "automl_dominicks_2" / "3" / "mlflow-model"  # an MLflow folder: model.pkl beside MLmodel
    mlflow.mkdir(parents=True)
    (mlflow / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n")
    joblib.dump(DemandPipeline(500.0, fail_on=9.99), mlflow / "model.pkl")
    broken = tmp_path / "automl_dominicks_3" / "1"
    broken.mkdir(parents=True)
    (broken / "model.pkl").write_bytes(b"not a pickle")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    UNPICKLED.clear()
    ws.init()
    return models


def automl(store: int, prices: list[float], **extra: object) -> dict:
    weeks = [t.date().isoformat() for t in pd.date_range("1992-10-08", periods=len(prices), freq="W-THU")]
    return {"id": {"Store": store, "Brand": "dominicks"}, "model_type": "automl",
            "data": {"future": {"WeekStarting": weeks, "Price": prices, "Advert": [1] * len(prices)}}, **extra}


def test_automl_models_are_served_beside_json_models_and_loaded_on_first_request(served) -> None:
    assert ws.run("[]") == [] and UNPICKLED == []  # init() does not unpickle anything
    lr = {"id": {"Store": 1, "Brand": "dominicks"}, "model_type": "lr", "forecast_horizon": 2,
          "data": {"future": {"Advert": [1, 0], "Price": [2.0, 3.0]}}}
    first, second, plain = ws.run(json.dumps([automl(1, [2.0, 3.0, 4.0]), automl(1, [1.5]), lr]))
    assert first["forecast"] == {"timestamps": ["1992-10-08T00:00:00", "1992-10-15T00:00:00", "1992-10-22T00:00:00"],
                                 "values": expected(900.0, 1, [2.0, 3.0, 4.0])}
    assert second["forecast"]["values"] == expected(900.0, 1, [1.5])
    stamps, values = served["lr_dominicks_1"].forecast(steps=2, exog=np.array([[1.0, 2.0], [0.0, 3.0]]))
    assert plain["forecast"] == {"timestamps": [t.isoformat() for t in stamps], "values": values.tolist()}
    assert UNPICKLED == ["level 900.0"]  # once, for both of its records
    assert ws.run(json.dumps([automl(1, [2.0])]))[0]["forecast"]["values"] == expected(900.0, 1, [2.0])
    assert UNPICKLED == ["level 900.0"]
    assert {"automl_dominicks_1", "automl_dominicks_2", "automl_dominicks_3", "lr_dominicks_1"} <= set(
        ws.run(_get()))


def test_the_horizon_start_and_frequency_of_an_automl_record(served) -> None:
    rec = automl(2, [2.0, 3.0, 4.0], forecast_horizon=2)  # the first 2 rows of data.future
    no_time = {"id": {"Store": 2, "Brand": "dominicks"}, "model_type": "automl", "forecast_horizon": 2,
               "forecast_start": "1992-10-08", "forecast_freq": "W-THU", "data": {"future": {"Price": [2.0, 3.0]}}}
    answers = ws.run(json.dumps([rec, no_time]))
    assert [a["forecast"]["values"] for a in answers] == [expected(500.0, 2, [2.0, 3.0])] * 2
    assert answers[1]["forecast"]["timestamps"] == ["1992-10-08T00:00:00", "1992-10-15T00:00:00"]


def test_automl_errors_stay_per_record(served) -> None:
    too_long = automl(1, [2.0], forecast_horizon=3)
    no_weeks = {"id": {"Store": 1, "Brand": "dominicks"}, "model_type": "automl", "forecast_horizon": 2,
                "data": {"future": {"Price": [2.0, 3.0]}}}
    history = automl(1, [2.0], data={"historical": {"Quantity": [1.0]}, "future": {"Price": [2.0]}})
    infinite = automl(1, [2.0, 3.0])
    infinite["data"]["future"]["Price"][1] = 1e999
    answers = ws.run(json.dumps([automl(2, [2.0, 9.99]), automl(3, [2.0]), too_long, no_weeks, history,
                                 automl(1, [2.0], forecast_horizon=fc.MAX_HORIZON + 1), infinite,
                                 automl(1, [2.0], forecast_start="1992-10-08", forecast_freq="W-THU"),
                                 automl(1, [2.5])]))
    refused, broken, short, weeks, historical, beyond, not_finite, _, ok = answers
    assert refused["status"] == 400 and "Price 9.99 was never seen in training" in refused["error"]
    assert broken["status"] == 500 and "automl_dominicks_3" in broken["error"] and "cannot be loaded" in broken["error"]
    assert short["status"] == 400 and "data.future has 1 row(s); forecast_horizon 3 needs 3" in short["error"]
    assert weeks["status"] == 400 and "data.future.WeekStarting, or forecast_start and forecast_freq" in weeks["error"]
    assert historical["status"] == 400 and "data.historical is not allowed" in historical["error"]
    assert beyond["status"] == 400 and f"forecasts 1 to {fc.MAX_HORIZON} weeks" in beyond["error"]
    assert not_finite["status"] == 400 and "data.future.Price[1] is Infinity" in not_finite["error"]
    assert ok["forecast"]["values"] == expected(900.0, 1, [2.5])
    assert ws.run(json.dumps([automl(3, [2.0])]))[0]["status"] == 500  # the failed load is kept, not retried


class ShortPipeline(DemandPipeline):
    """Answers one value whatever the number of rows."""

    def forecast(self, X_pred: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        return super().forecast(X_pred)[0][:1], X_pred


def test_a_pipeline_answering_too_few_values_is_that_records_error(served, tmp_path) -> None:
    model = fc.AutomlModel("automl_short", tmp_path / "unused.pkl")
    table = pd.DataFrame({"WeekStarting": pd.date_range("1992-10-08", periods=2, freq="W-THU"), "Store": [1, 1],
                          "Price": [2.0, 3.0]})
    joblib.dump(ShortPipeline(10.0), model.path)
    with pytest.raises(ValueError, match="answered 1 value"):
        model.forecast(table)


def _get() -> object:
    class Get:
        method = "GET"

    return Get()
