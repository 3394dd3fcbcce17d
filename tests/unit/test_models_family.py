"""The model family and ``auto``: each type against an independent reference, the backtest folds,
the selection, non-negative forecasts, bad-target warnings and gaps in the future data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import forecaster as fc
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

BASE = dict(id_columns=("Store", "Brand"), target_column="Quantity", timestamp_column="WeekStarting",
            drop_columns=("Revenue",), test_size=6, freq="W-THU", horizon=5)
EXOG = ["Advert", "Price"]


def settings(**changes) -> fc.ScriptSettings:
    return fc.ScriptSettings(**{**BASE, **changes})


def demand(store: int, weeks: int, *, seed: int, elasticity: float = -2.5, lift: float = 0.6, noise: float = 0.15,
           start: str = "1990-06-14") -> pd.DataFrame:
    """Multiplicative sales: log q = 9 + elasticity * log price + lift * advert + noise."""
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, weeks).round(2)
    advert = rng.integers(0, 2, weeks)
    q = np.exp(9 + elasticity * np.log(price) + lift * advert + rng.normal(0, noise, weeks)).round()
    return pd.DataFrame({"WeekStarting": pd.date_range(start, periods=weeks, freq="W-THU").strftime("%Y-%m-%d"),
                         "Store": str(store), "Brand": "b", "Quantity": q, "Advert": advert, "Price": price,
                         "Revenue": q * price})


def fit(frame: pd.DataFrame, s: fc.ScriptSettings) -> list[fc.FitResult]:
    series, failures = fc.split_series(frame, s)
    assert not failures
    return fc.fit_many(series, s, s.exog_columns(frame.columns))


def future(model: fc.Forecaster, steps: int, *, seed: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, 2, steps), rng.uniform(1.5, 3.5, steps).round(2)]).astype(float)


# -- each type against an independent reference ------------------------------------------------------------


def test_loglog_equals_sklearn_on_log_features_with_the_bias_correction_asked_for() -> None:
    frame = demand(1, 80, seed=1)
    for point, shift in (("mean", 0.5), ("median", 0.0), ("metric", -1.0)):
        model = fit(frame, settings(model_type="loglog", point_forecast=point))[0].model
        assert model.kind == "loglog" and not model.is_fallback
        x = np.column_stack([frame["Advert"], np.log(frame["Price"])])
        z = np.log1p(frame["Quantity"].to_numpy())
        ref = LinearRegression().fit(x, z)
        np.testing.assert_allclose(model.coef[:2], ref.coef_, rtol=1e-6)
        assert model.intercept == pytest.approx(ref.intercept_, rel=1e-8)
        resid = z - ref.predict(x)
        s2 = resid @ resid / (len(z) - 3)
        assert model.params["s2"] == pytest.approx(s2, rel=1e-6)
        assert model.params["log"] == [False, True]  # Advert is a 0/1 flag, Price positive: logged
        fx = future(model, 4)
        expected = np.expm1(ref.predict(np.column_stack([fx[:, 0], np.log(fx[:, 1])])) + shift * s2)
        np.testing.assert_allclose(model.forecast(steps=4, exog=fx)[1], expected, rtol=1e-6)
        assert model.coef[1] == pytest.approx(-2.5, abs=0.15)  # the elasticity comes back


def test_demand_equals_sklearn_with_week_and_log_lags_recursively() -> None:
    frame = demand(2, 90, seed=2)
    model = fit(frame, settings(model_type="demand", point_forecast="median"))[0].model
    df = frame.set_index(pd.to_datetime(frame["WeekStarting"]))
    z = np.log1p(df["Quantity"].astype(float))
    feats = pd.DataFrame({"Advert": df["Advert"].astype(float), "logPrice": np.log(df["Price"]),
                          "week": df.index.isocalendar().week.astype(float)})
    for lag in range(1, 5):
        feats[f"lag{lag}"] = z.shift(lag)
    rows = feats.assign(z=z).dropna()
    ref = LinearRegression().fit(rows.drop(columns="z").to_numpy(), rows["z"].to_numpy())
    np.testing.assert_allclose(model.coef, ref.coef_, rtol=1e-6, atol=1e-9)
    fx = future(model, 3)
    lags = list(z.iloc[-4:])
    expected = []
    for step, stamp in enumerate(pd.date_range(model.next_week(), periods=3, freq="W-THU")):
        pred = float(ref.predict(np.array([[fx[step, 0], np.log(fx[step, 1]), stamp.isocalendar()[1],
                                            *lags[::-1][:4]]]))[0])
        lags.append(pred)
        expected.append(math.expm1(pred))
    np.testing.assert_allclose(model.forecast(steps=3, exog=fx)[1], expected, rtol=1e-6)


def test_schema_names_the_log_and_flag_columns() -> None:
    frame = demand(3, 60, seed=3)
    model = fit(frame, settings(model_type="loglog", log_columns=("Advert",), flag_columns=()))[0].model
    assert model.params["log"] == [False, False]  # Advert has zeros: never logged; Price not named
    model = fit(frame, settings(model_type="loglog", flag_columns=("Price",)))[0].model
    assert model.params["log"] == [False, False]  # Price named a flag: kept linear


@pytest.mark.parametrize("kind", ["naive", "snaive", "mean"])
def test_baselines_equal_their_numpy_definition(kind: str) -> None:
    frame = demand(4, 70, seed=4)
    model = fit(frame, settings(model_type=kind))[0].model
    y = frame["Quantity"].to_numpy(float)
    _, got = model.forecast(steps=6, exog=None)
    expected = {"naive": np.repeat(y[-1], 6), "snaive": y[-52:][:6], "mean": np.repeat(y.mean(), 6)}[kind]
    np.testing.assert_allclose(got, expected)
    assert model.kind == kind and not model.is_fallback


# -- the backtest and the selection ------------------------------------------------------------------------


def test_backtest_folds_are_the_last_horizons_scored_like_a_manual_refit() -> None:
    frame = demand(5, 70, seed=5)
    s = settings(model_type="auto", backtest_folds=3, horizon=5)
    series, _ = fc.split_series(frame, s)
    pack = fc.fitting._pack(series, 2, s.freq)
    scores = fc.backtest(pack, s, EXOG, [fc.ModelKind.NAIVE, fc.ModelKind.MEAN], folds=3, horizon=5)
    y = frame["Quantity"].to_numpy(float)
    for f in range(3):  # fold f: train on the weeks before 70 - 5 (f + 1), score the next 5 weeks
        cut = 70 - 5 * (f + 1)
        actual = y[cut:cut + 5]
        naive = 100 * np.mean(np.abs(y[cut - 1] - actual) / actual)
        mean = 100 * np.mean(np.abs(y[:cut].mean() - actual) / actual)
        assert scores[0, 0, f] == pytest.approx(naive)
        assert scores[0, 1, f] == pytest.approx(mean)


def test_auto_chooses_the_demand_model_on_multiplicative_sales_and_records_why(tmp_path: Path) -> None:
    frame = pd.concat([demand(10 + i, 100, seed=10 + i) for i in range(4)], ignore_index=True)
    results = fit(frame, settings(model_type="auto"))
    for result in results:
        model = result.model
        assert model.name.startswith("auto_")
        assert model.kind in ("loglog", "demand") and not model.is_fallback
        sel = model.selection
        assert sel["metric"] == "mape" and sel["folds"] == fc.DEFAULT_FOLDS
        assert set(sel["scores"]) == {str(k) for k in fc.DEFAULT_CANDIDATES}
        assert sel["scores"][str(model.kind)] == min(v for v in sel["scores"].values() if v is not None)
        assert str(model.kind) in sel["reason"]
        props = model.properties()
        assert props["chosen_type"] == model.kind and json.loads(props["backtest_scores"]) == sel["scores"]
        model.save(tmp_path / model.name)
        assert fc.load_model(tmp_path / model.name).to_dict() == model.to_dict()


def test_a_baseline_must_beat_the_driver_models_by_more_than_one_standard_error() -> None:
    kinds = [fc.ModelKind.LOGLOG, fc.ModelKind.NAIVE]
    close = np.array([[50.0, 40.0, 60.0, 50.0], [45.0, 60.0, 30.0, 55.0]])  # naive 47.5 vs 50: noise
    kind, why = fc.selection._winner(kinds, close, close.mean(axis=1), np.array([True, True]),
                                     np.array([False, True]), "mape")
    assert kind == "loglog" and "one standard error" in why
    clear = np.array([[50.0, 52.0, 49.0, 51.0], [20.0, 21.0, 19.0, 22.0]])
    kind, why = fc.selection._winner(kinds, clear, clear.mean(axis=1), np.array([True, True]),
                                     np.array([False, True]), "mape")
    assert kind == "naive" and "lowest mean mape" in why


def test_short_series_get_the_best_baseline_with_the_reason() -> None:
    frame = demand(20, 24, seed=20)
    model = fit(frame, settings(model_type="auto"))[0].model
    assert model.kind in ("naive", "snaive", "mean") and model.is_fallback
    assert "too short for a 4-fold backtest" in model.fallback_reason and "best baseline" in model.fallback_reason


# -- non-negative forecasts, warnings, gaps ----------------------------------------------------------------


def _falling_lr(non_negative: bool = True) -> fc.Forecaster:
    coef = np.zeros(len(EXOG) + 1 + fc.LAGS)
    coef[len(EXOG) + 1] = 1.0  # y_t = y_{t-1} - 40
    return fc.Forecaster(name="lr_a_1", kind=fc.ModelKind.LR, ids={"Brand": "a", "Store": "1"}, freq="W-THU",
                         horizon=4, target_column="Quantity", timestamp_column="WeekStarting",
                         exog_columns=tuple(EXOG), intercept=-40.0, coef=coef, tail_end=pd.Timestamp("1992-01-02"),
                         tail=np.array([100.0, 90.0, 80.0, 70.0]), mean=85.0, non_negative=non_negative)


def test_a_non_negative_target_is_never_forecast_below_zero() -> None:
    _, values = _falling_lr().forecast(steps=4, exog=np.ones((4, 2)))
    assert values.tolist() == [30.0, 0.0, 0.0, 0.0]
    _, raw = _falling_lr(non_negative=False).forecast(steps=3, exog=np.ones((3, 2)))
    assert raw.tolist() == [30.0, -10.0, -50.0]  # lr's own maths is unchanged; only the answer is floored
    assert fc.ScriptSettings.from_dict({"id_columns": ["a"], "target_column": "y",
                                        "timestamp_column": "t"}).non_negative is True


def test_bad_target_values_become_per_series_warnings() -> None:
    frame = demand(30, 70, seed=30).astype({"Quantity": object})
    frame.loc[10, "Quantity"] = "n/a"
    frame.loc[11, "Quantity"] = None
    frame.loc[12, "Quantity"] = -5.0
    good = demand(31, 70, seed=31)
    series, _ = fc.split_series(pd.concat([frame, good], ignore_index=True), settings())
    by_store = {s.ids["Store"]: s for s in series}
    assert by_store["31"].warnings == ()
    (warning,) = by_store["30"].warnings
    assert warning.startswith("3 row(s) with a missing, non-numeric or negative Quantity")
    assert "'n/a'" in warning and "1990-08-23" in warning
    assert np.isnan(by_store["30"].target[12])  # the negative value is not fitted
    model = fc.fit_many([by_store["30"]], settings(), EXOG)[0].model
    assert model.warnings == (warning,) and model.properties()["warnings"] == warning


def test_a_week_missing_from_the_future_data_is_carried_forward_with_a_warning() -> None:
    model = _falling_lr()
    x = np.array([[1.0, 2.0], [np.nan, np.nan], [0.0, 3.0]])
    (result,) = fc.forecast_many([model], [None], steps=[3], exog=[x])
    assert not isinstance(result, fc.SeriesError)
    filled = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 3.0]])
    assert result[1].tolist() == model.forecast(steps=3, exog=filled)[1].tolist()
    assert "lacks 1 of 3 forecast week(s) (first 1992-01-16)" in result.warnings[0]
    with pytest.raises(fc.SeriesError, match="Price has no value in any"):
        model.forecast(steps=2, exog=np.array([[1.0, np.nan], [1.0, np.nan]]))


def test_horizons_beyond_the_settings_are_served_up_to_the_maximum() -> None:
    model = _falling_lr()
    assert len(model.forecast(steps=fc.MAX_HORIZON, exog=np.ones((fc.MAX_HORIZON, 2)))[1]) == fc.MAX_HORIZON
    with pytest.raises(fc.SeriesError, match=f"at most {fc.MAX_HORIZON} weeks"):
        model.forecast(steps=fc.MAX_HORIZON + 1, exog=np.ones((fc.MAX_HORIZON + 1, 2)))


@pytest.mark.parametrize(("changes", "message"), [
    ({"model_type": "prophet"}, "model_type='prophet' is not allowed: expected one of 'auto'"),
    ({"selection_metric": "rmse"}, "selection_metric='rmse' is not allowed"),
    ({"backtest_folds": 1}, "backtest_folds=1 is not allowed"),
    ({"candidates": ["lr", "arima"]}, "candidates=['lr', 'arima'] is not allowed"),
    ({"non_negative": "yes"}, "non_negative='yes' is not allowed"),
])
def test_model_settings_are_validated(changes: dict, message: str) -> None:
    raw = {**settings().to_dict(), **changes}
    with pytest.raises(fc.SettingsFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fc.ScriptSettings.from_dict(raw)
    assert fc.ScriptSettings.from_dict(settings(model_type="auto").to_dict()) == settings(model_type="auto")


def test_one_batch_of_mixed_types_and_horizons_equals_each_request_stepped_alone_and_forecast() -> None:
    # scoring/forecaster/forecasting.py step_many: the batching loop of forecast_many and of the webservice's
    # fast path; a group of unequal horizons takes its padded branch, a request alone its stacked branch
    frame = pd.concat([demand(store, 70, seed=store) for store in (1, 2, 3)])
    models = []
    for model_type in ("lr", "demand", "snaive"):
        models += [r.model for r in fit(frame, settings(model_type=model_type))]
    requests = []
    for i, model in enumerate(models):
        steps = (3, 7, 5)[i % 3]
        _, weeks, seeds, x = fc.check_request(model, None, steps, future(model, steps, seed=i))
        requests.append(fc.SteppedRequest(model, steps, weeks, seeds, x if model.uses_exog else None))
    together = fc.step_many(requests)
    for i, (request, values) in enumerate(zip(requests, together, strict=True)):
        (alone,) = fc.step_many([request])
        assert values.shape == (request.steps,)
        np.testing.assert_array_equal(values, alone)
        _, expected = request.model.forecast(steps=request.steps, exog=future(request.model, request.steps, seed=i))
        np.testing.assert_array_equal(values, expected)
