"""Multi-model scoring script for azureml-inference-server-http (AML online deployments, local services).

Serves every model under ``AZUREML_MODEL_DIR`` in the registered-model layout
``<name>/<version>/model.json`` (the highest version by number; AML may add one folder level under
the version, which is searched too). All models are loaded once in ``init()``.

- POST ``/score``: a JSON array of records
  ``{"id": {"Store": .., "Brand": ..}, "model_type": "lr", "forecast_start": "1992-10-08",
  "forecast_freq": "W-THU", "forecast_horizon": 4, "data": {"historical": {col: [..]}, "future": {col: [..]}}}``
  (``historical`` and ``future`` are column -> list including the timestamp column). Each record is
  answered in request order, echoed with ``"forecast": {"timestamps": [ISO 8601], "values": [..]}``
  or with its own ``"error"`` (message) and ``"status"`` (404 unknown model, 400 bad request values)
  without failing the other records. Answers are strict JSON (never a NaN or Infinity token): a
  ``NaN``/``Infinity``/``-Infinity`` token in a request is read as that word (so the record can be
  echoed) and a number in ``data`` that is not finite is that record's 400; a forecast that
  overflows is that record's 400 too. A body nested too deeply to parse is a 400.
- GET ``/score``: the sorted list of model names served.

Lags come from ``historical`` where it has the weeks, else from the training tail stored in the model.
``historical`` may also be the original accelerator's ``{"Quantity": [...]}`` without timestamps: the
values are then the weeks just before ``forecast_start``. ``forecast_horizon`` may go beyond the
model's trained horizon up to ``forecaster.MAX_HORIZON`` (52) weeks (the recursion steps its own
forecasts); beyond that it is the record's 400. A forecast week missing from ``future`` gets the last
known values carried forward and the answer a ``warnings`` list. Forecasts of a non-negative target
(the default for sales) are floored at zero on every path.

The common request - a regression model (``lr``, ``demand``, ``loglog``) forecast from the week
after its training data, without history - skips the per-request pandas calendar work: its first
week, lag seeds and week stamps are computed once (by ``forecaster.check_request`` itself) and
reused; every other request takes the general ``forecaster.forecast_many`` path. Both give the same answer.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # imported from tests or tools rather than by the inference server
    sys.path.insert(0, _HERE)

import forecaster  # noqa: E402

try:  # the server's own decorator: run() then gets the request and can tell GET from POST
    from azureml_inference_server_http.api.aml_request import rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse
except ImportError:  # offline (tests, tools): run() takes the POST body as a string
    AMLResponse = None

    def rawhttp(func):  # type: ignore[no-redef]
        return func


logger = logging.getLogger("manymodels.model_webservice")

NOT_FOUND, BAD_REQUEST = 404, 400
JSON_HEADERS = {"Content-Type": "application/json"}
_models: dict[str, forecaster.Forecaster] = {}
_names: list[str] = []  # the GET answer, sorted once
# id(model) -> (first forecast week, lag seeds) of a request without start or history; None: no fast path
_origins: dict[int, tuple[pd.Timestamp, np.ndarray] | None] = {}


class NonFinite(str):
    """A ``NaN``, ``Infinity`` or ``-Infinity`` token of a request, kept as its word: Python's json reads
    them as floats by default, which would be echoed back as tokens strict JSON parsers reject."""


def loads(body: str | bytes) -> Any:
    """The request body as JSON, non-finite tokens as :class:`NonFinite` words.

    Raises:
        ValueError: not JSON, or nested too deeply to parse (a RecursionError in the parser).
    """
    try:
        return json.loads(body, parse_constant=NonFinite)
    except RecursionError:
        raise ValueError("it is nested too deeply (at most a few hundred levels)") from None


def _finite(obj: Any) -> Any:
    """``obj`` with every float that is not finite replaced by its JSON token word (e.g. a ``1e999``
    read as inf): only used when the plain encoding fails, so the common answer pays nothing."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else ("NaN" if obj != obj else "Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON (``allow_nan=False``) of an answer; a non-finite float echoed from the request becomes
    its word. scoring/routing_webservice.py has the same pair (it must not import this file's pandas)."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


class RecordError(Exception):
    def __init__(self, message: str, status: int = BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def load_models(root: str | os.PathLike[str]) -> dict[str, forecaster.Forecaster]:
    """Every model under ``root`` at its highest version; folders without a forecaster model are skipped."""
    models: dict[str, forecaster.Forecaster] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        directory = forecaster.latest_version_dir(root, entry.name)
        if directory is None:
            logger.warning("skipping %s: no numbered version folder", entry.name)
            continue
        try:
            models[entry.name] = forecaster.load_model(directory)
        except (OSError, ValueError, KeyError, RecursionError) as e:  # e.g. the deployment-state model
            logger.warning("skipping %s: %s holds no forecaster model (%s)", entry.name, directory, e)
    return models


def init() -> None:
    """Load every model once per worker process."""
    root = os.environ.get("AZUREML_MODEL_DIR")
    if not root or not os.path.isdir(root):
        raise RuntimeError(f"AZUREML_MODEL_DIR={root!r} is not a folder: start the server with --model_dir "
                           "pointing at <name>/<version>/model.json folders")
    _models.clear()
    _origins.clear()
    _models.update(load_models(root))
    _names[:] = sorted(_models)
    logger.info("serving %d models from %s", len(_models), root)


@rawhttp
def run(request: Any) -> Any:
    """GET: the model names served. POST: one answer per record, in request order."""
    if isinstance(request, str | bytes):
        body = request
    elif request.method == "GET":
        return _names
    elif request.method == "POST":
        body = request.get_data()
    else:
        return _http_error(405, f"{request.method} is not supported: POST records or GET the model list")
    try:
        records = loads(body)
    except ValueError as e:
        return _http_error(BAD_REQUEST, f"the body is not JSON: {e}")
    if not isinstance(records, list):
        return _http_error(BAD_REQUEST, "expected a JSON array of records, each {id, model_type, forecast_start, "
                                        "forecast_freq, forecast_horizon, data: {historical, future}}")
    try:
        answers = answer(records)
        if isinstance(request, str | bytes):  # called in-process: the answers themselves
            return answers
        # encoded here, strictly: the server's own encoding of a returned list allows NaN tokens
        return AMLResponse(dumps(answers), 200, JSON_HEADERS)
    except RecursionError:  # a record parsed but too deep to copy or encode inside the server's stack
        return _http_error(BAD_REQUEST, "the body is nested too deeply (at most a few hundred levels)")


def _http_error(status: int, message: str) -> Any:
    if AMLResponse is None:
        return {"error": message, "status": status}
    return AMLResponse(dumps({"error": message}), status, JSON_HEADERS)


def answer(records: list[Any]) -> list[dict[str, Any]]:
    """Answer each record on its own (a bad record never fails the others); the good ones are
    forecast together in one batched call."""
    answers: list[dict[str, Any]] = []
    requests: list[tuple[int, forecaster.Forecaster, pd.Timestamp | None, int, np.ndarray | None,
                         dict[pd.Timestamp, float] | None]] = []
    fast: list[tuple[int, forecaster.Forecaster, int, np.ndarray | None, np.ndarray]] = []
    for index, record in enumerate(records):
        answers.append(dict(record) if isinstance(record, Mapping) else {"record": record})
        try:
            model, start, horizon, exog, history = parse_record(record)
            seeds = _fast_seeds(model, start, horizon, exog, history)
            if seeds is None:
                requests.append((index, model, start, horizon, exog, history))
            else:
                fast.append((index, model, horizon, exog, seeds))
        except RecordError as e:
            _fail(answers[index], str(e), e.status)
        except Exception as e:  # never let one record's surprise fail the batch
            logger.exception("unexpected error reading a record")
            _fail(answers[index], f"cannot read this record: {type(e).__name__}: {e}", 500)
    if fast:
        try:
            _forecast_fast(fast, answers)
        except Exception:  # a surprise: the general path answers (or isolates) those records
            logger.exception("fast forecast failed; answering on the general path")
            requests.extend((index, model, None, horizon, exog, None) for index, model, horizon, exog, _ in fast)
    try:
        results = _forecast(requests) if requests else []
    except Exception:  # a surprise in the batched call: isolate it by answering record by record
        logger.exception("batched forecast failed; answering record by record")
        results = []
        for request in requests:
            try:
                results.extend(_forecast([request]))
            except Exception as e:
                results.append(forecaster.SeriesError(f"cannot forecast this record: {type(e).__name__}: {e}"))
    for (index, *_), result in zip(requests, results, strict=True):
        if isinstance(result, forecaster.SeriesError):
            _fail(answers[index], str(result), BAD_REQUEST)
        else:
            stamps, values = result
            answers[index]["forecast"] = {"timestamps": [t.isoformat() for t in stamps],
                                          "values": [float(v) for v in values]}
            if getattr(result, "warnings", ()):
                answers[index]["warnings"] = list(result.warnings)
    return answers


def _origin(model: forecaster.Forecaster) -> tuple[pd.Timestamp, np.ndarray] | None:
    """The week after ``model``'s data and its lag seeds from the stored tail, computed once per model
    by ``check_request`` itself (pandas offset arithmetic costs more than the forecast)."""
    key = id(model)
    if key not in _origins:
        try:
            stamps, _, seeds, _ = forecaster.check_request(model, None, 1, np.zeros((1, len(model.exog_columns))))
            seeds.flags.writeable = False
            _origins[key] = (stamps[0], seeds)
        except forecaster.SeriesError:
            _origins[key] = None  # the general path says why
    return _origins[key]


def _fast_seeds(model: forecaster.Forecaster, start: pd.Timestamp | None, horizon: int, exog: np.ndarray | None,
                history: dict[pd.Timestamp, float] | None) -> np.ndarray | None:
    """The lag seeds when the request can skip ``check_request`` (a regression model - ``lr``, ``demand``,
    ``loglog`` -, no history, starting the week after its data, complete future values of the right
    shape); None otherwise."""
    if model.kind not in forecaster.REGRESSIONS or history:
        return None
    k = len(model.exog_columns)
    if (exog is None) != (k == 0):
        return None
    if exog is not None and (exog.shape != (horizon, k) or np.isnan(exog).any()):
        return None  # the general path gives the error
    origin = _origin(model)
    if origin is None or (start is not None and start != origin[0]):
        return None
    return origin[1]


@functools.lru_cache(maxsize=256)
def _weeks(start: pd.Timestamp, steps: int, freq: str) -> tuple[tuple[str, ...], np.ndarray]:
    """ISO 8601 stamps and ISO weeks of ``steps`` weeks from ``start`` (shared by models trained to the same week)."""
    stamps, weeks = forecaster.iso_weeks(start, steps, freq)
    weeks.flags.writeable = False
    return tuple(t.isoformat() for t in stamps), weeks


def _forecast_fast(fast: list[tuple[int, forecaster.Forecaster, int, np.ndarray | None, np.ndarray]],
                   answers: list[dict[str, Any]]) -> None:
    """``forecast_many`` for requests that passed :func:`_fast_seeds`: models of the same type and feature
    count are stepped together by their type's module (``scoring/forecaster/models/``)."""
    groups: dict[tuple[str, int], list[tuple[int, forecaster.Forecaster, int, np.ndarray | None, np.ndarray]]] = {}
    for item in fast:
        groups.setdefault((item[1].kind, len(item[1].exog_columns)), []).append(item)
    for (kind, k), members in groups.items():
        h = max(steps for _, _, steps, _, _ in members)
        x = np.zeros((len(members), h, k))
        weeks = np.zeros((len(members), h))
        stamps = []
        for j, (_, model, steps, exog, _) in enumerate(members):
            iso, week_numbers = _weeks(_origins[id(model)][0], steps, model.freq)
            if k:
                x[j, :steps] = exog
            weeks[j, :steps] = week_numbers
            stamps.append(iso)
        module = forecaster.models.module_of(kind)
        pred = module.step(kind, module.params_of(kind, [m for _, m, _, _, _ in members]),
                           np.stack([seeds for *_, seeds in members]), x, weeks)
        for j, (index, model, steps, _, _) in enumerate(members):
            overflow = forecaster.non_finite_forecast(model, pred[j, :steps])
            if overflow is not None:
                _fail(answers[index], str(overflow), BAD_REQUEST)
            else:
                values = np.maximum(pred[j, :steps], 0.0) if model.non_negative else pred[j, :steps]
                answers[index]["forecast"] = {"timestamps": list(stamps[j]), "values": values.tolist()}


def _forecast(requests: list[tuple[Any, ...]]) -> list[tuple[pd.DatetimeIndex, np.ndarray] | forecaster.SeriesError]:
    return forecaster.forecast_many([r[1] for r in requests], [r[2] for r in requests],
                                    steps=[r[3] for r in requests], exog=[r[4] for r in requests],
                                    history=[r[5] for r in requests])


def _fail(answer: dict[str, Any], message: str, status: int) -> None:
    answer["error"], answer["status"] = message, status


def parse_record(record: Any) -> tuple[forecaster.Forecaster, pd.Timestamp | None, int, np.ndarray | None,
                                       dict[pd.Timestamp, float] | None]:
    """Validate one record: its model, forecast start, horizon, future exogenous values and history.

    Raises:
        RecordError: with the HTTP-style status for that record (404 unknown model, else 400).
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
    ids = record.get("id")
    if not isinstance(ids, Mapping) or not ids:
        raise RecordError("id must be an object of id columns, e.g. {\"Store\": 1000, \"Brand\": \"dominicks\"}")
    if not isinstance(record.get("model_type") or "lr", str):
        raise RecordError(f"model_type {record.get('model_type')!r} is not allowed: a string such as \"lr\"")
    try:  # the same name training gave the series, from the raw id values (scoring/model_names.py)
        name = forecaster.model_name(str(record.get("model_type") or "lr"), ids)
    except forecaster.SeriesError as e:
        raise RecordError(f"id {dict(ids)!r} cannot name a model: {e}") from e
    model = _models.get(name)
    if model is None:
        raise RecordError(f"unknown model {name}: this service does not serve it", NOT_FOUND)
    freq = record.get("forecast_freq")
    if freq is not None and freq != model.freq:
        raise RecordError(f"forecast_freq {freq!r} is not allowed: model {name} is weekly on {model.freq!r}")
    horizon = record.get("forecast_horizon", model.horizon)
    limit = max(model.horizon, forecaster.MAX_HORIZON)  # recursive models step past the trained horizon
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= limit:
        raise RecordError(f"forecast_horizon {horizon!r} is not allowed: model {name} forecasts 1 to "
                          f"{limit} weeks")
    start = _timestamp(record.get("forecast_start"), "forecast_start") if record.get("forecast_start") else None
    data = record.get("data") or {}
    if not isinstance(data, Mapping):
        raise RecordError("data must be an object {historical: {column: [...]}, future: {column: [...]}}")
    history = _history(model, data.get("historical"), start)
    exog = _future(model, data.get("future"), start, horizon)
    return model, start, horizon, exog, history


def _timestamp(value: Any, field: str) -> pd.Timestamp:
    try:
        stamp = _parse_date(value) if isinstance(value, str) else _to_stamp(value)
    except (TypeError, ValueError) as e:
        raise RecordError(f"{field} {value!r} is not a date (use ISO 8601, e.g. 1992-10-08)") from e
    if stamp is None:
        raise RecordError(f"{field} {value!r} is not a date (use ISO 8601, e.g. 1992-10-08)")
    return stamp


def _to_stamp(value: Any) -> pd.Timestamp | None:
    stamp = pd.Timestamp(value)
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_localize(None) if stamp.tzinfo else stamp
    if not pd.Timestamp.min <= stamp <= pd.Timestamp.max:  # pandas parses 9999-12-30, then cannot step from it
        raise ValueError(f"outside {pd.Timestamp.min.date()}..{pd.Timestamp.max.date()}")
    return stamp


@functools.lru_cache(maxsize=4096)
def _parse_date(value: str) -> pd.Timestamp | None:
    """Requests repeat the same few dates; parsing one costs more than the forecast."""
    return _to_stamp(value)


def _columns(block: Any, name: str) -> dict[str, list[Any]]:
    if not isinstance(block, Mapping) or not all(isinstance(v, list) for v in block.values()):
        raise RecordError(f"data.{name} must be an object of column -> list of values")
    lengths = {len(v) for v in block.values()}
    if len(lengths) > 1:
        raise RecordError(f"data.{name} columns have different lengths: "
                          + ", ".join(f"{c}={len(v)}" for c, v in block.items()))
    return dict(block)


def _floats(values: list[Any], column: str, block: str) -> np.ndarray:
    """The numbers of one column, null as NaN (missing); a value that is not a finite number is a RecordError."""
    try:
        array = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
    except (TypeError, ValueError) as e:
        raise RecordError(f"data.{block}.{column} holds a value that is not a number: {e}") from e
    if not np.isfinite(array).all():  # NaN from null is missing; any other NaN or infinity is refused
        for row, (value, number) in enumerate(zip(values, array.tolist(), strict=True)):
            if value is not None and not math.isfinite(number):
                shown = value if isinstance(value, str) else _finite(number)
                raise RecordError(f"data.{block}.{column}[{row}] is {shown}, which is not allowed: values must be "
                                  f"finite numbers (null for a missing value)")
    return array


def _history(model: forecaster.Forecaster, block: Any, start: pd.Timestamp | None = None,
             ) -> dict[pd.Timestamp, float] | None:
    """Known target values by week. Without the timestamp column (the original accelerator's format,
    ``{"Quantity": [...]}``) the values are the weeks just before the forecast start, oldest first."""
    if not block:
        return None
    columns = _columns(block, "historical")
    if model.target_column not in columns:
        raise RecordError(f"data.historical needs the column {model.target_column} (and optionally "
                          f"{model.timestamp_column}; without it the values end the week before forecast_start)")
    values = _floats(columns[model.target_column], model.target_column, "historical")
    if model.timestamp_column not in columns:
        if not len(values):
            return None
        first = start if start is not None else model.next_week()
        if not forecaster.offset_of(model.freq).is_on_offset(first):
            raise RecordError(f"forecast_start {first.date()} is not on the model's {model.freq} calendar")
        stamps = list(forecaster.calendar(end=first - forecaster.offset_of(model.freq), periods=len(values),
                                          freq=model.freq))
        return {t: v for t, v in zip(stamps, values, strict=True) if not math.isnan(v)}
    stamps = [_timestamp(v, f"data.historical.{model.timestamp_column}") for v in columns[model.timestamp_column]]
    return {t: v for t, v in zip(stamps, values, strict=True) if not math.isnan(v)}


def _future(model: forecaster.Forecaster, block: Any, start: pd.Timestamp | None, horizon: int) -> np.ndarray | None:
    """Future exog values per forecast week; a week the block lacks is NaN (the forecaster carries the
    last known values forward for it and the answer gets a warning)."""
    if not model.uses_exog or not model.exog_columns:
        return None
    columns = _columns(block or {}, "future")
    missing = [c for c in model.exog_columns if c not in columns]
    if missing:
        raise RecordError(f"data.future lacks {', '.join(missing)}, which model {model.name} needs for each "
                          f"forecast week")
    matrix = np.column_stack([_floats(columns[c], c, "future") for c in model.exog_columns])
    if model.timestamp_column in columns:  # align rows to the forecast weeks by date
        stamps = [_timestamp(v, f"data.future.{model.timestamp_column}") for v in columns[model.timestamp_column]]
        row_of = {t: i for i, t in enumerate(stamps)}
        if start is None:
            origin = _origin(model)
            start = origin[0] if origin is not None else model.next_week()
        weeks = forecaster.calendar(start, horizon, model.freq)
        rows = [row_of.get(t, -1) for t in weeks]
        if all(r == -1 for r in rows):
            raise RecordError(f"data.future has no row for any forecast week "
                              f"({weeks[0].date()}..{weeks[-1].date()})")
        aligned = matrix[np.maximum(rows, 0)]
        aligned[np.array(rows) == -1] = np.nan
        return aligned
    if len(matrix) < horizon:
        raise RecordError(f"data.future has {len(matrix)} row(s); forecast_horizon {horizon} needs {horizon}")
    return matrix[:horizon]
