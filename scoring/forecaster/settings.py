"""Settings (``script_settings.json``), constants, the model types and the naming of models and series."""


from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import model_names  # scoring/model_names.py: beside this package, on sys.path with it
import pandas as pd

FORMAT = "manymodels.forecaster/1"
MODEL_FILE = "model.json"
LAGS = 4
MAX_SPAN_FACTOR = 10  # a series may have gaps, but not 10x more missing weeks than rows
SEASON = 52  # weeks in a year: the seasonal-naive period and the stored tail length
WEEK_FEATURE = "week_of_year"
LAG_FEATURES = tuple(f"lag_{i}" for i in range(1, LAGS + 1))
METRICS = ("mse", "rmse", "mae", "mape")
# Recursive models step their own forecasts, so a request may ask beyond the settings' horizon, up
# to a year of weeks; further than that the lags feed on forecasts of forecasts (scoring/model_webservice.py).
MAX_HORIZON = SEASON
SETTINGS_KEYS = ("id_columns", "target_column", "timestamp_column", "tag_columns", "drop_columns",
                 "model_type", "test_size", "freq", "horizon", "non_negative", "log_columns", "flag_columns",
                 "selection_metric", "backtest_folds", "point_forecast", "candidates")


class ModelKind(StrEnum):
    """A trained model's type (``model_type`` in model.json)."""

    LR = "lr"  # the seed's OLS on exog, week of year and lags 1-4 (scoring/forecaster/models/lr.py)
    DEMAND = "demand"  # multiplicative: log target on log prices, flags, week of year, lags of log target
    LOGLOG = "loglog"  # multiplicative, static: log target on log prices and flags only
    NAIVE = "naive"  # baselines (scoring/forecaster/models/baselines.py), also the fallbacks
    SNAIVE = "snaive"
    MEAN = "mean"


class ModelChoice(StrEnum):
    """``model_type`` in the settings: one type for every series, or ``auto`` to choose per series."""

    AUTO = "auto"
    LR = "lr"
    DEMAND = "demand"
    LOGLOG = "loglog"
    NAIVE = "naive"
    SNAIVE = "snaive"
    MEAN = "mean"


class SelectionMetric(StrEnum):
    """Scale-free metrics the ``auto`` backtest can rank candidates by (scoring/forecaster/maths.py)."""

    MAPE = "mape"  # mean absolute percentage error over non-zero actuals
    SMAPE = "smape"  # symmetric: 2|e| / (|actual| + |forecast|), defined for zero actuals
    MASE = "mase"  # mean absolute error / mean absolute one-week change of the training weeks


class PointForecast(StrEnum):
    """How a log-scale model turns its log-normal forecast into one number."""

    METRIC = "metric"  # the point that minimises the selection metric: mape -> exp(mu - s2), else the median
    MEAN = "mean"  # the usual bias correction exp(mu + s2 / 2): an unbiased mean (totals, inventory)
    MEDIAN = "median"  # exp(mu)


FALLBACKS = frozenset({ModelKind.NAIVE, ModelKind.SNAIVE, ModelKind.MEAN})
BASELINES = (ModelKind.NAIVE, ModelKind.SNAIVE, ModelKind.MEAN)
REGRESSIONS = (ModelKind.LR, ModelKind.DEMAND, ModelKind.LOGLOG)
DEFAULT_CANDIDATES = (*REGRESSIONS, *BASELINES)
DEFAULT_FOLDS = 4


class SettingsFileError(ValueError):
    """The script settings file is missing, unreadable or has a value that is not allowed."""


class SeriesError(ValueError):
    """One series (or file) cannot be used; the message is the reason recorded for it."""


# ---------------------------------------------------------------------------------------------
# Settings and naming


