"""What the pipeline steps tell the run store on Azure ML (SDK v1 and v2 alike): the run properties
``pipelines/aml/steps/register_models.py``, ``copy_predictions.py`` and the v2 AutoML steps set on the
pipeline run, read back into :class:`shared.workspace.base.Run` counts, failures and outputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from shared.workspace.base import SeriesFailure

COUNT_PROPERTIES: Final = ("models_registered", "models_not_registered", "rows", "failed", "fallback", "series")
OUTPUT_PROPERTIES: Final = ("predictions",)
PROPERTY_FAILURES: Final = "failures"  # a JSON list of {"file", "series", "reason"}


def run_counts(properties: Mapping[str, str]) -> dict[str, int]:
    return {k: int(properties[k]) for k in COUNT_PROPERTIES if str(properties.get(k, "")).isdigit()}


def run_outputs(properties: Mapping[str, str]) -> dict[str, str]:
    return {k: properties[k] for k in OUTPUT_PROPERTIES if k in properties}


def run_failures(properties: Mapping[str, str]) -> tuple[SeriesFailure, ...]:
    """The failures the steps recorded; none when the property is absent or not the expected JSON."""
    text = properties.get(PROPERTY_FAILURES)
    if not text:
        return ()
    try:
        items = json.loads(text)
        return tuple(SeriesFailure(file=str(i.get("file", "")), series=str(i.get("series", "")),
                                   reason=str(i.get("reason", ""))) for i in items)
    except (ValueError, AttributeError, TypeError):
        return ()
