"""The trained model of one series as plain data (``model.json``), and reading/writing it."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .maths import _ffill, calendar, offset_of
from .series import Series
from .settings import (
    FALLBACKS,
    FORMAT,
    LAG_FEATURES,
    LAGS,
    METRICS,
    MODEL_FILE,
    WEEK_FEATURE,
    ModelKind,
    SeriesError,
)


@dataclass(frozen=True, slots=True)
class Forecaster:
    """A trained model of one series as plain data (what ``model.json`` holds)."""

    name: str
    kind: ModelKind
    ids: dict[str, str]
    freq: str
    horizon: int
    target_column: str
    timestamp_column: str
    exog_columns: tuple[str, ...]
    intercept: float
    coef: np.ndarray  # (k + 1 + LAGS,) for lr, empty for fallbacks
    tail_end: pd.Timestamp  # last week of the training data
    tail: np.ndarray  # the last SEASON weeks of the target up to tail_end, NaN where missing
    mean: float
    metrics: dict[str, float] = field(default_factory=dict)
    fallback_reason: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    trained_weeks: int = 0
    # Type-specific plain data, e.g. demand: {"log": [bool per exog column], "shift": log-scale offset}.
    params: dict[str, Any] = field(default_factory=dict)
    # auto only: {"metric", "folds", "scores": {type: backtest score}, "reason"}.
    selection: dict[str, Any] = field(default_factory=dict)
    non_negative: bool = True
    warnings: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        if self.kind == ModelKind.LR:
            return (*self.exog_columns, WEEK_FEATURE, *LAG_FEATURES)
        if self.kind in (ModelKind.DEMAND, ModelKind.LOGLOG):
            logged = self.params.get("log", [False] * len(self.exog_columns))
            exog = tuple(f"log({c})" if lg else c for c, lg in zip(self.exog_columns, logged, strict=True))
            if self.kind == ModelKind.LOGLOG:
                return exog
            return (*exog, WEEK_FEATURE, *(f"log_{lag}" for lag in LAG_FEATURES))
        return ()

    @property
    def is_fallback(self) -> bool:
        """A model made because the series could not get the model asked for (the reason says why)."""
        return bool(self.fallback_reason)

    @property
    def uses_exog(self) -> bool:
        """Whether forecasts need future values of ``exog_columns`` (baselines do not)."""
        return self.kind not in FALLBACKS

    def properties(self) -> dict[str, str]:
        """Metrics as strings (registered-model properties), plus the fallback reason and, for
        ``auto``, the chosen type, every candidate's backtest score and why the type won."""
        props = {m: repr(float(self.metrics.get(m, math.nan))) for m in METRICS}
        if self.fallback_reason:
            props["fallback_reason"] = self.fallback_reason
        if self.selection:
            props["chosen_type"] = str(self.kind)
            props["selection_metric"] = str(self.selection.get("metric", ""))
            props["backtest_scores"] = json.dumps(self.selection.get("scores", {}), sort_keys=True)
            props["selection_reason"] = str(self.selection.get("reason", ""))
        if self.warnings:
            props["warnings"] = "; ".join(self.warnings)
        return props

    def next_week(self) -> pd.Timestamp:
        return self.tail_end + offset_of(self.freq)

    def seeds(self, origin: pd.Timestamp, history: Mapping[pd.Timestamp, float] | None = None,
              *, periods: int = LAGS) -> np.ndarray:
        """Known target values of the ``periods`` weeks ending at ``origin`` (oldest first).

        ``history`` values override the stored training tail; gaps are forward filled.

        Raises:
            SeriesError: none of those weeks has a known value.
        """
        if not history and origin == self.tail_end and len(self.tail) >= periods:
            values = self.tail[-periods:]
        else:
            weeks = calendar(end=origin, periods=periods, freq=self.freq)
            tail_weeks = calendar(end=self.tail_end, periods=len(self.tail), freq=self.freq)
            known = dict(zip(tail_weeks, self.tail, strict=True))
            if history:
                known.update(history)
            values = np.array([known.get(t, np.nan) for t in weeks], dtype=float)
        if np.isnan(values).all():
            raise SeriesError(f"no known {self.target_column} in the {periods} weeks up to {origin.date()}: "
                              f"the model's data ends {self.tail_end.date()}; send the history before the forecast")
        return _ffill(values)

    def forecast(self, start: pd.Timestamp | None = None, *, steps: int, exog: np.ndarray | None = None,
                 history: Mapping[pd.Timestamp, float] | None = None) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """Forecast ``steps`` weeks from ``start`` (default: the week after training).

        Args:
            exog: (steps, k) future values of ``exog_columns`` (needed by ``lr`` only).
            history: known target values by week, overriding the stored tail for the lags.
        Raises:
            SeriesError: the start is not on the calendar, exog has the wrong shape or NaNs, or no history.
        """
        from .forecasting import forecast_many  # forecasting imports this module

        result = forecast_many([self], [start], steps=[steps], exog=[exog], history=[history])[0]
        if isinstance(result, SeriesError):
            raise result
        return result

    # -- plain data ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "model_type": str(self.kind), "ids": self.ids, "tags": self.tags,
            "freq": self.freq, "horizon": self.horizon, "target_column": self.target_column,
            "timestamp_column": self.timestamp_column, "exog_columns": list(self.exog_columns),
            "features": list(self.features), "intercept": self.intercept, "coef": self.coef.tolist(),
            "tail_end": self.tail_end.isoformat(), "tail": _json_list(self.tail),
            "mean": self.mean, "metrics": {m: _json_float(v) for m, v in self.metrics.items()},
            "fallback_reason": self.fallback_reason, "trained_weeks": self.trained_weeks,
            "params": self.params, "selection": self.selection, "non_negative": self.non_negative,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Forecaster:
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model (format={raw.get('format')!r})")
        return cls(
            name=raw["name"], kind=ModelKind(raw["model_type"]), ids=dict(raw["ids"]), freq=raw["freq"],
            horizon=int(raw["horizon"]), target_column=raw["target_column"], timestamp_column=raw["timestamp_column"],
            exog_columns=tuple(raw["exog_columns"]), intercept=float(raw["intercept"]),
            coef=np.asarray(raw["coef"], dtype=float), tail_end=pd.Timestamp(raw["tail_end"]),
            tail=np.array([np.nan if v is None else v for v in raw["tail"]], dtype=float), mean=float(raw["mean"]),
            metrics={m: float(v) for m, v in raw.get("metrics", {}).items()},
            fallback_reason=raw.get("fallback_reason", ""), tags=dict(raw.get("tags", {})),
            trained_weeks=int(raw.get("trained_weeks", 0)), params=dict(raw.get("params", {})),
            selection=dict(raw.get("selection", {})), non_negative=bool(raw.get("non_negative", True)),
            warnings=tuple(raw.get("warnings", ())),
        )

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``<directory>/model.json`` (one write of one JSON document)."""
        text = json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))
        try:
            os.mkdir(directory)  # the usual case, without pathlib's per-call cost (thousands of models per call)
        except FileExistsError:
            pass
        except FileNotFoundError:
            Path(directory).mkdir(parents=True, exist_ok=True)
        with open(os.path.join(directory, MODEL_FILE), "w", encoding="utf-8") as f:
            f.write(text)
        return Path(directory)


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else repr(float(value))


def _json_list(values: np.ndarray) -> list[float | None]:
    """A float array as JSON values, NaN as null."""
    items = values.tolist()
    return [None if v != v else v for v in items] if np.isnan(values).any() else items


def load_model(directory: str | os.PathLike[str]) -> Forecaster:
    """Load ``<directory>/model.json`` (plain JSON, no pickle).

    Azure ML keeps a registered folder's own name under the version folder, so
    ``<directory>/<folder>/model.json`` is found too.

    Raises:
        FileNotFoundError: no model.json there; ValueError/KeyError: not a forecaster model.
    """
    path = model_file(directory)
    if path is None:
        raise FileNotFoundError(f"no {MODEL_FILE} in {directory} or its sub-folders")
    with open(path, encoding="utf-8") as f:
        return Forecaster.from_dict(json.load(f))


def model_file(directory: str | os.PathLike[str]) -> Path | None:
    direct = Path(directory) / MODEL_FILE
    if direct.is_file():
        return direct
    nested = sorted(Path(directory).glob(f"*/{MODEL_FILE}"))
    return nested[0] if nested else None


def latest_version_dir(models_dir: str | os.PathLike[str], name: str) -> Path | None:
    """``<models_dir>/<name>/<highest numeric version>`` in the registered-model layout, or None."""
    base = Path(models_dir) / name
    try:
        versions = [int(e.name) for e in os.scandir(base) if e.is_dir() and e.name.isdigit()]
    except OSError:
        return None
    return base / str(max(versions)) if versions else None




@dataclass(frozen=True, slots=True)
class FitResult:
    series: Series
    model: Forecaster | None
    error: str = ""  # set when no model at all could be made
