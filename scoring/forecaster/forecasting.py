"""Forecasting many models at once: requests are checked one by one, then every group of models of
the same type and feature count is stepped together (``scoring/forecaster/models/``).

A week missing from the future exogenous data (real Dominick's inference files skip weeks) does
not fail the series: the recursion needs a value for it, so the last known value of that column is
carried forward (the first known one before any), and the forecast records a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .maths import _ffill, iso_weeks, offset_of
from .model import Forecaster
from .models import module_of
from .settings import FALLBACKS, MAX_HORIZON, ModelKind, SeriesError


class Forecast(tuple):
    """``(week stamps, values)`` of one request, with the warnings of its forecast as ``.warnings``."""

    warnings: tuple[str, ...]

    def __new__(cls, stamps: pd.DatetimeIndex, values: np.ndarray, warnings: Sequence[str] = ()) -> Forecast:
        self = super().__new__(cls, (stamps, values))
        self.warnings = tuple(warnings)
        return self


@dataclass(frozen=True, slots=True)
class SteppedRequest:
    """One checked request, ready to be stepped with the others of its model type and feature count.

    ``weeks``: the ISO week of each of the ``steps`` forecast weeks; ``seeds``: the last known target values
    (oldest first, gaps filled); ``exog``: (steps, k) future values of the model's exog columns (given
    whenever the model uses k > 0 of them), None for a model without them.
    """

    model: Forecaster
    steps: int
    weeks: np.ndarray
    seeds: np.ndarray
    exog: np.ndarray | None


def forecast_many(models: Sequence[Forecaster], starts: Sequence[pd.Timestamp | None], *, steps: Sequence[int],
                  exog: Sequence[np.ndarray | None],
                  history: Sequence[Mapping[pd.Timestamp, float] | None] | None = None,
                  ) -> list[Forecast | SeriesError]:
    """Forecast many models at once; models of the same type and feature count are stepped together.

    Returns, per model, a :class:`Forecast` ``(week stamps, values)`` or the :class:`SeriesError`
    saying why that one request cannot be answered (the others are not affected). A non-negative
    target (``Forecaster.non_negative``, the default for sales) is never forecast below zero.
    """
    histories = history or [None] * len(models)
    out: list[Forecast | SeriesError] = [SeriesError("not forecast")] * len(models)
    checked: list[int] = []
    stamps: list[pd.DatetimeIndex] = []
    stepped: list[SteppedRequest] = []
    notes: list[list[str]] = []
    for i, model in enumerate(models):
        warnings: list[str] = []
        try:
            week_stamps, weeks, seeds, x = check_request(model, starts[i], steps[i], exog[i], histories[i],
                                                         warnings=warnings)
        except SeriesError as e:
            out[i] = e
            continue
        checked.append(i)
        stamps.append(week_stamps)
        stepped.append(SteppedRequest(model, steps[i], weeks, seeds, x))
        notes.append(warnings)
    for j, (i, values) in enumerate(zip(checked, step_many(stepped), strict=True)):
        out[i] = values if isinstance(values, SeriesError) else Forecast(stamps[j], values, notes[j])
    return out


def step_many(requests: Sequence[SteppedRequest]) -> list[np.ndarray | SeriesError]:
    """The forecast values of each checked request (floored at zero for a non-negative target), or the
    :class:`SeriesError` of a forecast that overflowed; requests of the same model type and feature count
    are stepped together by their type's module (``scoring/forecaster/models/``).

    The one batching loop of both ``forecast_many`` and the model webservice's fast path
    (``scoring/model_webservice.py``), so the two always give the same answer.
    """
    out: list[np.ndarray | SeriesError] = [SeriesError("not forecast")] * len(requests)
    groups: dict[tuple[ModelKind, int], list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.model.kind, len(request.model.exog_columns)), []).append(i)
    for (kind, k), members in groups.items():
        group = [requests[i] for i in members]
        pred = _step_group(kind, k, group)
        for j, (i, request) in enumerate(zip(members, group, strict=True)):
            model = request.model
            values = pred[j, :request.steps]
            overflow = non_finite_forecast(model, values)  # before the floor, which would hide a -inf
            out[i] = overflow if overflow is not None else np.maximum(values, 0.0) if model.non_negative else values
    return out


def _step_group(kind: ModelKind, k: int, group: Sequence[SteppedRequest]) -> np.ndarray:
    """(len(group), longest horizon) forecasts of requests of one model type and feature count. Requests
    of one horizon and seed length (the usual batch) are stacked in one call each."""
    module = module_of(kind)
    uses_exog = bool(k) and kind not in FALLBACKS
    h = max(r.steps for r in group)
    width = max(len(r.seeds) for r in group)
    if all(r.steps == h for r in group) and all(len(r.seeds) == width for r in group):
        weeks = np.array([r.weeks for r in group])  # np.array, not np.stack: a fraction of its overhead
        seeds = np.array([r.seeds for r in group])
        x = np.array([r.exog for r in group]) if uses_exog else np.zeros((len(group), h, k))
    else:
        x = np.zeros((len(group), h, k))
        weeks = np.zeros((len(group), h))
        seeds = np.full((len(group), width), np.nan)
        for j, r in enumerate(group):
            n = r.steps
            if uses_exog and r.exog is not None:
                x[j, :n] = r.exog
                x[j, n:] = r.exog[-1]  # past a shorter request's horizon: stepped, never answered
            weeks[j, :n] = r.weeks
            seeds[j, width - len(r.seeds):] = r.seeds
    pred: np.ndarray = module.step(kind, module.params_of(kind, [r.model for r in group]), seeds, x, weeks)
    return pred


def non_finite_forecast(model: Forecaster, values: np.ndarray) -> SeriesError | None:
    """The error for a forecast that overflowed (inputs so large that a step is +-inf or NaN), else None:
    such a value has no JSON number and no meaning."""
    if np.isfinite(values).all():
        return None
    step = int(np.argmax(~np.isfinite(values)))
    return SeriesError(f"the forecast of {model.name} is not finite ({values[step]}) at step {step + 1}: the "
                       f"future values of {', '.join(model.exog_columns) or 'the model'} are too large")


def check_request(model: Forecaster, start: pd.Timestamp | None, steps: int, exog: np.ndarray | None,
                  history: Mapping[pd.Timestamp, float] | None = None, *, warnings: list[str] | None = None,
                  ) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Validate one forecast request; returns (week stamps, ISO weeks, seeds, exog).

    Weeks of ``exog`` with a missing value are filled by carrying the column's last known value
    forward (a warning is appended to ``warnings``).

    Raises:
        SeriesError: with the reason (start off the calendar or too far, wrong exog shape, a column
            with no value at all, more than ``MAX_HORIZON`` weeks).
    """
    offset = offset_of(model.freq)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise SeriesError(f"forecast horizon {steps!r} is not allowed: expected a whole number >= 1")
    limit = max(model.horizon, MAX_HORIZON)
    if steps > limit:
        raise SeriesError(f"forecast horizon {steps} is not allowed: model {model.name} forecasts at most "
                          f"{limit} weeks")
    start = model.next_week() if start is None else pd.Timestamp(start)
    if not offset.is_on_offset(start):
        raise SeriesError(f"forecast start {start.date()} is not on the model's {model.freq} calendar")
    origin = start - offset
    k = len(model.exog_columns)
    if model.uses_exog:
        if exog is None and k:
            raise SeriesError(f"future values of {', '.join(model.exog_columns)} are needed")
        x = np.zeros((steps, 0)) if exog is None else np.asarray(exog, dtype=float)
        if x.shape != (steps, k):
            raise SeriesError(f"future data has {x.shape[0]} week(s) x {x.shape[1] if x.ndim > 1 else 0} column(s); "
                              f"expected {steps} x {k} ({', '.join(model.exog_columns) or 'no columns'})")
        if np.isinf(x).any():
            row, col = np.argwhere(np.isinf(x))[0]
            raise SeriesError(f"future {model.exog_columns[col]} is {x[row, col]} for step {row + 1} of {steps}: "
                              "values must be finite numbers")
        gaps = np.isnan(x)
        if gaps.any():
            empty = np.flatnonzero(gaps.all(axis=0))
            if len(empty):
                raise SeriesError(f"future {model.exog_columns[empty[0]]} has no value in any of the {steps} "
                                  "forecast weeks")
            rows = np.flatnonzero(gaps.any(axis=1))
            x = _ffill(x.T).T
            if warnings is not None:
                stamps = iso_weeks(start, steps, model.freq)[0]
                warnings.append(f"future data lacks {len(rows)} of {steps} forecast week(s) (first "
                                f"{stamps[rows[0]].date()}); the last known value of each column was carried "
                                "forward for them")
    else:
        x = np.zeros((steps, 0))
    periods = module_of(model.kind).SEED_PERIODS[model.kind]
    if origin > model.tail_end and not history:
        raise SeriesError(f"forecast start {start.date()} is not the week after the model's data "
                          f"({model.tail_end.date()}) and no history was sent for the weeks in between")
    seeds = model.seeds(origin, history, periods=periods) if model.kind != ModelKind.MEAN else np.array([model.mean])
    stamps, weeks = iso_weeks(start, steps, model.freq)
    return stamps, weeks, seeds, x
