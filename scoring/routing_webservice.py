"""Routing webservice: one endpoint in front of every model-group service.

Azure ML scoring script (``init()``, ``run()``) for azureml-inference-server-http, self-contained
(it never imports ``shared``). Its one registered model is the deployment state
``deployed_models_info.json`` (``{model: {"version", "group", "webservice", "endpoint"}}``).
Service keys are not in it: scoring/service_keys.py reads them at init (JSON ``{service: key}``)
from the workspace's Key Vault on Azure ML, or from ``MANYMODELS_SERVICE_KEYS`` in the process
environment locally; they never appear in an answer. With ``ROUTER_AUTH=entra`` (managed online
endpoints, SDK v2) there are no keys: every call carries a Microsoft Entra token of the router's
managed identity (scoring/endpoint_tokens.py: cached, refreshed before it expires, and once more
after a 401).

- ``POST``: a JSON array of records (docs/architecture.md §6). Records are bucketed by the service serving
  their model and the services are called concurrently (keep-alive connections per thread,
  connect/read timeouts, one retry on a connection error). The calls use a small HTTP/1.1 client
  (scoring/router_http.py; benchmarks/scoring_latency.py and docs/benchmarks.md "Scoring latency"
  show why it is not ``http.client``). Answers come back in request order;
  a record of an unknown model gets its own ``error`` with ``status: 404``, records of a service
  that is down or failing get ``status: 503`` (or the service's status), the rest succeed.
  When one service answers every record, its body is passed through untouched (no re-encoding).
  Requests for a service that already has ``ROUTER_CALLS_PER_SERVICE`` calls in flight (from this
  worker process) wait and go together in its next call (one JSON array, split back per request):
  a service's fixed cost per call (HTTP, Flask, the server's hooks) is then paid once for several
  requests, and a request never waits when its service is idle.
- ``GET``: ``{model: service name}`` - no endpoints, no keys.

Bad bodies never fail the server: a body that is not JSON, nested too deeply to parse, or not a
record list (or one record) is a 400; a request whose records all fail here (no routable record)
is answered with their per-record errors. Answers are strict JSON: ``NaN``/``Infinity`` tokens of
a request are read as their words (the model service, which gets the body as sent, says why the
record is refused), and a non-finite float echoed back becomes its word.

Environment: ``ROUTER_TIMEOUT_SECONDS`` (read timeout, default 60), ``ROUTER_CONNECT_TIMEOUT_SECONDS``
(default 5), ``ROUTER_MAX_PARALLEL`` (concurrent service calls, default 16), ``ROUTER_CALLS_PER_SERVICE``
(calls in flight per service before requests are batched, default 1), ``ROUTER_MAX_BATCH_RECORDS``
(records per batched call, default 256).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # imported from tests or tools rather than by the inference server
    sys.path.insert(0, _HERE)

import endpoint_tokens  # noqa: E402  # stdlib only: Entra tokens of the router's identity (ROUTER_AUTH=entra)
import model_names  # noqa: E402  # stdlib only: the router never loads pandas (forecaster would)
import service_keys  # noqa: E402  # stdlib only: the group keys, never from a stored environment
from router_http import CONNECTION_ERRORS, Connection, Endpoint  # noqa: E402  # stdlib only: the HTTP/1.1 client


def model_name(model_type: str, ids: dict[str, Any]) -> str | None:
    """The name ``forecaster.model_name`` gives (both use scoring/model_names.py); None when the ids
    cannot name a model (an empty id value): the record is a 400, never the whole request."""
    try:
        return model_names.model_name(model_type, ids)
    except model_names.InvalidModelName:
        return None


log = logging.getLogger("routing_webservice")

STATE_FILE = "deployed_models_info.json"
KEYS_ENV = "MANYMODELS_SERVICE_KEYS"
JSON_HEADERS = {"Content-Type": "application/json"}


# NamedTuples, not dataclasses: the server imports this file without registering it in
# sys.modules, which dataclasses need. Endpoint (where to call a service) is scoring/router_http.py's.
class Reply(NamedTuple):
    """A service's answer to some records: ``body`` is the service's bytes (one JSON item per record
    when ``status`` is 200), this request's part of a shared call (a list), or the reason (a str) it
    could not be called."""

    status: int
    body: bytes | str | list[Any]


class Routes(NamedTuple):
    models: dict[str, str]  # model -> service
    endpoints: dict[str, Endpoint]  # service -> where to call it
    public: bytes  # the GET answer, encoded once


_routes: Routes | None = None
_tokens: endpoint_tokens.TokenCache | None = None  # ROUTER_AUTH=entra: the Authorization of every call
_pool: ThreadPoolExecutor | None = None
_local = threading.local()
_connect_timeout = 5.0
_read_timeout = 60.0
_calls_per_service = 1
_max_batch_records = 256


# --------------------------------------------------------------------------- loading


def find_state_file(root: str | os.PathLike[str]) -> Path:
    """The ``deployed_models_info.json`` under ``root`` (the highest version when several)."""
    base = Path(root)
    if base.is_file():
        return base
    # A single-model deployment points AZUREML_MODEL_DIR at <name>/<version>/ itself; the local
    # target links the version folders, so follow links.
    found = [Path(folder) / STATE_FILE for folder, _, files in os.walk(base, followlinks=True) if STATE_FILE in files]
    if not found:
        raise RuntimeError(f"no {STATE_FILE} under AZUREML_MODEL_DIR={root}: deploy the router with the "
                           "deployment-state model")

    def version(path: Path) -> int:
        parent = path.parent.name
        return int(parent) if parent.isdigit() else -1

    return max(found, key=version)


def load_routes(state: dict[str, Any], keys: dict[str, str]) -> Routes:
    models: dict[str, str] = {}
    endpoints: dict[str, Endpoint] = {}
    for name, info in state.items():
        service, uri = info.get("webservice"), info.get("endpoint")
        if not service or not uri:
            continue  # a group that failed to deploy: its models answer 404 (not deployed)
        models[name] = service
        if service not in endpoints:
            url = urlsplit(uri)
            headers = dict(JSON_HEADERS)
            if keys.get(service):
                headers["Authorization"] = f"Bearer {keys[service]}"
            https = url.scheme == "https"
            endpoints[service] = Endpoint(service, https, url.hostname or "127.0.0.1",
                                          url.port or (443 if https else 80),
                                          (url.path or "/") + (f"?{url.query}" if url.query else ""), headers)
    public = json.dumps(models, separators=(",", ":"), sort_keys=True).encode()
    return Routes(models, endpoints, public)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, os.environ.get(name), default)
        return default


def loaded_routes() -> Routes | None:
    """What ``init()`` loaded (None before): the endpoints with their request headers."""
    return _routes


def init() -> None:
    global _routes, _pool, _connect_timeout, _read_timeout, _calls_per_service, _max_batch_records, _tokens
    path = find_state_file(os.environ.get("AZUREML_MODEL_DIR", "."))
    state = json.loads(path.read_text())
    if endpoint_tokens.auth_mode() == "entra":
        # the first token now: a missing identity or role stops init with the reason
        tokens = endpoint_tokens.TokenCache.from_environment()
        tokens.header()
        _tokens, keys = tokens, {}
    else:
        # Key Vault (managed identity) on Azure ML, KEYS_ENV in the process environment locally; a
        # failure stops init with the reason rather than calling every service without its key
        _tokens, keys = None, service_keys.load_service_keys()
    _routes = load_routes(state, keys)
    _connect_timeout = _env_float("ROUTER_CONNECT_TIMEOUT_SECONDS", 5.0)
    _read_timeout = _env_float("ROUTER_TIMEOUT_SECONDS", 60.0)
    _calls_per_service = max(1, int(_env_float("ROUTER_CALLS_PER_SERVICE", 1)))
    _max_batch_records = max(1, int(_env_float("ROUTER_MAX_BATCH_RECORDS", 256)))
    _lanes.clear()
    _pool = ThreadPoolExecutor(max_workers=int(_env_float("ROUTER_MAX_PARALLEL", 16)),
                               thread_name_prefix="route")
    log.info("routing %d models to %d services from %s", len(_routes.models), len(_routes.endpoints), path)


# --------------------------------------------------------------------------- calling services

def _connection(endpoint: Endpoint, *, fresh: bool = False) -> Connection:
    conns: dict[str, Connection] | None = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(endpoint.service)
    if conn is not None and not fresh:
        return conn
    if conn is not None:
        conn.close()
    conn = Connection(endpoint, connect_timeout=_connect_timeout, read_timeout=_read_timeout)
    conns[endpoint.service] = conn
    return conn


def _drop(endpoint: Endpoint) -> None:
    conn = getattr(_local, "conns", {}).pop(endpoint.service, None)
    if conn is not None:
        conn.close()


def call_service(endpoint: Endpoint, body: bytes) -> tuple[int, bytes]:
    """POST ``body``; one retry on a connection error (a closed keep-alive, a restarting service), and
    with Entra tokens one retry with a new token after a 401 (revoked, or expired early)."""
    tokens = _tokens
    status, data = _send(endpoint, body, tokens)
    if status == 401 and tokens is not None:
        tokens.invalidate()
        status, data = _send(endpoint, body, tokens)
    return status, data


def _send(endpoint: Endpoint, body: bytes, tokens: endpoint_tokens.TokenCache | None) -> tuple[int, bytes]:
    headers = endpoint.headers if tokens is None else {**endpoint.headers, "Authorization": tokens.header()}
    for attempt in (0, 1):
        try:
            conn = _connection(endpoint, fresh=attempt > 0)
            conn.request("POST", endpoint.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.will_close:
                _drop(endpoint)
            return response.status, data
        except CONNECTION_ERRORS:
            _drop(endpoint)
            if attempt:
                raise
        except (OSError, http.client.HTTPException):  # timeouts, garbled answers: not retried
            _drop(endpoint)
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- routing


def _record_model(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    ids, model_type = record.get("id"), record.get("model_type")
    if not isinstance(ids, dict) or not ids or not isinstance(model_type, str):
        return None
    return model_name(model_type, ids)


def _error(record: Any, message: str, status: int) -> dict[str, Any]:
    base = dict(record) if isinstance(record, dict) else {"record": record}
    base["error"] = message
    base["status"] = status
    return base


class NonFinite(str):
    """A ``NaN``, ``Infinity`` or ``-Infinity`` token of a request, kept as its word (json reads them as
    floats by default, which would be echoed back as tokens strict JSON parsers reject)."""


def _finite(obj: Any) -> Any:
    """``obj`` with non-finite floats (e.g. a ``1e999`` read as inf) as their token words."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else ("NaN" if obj != obj else "Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON (``allow_nan=False``): the plain encoding, or on its failure the one of :func:`_finite`
    (scoring/model_webservice.py has the same pair; this file must not import its pandas)."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, separators=(",", ":"))


