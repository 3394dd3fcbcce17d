"""Multi-model scoring script for azureml-inference-server-http (AML online deployments, local services).

Serves every model under ``AZUREML_MODEL_DIR`` in the registered-model layout
``<name>/<version>/model.json`` (the highest version by number; AML may add one folder level under
the version, which is searched too; ``MANYMODELS_MODELS_SUBDIR`` names a folder inside it when the
models sit one level down, as in an SDK v2 group model asset). All models are loaded once in ``init()``.

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
reused; every other request takes the general ``forecaster.forecast_many`` path. Both are stepped by the
same batching loop (``forecaster.step_many``), so they give the same answer.

The model's type, as training tagged it (``ModelType``), picks how it is served: ``model.json`` models
(``lr``, ``demand``, ``loglog``, the baselines) as above; ``automl`` models (a ``model.pkl`` trained by
Azure AutoML many models, scoring/forecaster/automl.py) are loaded on their first request and forecast
one record at a time: the record's ``forecast_horizon`` weeks, given by the model's time column in
``data.future`` (its first rows) or by ``forecast_start`` and ``forecast_freq``, with the record's id
values and the other ``data.future`` columns as the pipeline's input. Their errors are per record too
(400 for data the pipeline refuses, 500 for a pickle that cannot be loaded in this service).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # imported from tests or tools rather than by the inference server
    sys.path.insert(0, _HERE)

import forecaster  # noqa: E402
from forecaster.requests import (  # noqa: E402
    AutomlRequest,
    FastRequest,
    ForecastRequest,
    Origin,
    PendingRequest,
    ServedModel,
)

try:  # the server's own decorator: run() then gets the request and can tell GET from POST
    from azureml_inference_server_http.api.aml_request import rawhttp
    from azureml_inference_server_http.api.aml_response import AMLResponse
except ImportError:  # offline (tests, tools): run() takes the POST body as a string
    AMLResponse = None

    def rawhttp(func: Any) -> Any:
        return func


def _raw_http(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``rawhttp`` with a type (the server ships no type information)."""
    wrapped: Callable[[Any], Any] = rawhttp(func)
    return wrapped


logger = logging.getLogger("manymodels.model_webservice")

NOT_FOUND, BAD_REQUEST = 404, 400
JSON_HEADERS = {"Content-Type": "application/json"}
_models: dict[str, ServedModel] = {}
_names: list[str] = []  # the GET answer, sorted once
# id(model) -> the Origin of a request without start or history; None: no fast path for that model
_origins: dict[int, Origin | None] = {}


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


def load_models(root: str | os.PathLike[str]) -> dict[str, ServedModel]:
    """Every model under ``root`` at its highest version; folders without a served model are skipped."""
    models: dict[str, ServedModel] = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        directory = forecaster.latest_version_dir(root, entry.name)
        if directory is None:
            logger.warning("skipping %s: no numbered version folder", entry.name)
            continue
        try:
            models[entry.name] = load_served_model(entry.name, directory)
        except (OSError, ValueError, KeyError, RecursionError) as e:  # e.g. the deployment-state model
            logger.warning("skipping %s: %s holds no forecaster model (%s)", entry.name, directory, e)
    return models


def load_served_model(name: str, directory: Path) -> ServedModel:
    """The model in ``directory`` by its type: ``model.json`` (the type it records, as training tagged it)
    or an AutoML ``model.pkl`` (tag ModelType=automl; unpickled on its first request).

    Raises:
        FileNotFoundError: neither file is there; ValueError/KeyError: a model.json of another format.
    """
    if forecaster.model_file(directory) is not None:
        return forecaster.load_model(directory)
    pickled = forecaster.pickle_file(directory)
    if pickled is not None:
        return forecaster.AutomlModel(name, pickled)
    raise FileNotFoundError(f"no {forecaster.MODEL_FILE} or {forecaster.automl.PICKLE_FILE} in {directory} "
                            "or its sub-folders")


