"""Maths shared by fitting and forecasting: calendars, the batched OLS solve, recursion, metrics."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from .settings import LAGS, METRICS


def _ffill(values: np.ndarray) -> np.ndarray:
    """Forward fill NaNs along the last axis, then back fill what is left at the start."""
    mask = np.isnan(values)
    if not mask.any():
        return values
    n = values.shape[-1]
    idx = np.where(mask, 0, np.arange(n))
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled = np.take_along_axis(values, idx, axis=-1)
    mask = np.isnan(filled)
    if mask.any():
        idx = np.where(mask, n - 1, np.arange(n))
        idx = np.minimum.accumulate(idx[..., ::-1], axis=-1)[..., ::-1]
        filled = np.take_along_axis(filled, idx, axis=-1)
    return filled


@functools.lru_cache(maxsize=32)
def offset_of(freq: str) -> pd.DateOffset:
    return pd.tseries.frequencies.to_offset(freq)


@functools.lru_cache(maxsize=32)
def _fixed_step(freq: str) -> pd.Timedelta | None:
    """The constant step of a weekly/daily/intraday calendar (None for months, quarters...)."""
    offset = offset_of(freq)
    if isinstance(offset, pd.offsets.Week) and offset.weekday is not None:
        return pd.Timedelta(weeks=offset.n)
    if isinstance(offset, pd.offsets.Tick):
        return pd.Timedelta(offset)
    return None


def calendar(start: pd.Timestamp | None = None, periods: int = 1, freq: str = "W-THU", *,
             end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """``pd.date_range`` for on-calendar anchors, without its per-call cost for fixed steps (scoring latency)."""
    step = _fixed_step(freq)
    if step is None:
        return pd.date_range(start, end=end, periods=periods, freq=freq)
    first = start if end is None else end - step * (periods - 1)
    if first is None:
        raise ValueError("calendar needs a start or an end")
    return pd.DatetimeIndex(first.to_datetime64() + step.to_timedelta64() * np.arange(periods))


def _date_range(start: pd.Timestamp, end: pd.Timestamp, freq: str) -> pd.DatetimeIndex:
    """``pd.date_range(start, end, freq=freq)``: every calendar point from the first at/after ``start`` to ``end``."""
    step = _fixed_step(freq)
    if step is None:
        return pd.date_range(start, end, freq=freq)
    first = offset_of(freq).rollforward(start)
    return calendar(first, max((end - first) // step + 1, 0), freq)


def iso_weeks(start: pd.Timestamp, steps: int, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    stamps = calendar(start, steps, freq)
    return stamps, np.fromiter((t.isocalendar()[1] for t in stamps), float, steps)


def recurse(intercept: np.ndarray, coef: np.ndarray, seeds: np.ndarray, exog: np.ndarray,
            weeks: np.ndarray) -> np.ndarray:
    """Recursive multi-step forecast of many series at once.

    Args:
        intercept: (S,); coef: (S, k + 1 + LAGS) in feature order exog, week of year, lag_1..lag_4.
        seeds: (S, LAGS) the last known values, oldest first.
        exog: (S, H, k) future exogenous values; weeks: (S, H) ISO week of each step.

    Returns:
        (S, H) predictions; each step's prediction becomes the next step's lag_1.
    """
    s, h, k = exog.shape
    out = np.empty((s, h))
    lags = seeds[:, ::-1].copy()  # lag_1 first
    base = intercept[:, None] + np.einsum("shk,sk->sh", exog, coef[:, :k]) + weeks * coef[:, k, None]
    lag_coef = coef[:, k + 1:]
    for step in range(h):
        pred = base[:, step] + np.einsum("sl,sl->s", lags, lag_coef)
        out[:, step] = pred
        lags[:, 1:] = lags[:, :-1]
        lags[:, 0] = pred
    return out


def _design(y: np.ndarray, exog: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    """(S, T, k + 1 + LAGS) features; lag rows before the series start are NaN."""
    s, t = y.shape
    lagged = np.full((s, t, LAGS), np.nan)
    for j in range(1, LAGS + 1):
        lagged[:, j:, j - 1] = y[:, :-j]
    return np.concatenate([exog, weeks[:, :, None], lagged], axis=2)


def solve_ols(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched OLS with intercept over the rows in ``mask``, as scikit-learn's LinearRegression does it:
    centre X and y, take the minimum-norm least-squares solution, intercept = mean(y) - mean(X) @ coef.

    Args:
        x: (S, T, p); y: (S, T); mask: (S, T) rows to fit (every series needs at least one).
    Returns:
        intercept (S,), coef (S, p).
    """
    w = mask.astype(float)
    n = w.sum(axis=1)
    x = np.where(mask[:, :, None], x, 0.0)
    y = np.where(mask, y, 0.0)
    x_mean = np.einsum("stp,st->sp", x, w) / n[:, None]
    y_mean = (y * w).sum(axis=1) / n
    xc = (x - x_mean[:, None, :]) * w[:, :, None]
    yc = (y - y_mean[:, None]) * w
    # Masked rows are all-zero after centring, so they do not change the least-squares solution.
    # rtol is numpy 2's name for rcond; numpy's stubs of pinv do not have it yet
    coef = np.einsum("spt,st->sp", np.linalg.pinv(xc, rtol=np.finfo(float).eps * max(xc.shape[1:])),  # type: ignore[call-overload]
                     yc)
    return y_mean - np.einsum("sp,sp->s", x_mean, coef), coef


