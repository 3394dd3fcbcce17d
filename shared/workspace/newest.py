"""Which registered version of a model is the "latest": the one trained on the newest data.

Version numbers only say in which order models were *registered*. A training run submitted before
another one but finishing after it (a bigger dataset, a retry) registers its models last, so the
highest version can hold older data. Every choice of "the model to serve" (rollouts,
shared/flows/deploy.py; the batch forecast) uses this one rule instead:

1. the higher ``DatasetVersion`` tag (the training dataset's version, written by scoring/train.py);
2. then the later submission of the run in the ``RunId`` tag (read from the workspace's runs);
3. then the higher version number (the same run, or models without these tags).

Pure functions over :class:`~shared.workspace.base.ModelRecord`; :func:`run_submissions` is the
one that reads the workspace (one ``runs.get`` per distinct run, not per model).

Batch forecasting reads a models dir (``<name>/<version>/``) and cannot ask the registry, so a
registry that writes that dir (shared/workspace/local/models.py) leaves ``<name>/`` +
:data:`NEWEST_VERSION_FILE` holding the chosen version whenever it is not the highest one;
scoring/forecast.py serves that version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from shared.errors import InvalidValue, NotFound
from shared.workspace.base import ModelRecord, RunStore

DATASET_VERSION_TAG = "DatasetVersion"
RUN_ID_TAG = "RunId"
NEWEST_VERSION_FILE = "NEWEST_VERSION"  # in <models dir>/<name>/: scoring/forecast.py reads the same name
_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


def _dataset_version(record: ModelRecord) -> int:
    text = str(record.tags.get(DATASET_VERSION_TAG, "")).strip()
    return int(text) if text.isdigit() else -1


def _time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return _NEVER
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def freshness(record: ModelRecord, submitted: Mapping[str, str]) -> tuple[int, dt.datetime, int]:
    """Sort key: bigger is newer data. ``submitted`` maps run id -> ISO submission time."""
    run_id = str(record.tags.get(RUN_ID_TAG, ""))
    return _dataset_version(record), _time(submitted.get(run_id, "")), int(record.version)


def newest_per_name(records: Iterable[ModelRecord], submitted: Mapping[str, str]) -> dict[str, ModelRecord]:
    """The newest-data version of each name."""
    best: dict[str, tuple[tuple[int, dt.datetime, int], ModelRecord]] = {}
    for record in records:
        key = freshness(record, submitted)
        seen = best.get(record.name)
        if seen is None or key > seen[0]:
            best[record.name] = (key, record)
    return {name: record for name, (_, record) in best.items()}


def run_submissions(runs: RunStore, records: Iterable[ModelRecord]) -> dict[str, str]:
    """Submission time of every run named in the records' ``RunId`` tags ('' when the run is gone)."""
    out: dict[str, str] = {}
    for run_id in sorted({str(r.tags.get(RUN_ID_TAG, "")) for r in records} - {""}):
        try:
            out[run_id] = runs.get(run_id).submitted
        except (NotFound, InvalidValue):  # e.g. Azure ML's models tagged RunId=pipeline (no run of that id)
            out[run_id] = ""
    return out


def newest_models(records: Iterable[ModelRecord], runs: RunStore) -> list[ModelRecord]:
    """Every version of every model in -> the newest-data version of each name out, sorted by name."""
    records = list(records)
    chosen = newest_per_name(records, run_submissions(runs, records))
    return [chosen[name] for name in sorted(chosen)]