@dataclass(frozen=True, slots=True)
class ScriptSettings:
    """The dataset schema of ``script_settings.json``: which columns are ids, target, time, tags."""

    id_columns: tuple[str, ...]
    target_column: str
    timestamp_column: str
    tag_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    model_type: str = "lr"
    test_size: int = 20
    freq: str = "W-THU"
    horizon: int = 8
    non_negative: bool = True  # the target (sales) is never forecast below zero
    log_columns: tuple[str, ...] | None = None  # demand models: None = every positive non-flag column
    flag_columns: tuple[str, ...] | None = None  # demand models: None = every column holding only 0/1
    selection_metric: str = SelectionMetric.MAPE
    backtest_folds: int = DEFAULT_FOLDS
    point_forecast: str = PointForecast.METRIC
    candidates: tuple[str, ...] = tuple(str(k) for k in DEFAULT_CANDIDATES)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScriptSettings:
        """Read and validate a settings file.

        Raises:
            SettingsFileError: the file is missing, not JSON, or a field has a wrong type/value.
        """
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise SettingsFileError(f"settings file {path} cannot be read: {e}") from e
        except ValueError as e:
            raise SettingsFileError(f"settings file {path} is not valid JSON: {e}") from e
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "settings") -> ScriptSettings:
        if not isinstance(raw, Mapping):
            raise SettingsFileError(f"{source}: expected a JSON object with keys {', '.join(SETTINGS_KEYS)}")
        missing = [k for k in ("id_columns", "target_column", "timestamp_column") if k not in raw]
        if missing:
            raise SettingsFileError(f"{source}: missing required field(s) {', '.join(missing)}")
        values = {k: raw[k] for k in SETTINGS_KEYS if k in raw}
        for key in ("log_columns", "flag_columns"):
            if values.get(key) is None:
                values.pop(key, None)
        for key in ("id_columns", "tag_columns", "drop_columns", "log_columns", "flag_columns", "candidates"):
            if key in values:
                value = values[key]
                if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
                    raise SettingsFileError(f"{source}: {key}={value!r} is not allowed: "
                                            "expected a list of column names")
                values[key] = tuple(value)
        if not values["id_columns"]:
            raise SettingsFileError(f"{source}: id_columns is empty: name at least one column identifying a series")
        for key in ("target_column", "timestamp_column", "model_type", "freq", "selection_metric", "point_forecast"):
            if key in values and (not isinstance(values[key], str) or not values[key]):
                raise SettingsFileError(f"{source}: {key}={values[key]!r} is not allowed: expected a non-empty string")
        if "non_negative" in values and not isinstance(values["non_negative"], bool):
            raise SettingsFileError(f"{source}: non_negative={values['non_negative']!r} is not allowed: "
                                    "expected true or false")
        for key, low in (("test_size", 1), ("horizon", 1), ("backtest_folds", 2)):
            value = values.get(key, low)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsFileError(f"{source}: {key}={value!r} is not allowed: expected a whole number >= {low}")
        for key, allowed in (("model_type", ModelChoice), ("selection_metric", SelectionMetric),
                             ("point_forecast", PointForecast)):
            if key in values and values[key] not in set(allowed):
                raise SettingsFileError(f"{source}: {key}={values[key]!r} is not allowed: expected one of "
                                        f"{', '.join(repr(str(v)) for v in allowed)}")
        unknown = [c for c in values.get("candidates", ()) if c not in set(ModelKind)]
        if unknown or ("candidates" in values and not values["candidates"]):
            raise SettingsFileError(f"{source}: candidates={list(values['candidates'])!r} is not allowed: expected "
                                    f"a non-empty list of {', '.join(repr(str(k)) for k in ModelKind)}")
        try:
            pd.tseries.frequencies.to_offset(values.get("freq", "W-THU"))
        except ValueError as e:
            raise SettingsFileError(f"{source}: freq={values['freq']!r} is not a pandas offset alias "
                                    "(for example 'W-THU')") from e
        return cls(**values)

    def min_train_rows(self, *, n_exog: int) -> int:
        """Fewest weeks (one row each, no gaps) a series with ``n_exog`` exogenous columns needs for
        training to fit the settings' ``model_type`` rather than a fallback (``auto``: at least one
        regression candidate through every backtest fold). The rule ``fit_many`` applies
        (scoring/forecaster/fitting.py, selection.py); ``manymodels data validate`` checks the same
        (shared/data/schema.py mirrors it, tests/unit/test_schema_rules_agree.py keeps them equal)."""
        return min_train_rows(self.model_type, test_size=self.test_size, horizon=self.horizon,
                              backtest_folds=self.backtest_folds, candidates=self.candidates, n_exog=n_exog)

    def to_dict(self) -> dict[str, Any]:
        return {"id_columns": list(self.id_columns), "target_column": self.target_column,
                "timestamp_column": self.timestamp_column, "tag_columns": list(self.tag_columns),
                "drop_columns": list(self.drop_columns), "model_type": self.model_type,
                "test_size": self.test_size, "freq": self.freq, "horizon": self.horizon,
                "non_negative": self.non_negative,
                "log_columns": None if self.log_columns is None else list(self.log_columns),
                "flag_columns": None if self.flag_columns is None else list(self.flag_columns),
                "selection_metric": self.selection_metric, "backtest_folds": self.backtest_folds,
                "point_forecast": self.point_forecast, "candidates": list(self.candidates)}

    def exog_columns(self, columns: Iterable[str]) -> list[str]:
        """Every column that is not an id, the target, the time, a tag or dropped, in file order."""
        reserved = {*self.id_columns, self.target_column, self.timestamp_column, *self.tag_columns,
                    *self.drop_columns}
        return [c for c in columns if c not in reserved]


