"""Multiplicative demand models: the log of the target on the log of price-like columns and on
promotion flags, so coefficients are elasticities and promotion lifts (percent changes).

- ``demand``: log(1 + y) on the transformed exog columns, the ISO week of year and lags 1-4 of
  log(1 + y) (the seasonality and lags of ``lr``), forecast recursively in log space;
- ``loglog``: the static version, log(1 + y) on the transformed exog columns only.

Which columns are logged is set by the schema (``log_columns``/``flag_columns`` in
``script_settings.json``); when it does not say, a column holding only 0/1 on the fitted weeks is a
flag (kept as is), any other column positive on every fitted week is logged, the rest stay linear.
Nothing names an OJ column. The forecast is log-normal around the log-scale prediction ``mu`` with
the residual variance ``s2``; the point returned is ``exp(mu + shift) - 1`` where ``shift`` is the
bias correction for the point asked for (``point_forecast``): ``+s2/2`` the mean (the usual
correction), ``0`` the median, ``-s2`` the value minimising the expected absolute percentage error
(the default with ``selection_metric: mape``). Future values of a logged column are floored at
``LOG_FLOOR`` (a zero price has no logarithm).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..maths import _design, recurse, solve_ols, solve_ridge
from ..settings import LAGS, ModelKind, PointForecast, ScriptSettings, SelectionMetric
from . import Pack

SEED_PERIODS = {ModelKind.DEMAND: LAGS, ModelKind.LOGLOG: LAGS}
LOG_FLOOR = 1e-3


@dataclass(frozen=True, slots=True)
class Params:
    intercept: np.ndarray  # (S,)
    coef: np.ndarray  # (S, k + 1 + LAGS): exog (transformed), week of year, lags of log(1 + y); loglog: zeros after k
    log: np.ndarray  # (S, k) bool: which exog columns enter as logs
    shift: np.ndarray  # (S,) log-scale offset of the point forecast
    s2: np.ndarray  # (S,) residual variance on the log scale


def min_rows(kind: ModelKind, k: int) -> int:
    return 2 * (k + 1 + LAGS + 1) if kind == ModelKind.DEMAND else 2 * (k + 1)


def _log_target(y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(y >= 0, np.log1p(np.where(y >= 0, y, 0.0)), np.nan)


def transform(x: np.ndarray, log: np.ndarray) -> np.ndarray:
    """(S, T, k) exog with the ``log`` (S, k) columns logged (floored at ``LOG_FLOOR``)."""
    if not log.any():
        return x
    with np.errstate(invalid="ignore"):
        logged = np.log(np.maximum(x, LOG_FLOOR))
    return np.where(log[:, None, :], logged, x)


def _features(kind: ModelKind, z: np.ndarray, xt: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    return _design(z, xt, weeks) if kind == ModelKind.DEMAND else xt


def usable(kind: ModelKind, pack: Pack) -> np.ndarray:
    z = _log_target(pack.y)
    known: np.ndarray = ~np.isnan(_features(kind, z, pack.x, pack.weeks)).any(axis=2) & ~np.isnan(z)
    return known


def log_columns(pack: Pack, rows: np.ndarray, settings: ScriptSettings, exog_columns: Sequence[str]) -> np.ndarray:
    """(S, k): which columns each series takes the log of (see the module docstring)."""
    seen = rows[:, :, None] & ~np.isnan(pack.x)
    some = seen.any(axis=1)
    positive: np.ndarray = np.where(seen, pack.x > 0, True).all(axis=1) & some
    flag = np.where(seen, (pack.x == 0) | (pack.x == 1), True).all(axis=1)
    named = np.array([c in (settings.log_columns or ()) for c in exog_columns], dtype=bool)
    flags = np.array([c in (settings.flag_columns or ()) for c in exog_columns], dtype=bool)
    if settings.log_columns is not None:
        logged: np.ndarray = positive & named[None, :]
    elif settings.flag_columns is not None:
        logged = positive & ~flags[None, :]
    else:
        logged = positive & ~flag
    return logged


def fit(kind: ModelKind, pack: Pack, rows: np.ndarray, settings: ScriptSettings,
        exog_columns: Sequence[str] = (), *, fast: bool = False) -> Params:
    k = pack.x.shape[2]
    log = log_columns(pack, rows, settings, exog_columns or [f"x{i}" for i in range(k)])
    xt = transform(pack.x, log)
    z = _log_target(pack.y)
    design = _features(kind, z, xt, pack.weeks)
    mask = rows & ~np.isnan(design).any(axis=2) & ~np.isnan(z)
    intercept, coef = (solve_ridge if fast else solve_ols)(design, z, mask)
    fitted = intercept[:, None] + np.matmul(np.where(mask[:, :, None], design, 0.0), coef[:, :, None])[:, :, 0]
    resid = np.where(mask, z - fitted, 0.0)
    n = mask.sum(axis=1)
    dof = np.maximum(n - design.shape[2] - 1, 1)
    s2 = (resid ** 2).sum(axis=1) / dof
    if kind == ModelKind.LOGLOG:
        coef = np.concatenate([coef, np.zeros((len(coef), 1 + LAGS))], axis=1)
    return Params(intercept, coef, log, point_shift(settings, s2), s2)


def point_shift(settings: ScriptSettings, s2: np.ndarray) -> np.ndarray:
    point = settings.point_forecast
    if point == PointForecast.METRIC:
        point = "mape" if settings.selection_metric == SelectionMetric.MAPE else PointForecast.MEDIAN
    if point == PointForecast.MEAN:
        return s2 / 2
    if point == "mape":
        return -s2
    return np.zeros_like(s2)


def step(kind: ModelKind, params: Params, seeds: np.ndarray, exog: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    mu = recurse(params.intercept, params.coef, _log_target(np.maximum(seeds[:, -LAGS:], 0.0)),
                 transform(exog, params.log), weeks)
    with np.errstate(over="ignore"):
        values: np.ndarray = np.expm1(mu + params.shift[:, None])
    return values


def fields(kind: ModelKind, params: Params, j: int) -> dict[str, Any]:
    return {"intercept": float(params.intercept[j]), "coef": params.coef[j].copy(),
            "params": {"log": params.log[j].tolist(), "shift": float(params.shift[j]), "s2": float(params.s2[j])}}


def params_of(kind: ModelKind, models: Sequence[Any]) -> Params:
    k = len(models[0].exog_columns)
    return Params(np.array([m.intercept for m in models]), np.stack([m.coef for m in models]),
                  np.array([m.params.get("log", [False] * k) for m in models], dtype=bool).reshape(len(models), k),
                  np.array([float(m.params.get("shift", 0.0)) for m in models]),
                  np.array([float(m.params.get("s2", 0.0)) for m in models]))