MODELS_SUBDIR_ENV = "MANYMODELS_MODELS_SUBDIR"  # SDK v2: the group's models sit one folder down in its model asset


def models_root(model_dir: str | None, subdir: str = "") -> str:
    """The folder holding ``<name>/<version>/`` model folders: ``AZUREML_MODEL_DIR``, or its ``subdir``
    (SDK v2 deploys a group as one model asset whose models are under ``models/``)."""
    if not model_dir or not os.path.isdir(model_dir):
        raise RuntimeError(f"AZUREML_MODEL_DIR={model_dir!r} is not a folder: start the server with --model_dir "
                           "pointing at <name>/<version>/model.json folders")
    if not subdir:
        return model_dir
    parts = subdir.replace("\\", "/").split("/")
    if os.path.isabs(subdir) or any(p in ("", ".", "..") for p in parts):
        raise RuntimeError(f"{MODELS_SUBDIR_ENV}={subdir!r} is not allowed: expected a relative folder name "
                           "inside AZUREML_MODEL_DIR, without '..'")
    root = os.path.join(model_dir, *parts)
    if not os.path.isdir(root):
        raise RuntimeError(f"{MODELS_SUBDIR_ENV}={subdir!r}: {root} is not a folder of the deployed model asset")
    return root


def init() -> None:
    """Load every model once per worker process."""
    root = models_root(os.environ.get("AZUREML_MODEL_DIR"), os.environ.get(MODELS_SUBDIR_ENV, ""))
    _models.clear()
    _origins.clear()
    _models.update(load_models(root))
    _names[:] = sorted(_models)
    logger.info("serving %d models from %s", len(_models), root)


@_raw_http
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
    general: list[PendingRequest] = []
    fast: list[FastRequest] = []
    automl: list[tuple[int, AutomlRequest]] = []
    for index, record in enumerate(records):
        answers.append(dict(record) if isinstance(record, Mapping) else {"record": record})
        try:
            request = parse_record(record)
            if isinstance(request, AutomlRequest):
                automl.append((index, request))
                continue
            quick = _fast_request(index, request)
            if quick is None:
                general.append(PendingRequest(index, request))
            else:
                fast.append(quick)
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
            general.extend(PendingRequest(item.index, item.request) for item in fast)
    try:
        results = _forecast([p.request for p in general]) if general else []
    except Exception:  # a surprise in the batched call: isolate it by answering record by record
        logger.exception("batched forecast failed; answering record by record")
        results = []
        for pending in general:
            try:
                results.extend(_forecast([pending.request]))
            except Exception as e:
                results.append(forecaster.SeriesError(f"cannot forecast this record: {type(e).__name__}: {e}"))
    for pending, result in zip(general, results, strict=True):
        if isinstance(result, forecaster.SeriesError):
            _fail(answers[pending.index], str(result), BAD_REQUEST)
        else:
            stamps, values = result
            answers[pending.index]["forecast"] = {"timestamps": [t.isoformat() for t in stamps],
                                                  "values": [float(v) for v in values]}
            if result.warnings:
                answers[pending.index]["warnings"] = list(result.warnings)
    for index, request in automl:
        _forecast_automl(request, answers[index])
    return answers


def _origin(model: forecaster.Forecaster) -> Origin | None:
    """The week after ``model``'s data and its lag seeds from the stored tail, computed once per model
    by ``check_request`` itself (pandas offset arithmetic costs more than the forecast)."""
    key = id(model)
    if key not in _origins:
        try:
            stamps, _, seeds, _ = forecaster.check_request(model, None, 1, np.zeros((1, len(model.exog_columns))))
            seeds.flags.writeable = False
            _origins[key] = Origin(stamps[0], seeds)
        except forecaster.SeriesError:
            _origins[key] = None  # the general path says why
    return _origins[key]