def _json(obj: Any, status: int = 200) -> AMLResponse:
    return AMLResponse(dumps(obj), status, JSON_HEADERS)


def _call(endpoint: Endpoint, body: bytes) -> Reply:
    """Call one service; its (status, body), or (503, reason) when it cannot be reached."""
    try:
        status, data = call_service(endpoint, body)
    except (OSError, http.client.HTTPException) as e:
        log.warning("service %s unreachable: %s", endpoint.service, e)
        return Reply(503, f"service {endpoint.service} is unavailable ({type(e).__name__}: {e})")
    except endpoint_tokens.EndpointTokenError as e:  # the message names the identity endpoint, never a token
        log.warning("no token to call service %s: %s", endpoint.service, e)
        return Reply(503, f"service {endpoint.service} cannot be called: {e}")
    return Reply(status, data)


# --------------------------------------------------------------------------- batching


class _Job:
    """The records of one request for one service (``body``: a JSON array of ``count`` records)."""

    __slots__ = ("body", "count", "lead", "ready", "result")

    def __init__(self, body: bytes, count: int) -> None:
        self.body, self.count = body, count
        self.ready = _NO_WAIT  # an Event of its own only when it has to wait
        self.lead = False  # woken to send the next call rather than with its answer
        self.result: Reply | None = None


