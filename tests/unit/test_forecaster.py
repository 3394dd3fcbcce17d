"""The forecaster: batched OLS equals scikit-learn, fallbacks say why, artifacts round-trip exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import forecaster as fc
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error

SETTINGS = fc.ScriptSettings(id_columns=("Store", "Brand"), target_column="Quantity", timestamp_column="WeekStarting",
                             tag_columns=("StoreGroup10",), drop_columns=("Revenue",), test_size=6, freq="W-THU",
                             horizon=5)
EXOG = ["Advert", "Price"]


def simulate(store: int, brand: str, weeks: int, *, seed: int, start: str = "1990-06-14",
             drop: tuple[int, ...] = ()) -> pd.DataFrame:
    """An AR(2) series driven by price and adverts, with the given week positions left out."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=weeks, freq="W-THU")
    price = rng.uniform(1.5, 3.5, weeks).round(2)
    advert = rng.integers(0, 2, weeks)
    q = np.zeros(weeks)
    for t in range(weeks):
        q[t] = 5000 - 900 * price[t] + 700 * advert[t] + 0.4 * q[t - 1] * (t > 0) + 0.2 * q[t - 2] * (t > 1) \
            + rng.normal(0, 150)
    frame = pd.DataFrame({"WeekStarting": stamps.strftime("%Y-%m-%d"), "Store": str(store), "Brand": brand,
                          "Quantity": q.round(), "Advert": advert, "Price": price, "Revenue": q * price,
                          "StoreGroup10": f"100{store % 10}"})
    return frame.drop(index=list(drop)).reset_index(drop=True)


def fit_frame(frame: pd.DataFrame, settings: fc.ScriptSettings = SETTINGS) -> list[fc.FitResult]:
    series, failures = fc.split_series(frame, settings)
    assert not failures
    return fc.fit_many(series, settings, settings.exog_columns(frame.columns))


# -- reference: one pandas pipeline + scikit-learn per series, the naive way ---------------------------


def reference_features(frame: pd.DataFrame) -> pd.DataFrame:
    df = frame.assign(WeekStarting=pd.to_datetime(frame["WeekStarting"])).set_index("WeekStarting")
    df = df.reindex(pd.date_range(df.index.min(), df.index.max(), freq="W-THU"))
    out = df[EXOG].astype(float)
    out["week_of_year"] = df.index.isocalendar().week.astype(float).to_numpy()
    for lag in range(1, 5):
        out[f"lag_{lag}"] = df["Quantity"].shift(lag)
    out["y"] = df["Quantity"]
    return out


def reference_forecast(model: LinearRegression, history: list[float], future: pd.DataFrame) -> np.ndarray:
    lags = list(history)
    preds = []
    for stamp, row in future.iterrows():
        x = [row["Advert"], row["Price"], float(stamp.isocalendar()[1]), *lags[::-1][:4]]
        pred = float(model.predict(np.array([x]))[0])
        preds.append(pred)
        lags.append(pred)
    return np.array(preds)


def test_batched_fit_and_forecast_equal_per_series_sklearn() -> None:
    frames = [simulate(2 + i, "tropicana", 60 + 7 * i, seed=i, drop=(10, 11, 30 + i)) for i in range(12)]
    results = fit_frame(pd.concat(frames, ignore_index=True))
    assert [r.model.kind for r in results] == ["lr"] * 12
    for frame, result in zip(frames, results, strict=True):
        feats = reference_features(frame)
        rows = feats.dropna()
        ref = LinearRegression().fit(rows.drop(columns="y").to_numpy(), rows["y"].to_numpy())
        model = result.model
        assert model.trained_weeks == len(rows)
        np.testing.assert_allclose(model.coef, ref.coef_, rtol=1e-6)
        assert model.intercept == pytest.approx(ref.intercept_, rel=1e-6)
        future = simulate(0, "x", 5, seed=99, start=str((model.tail_end + pd.Timedelta(weeks=1)).date()))
        future.index = pd.to_datetime(future["WeekStarting"])
        expected = reference_forecast(ref, feats["y"].iloc[-4:].tolist(), future)
        stamps, got = model.forecast(steps=5, exog=future[EXOG].to_numpy(float))
        assert stamps[0] == model.tail_end + pd.Timedelta(weeks=1)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_holdout_metrics_equal_sklearn_on_the_last_test_size_weeks() -> None:
    frame = simulate(7, "dominicks", 80, seed=3)
    model = fit_frame(frame)[0].model
    feats = reference_features(frame)
    train, test = feats.iloc[:-6], feats.iloc[-6:]
    rows = train.dropna()
    ref = LinearRegression().fit(rows.drop(columns="y").to_numpy(), rows["y"].to_numpy())
    pred = reference_forecast(ref, train["y"].iloc[-4:].tolist(), test)
    assert model.metrics["mse"] == pytest.approx(mean_squared_error(test["y"], pred), rel=1e-6)
    assert model.metrics["rmse"] == pytest.approx(math.sqrt(mean_squared_error(test["y"], pred)), rel=1e-6)
    assert model.metrics["mae"] == pytest.approx(mean_absolute_error(test["y"], pred), rel=1e-6)
    assert model.metrics["mape"] == pytest.approx(100 * mean_absolute_percentage_error(test["y"], pred), rel=1e-6)
    props = model.properties()
    assert set(props) == {"mse", "rmse", "mae", "mape"} and all(isinstance(v, str) for v in props.values())
    assert float(props["mape"]) == model.metrics["mape"]