def _fast_request(index: int, request: ForecastRequest) -> FastRequest | None:
    """The fast-path request when ``request`` can skip ``check_request`` (a regression model - ``lr``,
    ``demand``, ``loglog`` -, no history, starting the week after its data, complete future values of the
    right shape); None otherwise."""
    model, exog = request.model, request.exog
    if model.kind not in forecaster.REGRESSIONS or request.history:
        return None
    k = len(model.exog_columns)
    if (exog is None) != (k == 0):
        return None
    if exog is not None and (exog.shape != (request.horizon, k) or np.isnan(exog).any()):
        return None  # the general path gives the error
    origin = _origin(model)
    if origin is None or (request.start is not None and request.start != origin.start):
        return None
    stamps, weeks = _weeks(origin.start, request.horizon, model.freq)
    return FastRequest(index, request, forecaster.SteppedRequest(model, request.horizon, weeks, origin.seeds, exog),
                        stamps)


@functools.lru_cache(maxsize=256)
def _weeks(start: pd.Timestamp, steps: int, freq: str) -> tuple[tuple[str, ...], np.ndarray]:
    """ISO 8601 stamps and ISO weeks of ``steps`` weeks from ``start`` (shared by models trained to the same week)."""
    stamps, weeks = forecaster.iso_weeks(start, steps, freq)
    weeks.flags.writeable = False
    return tuple(t.isoformat() for t in stamps), weeks


def _forecast_fast(fast: list[FastRequest], answers: list[dict[str, Any]]) -> None:
    """The requests that passed :func:`_fast_request`, stepped by the same loop as ``forecast_many``."""
    for item, values in zip(fast, forecaster.step_many([item.stepped for item in fast]), strict=True):
        if isinstance(values, forecaster.SeriesError):
            _fail(answers[item.index], str(values), BAD_REQUEST)
        else:
            answers[item.index]["forecast"] = {"timestamps": list(item.stamps), "values": values.tolist()}


def _forecast(requests: list[ForecastRequest]) -> list[forecaster.Forecast | forecaster.SeriesError]:
    return forecaster.forecast_many([r.model for r in requests], [r.start for r in requests],
                                    steps=[r.horizon for r in requests], exog=[r.exog for r in requests],
                                    history=[r.history for r in requests])


def _forecast_automl(request: AutomlRequest, answer: dict[str, Any]) -> None:
    """One AutoML record: its pipeline's forecast, or its own error (never the batch's)."""
    try:
        values = request.model.forecast(request.table)
    except forecaster.AutomlLoadError as e:
        _fail(answer, str(e), 500)
        return
    except Exception as e:  # the pipeline refuses this data: its message says why
        logger.warning("AutoML model %s cannot forecast a record: %s: %s", request.model.name, type(e).__name__, e)
        _fail(answer, f"model {request.model.name} cannot forecast this record: {type(e).__name__}: {e}",
              BAD_REQUEST)
        return
    if not np.isfinite(values).all():
        step = int(np.argmax(~np.isfinite(values)))
        _fail(answer, f"the forecast of {request.model.name} is not finite ({values[step]}) at step {step + 1}",
              BAD_REQUEST)
        return
    answer["forecast"] = {"timestamps": [t.isoformat() for t in request.stamps],
                          "values": np.maximum(values, 0.0).tolist()}  # a non-negative target, as every path


def _fail(answer: dict[str, Any], message: str, status: int) -> None:
    answer["error"], answer["status"] = message, status


