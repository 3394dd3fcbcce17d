"""Models trained by Azure AutoML many models (the registry component ``automl_many_models_training``).

Each is a pickled forecasting pipeline (``model.pkl``, written with joblib; in an MLflow model folder
it sits beside ``MLmodel``) registered with the tag ``ModelType=automl``. Its ``forecast(X)`` takes a
frame of the forecast weeks - the time column, the time-series id columns and the future features -
and returns ``(y_pred, X_trans)``, one prediction per row of ``X``. It is loaded on first use, not when
the service starts: a service of many such models would otherwise unpickle them all (and pay their
memory) before answering anything.

Unpickling runs code from the file, so only registered models of this workspace are served: the
scoring container reads them from ``AZUREML_MODEL_DIR``, never from a request. Serving them needs the
packages the pipeline was pickled with (the AutoML runtime) in the scoring environment.
"""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

AUTOML_TYPE = "automl"  # the ModelType tag of AutoML many-models models, and the request's model_type
PICKLE_FILE = "model.pkl"


class ForecastingPipeline(Protocol):
    """What the webservice uses of an AutoML forecasting pipeline."""

    def forecast(self, X_pred: pd.DataFrame) -> tuple[Any, Any]: ...


class AutomlLoadError(Exception):
    """The pickle of an AutoML model cannot be loaded in this service."""


def pickle_file(directory: str | os.PathLike[str]) -> Path | None:
    """``<directory>/model.pkl``, or ``<directory>/<folder>/model.pkl`` (Azure ML keeps a registered
    folder's name under the version folder, as for ``model.json``); None when there is none."""
    direct = Path(directory) / PICKLE_FILE
    if direct.is_file():
        return direct
    nested = sorted(Path(directory).glob(f"*/{PICKLE_FILE}"))
    return nested[0] if nested else None


def _unpickle(path: Path) -> Any:
    try:
        import joblib  # AutoML writes model.pkl with joblib; joblib also reads plain pickles
    except ImportError:  # a scoring image without scikit-learn's joblib: plain pickles still load
        with open(path, "rb") as f:
            return pickle.load(f)
    return joblib.load(path)


class AutomlModel:
    """One served AutoML model: its name, its pickle, and the pipeline once loaded."""

    __slots__ = ("_error", "_lock", "_pipeline", "name", "path")

    kind = AUTOML_TYPE

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._pipeline: ForecastingPipeline | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def pipeline(self) -> ForecastingPipeline:
        """The unpickled pipeline, loaded once (a failure is kept too: the file will not change).

        Raises:
            AutomlLoadError: the file cannot be unpickled here, or holds no ``forecast`` method.
        """
        with self._lock:
            if self._pipeline is None and self._error is None:
                try:
                    loaded = _unpickle(self.path)
                except Exception as e:
                    self._error = f"{type(e).__name__}: {e}"
                else:
                    if callable(getattr(loaded, "forecast", None)):
                        self._pipeline = loaded
                    else:
                        self._error = f"it holds a {type(loaded).__name__}, which has no forecast(X) method"
            if self._pipeline is None:
                raise AutomlLoadError(f"model {self.name} ({self.path}) cannot be loaded: {self._error}")
            return self._pipeline

    def time_column(self) -> str | None:
        """The pipeline's time column name (AutoML's ``time_column_name``), None when it does not say."""
        name = getattr(self.pipeline(), "time_column_name", None)
        return name if isinstance(name, str) and name else None

    def forecast(self, table: pd.DataFrame) -> np.ndarray:
        """One value per row of ``table`` (the forecast weeks).

        Raises:
            AutomlLoadError: the model cannot be loaded; ValueError: the pipeline answered another number
            of values than rows; anything the pipeline raises for this data.
        """
        y_pred, _ = self.pipeline().forecast(table)
        values = np.asarray(y_pred, dtype=float).reshape(-1)
        if len(values) != len(table):
            raise ValueError(f"the AutoML model answered {len(values)} value(s) for {len(table)} forecast week(s)")
        return values