def test_rank_deficient_features_match_sklearn_minimum_norm_solution() -> None:
    frame = simulate(4, "tropicana", 70, seed=5).assign(Advert=0)  # a constant column, collinear with the intercept
    model = fit_frame(frame)[0].model
    rows = reference_features(frame).dropna()
    ref = LinearRegression().fit(rows.drop(columns="y").to_numpy(), rows["y"].to_numpy())
    np.testing.assert_allclose(model.coef, ref.coef_, rtol=1e-6, atol=1e-9)
    assert model.intercept == pytest.approx(ref.intercept_, rel=1e-6)


def test_lags_are_on_the_calendar_so_rows_after_a_gap_are_not_fitted() -> None:
    full = fit_frame(simulate(1, "a", 60, seed=1))[0].model
    gappy = fit_frame(simulate(1, "a", 60, seed=1, drop=(30,)))[0].model
    assert full.trained_weeks == 56  # 60 weeks minus the first 4 without all lags
    assert gappy.trained_weeks == 51  # also the missing week and the 4 weeks whose lags it breaks


def test_forecast_feeds_each_prediction_into_the_next_lags() -> None:
    coef = np.zeros(len(EXOG) + 1 + fc.LAGS)
    coef[len(EXOG) + 1] = 1.0  # y_t = 10 + y_{t-1}
    model = fc.Forecaster(name="lr_a_1", kind=fc.ModelKind.LR, ids={"Brand": "a", "Store": "1"}, freq="W-THU",
                          horizon=4, target_column="Quantity", timestamp_column="WeekStarting",
                          exog_columns=tuple(EXOG), intercept=10.0, coef=coef,
                          tail_end=pd.Timestamp("1992-01-02"), tail=np.array([1.0, 2.0, 3.0, 100.0]), mean=26.5)
    stamps, values = model.forecast(steps=3, exog=np.ones((3, 2)))
    assert list(values) == [110.0, 120.0, 130.0]
    assert [s.date().isoformat() for s in stamps] == ["1992-01-09", "1992-01-16", "1992-01-23"]
    # history overrides the stored tail for the lags; a later start needs that history
    _, later = model.forecast(pd.Timestamp("1992-01-16"), steps=1, exog=np.ones((1, 2)),
                              history={pd.Timestamp("1992-01-09"): 50.0})
    assert list(later) == [60.0]
    with pytest.raises(fc.SeriesError, match="no history"):
        model.forecast(pd.Timestamp("1992-02-20"), steps=1, exog=np.ones((1, 2)))
    with pytest.raises(fc.SeriesError, match="expected 3 x 2"):
        model.forecast(steps=3, exog=np.ones((2, 2)))
    # a missing future value is carried forward (scoring/forecaster/forecasting.py; warned in forecast_many's answer)
    assert model.forecast(steps=2, exog=np.array([[1.0, 1.0], [1.0, np.nan]]))[1].tolist() == [110.0, 120.0]
    with pytest.raises(fc.SeriesError, match="not on the model's W-THU calendar"):
        model.forecast(pd.Timestamp("1992-01-10"), steps=1, exog=np.ones((1, 2)))


@pytest.mark.parametrize(("frame", "kind", "reason"), [
    (simulate(1, "short", 12, seed=1), "mean", "too short"),
    (simulate(1, "const", 60, seed=1).assign(Quantity=64.0), "mean", "is constant"),
    (simulate(1, "nans", 60, seed=1).assign(Quantity=lambda d: d["Quantity"].where(d.index % 3 == 0)), "mean",
     "40 without Quantity"),
    (simulate(1, "noprice", 60, seed=1).assign(Price=np.nan), "snaive", "too short"),
    (simulate(1, "badprice", 40, seed=1).assign(Price="n/a"), "mean", "unparsable value(s) in Price"),
])
def test_series_that_cannot_fit_get_a_fallback_with_its_reason(frame: pd.DataFrame, kind: str, reason: str) -> None:
    result = fit_frame(frame)[0]
    model = result.model
    assert model.kind == kind and model.is_fallback
    assert reason in model.fallback_reason
    assert model.properties()["fallback_reason"] == model.fallback_reason
    _, values = model.forecast(steps=3, exog=None)
    assert np.isfinite(values).all()
    if kind == "mean":
        assert values.tolist() == [model.mean] * 3
    else:  # seasonal naive repeats the last season
        assert values.tolist() == model.tail[:3].tolist()