class _Lane:
    """The calls to one service: how many are in flight and the jobs waiting for the next one."""

    __slots__ = ("busy", "lock", "queue")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.busy = 0
        self.queue: list[_Job] = []


_lanes: dict[str, _Lane] = {}
_NO_WAIT = threading.Event()


def _answer_bucket(endpoint: Endpoint, records: list[Any],
                   raw: bytes | None = None) -> Reply:
    """Answer ``records`` (``raw``: their JSON array, when at hand) from one service: at once when it has
    a call slot free, else in its next call together with the other requests waiting for it.

    Returns the service's (status, body), (200, answers) when the call was shared, or (503, reason).
    """
    job = _Job(raw if raw is not None else dumps(records).encode(), len(records))
    lane = _lanes.get(endpoint.service) or _lanes.setdefault(endpoint.service, _Lane())
    with lane.lock:
        if lane.busy < _calls_per_service:
            lane.busy += 1
            job.lead = True
        else:
            job.ready = threading.Event()
            lane.queue.append(job)
    if not job.lead:
        job.ready.wait()  # every call ends by answering its jobs (or handing the lane on): see _lead
        if not job.lead:
            assert job.result is not None
            return job.result
    return _lead(endpoint, lane, job)


def _lead(endpoint: Endpoint, lane: _Lane, job: _Job) -> Reply:
    """Send ``job`` with the jobs waiting on ``lane`` in one call, answer them, then hand the slot on."""
    batch = [job]
    try:
        with lane.lock:
            total = job.count
            while lane.queue and total + lane.queue[0].count <= _max_batch_records:
                total += lane.queue[0].count
                batch.append(lane.queue.pop(0))
        if len(batch) == 1:
            job.result = _call(endpoint, job.body)
        else:
            body = b"[" + b",".join(j.body.strip()[1:-1] for j in batch if j.count) + b"]"
            _split(endpoint.service, batch, total, _call(endpoint, body))
    except BaseException as e:  # never leave a waiting request without an answer
        for j in batch:
            if j.result is None:
                j.result = Reply(503, f"service {endpoint.service} call failed ({type(e).__name__}: {e})")
        raise
    finally:
        for j in batch[1:]:
            j.ready.set()
        with lane.lock:
            if lane.queue:  # the oldest waiting request sends the next call; the slot stays taken
                successor = lane.queue.pop(0)
                successor.lead = True
                successor.ready.set()
            else:
                lane.busy -= 1
    assert job.result is not None
    return job.result


