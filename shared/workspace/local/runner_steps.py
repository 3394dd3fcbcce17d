"""The steps after ParallelRunStep: what the run's rows mean, then registration or predictions.

The rows arrive as :class:`RowBatch` es (plain Python columns): a training run never imports
pandas here; forecasting builds its predictions table with pandas.

Training: the rows ``train.py`` returned give the counts and the per-series failures and
fallbacks; the models manifest (``<output>/manifest/*.jsonl``, one file per worker process) is
registered in bulk (docs/architecture.md §4). Forecasting: the ``ok`` rows become
``forecasts_<YYYYMMDD>_<runid>.csv``, written to the run's outputs and uploaded to the predictions
container.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.aml.steps import register_models
from shared.errors import InvalidValue
from shared.paths import path_inside
from shared.workspace.base import NewModel, SeriesFailure
from shared.workspace.local.models import LocalModelRegistry
from shared.workspace.local.runner_inputs import RunInputs
from shared.workspace.local.runner_pool import ParallelOutcome
from shared.workspace.local.runner_worker import RowBatch, row_batch

if TYPE_CHECKING:
    import pandas as pd

    from shared.storage.account import StorageAccount

log = logging.getLogger(__name__)

REGISTER_CHUNK = 2000  # models per register_many call: big enough to be bulk, small enough to show progress
_BOOKKEEPING = ("file", "status", "reason")


@dataclass(slots=True)
class RunRows:
    """What the entry script said about every file/series of the run (its run() results, in mini-batch order)."""

    batches: list[RowBatch] = field(default_factory=list)
    failures: list[SeriesFailure] = field(default_factory=list)
    fallback: list[dict[str, str]] = field(default_factory=list)
    # series whose rows carry warnings (training: target values not used; forecasting: a future gap filled)
    warnings: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """Every row in one table (imports pandas: forecasting only)."""
        import pandas as pd

        frames = [pd.DataFrame(dict(zip(b.names, b.values, strict=True))) for b in self.batches if len(b)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def as_row_batch(result: Any) -> RowBatch | None:
    """A run() result as a :class:`RowBatch` (DataFrames too: tests and in-process callers); None for plain lines."""
    if isinstance(result, RowBatch):
        return result
    if hasattr(result, "to_csv") and hasattr(result, "columns"):
        return row_batch(result)
    return None


def _records(batch: RowBatch, status: str) -> Iterator[dict[str, Any]]:
    """The rows of ``batch`` whose status is ``status``, as dicts."""
    statuses = batch.column("status") or ["ok"] * len(batch)
    for i, value in enumerate(statuses):
        if str(value) == status:
            yield {name: values[i] for name, values in zip(batch.names, batch.values, strict=True)}


def collect_rows(outcome: ParallelOutcome, inputs: RunInputs, *, series_of: Callable[[dict], str]) -> RunRows:
    """Gather run() results and turn failure/fallback rows (and lost mini-batches) into records."""
    batches = [b for _, r in sorted(outcome.results.items()) if (b := as_row_batch(r)) is not None and len(b)]
    names = inputs.name_of()
    rows = RunRows(batches=batches)
    succeeded = 0
    for batch in batches:
        succeeded += sum(str(s) == "ok" for s in batch.column("status") or ["ok"] * len(batch))
        for record in _records(batch, "failed"):
            file = ";".join(names.get(part, part) for part in _text(record.get("file")).split(";"))
            rows.failures.append(SeriesFailure(file=file, series=series_of(record),
                                               reason=_text(record.get("reason")) or "failed (no reason given)"))
    for batch in batches:
        for record in _records(batch, "fallback"):
            rows.fallback.append({"series": series_of(record), "model_name": _text(record.get("model_name")),
                                  "model_type": _text(record.get("model_type")),
                                  "reason": _text(record.get("reason"))})
    for lost in outcome.failed_batches:
        rows.failures.extend(SeriesFailure(file=names.get(path, Path(path).name), series="",
                                           reason=f"mini-batch failed after {lost.tries} tries: {lost.reason}")
                             for path in lost.files)
    rows.warnings = _warned(batches, series_of)
    rows.counts = {"files": len(inputs.files), "rows": sum(len(b) for b in batches), "succeeded": succeeded,
                   "fallback": len(rows.fallback), "failed": len(rows.failures), "warnings": len(rows.warnings),
                   **model_type_counts(batches)}
    return rows


def _warned(batches: Sequence[RowBatch], series_of: Callable[[dict], str]) -> list[dict[str, str]]:
    """One record per series with warnings: a non-empty ``warnings`` column (scoring/train.py) or, where
    there is none, the ``reason`` of an ``ok`` row (scoring/forecast.py: a gap in the future data)."""
    out: dict[str, dict[str, str]] = {}
    for batch in batches:
        column = batch.column("warnings")
        if column is None:
            statuses, reasons = batch.column("status") or (), batch.column("reason") or ()
            column = [r if str(s) == "ok" else "" for s, r in zip(statuses, reasons, strict=False)]
        for i, value in enumerate(column):
            if _text(value):
                record = {name: values[i] for name, values in zip(batch.names, batch.values, strict=True)}
                out.setdefault(series_of(record), {"series": series_of(record), "warnings": _text(value)})
    return list(out.values())


def model_type_counts(batches: Sequence[RowBatch]) -> dict[str, int]:
    """``model_type_<type>``: trained series (ok or fallback) per model type; with ``model_type: auto``
    these are the types the backtest chose (scoring/forecaster/selection.py)."""
    counts: dict[str, int] = {}
    for batch in batches:
        kinds, statuses = batch.column("model_type"), batch.column("status")
        for kind, status in zip(kinds or (), statuses or (), strict=False):
            if str(status) in ("ok", "fallback") and _text(kind):
                key = f"model_type_{_text(kind)}"
                counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def training_series(record: dict) -> str:
    return _text(record.get("series")) or _text(record.get("model_name"))


# --------------------------------------------------------------------------- training: registration


def read_manifest(output_dir: Path, rows: Sequence[RowBatch] | pd.DataFrame) -> list[NewModel]:
    """The models to register: manifest lines of series whose row is ok/fallback, one per name.

    The rule (the last complete line of a name wins: a mini-batch retried after a timeout writes
    its lines again; broken lines are skipped) is the Azure ML register step's
    ``read_manifest`` in pipelines/aml/steps/register_models.py, so both backends register the same
    models. A line whose artifact path is outside the run outputs is skipped here.
    """
    entries = register_models.read_manifest(output_dir, wanted=_registrable(rows),
                                            skipped=lambda message: log.warning("models manifest: %s", message))
    models = (_manifest_model(entry, output_dir) for entry in entries)
    return [m for m in models if m is not None]


def _registrable(rows: Sequence[RowBatch] | pd.DataFrame) -> set[str] | None:
    """Model names of the ok/fallback rows (None: the rows do not say, so every manifest entry counts)."""
    batches = list(rows) if isinstance(rows, list | tuple) else [as_row_batch(rows)]
    wanted: set[str] | None = None
    for batch in batches:
        names, statuses = (batch.column("model_name"), batch.column("status")) if batch else (None, None)
        if names is None or statuses is None:
            continue
        wanted = wanted if wanted is not None else set()
        wanted.update(str(n) for n, s in zip(names, statuses, strict=True)
                      if str(s) in register_models.REGISTRABLE_STATUSES)
    return wanted


def _manifest_model(entry: dict[str, Any], output_dir: Path) -> NewModel | None:
    try:
        # absolute paths stay; registration moves the folder into the registry: never one from outside
        path = str(path_inside(output_dir, entry["path"], what="artifact path"))
        return NewModel(name=str(entry["name"]), path=path,
                        tags={str(k): str(v) for k, v in (entry.get("tags") or {}).items()},
                        properties={str(k): _text(v) for k, v in (entry.get("properties") or {}).items()})
    except (ValueError, KeyError, TypeError, AttributeError, InvalidValue) as e:
        log.warning("skipped a broken models manifest entry %r (%s)", entry.get("name"), e)
        return None


def register(registry: LocalModelRegistry, models: list[NewModel], *, progress: Callable[[int], None],
             failures: list[SeriesFailure] | None = None) -> int:
    """Register ``models`` in bulk (a few big ``register_many`` calls); returns how many.

    The run's artifact directories are scratch: the registry takes them over (a rename each) rather
    than copying them. A model the registry refuses (its name or folder) becomes a per-series entry
    of ``failures`` (logged when none is given); the rest of its chunk is registered.
    """
    done = 0
    for chunk in _chunks(models, REGISTER_CHUNK):
        rejected: list[tuple[NewModel, str]] = []
        done += len(registry.register_many(chunk, move=True, rejected=rejected))
        for model, reason in rejected:
            failure = SeriesFailure(file="", series=str(model.name), reason=f"not registered: {reason}")
            if failures is None:
                log.warning("model %r not registered: %s", model.name, reason)
            else:
                failures.append(failure)
        progress(done)
    return done


def _chunks(items: list[NewModel], size: int) -> Iterable[list[NewModel]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# --------------------------------------------------------------------------- forecasting: predictions


def prediction_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok rows, with the columns ``forecast.py`` writes (without file/status/reason)."""
    if frame.empty:
        return frame
    ok = frame[frame["status"].astype(str) == "ok"] if "status" in frame.columns else frame
    return ok.drop(columns=[c for c in _BOOKKEEPING if c in ok.columns])


def write_predictions(rows: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rows.to_csv(tmp, index=False)
    tmp.replace(path)


def upload_predictions(storage: StorageAccount, container: str, path: Path) -> str:
    """Upload the predictions file; returns ``<container>/<blob>``."""
    from shared.storage.blobs import BlobStore  # the storage SDK is slow to import: forecasting only

    store = BlobStore(storage, container)
    store.ensure_container()
    store.upload_file(path.name, path)
    return f"{container}/{path.name}"