def test_series_without_any_target_value_gets_no_model() -> None:
    result = fit_frame(simulate(1, "empty", 30, seed=1).assign(Quantity=np.nan))[0]
    assert result.model is None and "no usable Quantity" in result.error


def test_bad_timestamps_fail_only_their_series() -> None:
    good = simulate(1, "good", 40, seed=1)
    off = simulate(2, "offcalendar", 40, seed=2).assign(WeekStarting=lambda d: d["WeekStarting"].str[:-2] + "01")
    dup = pd.concat([simulate(3, "dup", 40, seed=3)] * 2)
    garbled = simulate(4, "garbled", 40, seed=4)
    garbled.loc[5, "WeekStarting"] = "not a date"
    stray = simulate(5, "stray", 40, seed=5)
    stray.loc[39, "WeekStarting"] = "2090-01-05"  # a typo'd year, on the calendar
    series, failures = fc.split_series(pd.concat([good, off, dup, garbled, stray], ignore_index=True), SETTINGS)
    assert [s.ids["Brand"] for s in series] == ["good"]
    reasons = {f.ids["Brand"]: f.reason for f in failures}
    assert "not on the W-THU calendar" in reasons["offcalendar"]
    assert "appears more than once" in reasons["dup"]
    assert "unparsable value(s) in WeekStarting (e.g. 'not a date')" in reasons["garbled"]
    assert "40 rows spread over" in reasons["stray"] and "2090-01-05" in reasons["stray"]
    assert series[0].tags == {"StoreGroup10": "1001"}


@pytest.mark.parametrize("frame", [simulate(5, "lr", 70, seed=8), simulate(5, "mean", 9, seed=8),
                                   simulate(5, "snaive", 60, seed=8).assign(Price=np.nan)])
def test_save_and_load_give_identical_forecasts_without_pickle(tmp_path: Path, frame: pd.DataFrame) -> None:
    model = fit_frame(frame)[0].model
    model.save(tmp_path / model.name)
    raw = json.loads((tmp_path / model.name / "model.json").read_text())
    assert raw["format"] == fc.FORMAT and raw["model_type"] == model.kind
    loaded = fc.load_model(tmp_path / model.name)
    future = np.column_stack([np.zeros(4), np.linspace(2, 3, 4)])
    assert loaded.forecast(steps=4, exog=future)[1].tolist() == model.forecast(steps=4, exog=future)[1].tolist()
    assert loaded.to_dict() == model.to_dict()


def test_latest_version_is_chosen_by_number(tmp_path: Path) -> None:
    for version in ("2", "10", "9"):
        (tmp_path / "lr_a_1" / version).mkdir(parents=True)
    assert fc.latest_version_dir(tmp_path, "lr_a_1") == tmp_path / "lr_a_1" / "10"
    assert fc.latest_version_dir(tmp_path, "lr_missing") is None


def test_model_name_sorts_ids_by_column_name() -> None:
    assert fc.model_name("lr", {"Store": 1000, "Brand": "dominicks"}) == "lr_dominicks_1000"


def test_settings_file_is_validated_with_the_field_named(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({**SETTINGS.to_dict(), "test_size": 0}))
    with pytest.raises(fc.SettingsFileError, match="test_size=0 is not allowed"):
        fc.ScriptSettings.load(path)
    path.write_text(json.dumps({**SETTINGS.to_dict(), "freq": "every thursday"}))
    with pytest.raises(fc.SettingsFileError, match="freq="):
        fc.ScriptSettings.load(path)
    path.write_text(json.dumps(SETTINGS.to_dict()))
    assert fc.ScriptSettings.load(path) == SETTINGS
    repo_file = Path(__file__).resolve().parents[2] / "pipelines" / "configuration" / "script_settings.json"
    assert fc.ScriptSettings.load(repo_file).exog_columns(
        ["WeekStarting", "Store", "Brand", "Quantity", "Advert", "Price", "Revenue", "StoreGroup10"]) == EXOG


def test_metrics_skip_unknown_actuals_and_zero_actuals_for_mape() -> None:
    got = fc.metrics(np.array([10.0, np.nan, 0.0, 20.0]), np.array([12.0, 5.0, 1.0, 20.0]))
    assert got["mse"] == pytest.approx(5 / 3)
    assert got["mae"] == pytest.approx(1.0)
    assert got["mape"] == pytest.approx(10.0)  # (20% + 0%) / 2