def fit_rows(kind: str, n_exog: int) -> int:
    """Complete weeks a model type needs to be fitted: twice its parameters (the models' ``min_rows``
    in scoring/forecaster/models/), after its first ``lag_rows`` weeks, which have no lags."""
    if kind in (ModelKind.LR, ModelKind.DEMAND):
        return 2 * (n_exog + 1 + LAGS + 1)  # exog, week of year, lags, intercept
    if kind == ModelKind.LOGLOG:
        return 2 * (n_exog + 1)
    return 1  # the baselines


def lag_rows(kind: str) -> int:
    """The first weeks of a series that cannot be fitted on: their lags are before the series start."""
    return LAGS if kind in (ModelKind.LR, ModelKind.DEMAND) else 0


def min_train_rows(model_type: str, *, test_size: int, horizon: int, backtest_folds: int,
                   candidates: Iterable[str], n_exog: int) -> int:
    """The "enough rows" rule (see :meth:`ScriptSettings.min_train_rows`).

    A regression is fitted on the weeks before the last ``test_size`` held-out ones; ``auto`` first
    backtests each candidate over ``backtest_folds`` folds of ``horizon`` weeks, so the oldest fold
    leaves ``horizon * backtest_folds`` weeks out. The baselines fit any series with a known week
    (``auto`` with baseline candidates only, too: the backtest chooses among what was asked for).
    """
    if model_type in FALLBACKS:
        return 1
    if model_type != ModelChoice.AUTO:
        return test_size + lag_rows(model_type) + fit_rows(model_type, n_exog)
    held_out = max(test_size, horizon * backtest_folds)
    needs = [held_out + lag_rows(k) + fit_rows(k, n_exog) for k in candidates if k in REGRESSIONS]
    return min(needs) if needs else 1


def model_name(model_type: str, ids: Mapping[str, Any]) -> str:
    """``{model_type}_{id values sorted by id column name}``, e.g. ``lr_dominicks_1000``; ids that are not
    safe in a name or a path get a slug + hash (``scoring/model_names.py``).

    Raises:
        SeriesError: no name can be made (an empty id value): a per-series failure.
    """
    try:
        return model_names.model_name(model_type, ids)
    except model_names.InvalidModelName as e:
        raise SeriesError(str(e)) from e


def series_label(ids: Mapping[str, Any]) -> str:
    """A readable series key for logs and failure rows, e.g. ``Store=2,Brand=dominicks``."""
    return ",".join(f"{c}={v}" for c, v in ids.items())


