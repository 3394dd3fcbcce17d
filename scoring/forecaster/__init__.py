"""The many-models forecaster: settings, series parsing, a family of model types, batched fit,
per-series model selection (``auto``), recursive forecast, metrics, plain-data artifacts.

Self-contained (numpy and pandas only): this package is uploaded with the entry scripts in
``scoring/`` to Azure ML compute and to scoring containers, so it never imports ``shared`` or
``azureml``. The entry scripts put ``scoring/`` on ``sys.path`` and ``import forecaster``.

- ``settings``: ``ScriptSettings`` (``script_settings.json``), the model types, naming;
- ``series``: reading files and cutting them into series on their regular calendar;
- ``models/``: one module per model type (``lr``, ``demand``/``loglog``, the baselines), each
  fitting and forecasting many series at once and turning its parameters into plain data;
- ``fitting``: ``fit_many``; ``selection``: the rolling-origin backtest of ``auto``;
- ``automl``: models trained by Azure AutoML many models (a pickled pipeline, loaded lazily);
- ``forecasting``: ``forecast_many``, ``check_request``, ``step_many`` (the one batching loop);
  ``model``: ``Forecaster`` (``model.json``).
"""

from .automl import AUTOML_TYPE, AutomlLoadError, AutomlModel, pickle_file
from .fitting import fit_many, predict
from .forecasting import Forecast, SteppedRequest, check_request, forecast_many, non_finite_forecast, step_many
from .maths import (
    _design,
    _ffill,
    batch_metrics,
    calendar,
    clip_non_negative,
    iso_weeks,
    metrics,
    offset_of,
    recurse,
    score_folds,
    solve_ols,
)
from .model import FitResult, Forecaster, latest_version_dir, load_model, model_file
from .models import Pack
from .selection import backtest, select
from .series import (
    FILE_COLUMN,
    Series,
    SeriesFailure,
    read_table,
    read_tables,
    split_series,
)
from .settings import (
    BASELINES,
    DEFAULT_CANDIDATES,
    DEFAULT_FOLDS,
    FALLBACKS,
    FORMAT,
    LAG_FEATURES,
    LAGS,
    MAX_HORIZON,
    MAX_SPAN_FACTOR,
    METRICS,
    MODEL_FILE,
    REGRESSIONS,
    SEASON,
    SETTINGS_KEYS,
    WEEK_FEATURE,
    ModelChoice,
    ModelKind,
    PointForecast,
    ScriptSettings,
    SelectionMetric,
    SeriesError,
    SettingsFileError,
    model_name,
    series_label,
)

__all__ = [
    "AUTOML_TYPE",
    "BASELINES",
    "DEFAULT_CANDIDATES",
    "DEFAULT_FOLDS",
    "FALLBACKS",
    "FILE_COLUMN",
    "FORMAT",
    "LAGS",
    "LAG_FEATURES",
    "MAX_HORIZON",
    "MAX_SPAN_FACTOR",
    "METRICS",
    "MODEL_FILE",
    "REGRESSIONS",
    "SEASON",
    "SETTINGS_KEYS",
    "WEEK_FEATURE",
    "AutomlLoadError",
    "AutomlModel",
    "FitResult",
    "Forecast",
    "Forecaster",
    "ModelChoice",
    "ModelKind",
    "Pack",
    "PointForecast",
    "ScriptSettings",
    "SelectionMetric",
    "Series",
    "SeriesError",
    "SeriesFailure",
    "SettingsFileError",
    "SteppedRequest",
    "_design",
    "_ffill",
    "backtest",
    "batch_metrics",
    "calendar",
    "check_request",
    "clip_non_negative",
    "fit_many",
    "forecast_many",
    "iso_weeks",
    "latest_version_dir",
    "load_model",
    "metrics",
    "model_file",
    "model_name",
    "non_finite_forecast",
    "offset_of",
    "pickle_file",
    "predict",
    "read_table",
    "read_tables",
    "recurse",
    "score_folds",
    "select",
    "series_label",
    "solve_ols",
    "split_series",
    "step_many",
]