def solve_ridge(x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, ridge: float = 1e-8,
                ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`solve_ols` by the centred normal equations, columns scaled to unit length, with a tiny
    ridge, a few times faster than the SVD: used where many candidate fits are only scored
    (the ``auto`` backtest), never for a registered model's coefficients."""
    w = mask.astype(float)
    n = np.maximum(w.sum(axis=1), 1.0)
    x = np.where(mask[:, :, None], x, 0.0)
    y = np.where(mask, y, 0.0)
    x_mean = np.matmul(w[:, None, :], x)[:, 0, :] / n[:, None]
    y_mean = (y * w).sum(axis=1) / n
    xc = (x - x_mean[:, None, :]) * w[:, :, None]
    yc = (y - y_mean[:, None]) * w
    xt = np.swapaxes(xc, 1, 2)
    gram = np.matmul(xt, xc)
    # Scale every column to unit length so the ridge is the same small share of each (a constant
    # column gets coefficient 0, as the minimum-norm solution gives it).
    d = np.sqrt(np.einsum("spp->sp", gram))
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    scaled = gram * inv[:, :, None] * inv[:, None, :] + ridge * np.eye(gram.shape[1])[None]
    rhs = np.matmul(xt, yc[:, :, None])[:, :, 0] * inv
    coef = np.linalg.solve(scaled, rhs[:, :, None])[:, :, 0] * inv
    return y_mean - np.einsum("sp,sp->s", x_mean, coef), coef


def metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and MAPE (in percent, over non-zero actuals) where the actual is known."""
    keep = ~np.isnan(actual) & ~np.isnan(predicted)
    if not keep.any():
        return dict.fromkeys(METRICS, math.nan)
    err = actual[keep] - predicted[keep]
    mse = float(np.mean(err ** 2))
    nonzero = actual[keep] != 0
    mape = float(np.mean(np.abs(err[nonzero] / actual[keep][nonzero])) * 100) if nonzero.any() else math.nan
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(err))), "mape": mape}


def batch_metrics(actual: np.ndarray, predicted: np.ndarray) -> list[dict[str, float]]:
    """:func:`metrics` of many series at once: (S, H) actuals and predictions, one dict per series."""
    keep = ~np.isnan(actual) & ~np.isnan(predicted)
    err = np.where(keep, actual - predicted, 0.0)
    n = keep.sum(axis=1)
    nonzero = keep & (actual != 0)
    m = nonzero.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = (err ** 2).sum(axis=1) / n
        mae = np.abs(err).sum(axis=1) / n
        mape = np.where(nonzero, np.abs(err / np.where(nonzero, actual, 1.0)), 0.0).sum(axis=1) / m * 100
    mse, mae = np.where(n > 0, mse, np.nan), np.where(n > 0, mae, np.nan)
    mape = np.where(m > 0, mape, np.nan)
    return [{"mse": a, "rmse": math.sqrt(a), "mae": b, "mape": c}
            for a, b, c in zip(mse.tolist(), mae.tolist(), mape.tolist(), strict=True)]




def clip_non_negative(values: np.ndarray, non_negative: bool) -> np.ndarray:
    """Forecasts of a non-negative target (sales) floored at zero; NaN stays NaN."""
    return np.maximum(values, 0.0) if non_negative else values


def score_folds(metric: str, actual: np.ndarray, predicted: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A scale-free error per series of one backtest fold: (S, H) actuals (NaN unknown) and forecasts.

    ``mape``: mean |e| / |actual| over non-zero actuals, in percent; ``smape``: mean 2|e| / (|a| + |f|)
    in percent (0 where both are 0); ``mase``: mean |e| / ``scale`` (S,), the mean absolute one-week
    change of the series' training weeks. NaN where the fold has no usable week.
    """
    keep = ~np.isnan(actual) & ~np.isnan(predicted)
    err = np.abs(np.where(keep, actual - predicted, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "mape":
            use = keep & (actual != 0)
            ratio = np.where(use, err / np.where(use, np.abs(actual), 1.0), 0.0)
            return np.where(use.any(axis=1), 100 * ratio.sum(axis=1) / use.sum(axis=1), np.nan)
        if metric == "smape":
            denom = np.abs(np.where(keep, actual, 0.0)) + np.abs(np.where(keep, predicted, 0.0))
            ratio = np.where(keep & (denom > 0), 2 * err / np.where(denom > 0, denom, 1.0), 0.0)
            return np.where(keep.any(axis=1), 100 * ratio.sum(axis=1) / keep.sum(axis=1), np.nan)
        mae = np.where(keep.any(axis=1), err.sum(axis=1) / keep.sum(axis=1), np.nan)
        return np.where(scale > 0, mae / np.where(scale > 0, scale, 1.0), np.nan)


def naive_scale(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """MASE's scale per series: mean |y[t] - y[t-1]| over consecutive known weeks in ``rows`` (S, T)."""
    known = rows & ~np.isnan(y)
    both = known[:, 1:] & known[:, :-1]
    diff = np.abs(np.where(both, y[:, 1:] - y[:, :-1], 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(both.any(axis=1), diff.sum(axis=1) / both.sum(axis=1), np.nan)
