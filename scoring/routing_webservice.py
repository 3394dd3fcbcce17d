"""Routing webservice: one endpoint in front of every model-group service.

Azure ML scoring script (``init()``, ``run()``) for azureml-inference-server-http, self-contained
(it never imports ``shared``). Its one registered model is the deployment state
``deployed_models_info.json`` (``{model: {"version", "group", "webservice", "endpoint"}}``).
Service keys are not in it: they come from the environment variable ``MANYMODELS_SERVICE_KEYS``
(JSON ``{service: key}``), set only on the router's deployment, and never appear in an answer.

- ``POST``: a JSON array of records (DESIGN.md §6). Records are bucketed by the service serving
  their model and the services are called concurrently (keep-alive connections per thread,
  connect/read timeouts, one retry on a connection error). Answers come back in request order;
  a record of an unknown model gets its own ``error`` with ``status: 404``, records of a service
  that is down or failing get ``status: 503`` (or the service's status), the rest succeed.
  When one service answers every record, its body is passed through untouched (no re-encoding).
- ``GET``: ``{model: service name}`` - no endpoints, no keys.

Environment: ``ROUTER_TIMEOUT_SECONDS`` (read timeout, default 60), ``ROUTER_CONNECT_TIMEOUT_SECONDS``
(default 5), ``ROUTER_MAX_PARALLEL`` (concurrent service calls, default 16).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from azureml_inference_server_http.api.aml_request import rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse


def model_name(model_type: str, ids: dict[str, Any]) -> str:
    """``forecaster.model_name`` (a test keeps them equal): importing forecaster would load pandas
    and add seconds to every router start for one line."""
    return f"{model_type}_{'_'.join(str(ids[c]) for c in sorted(ids))}"


log = logging.getLogger("routing_webservice")

STATE_FILE = "deployed_models_info.json"
KEYS_ENV = "MANYMODELS_SERVICE_KEYS"
JSON_HEADERS = {"Content-Type": "application/json"}
_CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
                      http.client.CannotSendRequest, http.client.ResponseNotReady, socket.gaierror)


# NamedTuples, not dataclasses: the server imports this file without registering it in
# sys.modules, which dataclasses need.
class Endpoint(NamedTuple):
    service: str
    https: bool
    host: str
    port: int
    path: str
    headers: dict[str, str]


class Routes(NamedTuple):
    models: dict[str, str]  # model -> service
    endpoints: dict[str, Endpoint]  # service -> where to call it
    public: bytes  # the GET answer, encoded once


_routes: Routes | None = None
_pool: ThreadPoolExecutor | None = None
_local = threading.local()
_connect_timeout = 5.0
_read_timeout = 60.0


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


def init() -> None:
    global _routes, _pool, _connect_timeout, _read_timeout
    path = find_state_file(os.environ.get("AZUREML_MODEL_DIR", "."))
    state = json.loads(path.read_text())
    try:
        keys = json.loads(os.environ.get(KEYS_ENV) or "{}")
    except json.JSONDecodeError:
        log.error("%s is not valid JSON; calling the services without keys", KEYS_ENV)
        keys = {}
    _routes = load_routes(state, keys)
    _connect_timeout = _env_float("ROUTER_CONNECT_TIMEOUT_SECONDS", 5.0)
    _read_timeout = _env_float("ROUTER_TIMEOUT_SECONDS", 60.0)
    _pool = ThreadPoolExecutor(max_workers=int(_env_float("ROUTER_MAX_PARALLEL", 16)),
                               thread_name_prefix="route")
    log.info("routing %d models to %d services from %s", len(_routes.models), len(_routes.endpoints), path)


# --------------------------------------------------------------------------- calling services


def _connection(endpoint: Endpoint, *, fresh: bool = False) -> http.client.HTTPConnection:
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    conn = conns.get(endpoint.service)
    if conn is not None and not fresh:
        return conn
    if conn is not None:
        conn.close()
    cls = http.client.HTTPSConnection if endpoint.https else http.client.HTTPConnection
    conn = cls(endpoint.host, endpoint.port, timeout=_connect_timeout)
    conn.connect()
    conn.sock.settimeout(_read_timeout)
    if not endpoint.https:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conns[endpoint.service] = conn
    return conn


def _drop(endpoint: Endpoint) -> None:
    conn = getattr(_local, "conns", {}).pop(endpoint.service, None)
    if conn is not None:
        conn.close()


def call_service(endpoint: Endpoint, body: bytes) -> tuple[int, bytes]:
    """POST ``body``; one retry on a connection error (a closed keep-alive, a restarting service)."""
    for attempt in (0, 1):
        try:
            conn = _connection(endpoint, fresh=attempt > 0)
            conn.request("POST", endpoint.path, body=body, headers=endpoint.headers)
            response = conn.getresponse()
            data = response.read()
            if response.will_close:
                _drop(endpoint)
            return response.status, data
        except _CONNECTION_ERRORS:
            _drop(endpoint)
            if attempt:
                raise
        except OSError:  # timeouts and the like: not retried, the service is too slow
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


def _json(obj: Any, status: int = 200) -> AMLResponse:
    return AMLResponse(json.dumps(obj, separators=(",", ":")), status, JSON_HEADERS)


def _answer_bucket(endpoint: Endpoint, records: list[Any], raw: bytes | None = None) -> tuple[int, bytes | str]:
    """Call one service; (status, body) or (503, reason) when it cannot be reached."""
    try:
        return call_service(endpoint, raw if raw is not None else json.dumps(records, separators=(",", ":")).encode())
    except (OSError, http.client.HTTPException) as e:
        log.warning("service %s unreachable: %s", endpoint.service, e)
        return 503, f"service {endpoint.service} is unavailable ({type(e).__name__}: {e})"


def _place(answers: list[Any], records: list[Any], indexes: list[int], service: str,
           status: int, body: bytes | str) -> None:
    if status == 200 and isinstance(body, bytes):
        try:
            result = json.loads(body)
        except ValueError:
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
        answers[i] = _error(records[i], body, status)


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
    if len(buckets) == 1:
        service, indexes = next(iter(buckets.items()))
        every = len(indexes) == len(records)
        status, body = _answer_bucket(routes.endpoints[service], records if every else [records[i] for i in indexes],
                                      raw_request if every else None)
        if status == 200 and len(indexes) == len(records) and isinstance(body, bytes):
            return None, body
        _place(answers, records, indexes, service, status, body)
        return answers, None
    pool = _pool or ThreadPoolExecutor(max_workers=4)
    futures = {service: pool.submit(_answer_bucket, routes.endpoints[service], [records[i] for i in indexes])
               for service, indexes in buckets.items()}
    for service, future in futures.items():
        status, body = future.result()
        _place(answers, records, buckets[service], service, status, body)
    return answers, None


@rawhttp
def run(request: Any) -> AMLResponse:
    if _routes is None:
        return _json({"error": "the router is not initialised"}, 503)
    if request.method == "GET":
        return AMLResponse(_routes.public, 200, JSON_HEADERS)
    if request.method != "POST":
        return _json({"error": f"method {request.method} is not allowed: use GET or POST"}, 405)
    raw = request.get_data()
    try:
        records = json.loads(raw)
    except ValueError as e:
        return _json({"error": f"the request body is not valid JSON: {e}"}, 400)
    single = isinstance(records, dict)
    if single:
        records = [records]
    if not isinstance(records, list):
        return _json({"error": "the request body must be a JSON array of records (or one record)"}, 400)
    answers, passed = route(records, _routes, None if single else raw)
    if passed is not None and not single:
        return AMLResponse(passed, 200, JSON_HEADERS)
    if passed is not None:
        answers = json.loads(passed)
    return _json(answers[0] if single and answers else answers)
