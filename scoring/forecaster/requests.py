"""The typed records of the model webservice's requests (scoring/model_webservice.py).

They live in this package, not in the webservice: the inference server executes the entry script
without registering it in ``sys.modules``, where dataclasses look up the module of a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .automl import AutomlModel
from .forecasting import SteppedRequest
from .model import Forecaster

ServedModel = Forecaster | AutomlModel


@dataclass(frozen=True, slots=True)
class Origin:
    """The first forecast week of a request without start or history, and its lag seeds (read-only)."""

    start: pd.Timestamp
    seeds: np.ndarray


@dataclass(frozen=True, slots=True)
class ForecastRequest:
    """A valid record for a ``model.json`` model: its model, start (None: the week after its data),
    horizon, future exog values (horizon x k, NaN where a week is missing) and known history by week."""

    model: Forecaster
    start: pd.Timestamp | None
    horizon: int
    exog: np.ndarray | None
    history: dict[pd.Timestamp, float] | None


@dataclass(frozen=True, slots=True)
class AutomlRequest:
    """A valid record for an AutoML model: the forecast weeks and the pipeline's input frame for them."""

    model: AutomlModel
    stamps: pd.DatetimeIndex
    table: pd.DataFrame


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A request of record ``index`` on the general path."""

    index: int
    request: ForecastRequest


@dataclass(frozen=True, slots=True)
class FastRequest:
    """A request of record ``index`` on the fast path: checked once per model, stamps precomputed."""

    index: int
    request: ForecastRequest
    stepped: SteppedRequest
    stamps: tuple[str, ...]
