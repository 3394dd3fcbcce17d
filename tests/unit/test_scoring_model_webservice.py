"""The multi-model scoring script called in-process: per-record answers, lags, versions, errors."""

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
    assert "forecast_horizon 9 needs 9" in answers[2]["error"]  # beyond the trained 5 weeks is allowed
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


def strict_loads(text: str | bytes) -> object:
    def reject(token: str) -> None:
        raise ValueError(f"{token} is not strict JSON")

    return json.loads(text, parse_constant=reject)


def with_price(token: str, *, history: bool = False) -> str:
    """Two records as raw JSON, the second with a future price that is the raw token (NaN, 1e999, ...);
    ``history`` sends the second one down the general forecaster path rather than the fast one."""
    second = record(2)
    if history:
        second["data"]["historical"] = {"WeekStarting": ["1992-02-20"], "Quantity": [5000]}
    second["data"]["future"]["Price"][1] = "__TOKEN__"
    return json.dumps([record(1), second]).replace('"__TOKEN__"', token)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", '"NaN"', '"inf"'])
def test_a_future_value_that_is_not_finite_is_that_records_400_naming_field_and_value(served, token) -> None:
    answers = ws.run(with_price(token))
    assert "forecast" in answers[0]
    assert answers[1]["status"] == 400
    shown = {"1e999": "Infinity", '"NaN"': "NaN", '"inf"': "inf"}.get(token, token)
    assert f"data.future.Price[1] is {shown}" in answers[1]["error"], answers[1]["error"]
    strict_loads(ws.dumps(answers))  # the echoed record holds the token's word, not the token


def test_a_history_value_that_is_not_finite_is_that_records_400(served) -> None:
    rec = record(1, data={"historical": {"WeekStarting": ["1992-02-20"], "Quantity": [1.0]},
                          "future": {"Advert": [0, 1], "Price": [2.0, 2.5]}})
    text = json.dumps([rec]).replace("1.0]", "Infinity]")
    answer = ws.run(text)[0]
    assert answer["status"] == 400 and "data.historical.Quantity[0] is Infinity" in answer["error"]
    missing = json.dumps([rec]).replace("1.0]", "null]")  # null is a missing week, not an error
    assert "forecast" in ws.run(missing)[0]


@pytest.mark.parametrize("history", [False, True])  # the fast path and the general one
def test_a_forecast_that_overflows_is_that_records_400_not_an_infinity(served, history, monkeypatch) -> None:
    general = []
    real = ws._forecast
    monkeypatch.setattr(ws, "_forecast", lambda requests: (general.extend(requests), real(requests))[1])
    answers = ws.run(with_price("1e308", history=history))
    assert bool(general) == history
    assert "forecast" in answers[0]
    assert answers[1]["status"] == 400 and "forecast" not in answers[1]
    assert "is not finite" in answers[1]["error"] and "at step 2" in answers[1]["error"], answers[1]["error"]
    strict_loads(ws.dumps(answers))


def test_answers_over_http_are_strict_json_even_echoing_an_infinite_id(served) -> None:
    class Post:
        method = "POST"

        def __init__(self, body: bytes) -> None:
            self.body = body

        def get_data(self) -> bytes:
            return self.body

    body = json.dumps([record(1), record(5)]).replace('"Store": 5', '"Store": 1e999').encode()
    response = ws.run(Post(body))
    assert response.status_code == 200
    answers = strict_loads(response.get_data())
    assert "forecast" in answers[0] and answers[1]["status"] == 404 and answers[1]["id"]["Store"] == "Infinity"
    junk = strict_loads(ws.run(Post(b"[NaN, -Infinity]")).get_data())
    assert [(a["record"], a["status"]) for a in junk] == [("NaN", 400), ("-Infinity", 400)]


def test_a_body_nested_too_deeply_is_a_400(served) -> None:
    for body in ("[" * 100_000 + "]" * 100_000, '[{"id": {"Store": 1}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}]"):
        response = ws.run(body)
        assert response.status_code == 400 and "nested too deeply" in response.get_json()["error"]


def test_model_type_of_the_wrong_type_and_dates_pandas_cannot_step_from_are_400s(served) -> None:
    answers = ws.run(json.dumps([record(1, model_type=5), record(1, model_type=["lr"]),
                                 record(1, forecast_start="9999-12-30"), record(1, model_type=None)]))
    assert [a.get("status") for a in answers] == [400, 400, 400, None]
    assert "model_type 5 is not allowed" in answers[0]["error"]
    assert "forecast_start '9999-12-30' is not a date" in answers[2]["error"]


def test_the_forecaster_refuses_infinite_future_values_by_name(served) -> None:
    with pytest.raises(fc.SeriesError, match="future Price is inf for step 1 of 2: values must be finite"):
        served["lr_dominicks_1"].forecast(steps=2, exog=np.array([[0, np.inf], [1, 2.0]]))
    # a missing (NaN) value is a gap, carried forward with a warning (scoring/model_webservice.py), not an error
    (gap,) = fc.forecast_many([served["lr_dominicks_1"]], [None], steps=[2], exog=[np.array([[0, 2.0], [1, np.nan]])])
    assert "carried forward" in gap.warnings[0]


def test_an_sdk_v2_group_asset_serves_the_models_one_folder_down(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    # shared/workspace/amlv2/services.py deploys a group as one model asset with the models under models/
    models = train_models(tmp_path / "models", {})
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv(ws.MODELS_SUBDIR_ENV, "models")
    ws.init()

    class Get:
        method = "GET"

    assert ws.run(Get()) == sorted(models) == ["lr_dominicks_1", "lr_dominicks_2", "lr_dominicks_3"]


@pytest.mark.parametrize("subdir", ["../elsewhere", "/etc", "models/../..", "a//b"])
def test_a_models_subdir_outside_the_model_dir_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  subdir: str) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv(ws.MODELS_SUBDIR_ENV, subdir)
    with pytest.raises(RuntimeError, match="MANYMODELS_MODELS_SUBDIR"):
        ws.init()
