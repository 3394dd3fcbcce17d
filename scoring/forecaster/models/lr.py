"""``lr``: the seed's model, unchanged - OLS with intercept on the exog columns, the ISO week of year
and lags 1-4 of the target, forecast recursively (each forecast becomes the next week's lag 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..maths import _design, recurse, solve_ols, solve_ridge
from ..settings import LAGS, ModelKind, ScriptSettings
from . import Pack

SEED_PERIODS = {ModelKind.LR: LAGS}


@dataclass(frozen=True, slots=True)
class Params:
    intercept: np.ndarray  # (S,)
    coef: np.ndarray  # (S, k + 1 + LAGS): exog, week of year, lag_1..lag_4


def min_rows(kind: ModelKind, k: int) -> int:
    """Complete rows needed to fit: twice the number of parameters (exog, week, lags, intercept)."""
    return 2 * (k + 1 + LAGS + 1)


def usable(kind: ModelKind, pack: Pack) -> np.ndarray:
    """(S, T) weeks with the target and every feature known."""
    known: np.ndarray = ~np.isnan(_design(pack.y, pack.x, pack.weeks)).any(axis=2) & ~np.isnan(pack.y)
    return known


def fit(kind: ModelKind, pack: Pack, rows: np.ndarray, settings: ScriptSettings,
        exog_columns: Sequence[str] = (), *, fast: bool = False) -> Params:
    """One batched solve for every series over ``rows`` & its complete weeks (each series needs one)."""
    design = _design(pack.y, pack.x, pack.weeks)
    mask = rows & ~np.isnan(design).any(axis=2) & ~np.isnan(pack.y)
    intercept, coef = (solve_ridge if fast else solve_ols)(design, pack.y, mask)
    return Params(intercept, coef)


def step(kind: ModelKind, params: Params, seeds: np.ndarray, exog: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    return recurse(params.intercept, params.coef, seeds[:, -LAGS:], exog, weeks)


def fields(kind: ModelKind, params: Params, j: int) -> dict[str, Any]:
    return {"intercept": float(params.intercept[j]), "coef": params.coef[j].copy(), "params": {}}


def params_of(kind: ModelKind, models: Sequence[Any]) -> Params:
    return Params(np.array([m.intercept for m in models]), np.stack([m.coef for m in models]))