def parse_record(record: Any) -> ForecastRequest | AutomlRequest:
    """Validate one record: its model, forecast start, horizon, future exogenous values and history
    (for an AutoML model: its forecast weeks and input frame).

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
    if isinstance(model, forecaster.AutomlModel):
        return _automl_request(model, record, ids)
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
    return ForecastRequest(model, start, horizon, exog, history)


def _automl_request(model: forecaster.AutomlModel, record: Mapping[str, Any], ids: Mapping[str, Any]) -> AutomlRequest:
    """The forecast weeks and the pipeline's input frame of a record for an AutoML model.

    Raises:
        RecordError: 400 for the record's values, 500 when the model cannot be loaded here.
    """
    try:
        time_column = model.time_column()
    except forecaster.AutomlLoadError as e:
        raise RecordError(str(e), 500) from e
    if time_column is None:
        raise RecordError(f"model {model.name} does not name its time column (time_column_name)", 500)
    data = record.get("data") or {}
    if not isinstance(data, Mapping):
        raise RecordError("data must be an object {future: {column: [...]}}")
    if data.get("historical"):
        raise RecordError(f"data.historical is not allowed for model {model.name}: an AutoML model forecasts from "
                          "the end of its training data with the context it was trained on")
    future = _columns(data.get("future") or {}, "future")
    rows = len(next(iter(future.values()))) if future else 0
    horizon = record.get("forecast_horizon", rows or None)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= forecaster.MAX_HORIZON:
        raise RecordError(f"forecast_horizon {horizon!r} is not allowed: model {model.name} forecasts 1 to "
                          f"{forecaster.MAX_HORIZON} weeks")
    if future and rows < horizon:
        raise RecordError(f"data.future has {rows} row(s); forecast_horizon {horizon} needs {horizon}")
    if time_column in future:
        stamps = pd.DatetimeIndex([_timestamp(v, f"data.future.{time_column}") for v in future[time_column][:horizon]])
    elif record.get("forecast_start") and isinstance(record.get("forecast_freq"), str):
        start = _timestamp(record.get("forecast_start"), "forecast_start")
        try:
            stamps = pd.date_range(start, periods=horizon, freq=record["forecast_freq"])
        except ValueError as e:
            raise RecordError(f"forecast_freq {record['forecast_freq']!r} is not a pandas frequency such as "
                              f"\"W-THU\": {e}") from e
    else:
        raise RecordError(f"model {model.name} needs the forecast weeks: data.future.{time_column}, or "
                          "forecast_start and forecast_freq")
    table: dict[str, Any] = {time_column: stamps}
    for column, value in ids.items():
        table[str(column)] = [value] * horizon
    for column, values in future.items():
        if column != time_column:
            table[column] = [_feature(v, column, row) for row, v in enumerate(values[:horizon])]
    return AutomlRequest(model, stamps, pd.DataFrame(table))


def _feature(value: Any, column: str, row: int) -> Any:
    """A future value as the pipeline gets it (numbers, categories as strings, null as missing); a
    non-finite number is refused, as in every other record."""
    if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        raise RecordError(f"data.future.{column}[{row}] is {_finite(float(value))}, which is not allowed: values "
                          "must be finite numbers (null for a missing value)")
    return value


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
    # (weeks, k): np.array(...).T is column_stack for equal-length columns (checked above) at a third of its cost
    matrix: np.ndarray = np.array([_floats(columns[c], c, "future") for c in model.exog_columns]).T
    if model.timestamp_column in columns:  # align rows to the forecast weeks by date
        stamps = [_timestamp(v, f"data.future.{model.timestamp_column}") for v in columns[model.timestamp_column]]
        row_of = {t: i for i, t in enumerate(stamps)}
        if start is None:
            origin = _origin(model)
            start = origin.start if origin is not None else model.next_week()
        weeks = forecaster.calendar(start, horizon, model.freq)
        rows = [row_of.get(t, -1) for t in weeks]
        if all(r == -1 for r in rows):
            raise RecordError(f"data.future has no row for any forecast week "
                              f"({weeks[0].date()}..{weeks[-1].date()})")
        aligned: np.ndarray = matrix[np.maximum(rows, 0)]
        aligned[np.array(rows) == -1] = np.nan
        return aligned
    if len(matrix) < horizon:
        raise RecordError(f"data.future has {len(matrix)} row(s); forecast_horizon {horizon} needs {horizon}")
    return matrix[:horizon]
