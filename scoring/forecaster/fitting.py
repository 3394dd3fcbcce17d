"""Fitting many series at once: one model type for all (``model_type: lr`` etc.) or ``auto``.

Series are packed into series x weeks arrays and every model type fits the whole batch in a few
array operations (``scoring/forecaster/models/``). Each model's hold-out metrics (``test_size``
weeks) come from a fit on the weeks before them; the model itself is refitted on every week. A
series that cannot be fitted (too short, constant, too many gaps) gets a fallback model (seasonal
naive or mean) and says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .maths import _ffill, batch_metrics, iso_weeks, metrics
from .model import FitResult, Forecaster
from .models import Pack, module_of
from .series import Series
from .settings import (
    FALLBACKS,
    METRICS,
    SEASON,
    ModelChoice,
    ModelKind,
    ScriptSettings,
    model_name,
)


def _pack(series: Sequence[Series], k: int, freq: str) -> Pack:
    """Left-aligned (S, T) target, (S, T, k) exog, (S, T) week of year, (S,) lengths; NaN padding."""
    lengths = np.array([len(s.target) for s in series])
    t = int(lengths.max())
    y = np.full((len(series), t), np.nan)
    x = np.full((len(series), t, k), np.nan)
    weeks = np.zeros((len(series), t))
    week_cache: dict[pd.Timestamp, np.ndarray] = {}
    for i, s in enumerate(series):
        n = lengths[i]
        y[i, :n] = s.target
        x[i, :n] = s.exog
        if s.start not in week_cache:
            week_cache[s.start] = iso_weeks(s.start, t, freq)[1]
        weeks[i] = week_cache[s.start]
    return Pack(y, x, weeks, lengths)


def fit_many(series: Sequence[Series], settings: ScriptSettings, exog_columns: Sequence[str]) -> list[FitResult]:
    """Fit every series with the settings' ``model_type`` where it can be fitted, else a fallback
    with its reason; ``auto`` chooses each series' type by a rolling-origin backtest
    (``scoring/forecaster/selection.py``)."""
    if not series:
        return []
    results: list[FitResult | None] = [None] * len(series)
    pack = _pack(series, len(exog_columns), settings.freq)
    if settings.model_type == ModelChoice.AUTO:
        from .selection import select

        choice = select(pack, settings, exog_columns)
        for kind in dict.fromkeys(choice.kinds):
            members = np.flatnonzero(choice.kinds == kind)
            _fit_kind(ModelKind(kind), members, series, pack, settings, exog_columns, results,
                      selection=choice.selection, reasons=choice.reasons)
    else:
        _fit_kind(ModelKind(settings.model_type), np.arange(len(series)), series, pack, settings, exog_columns,
                  results)
    return [r for r in results if r is not None]


def _fit_kind(kind: ModelKind, members: np.ndarray, series: Sequence[Series], pack: Pack, settings: ScriptSettings,
              exog_columns: Sequence[str], results: list[FitResult | None], *,
              selection: Sequence[dict] | None = None, reasons: Sequence[str] | None = None) -> None:
    """Fit ``kind`` to the series ``members`` (hold-out fit + full refit, batched); fallbacks for the rest."""
    module = module_of(kind)
    sub = pack.take(members)
    k = len(exog_columns)
    t_idx = np.arange(sub.y.shape[1])
    complete = module.usable(kind, sub)
    cut = sub.lengths - settings.test_size
    train_rows = complete & (t_idx[None, :] < cut[:, None])
    need = module.min_rows(kind, k)
    train_count, all_count = train_rows.sum(axis=1), complete.sum(axis=1)
    known = ~np.isnan(sub.y)
    holdout_known = (known & (t_idx[None, :] >= np.maximum(cut, 0)[:, None])).sum(axis=1)
    if kind in FALLBACKS:
        ok = known.any(axis=1)
    else:
        low = np.where(known, sub.y, np.inf).min(axis=1)
        high = np.where(known, sub.y, -np.inf).max(axis=1)
        ok = ~((known.any(axis=1) & (low == high)) | (train_count < need) | (all_count < need) | (holdout_known == 0))
    for j in np.flatnonzero(~ok):
        i = int(members[j])
        reason = _unfit_reason(series[i], int(train_count[j]), int(all_count[j]), need, settings,
                               holdout_known=int(holdout_known[j]), kind=str(kind))
        results[i] = _fallback(series[i], reason or f"no usable {settings.target_column} value", settings,
                               exog_columns)
    sel = np.flatnonzero(ok)
    if not len(sel):
        return
    sub = sub.take(sel)
    members = members[sel]
    train_rows, complete = train_rows[sel], complete[sel]
    h = settings.test_size
    cut = sub.lengths - h
    # Hold-out: fit before the cut, forecast the held-out weeks recursively from the cut.
    fold_rows = train_rows if kind not in FALLBACKS else (known[sel] & (t_idx[None, :] < cut[:, None]))
    has_train = fold_rows.any(axis=1)
    scores = [dict.fromkeys(METRICS, math.nan) for _ in members]
    if has_train.any():
        part = np.flatnonzero(has_train)
        held = sub.take(part)
        params = module.fit(kind, held, fold_rows[part], settings, exog_columns)
        pred = predict(kind, params, held, cut[part], h, settings)
        rows = np.arange(len(part))[:, None]
        steps = cut[part][:, None] + np.arange(h)[None, :]
        for j, m in zip(part.tolist(), batch_metrics(held.y[rows, steps], pred), strict=True):
            scores[j] = m
    # Full refit on every complete week.
    full_rows = complete if kind not in FALLBACKS else known[sel]
    params = module.fit(kind, sub, full_rows, settings, exog_columns)
    means = np.nanmean(sub.y, axis=1)  # padding is NaN, so this is each series' own mean
    trained = full_rows.sum(axis=1)
    exog_columns = tuple(exog_columns)
    for j, i in enumerate(members.tolist()):
        s = series[i]
        reason = reasons[i] if reasons is not None else ""
        model = Forecaster(
            name=model_name(settings.model_type, s.ids), kind=kind, ids=s.ids, freq=settings.freq,
            horizon=settings.horizon, target_column=settings.target_column,
            timestamp_column=settings.timestamp_column, exog_columns=exog_columns, **module.fields(kind, params, j),
            tail_end=s.end, tail=_tail(s.target), mean=float(means[j]), metrics=scores[j], fallback_reason=reason,
            tags=s.tags, trained_weeks=int(trained[j]), selection=selection[i] if selection is not None else {},
            non_negative=settings.non_negative, warnings=s.warnings)
        results[i] = FitResult(s, model)


def predict(kind: ModelKind, params: object, pack: Pack, cut: np.ndarray, h: int, settings: ScriptSettings,
            ) -> np.ndarray:
    """Forecast weeks ``cut .. cut + h - 1`` of every packed series from its data before ``cut`` (the
    actual exog of those weeks, gaps forward filled), as a backtest or hold-out does; (S, h)."""
    module = module_of(kind)
    periods = module.SEED_PERIODS[kind]
    s, t = pack.y.shape
    rows = np.arange(s)[:, None]
    steps = np.minimum(cut[:, None] + np.arange(h)[None, :], t - 1)
    seed_idx = cut[:, None] + np.arange(-periods, 0)[None, :]
    seeds = np.where(seed_idx >= 0, _ffill(pack.y)[rows, np.maximum(seed_idx, 0)], np.nan)
    seeds = _ffill(seeds)  # weeks before the series start: its first value
    future_x = np.swapaxes(_ffill(np.swapaxes(pack.x, 1, 2)), 1, 2)[rows, steps]
    pred: np.ndarray = module.step(kind, params, seeds, future_x, pack.weeks[rows, steps])
    return np.maximum(pred, 0.0) if settings.non_negative else pred


def _unfit_reason(s: Series, train_rows: int, all_rows: int, need: int, settings: ScriptSettings,
                  *, holdout_known: int, kind: str = "lr") -> str:
    observed = s.target[~np.isnan(s.target)]
    notes = f" ({'; '.join(s.notes)})" if s.notes else ""
    if observed.size and observed.min() == observed.max():
        return f"target {settings.target_column} is constant ({observed[0]:g} in all {observed.size} weeks){notes}"
    if train_rows < need or all_rows < need or holdout_known == 0:
        gaps = int(np.isnan(s.target).sum())
        return (f"too short to fit {kind}: {train_rows} complete week(s) before the last {settings.test_size} held-out "
                f"weeks and {holdout_known} known held-out week(s) (need >= {need} and >= 1); series has "
                f"{len(s.target)} weeks, {gaps} without {settings.target_column}{notes}")
    return ""


def _fallback(s: Series, reason: str, settings: ScriptSettings, exog_columns: Sequence[str]) -> FitResult:
    observed = ~np.isnan(s.target)
    if not observed.any():
        return FitResult(s, None, f"no usable {settings.target_column} value in {len(s.target)} week(s)"
                                  + (f" ({'; '.join(s.notes)})" if s.notes else ""))
    tail = _tail(s.target)
    constant = np.nanmin(s.target) == np.nanmax(s.target)
    kind = ModelKind.SNAIVE if not constant and not np.isnan(tail).any() and len(tail) == SEASON else ModelKind.MEAN
    # Hold-out metrics of the fallback itself, fitted on the weeks before the held-out ones.
    cut = len(s.target) - settings.test_size
    scores = dict.fromkeys(METRICS, math.nan)
    if cut > 0 and observed[:cut].any():
        train_mean = float(np.nanmean(s.target[:cut]))
        actual = s.target[cut:]
        if kind == ModelKind.SNAIVE:
            back = np.arange(cut, len(s.target)) - SEASON
            pred = np.where(back >= 0, s.target[np.maximum(back, 0)], np.nan)
            pred = np.where(np.isnan(pred), train_mean, pred)
        else:
            pred = np.full(actual.shape, train_mean)
        scores = metrics(actual, pred)
    model = Forecaster(
        name=model_name(settings.model_type, s.ids), kind=kind, non_negative=settings.non_negative,
        warnings=s.warnings, ids=s.ids, freq=settings.freq,
        horizon=settings.horizon, target_column=settings.target_column, timestamp_column=settings.timestamp_column,
        exog_columns=tuple(exog_columns), intercept=0.0, coef=np.empty(0), tail_end=s.end,
        tail=tail, mean=float(np.nanmean(s.target)), metrics=scores, fallback_reason=reason, tags=s.tags,
        trained_weeks=int(observed.sum()))
    return FitResult(s, model)


def _tail(target: np.ndarray) -> np.ndarray:
    return target[-SEASON:].astype(float).copy()
