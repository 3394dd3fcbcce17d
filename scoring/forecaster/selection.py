"""``model_type: auto``: choose each series' model type by a rolling-origin backtest.

Fold ``f`` (1 = the latest) ends ``horizon * (f - 1)`` weeks before the series' last week: every
candidate is fitted on the weeks before the fold and forecasts its ``horizon`` weeks recursively
from the data before it (with the actual exogenous values of those weeks), the same way the
product forecasts. Each candidate's score is the mean over ``backtest_folds`` folds of the
``selection_metric`` (scale-free: MAPE by default; sMAPE or MASE), and the lowest wins. A baseline
(naive, seasonal naive, mean) beats a regression candidate only when its advantage is larger than
one standard error of the fold-by-fold differences: with a handful of folds a baseline can win by
chance on a series whose last weeks happened to be flat, and then misses every promotion.

A series whose regression candidates cannot be fitted in every fold (too short) gets the best
baseline over the folds it has, with the reason recorded. The chosen type is refitted on every
week by ``scoring/forecaster/fitting.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .maths import naive_scale, score_folds
from .models import Pack, module_of
from .settings import BASELINES, REGRESSIONS, SEASON, ModelKind, ScriptSettings


@dataclass(frozen=True, slots=True)
class Choice:
    kinds: np.ndarray  # (S,) chosen ModelKind values (str)
    selection: list[dict]  # per series: {"metric", "folds", "horizon", "scores", "reason"}
    reasons: list[str]  # per series: the fallback reason ("" when the backtest chose)


def backtest(pack: Pack, settings: ScriptSettings, exog_columns: Sequence[str], kinds: Sequence[ModelKind],
             *, folds: int, horizon: int) -> np.ndarray:
    """(S, len(kinds), folds) scores; NaN where a candidate cannot be fitted or scored in that fold."""
    from .fitting import predict

    s, t = pack.y.shape
    t_idx = np.arange(t)
    k = len(exog_columns)
    scores = np.full((s, len(kinds), folds), np.nan)
    known = ~np.isnan(pack.y)
    usable = {kind: module_of(kind).usable(kind, pack) for kind in kinds}
    for f in range(folds):
        cut = pack.lengths - horizon * (f + 1)
        before = t_idx[None, :] < cut[:, None]
        steps = np.clip(cut[:, None] + np.arange(horizon)[None, :], 0, t - 1)
        actual = np.where(cut[:, None] >= 0, pack.y[np.arange(s)[:, None], steps], np.nan)
        scale = naive_scale(pack.y, before)
        for c, kind in enumerate(kinds):
            module = module_of(kind)
            rows = usable[kind] & before
            ok = (cut > 0) & (rows.sum(axis=1) >= module.min_rows(kind, k)) & (known & before).any(axis=1)
            if kind not in BASELINES:
                # a candidate the hold-out fit would refuse (too few weeks before the last test_size)
                # is not chosen: the series' enough-rows rule stays ScriptSettings.min_train_rows
                fit_rows = usable[kind] & (t_idx[None, :] < (pack.lengths - settings.test_size)[:, None])
                ok &= fit_rows.sum(axis=1) >= module.min_rows(kind, k)
                low = np.where(rows, pack.y, np.inf).min(axis=1)
                high = np.where(rows, pack.y, -np.inf).max(axis=1)
                ok &= low < high
            sel = np.flatnonzero(ok)
            if not len(sel):
                continue
            sub = pack.take(sel)
            params = module.fit(kind, sub, rows[sel], settings, exog_columns, fast=True)
            pred = predict(kind, params, sub, cut[sel], horizon, settings)
            scores[sel, c, f] = score_folds(str(settings.selection_metric), actual[sel], pred, scale[sel])
    return scores


def select(pack: Pack, settings: ScriptSettings, exog_columns: Sequence[str]) -> Choice:
    kinds = [ModelKind(c) for c in settings.candidates]
    folds, horizon = settings.backtest_folds, settings.horizon
    metric = str(settings.selection_metric)
    scores = backtest(pack, settings, exog_columns, kinds, folds=folds, horizon=horizon)
    complete = ~np.isnan(scores).any(axis=2)  # scored in every fold
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(complete, np.where(complete[:, :, None], scores, 0.0).sum(axis=2) / folds, np.nan)
    is_base = np.array([kind in BASELINES for kind in kinds])
    chosen: list[str] = []
    selection: list[dict] = []
    reasons: list[str] = []
    for i in range(len(pack.y)):
        table = {str(kind): _rounded(mean[i, c]) for c, kind in enumerate(kinds)}
        info = {"metric": metric, "folds": folds, "horizon": horizon, "scores": table}
        regression = [c for c in range(len(kinds)) if not is_base[c] and complete[i, c]]
        if regression:
            kind, why = _winner(kinds, scores[i], mean[i], complete[i], is_base, metric)
            chosen.append(str(kind))
            reasons.append("")
        else:
            kind, why, fallback = _short(kinds, scores[i], is_base, metric, pack, i, folds, horizon)
            chosen.append(str(kind))
            reasons.append(fallback)
            info["scores"] = {str(kn): _rounded(float(np.nanmean(scores[i, c]))
                                                if not np.isnan(scores[i, c]).all() else math.nan)
                              for c, kn in enumerate(kinds)}
        info["reason"] = why
        selection.append(info)
    return Choice(np.array(chosen, dtype=object), selection, reasons)


def _rounded(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 4)


def _winner(kinds: Sequence[ModelKind], scores: np.ndarray, mean: np.ndarray, complete: np.ndarray,
            is_base: np.ndarray, metric: str) -> tuple[ModelKind, str]:
    order = [c for c in np.argsort(np.where(complete, mean, np.inf)).tolist() if complete[c]]
    best = order[0]
    runner = f", next {kinds[order[1]]} {mean[order[1]]:.2f}" if len(order) > 1 else ""
    why = (f"lowest mean {metric} over {scores.shape[1]} backtest folds: {kinds[best]} {mean[best]:.2f}{runner}")
    if is_base[best]:
        reg = min((c for c in order if not is_base[c]), key=lambda c: mean[c])
        diff = scores[reg] - scores[best]
        se = float(np.std(diff, ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.inf
        if float(diff.mean()) <= se:
            return kinds[reg], (f"baseline {kinds[best]} scored {mean[best]:.2f} vs {kinds[reg]} {mean[reg]:.2f} "
                                f"({metric}, {scores.shape[1]} folds), not better by more than one standard "
                                f"error ({se:.2f}) of the fold differences: kept the model of the drivers")
    return kinds[best], why


def _short(kinds: Sequence[ModelKind], scores: np.ndarray, is_base: np.ndarray, metric: str, pack: Pack, i: int,
           folds: int, horizon: int) -> tuple[ModelKind, str, str]:
    """The best baseline for a series too short for the regression candidates' backtest."""
    n = int(pack.lengths[i])
    base = [c for c in range(len(kinds)) if is_base[c] and not np.isnan(scores[c]).all()]
    short = (f"too short for a {folds}-fold backtest of {horizon} weeks for "
             f"{', '.join(str(k) for k, b in zip(kinds, is_base, strict=True) if not b) or 'the models'} "
             f"({n} weeks)")
    if base:
        best = min(base, key=lambda c: float(np.nanmean(scores[c])))
        used = int((~np.isnan(scores[best])).sum())
        why = f"best baseline by mean {metric} over {used} fold(s): {kinds[best]} {float(np.nanmean(scores[best])):.2f}"
        return kinds[best], why, f"{short}; {why}"
    y = pack.y[i, :n]
    known = y[~np.isnan(y)]
    tail = y[-SEASON:]
    full_season = (len(tail) == SEASON and not np.isnan(tail).any() and known.size > 0
                   and known.min() < known.max())
    kind = ModelKind.SNAIVE if full_season and ModelKind.SNAIVE in kinds else ModelKind.MEAN
    why = f"no fold to score: {kind} ({'a full known season' if kind == ModelKind.SNAIVE else 'the series mean'})"
    return kind, why, f"{short}; {why}"


__all__ = ["REGRESSIONS", "Choice", "backtest", "select"]
