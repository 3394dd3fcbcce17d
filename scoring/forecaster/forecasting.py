"""Forecasting many models at once: requests are checked one by one, then every group of models of
the same type and feature count is stepped together (``scoring/forecaster/models/``).

A week missing from the future exogenous data (real Dominick's inference files skip weeks) does
not fail the series: the recursion needs a value for it, so the last known value of that column is
carried forward (the first known one before any), and the forecast records a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .maths import _ffill, iso_weeks, offset_of
from .model import Forecaster
from .models import module_of
from .settings import MAX_HORIZON, ModelKind, SeriesError


class Forecast(tuple):
    """``(week stamps, values)`` of one request, with the warnings of its forecast as ``.warnings``."""

    warnings: tuple[str, ...]

    def __new__(cls, stamps: pd.DatetimeIndex, values: np.ndarray, warnings: Sequence[str] = ()) -> Forecast:
        self = super().__new__(cls, (stamps, values))
        self.warnings = tuple(warnings)
        return self


def forecast_many(models: Sequence[Forecaster], starts: Sequence[pd.Timestamp | None], *, steps: Sequence[int],
                  exog: Sequence[np.ndarray | None],
                  history: Sequence[Mapping[pd.Timestamp, float] | None] | None = None,
                  ) -> list[Forecast | SeriesError]:
    """Forecast many models at once; models of the same type and feature count are stepped together.

    Returns, per model, a :class:`Forecast` ``(week stamps, values)`` or the :class:`SeriesError`
    saying why that one request cannot be answered (the others are not affected). A non-negative
    target (``Forecaster.non_negative``, the default for sales) is never forecast below zero.
    """
    history = history or [None] * len(models)
    out: list[Forecast | SeriesError] = [SeriesError("not forecast")] * len(models)
    groups: dict[tuple[ModelKind, int], list[int]] = {}
    prepared: dict[int, tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]] = {}
    notes: dict[int, list[str]] = {}
    for i, model in enumerate(models):
        notes[i] = []
        try:
            prepared[i] = check_request(model, starts[i], steps[i], exog[i], history[i], warnings=notes[i])
        except SeriesError as e:
            out[i] = e
            continue
        groups.setdefault((model.kind, len(model.exog_columns)), []).append(i)
    for (kind, k), members in groups.items():
        module = module_of(kind)
        h = max(steps[i] for i in members)
        x = np.zeros((len(members), h, k))
        weeks = np.zeros((len(members), h))
        width = max(len(prepared[i][2]) for i in members)
        seeds = np.full((len(members), width), np.nan)
        for j, i in enumerate(members):
            n = steps[i]
            if k and models[i].uses_exog:
                x[j, :n] = prepared[i][3]
                x[j, n:] = prepared[i][3][-1]
            weeks[j, :n] = prepared[i][1]
            seeds[j, width - len(prepared[i][2]):] = prepared[i][2]
        pred = module.step(kind, module.params_of(kind, [models[i] for i in members]), seeds, x, weeks)
        for j, i in enumerate(members):
            values = pred[j, :steps[i]]
            overflow = non_finite_forecast(models[i], values)  # before the floor, which would hide a -inf
            if overflow is not None:
                out[i] = overflow
                continue
            if models[i].non_negative:
                values = np.maximum(values, 0.0)
            out[i] = Forecast(prepared[i][0], values, notes[i])
    return out


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