def joinable(raw: bytes) -> bool:
    """Whether a request body can go into a shared call as is: a UTF-8 JSON array (json.loads also
    takes UTF-16/32 and a BOM, which would garble the joined array)."""
    return raw.lstrip()[:1] == b"[" and b"\x00" not in raw


def _split(service: str, batch: list[_Job], total: int, reply: Reply) -> None:
    """Give each job of a shared call its part of the answer (or the call's error)."""
    status, body = reply
    if status == 200 and isinstance(body, bytes):
        try:
            answers = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or echoing a record too deep to parse here
            answers = None
        if isinstance(answers, list) and len(answers) == total:
            start = 0
            for j in batch:
                j.result = Reply(200, answers[start:start + j.count])
                start += j.count
            return
        reply = Reply(502, f"service {service} gave an answer that is not one item per record")
    for j in batch:
        j.result = reply


def _place(answers: list[Any], records: list[Any], indexes: list[int], service: str, reply: Reply) -> None:
    """Put each record's item of ``reply`` at its place in ``answers`` (or the call's error on each)."""
    status, body = reply
    if status == 200 and isinstance(body, list) and len(body) == len(indexes):
        for i, item in zip(indexes, body, strict=True):
            answers[i] = item
        return
    if status == 200 and isinstance(body, bytes):
        try:
            result = json.loads(body)
        except (ValueError, RecursionError):
            result = None
        if isinstance(result, list) and len(result) == len(indexes):
            for i, item in zip(indexes, result, strict=True):
                answers[i] = item
            return
        status, body = 502, f"service {service} gave an answer that is not one item per record"
    if isinstance(body, bytes):
        text = body[:300].decode(errors="replace")
        body = f"service {service} answered {status}: {text}"
        status = 503 if status >= 500 else status
    for i in indexes:
        answers[i] = _error(records[i], str(body), status)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # used before init() (tests, tools)
        _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="route")
    return _pool


