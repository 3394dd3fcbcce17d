"""The model family: one module per type, each with the same small interface.

Every module works on many series at once (arrays of series x weeks, see :class:`Pack`):

- ``fit(kind, pack, rows, settings) -> Params``: fit every series on the weeks ``rows`` allows;
- ``step(kind, params, seeds, exog, weeks) -> (S, H)``: forecast from the last ``SEED_PERIODS[kind]``
  known target values (oldest first, gaps forward filled), future exog and ISO weeks;
- ``fields(kind, params, j) -> dict`` / ``params_of(kind, models) -> Params``: one series' parameters
  to and from the plain data of :class:`~forecaster.model.Forecaster` (``model.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ..settings import ModelKind


@dataclass(frozen=True, slots=True)
class Pack:
    """Series left-aligned in arrays: (S, T) target, (S, T, k) exog, (S, T) ISO week, (S,) lengths; NaN padding."""

    y: np.ndarray
    x: np.ndarray
    weeks: np.ndarray
    lengths: np.ndarray

    def take(self, sel: np.ndarray) -> Pack:
        return Pack(self.y[sel], self.x[sel], self.weeks[sel], self.lengths[sel])


def module_of(kind: ModelKind) -> ModuleType:
    from . import baselines, demand, lr

    return {ModelKind.LR: lr, ModelKind.DEMAND: demand, ModelKind.LOGLOG: demand}.get(kind, baselines)
