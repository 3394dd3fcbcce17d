"""The product's own events: CloudEvents 1.0 that tell downstream systems (replenishment, pricing,
dashboards) what happened, so they do not have to poll.

=================================  ====================================  ======================
type                               subject                               the fact
=================================  ====================================  ======================
``manymodels.training.finished``   ``runs/<run id>``                     a training run completed
``manymodels.deployment.completed`` ``deployments/<target>/<plan id>``   a rollout plan is done
``manymodels.forecasts.ready``     ``runs/<run id>``                     a forecasting run's predictions are in storage
``manymodels.run.failed``          ``runs/<run id>``                     a run failed or was canceled
=================================  ====================================  ======================

An event's id is derived from its fact (``uuid5`` of the type and the run or plan id), so every
retry of a flow builds the same event with the same id and consumers dedupe on it. Events are
written to the ledger's outbox first and published by :func:`shared.flows.outbox.drain`
(docs/events.md: schemas, examples, delivery guarantees).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

SPEC_VERSION = "1.0"
# A fixed namespace: ids must not change between processes, versions or retries.
_ID_NAMESPACE = uuid.UUID("6f1e3b7c-2a54-4d1e-9a0f-8c3b5e7d9a10")
_RUN_COUNTS = ("files", "series", "rows", "succeeded", "fallback", "failed", "warnings", "models_registered")
# An event must stay well under 64 KB (the local topic's limit, shared/devhost/topics.py; Azure's is
# 1 MB): at most 50 failures / groups are listed, each text value cut to 300 characters.
MAX_LISTED = 50
MAX_TEXT = 300


class ProductEventType(StrEnum):
    TRAINING_FINISHED = "manymodels.training.finished"
    DEPLOYMENT_COMPLETED = "manymodels.deployment.completed"
    FORECASTS_READY = "manymodels.forecasts.ready"
    RUN_FAILED = "manymodels.run.failed"


@dataclass(frozen=True, slots=True)
class ProductEvent:
    """One product event, as stored in the outbox and published as a CloudEvent."""

    id: str
    type: ProductEventType
    source: str
    subject: str
    time: str  # ISO 8601, when the fact happened
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_cloud_event(self) -> Any:
        """The ``azure.core.messaging.CloudEvent`` the SDK publishes (imported here: it is only
        needed when publishing)."""
        from azure.core.messaging import CloudEvent

        return CloudEvent(source=self.source, type=str(self.type), data=dict(self.data), id=self.id,
                          subject=self.subject, time=_parse_time(self.time),
                          datacontenttype="application/json", specversion=SPEC_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """The CloudEvents 1.0 JSON form (what a subscriber receives)."""
        return {"specversion": SPEC_VERSION, "id": self.id, "type": str(self.type), "source": self.source,
                "subject": self.subject, "time": self.time, "datacontenttype": "application/json",
                "data": dict(self.data)}


def event_id(event_type: ProductEventType, key: str) -> str:
    """The id of the event for one fact: the same on every retry, in every process."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{event_type}:{key}"))


def source_for(namespace: str) -> str:
    """The CloudEvents ``source``: which manymodels installation sent it (NAMESPACE)."""
    return f"/manymodels/{namespace or 'manymodels'}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _event(event_type: ProductEventType, key: str, *, namespace: str, subject: str, time: str | None,
           data: Mapping[str, Any]) -> ProductEvent:
    return ProductEvent(event_id(event_type, key), event_type, source_for(namespace), subject,
                        time or _now(), dict(data))


