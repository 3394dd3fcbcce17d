"""``POST /api/forecast``: batch-forecast a registered inference dataset version by hand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.flows.context import Context, json_object, known_fields, optional_int
from shared.flows.train import submit
from shared.workspace.base import PipelineKind

INFERENCE_DATASET = "inference"


@dataclass(frozen=True, slots=True)
class ForecastRequest:
    dataset_version: int | None = None  # None: the latest version of "inference"

    @classmethod
    def parse(cls, body: bytes | str | None) -> ForecastRequest:
        """Raises InvalidValue naming the field."""
        data = json_object(body)
        known_fields(data, ("dataset_version",))
        return cls(dataset_version=optional_int(data, "dataset_version"))


def start_forecasting(ctx: Context, request: ForecastRequest) -> dict[str, Any]:
    """Submit the forecasting pipeline; its RunCompleted event records where the predictions are."""
    return submit(ctx, PipelineKind.FORECASTING, INFERENCE_DATASET, request.dataset_version, parameters={})