def route(records: list[Any], routes: Routes,
          raw_request: bytes | None = None) -> tuple[list[Any] | None, bytes | None]:
    """Answer ``records``: (answers, None), or (None, raw body) when one service answered all.

    ``raw_request`` (the request body, a JSON array of exactly ``records``) is forwarded as is when
    every record goes to one service, saving a re-encoding.
    """
    answers: list[Any] = [None] * len(records)
    buckets: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        name = _record_model(record)
        if name is None:
            answers[i] = _error(record, "a record needs 'id' (an object of id columns) and 'model_type'", 400)
            continue
        service = routes.models.get(name)
        if service is None:
            answers[i] = _error(record, f"model {name} is not deployed", 404)
            continue
        buckets.setdefault(service, []).append(i)
    if not buckets:  # nothing to call: every record has its own error
        return answers, None
    if len(buckets) == 1:
        service, indexes = next(iter(buckets.items()))
        every = len(indexes) == len(records)
        raw = raw_request if every and raw_request is not None and joinable(raw_request) else None
        reply = _answer_bucket(routes.endpoints[service], records if every else [records[i] for i in indexes], raw)
        if reply.status == 200 and every and isinstance(reply.body, bytes):
            return None, reply.body
        _place(answers, records, indexes, service, reply)
        return answers, None
    pool = _executor()
    (first, first_indexes), *others = buckets.items()
    futures = {service: pool.submit(_answer_bucket, routes.endpoints[service], [records[i] for i in indexes])
               for service, indexes in others}
    # this thread calls one service itself while the pool calls the others
    _place(answers, records, first_indexes, first, _answer_bucket(routes.endpoints[first],
                                                                  [records[i] for i in first_indexes]))
    for service, future in futures.items():
        _place(answers, records, buckets[service], service, future.result())
    return answers, None


@rawhttp  # type: ignore[untyped-decorator]  # the inference server ships no types
def run(request: Any) -> AMLResponse:
    routes = _routes
    if routes is None:
        return _json({"error": "the router is not initialised"}, 503)
    if request.method == "GET":
        return AMLResponse(routes.public, 200, JSON_HEADERS)
    if request.method != "POST":
        return _json({"error": f"method {request.method} is not allowed: use GET or POST"}, 405)
    raw = request.get_data()
    try:
        return _post(raw, routes)
    except RecursionError:  # json's parser and encoder refuse more depth than the stack has
        return _json({"error": "the request body is nested too deeply (at most a few hundred levels)"}, 400)


def _post(raw: bytes, routes: Routes) -> AMLResponse:
    try:
        records = json.loads(raw, parse_constant=NonFinite)
    except ValueError as e:
        return _json({"error": f"the request body is not valid JSON: {e}"}, 400)
    single = isinstance(records, dict)
    if single:
        records = [records]
    if not isinstance(records, list) or (single and not records[0]):  # {} is no record
        return _json({"error": "the request body must be a JSON array of records (or one record), each "
                               "{\"id\": {column: value}, \"model_type\": \"lr\", ...}"}, 400)
    answers, passed = route(records, routes, None if single else raw)
    if passed is not None and not single:
        return AMLResponse(passed, 200, JSON_HEADERS)
    if passed is not None:
        answers = json.loads(passed, parse_constant=NonFinite)
    return _json(answers[0] if single and answers else answers)
