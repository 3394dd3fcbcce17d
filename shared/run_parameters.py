"""Run parameters shared by settings, flows and every backend (no project imports: settings use it)."""

from __future__ import annotations

from enum import StrEnum


class TrainingMode(StrEnum):
    """Which series a training run trains (the run parameter ``mode``, the setting ``TRAINING_MODE``)."""

    CHANGED = "changed"  # only the series whose files changed in this dataset version
    ALL = "all"  # every series