def _listed(items: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    def short(value: Any) -> Any:
        return value[:MAX_TEXT] if isinstance(value, str) else value

    return ([{k: short(v) for k, v in i.items()} for i in items[:MAX_LISTED]],
            max(0, len(items) - MAX_LISTED))


# --------------------------------------------------------------------------- builders


def training_finished(*, namespace: str, run_id: str, dataset_name: str, dataset_version: int | None,
                      counts: Mapping[str, int], failures: Iterable[Mapping[str, str]], ended: str | None
                      ) -> ProductEvent:
    """``counts`` as the run reports them (``model_type_<type>`` keys become ``models_by_type``)."""
    by_type = {k.removeprefix("model_type_"): int(v) for k, v in counts.items() if k.startswith("model_type_")}
    totals = {k: int(v) for k, v in counts.items() if k in _RUN_COUNTS}  # not the runner's progress timings
    listed, more = _listed(list(failures))
    return _event(ProductEventType.TRAINING_FINISHED, run_id, namespace=namespace, subject=f"runs/{run_id}",
                  time=ended, data={"run_id": run_id, "dataset_name": dataset_name,
                                    "dataset_version": dataset_version, "models_by_type": by_type,
                                    "counts": totals, "failed": int(counts.get("failed", 0)),
                                    "failures": listed, "failures_not_listed": more})


def forecasts_ready(*, namespace: str, run_id: str, dataset_name: str, dataset_version: int | None,
                    predictions: str, rows: int | None, series: int | None, window: Mapping[str, str] | None,
                    ended: str | None) -> ProductEvent:
    return _event(ProductEventType.FORECASTS_READY, run_id, namespace=namespace, subject=f"runs/{run_id}",
                  time=ended, data={"run_id": run_id, "dataset_name": dataset_name,
                                    "dataset_version": dataset_version, "predictions": predictions,
                                    "rows": rows, "series": series,
                                    "forecast_window": dict(window) if window else None})


def run_failed(*, namespace: str, run_id: str, kind: str, state: str, reason: str, ended: str | None
               ) -> ProductEvent:
    return _event(ProductEventType.RUN_FAILED, run_id, namespace=namespace, subject=f"runs/{run_id}",
                  time=ended, data={"run_id": run_id, "kind": kind, "state": state, "reason": reason[:4000]})


def deployment_completed(*, namespace: str, plan_id: str, target: str, run_id: str,
                         groups: Sequence[Mapping[str, Any]], models: int, router_endpoint: str | None
                         ) -> ProductEvent:
    """``groups``: the groups this plan changed (``group``, ``service``, ``action``, ``models``).
    ``router_endpoint`` is the scoring URI only: service keys never go into an event."""
    listed, more = _listed(groups)
    return _event(ProductEventType.DEPLOYMENT_COMPLETED, plan_id, namespace=namespace,
                  subject=f"deployments/{target}/{plan_id}", time=None,
                  data={"plan_id": plan_id, "target": target, "run_id": run_id or None,
                        "groups_changed": listed, "groups_not_listed": more, "models": models,
                        "router_endpoint": router_endpoint})


@dataclass(frozen=True, slots=True)
class PredictionsSummary:
    rows: int
    series: int | None  # None when the id columns are not in the file
    window: dict[str, str] | None


def summarize_predictions(path: str | Path, *, id_columns: Sequence[str] = (), timestamp_column: str = ""
                          ) -> PredictionsSummary | None:
    """Rows, series (distinct ``id_columns``) and first/last timestamp of a predictions CSV
    (timestamp first, scoring/forecast.py), or None when the file cannot be read here (an Azure ML
    run's output is only in blob storage)."""
    import pandas as pd

    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        ts = timestamp_column if timestamp_column in header else (header[0] if header else "")
        ids = [c for c in id_columns if c in header]
        frame = pd.read_csv(path, usecols=[ts, *ids], dtype=str) if ts else None
    except (OSError, ValueError, IndexError):
        return None
    if frame is None:
        return None
    stamps = frame[ts].dropna()
    window = {"start": str(stamps.min()), "end": str(stamps.max())} if not stamps.empty else None
    series = len(frame[ids].drop_duplicates()) if ids and len(ids) == len(id_columns) else None
    return PredictionsSummary(rows=len(frame), series=series, window=window)
