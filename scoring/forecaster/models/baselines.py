"""Baselines: ``naive`` (the last known value), ``snaive`` (the value one season, 52 weeks, earlier;
the series mean where that week is unknown) and ``mean`` (the mean of the fitted weeks). They need
no exogenous data, are candidates of ``auto`` and are the fallbacks of series no other model fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..settings import LAGS, SEASON, ModelKind, ScriptSettings
from . import Pack

SEED_PERIODS = {ModelKind.NAIVE: LAGS, ModelKind.SNAIVE: SEASON, ModelKind.MEAN: 1}


@dataclass(frozen=True, slots=True)
class Params:
    mean: np.ndarray  # (S,)


def min_rows(kind: ModelKind, k: int) -> int:
    return 1


def usable(kind: ModelKind, pack: Pack) -> np.ndarray:
    known: np.ndarray = ~np.isnan(pack.y)
    return known


def fit(kind: ModelKind, pack: Pack, rows: np.ndarray, settings: ScriptSettings, exog_columns: Sequence[str] = (),
        *, fast: bool = False) -> Params:
    known = rows & ~np.isnan(pack.y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Params(np.where(known, pack.y, 0.0).sum(axis=1) / known.sum(axis=1))


def step(kind: ModelKind, params: Params, seeds: np.ndarray, exog: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    h = weeks.shape[1]
    if kind == ModelKind.MEAN:
        return np.repeat(params.mean[:, None], h, axis=1)
    if kind == ModelKind.NAIVE:
        return np.repeat(seeds[:, -1:], h, axis=1)
    season = seeds[:, -SEASON:]
    if season.shape[1] < SEASON:  # pad the front: those weeks are unknown
        season = np.concatenate([np.full((len(season), SEASON - season.shape[1]), np.nan), season], axis=1)
    season = np.where(np.isnan(season), params.mean[:, None], season)
    return season[:, np.arange(h) % SEASON]


def fields(kind: ModelKind, params: Params, j: int) -> dict[str, Any]:
    return {"intercept": 0.0, "coef": np.empty(0), "params": {}}


def params_of(kind: ModelKind, models: Sequence[Any]) -> Params:
    return Params(np.array([m.mean for m in models]))
