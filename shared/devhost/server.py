"""The host's HTTP front: HTTP triggers under ``/<routePrefix>/``, the Event Grid webhook, and admin.

- ``/api/<route>``: HTTP functions; auth level ``function`` needs the function (or master) key in
  ``x-functions-key`` or ``?code=``, ``admin`` the master key, ``anonymous`` nothing (401 otherwise).
- ``/runtime/webhooks/eventgrid?functionName=NAME``: the Event Grid extension's webhook, opened by
  its system key. ``aeg-event-type: SubscriptionValidation`` answers the validation handshake,
  ``Notification`` invokes the function once per event (Event Grid or CloudEvents schema) and
  answers 202 when every invocation succeeded, 500 otherwise (so the publisher retries).
  ``OPTIONS`` answers the CloudEvents abuse-protection handshake.
- ``/topics/<topic>/api/events``: a custom topic's publish endpoint (shared/devhost/topics.py),
  opened by the topic's ``aeg-sas-key``, for ``EventGridPublisherClient``.
- ``/admin/host/ping`` (anonymous) and ``/admin/host/status`` (master key).

Listens on 127.0.0.1 only. The ``code`` query parameter is removed before a function sees the URL,
and no URL or key is ever logged.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from azure.eventgrid import SystemEventNames

from shared.devhost.bindings import HttpAnswer, event_input, http_answer, http_request
from shared.devhost.functions import FunctionSpec, TriggerKind
from shared.devhost.invoke import invoke
from shared.devhost.keys import HostKeys
from shared.errors import InvalidValue
from shared.fields import json_document

log = logging.getLogger(__name__)

MAX_BODY = 100 * 1024 * 1024  # the Functions host's request size limit
VALIDATION_EVENT = SystemEventNames.EventGridSubscriptionValidationEventName.value
TOPIC_PATH = re.compile(r"^/topics/([^/]+)/api/events$", re.IGNORECASE)

# a custom topic's publish endpoint: (method, topic, headers, body) -> answer
Publish = Callable[[str, str, Mapping[str, str], bytes], HttpAnswer]


@dataclass(frozen=True, slots=True)
class Route:
    spec: FunctionSpec
    pattern: re.Pattern[str]
    methods: frozenset[str]  # empty: every method
    auth_level: str


def compile_route(template: str) -> re.Pattern[str]:
    """An ASP.NET-style route template (``items/{id}``, ``{id:int}``, ``{id?}``, ``{*rest}``) as a regex."""
    parts = []
    for segment in template.strip("/").split("/"):
        match = re.fullmatch(r"\{(\*)?([A-Za-z_]\w*)(?::(\w+))?(\?)?\}", segment)
        if not match:
            parts.append(("/" + re.escape(segment)) if segment else "")
            continue
        catch_all, name, constraint, optional = match.groups()
        body = ".*" if catch_all else (r"-?\d+" if constraint in ("int", "long") else r"[^/]+")
        parts.append(f"(?:/(?P<{name}>{body})){'?' if optional or catch_all else ''}")
    return re.compile("^" + "".join(parts) + "/?$", re.IGNORECASE)


def build_routes(specs: tuple[FunctionSpec, ...]) -> list[Route]:
    routes = []
    for spec in specs:
        if spec.kind is not TriggerKind.HTTP:
            continue
        methods = frozenset(str(m).upper() for m in (spec.trigger.get("methods") or ()))
        level = str(spec.trigger.get("authLevel") or "function").lower()
        routes.append(Route(spec, compile_route(str(spec.trigger.get("route") or spec.name)), methods, level))
    return routes


class HostServer:
    """A threading HTTP server bound to 127.0.0.1."""

    def __init__(self, specs: tuple[FunctionSpec, ...], keys: HostKeys, *, port: int, route_prefix: str = "api",
                 status: Callable[[], Mapping[str, Any]] | None = None, publish: Publish | None = None) -> None:
        self.publish = publish
        self.specs = {s.name.lower(): s for s in specs}
        self.routes = build_routes(specs)
        self.keys = keys
        self.route_prefix = route_prefix.strip("/")
        self.status = status or (lambda: {})
        handler = type("Handler", (_Handler,), {"host": self})
        self._server = _Server(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def serving_thread(self) -> threading.Thread | None:
        """The thread answering requests (None before :meth:`start`): one per server, never restarted."""
        return self._thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(10)

    # ------------------------------------------------------------------ dispatch

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        split = urlsplit(target)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        path = split.path.rstrip("/") or "/"
        lower = path.lower()
        if lower == "/admin/host/ping":
            return HttpAnswer(200, (), b"")
        if lower == "/admin/host/status":
            if not self.keys.allows("admin", _key(headers, params)):
                return _json(401, {"error": "the master key is required (x-functions-key header or ?code=)"})
            return _json(200, dict(self.status()))
        if lower == "/runtime/webhooks/eventgrid":
            return self._eventgrid(method, headers, params, body)
        if topic := TOPIC_PATH.match(path):
            if self.publish is None:
                return _json(404, {"error": "this host serves no custom topics"})
            return self.publish(method, topic.group(1), headers, body)
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if not lower.startswith(prefix.lower()):
            return _json(404, {"error": f"no function answers {path}"})
        return self._http_function(method, path[len(prefix):], split.query, headers, params, body)

    def _http_function(self, method: str, route_path: str, query: str, headers: Mapping[str, str],
                       params: dict[str, str], body: bytes) -> HttpAnswer:
        allowed: set[str] = set()
        for route in self.routes:
            match = route.pattern.match(route_path or "/")
            if not match:
                continue
            if route.methods and method.upper() not in route.methods:
                allowed |= route.methods
                continue
            if not self.keys.allows(route.auth_level, _key(headers, params)):
                return _json(401, {"error": f"function {route.spec.name} needs a function key: pass it in the "
                                            "x-functions-key header or ?code= (see `manymodels keys`)"})
            clean = {k: v for k, v in params.items() if k != "code"}
            query_text = urlencode(clean)
            url = f"http://127.0.0.1:{self.port}/{self.route_prefix}{route_path}" + (f"?{query_text}" if query_text
                                                                                    else "")
            request = http_request(method.upper(), url, headers=headers, params=clean,
                                   route_params={k: v for k, v in match.groupdict().items() if v is not None},
                                   body=body)
            result = invoke(route.spec, request)
            if not result.ok:
                return _json(500, {"error": f"function {route.spec.name} failed (invocation {result.invocation_id})"})
            return http_answer(result.value)
        if allowed:
            return HttpAnswer(405, (("Allow", ", ".join(sorted(allowed))),), b"")
        return _json(404, {"error": f"no function answers /{self.route_prefix}{route_path}"})

    def _eventgrid(self, method: str, headers: Mapping[str, str], params: dict[str, str], body: bytes) -> HttpAnswer:
        if not self.keys.allows_eventgrid(_key(headers, params)):
            return _json(401, {"error": "the eventgrid_extension system key is required (?code=)"})
        name = params.get("functionName", "")
        spec = self.specs.get(name.lower())
        if spec is None or spec.kind is not TriggerKind.EVENT_GRID:
            return _json(404, {"error": f"no Event Grid triggered function named {name!r}"})
        if method.upper() == "OPTIONS":  # CloudEvents v1.0 webhook abuse protection
            origin = _header(headers, "webhook-request-origin") or "*"
            return HttpAnswer(200, (("WebHook-Allowed-Origin", origin), ("WebHook-Allowed-Rate", "*")), b"")
        if method.upper() != "POST":
            return HttpAnswer(405, (("Allow", "POST, OPTIONS"),), b"")
        try:
            payload = json_document(body, what="the request body")
        except InvalidValue as e:
            return _json(400, {"error": e.message})
        events = payload if isinstance(payload, list) else [payload]
        if not events or not all(isinstance(e, dict) for e in events):
            return _json(400, {"error": "expected an event object or a JSON array of events"})
        kind = (_header(headers, "aeg-event-type") or "").lower()
        if kind == "subscriptionvalidation" or (not kind and events[0].get("eventType") == VALIDATION_EVENT):
            data = events[0].get("data")
            code = data.get("validationCode") if isinstance(data, dict) else None
            if not isinstance(code, str) or not code:
                return _json(400, {"error": "a SubscriptionValidation event needs data.validationCode (a string), "
                                            f"got {type(code).__name__ if code is not None else 'none'}"})
            return _json(200, {"validationResponse": code})
        if kind == "unsubscribe":
            return HttpAnswer(202, (), b"")
        content_type = (_header(headers, "content-type") or "").lower()
        if kind != "notification" and "cloudevents" not in content_type:
            return _json(400, {"error": "the aeg-event-type header must be Notification, SubscriptionValidation "
                                        "or Unsubscribe"})
        try:
            inputs = [event_input(e) for e in events]
        except (ValueError, TypeError, KeyError, AttributeError) as e:  # what the library's converter raises
            return _json(400, {"error": f"an event could not be read: {type(e).__name__}: {e}"})
        failed = [r for r in (invoke(spec, i) for i in inputs) if not r.ok]
        if failed:
            return _json(500, {"error": f"{len(failed)} of {len(events)} event(s) failed",
                               "invocations": [r.invocation_id for r in failed]})
        return HttpAnswer(202, (), b"")


def _key(headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    return _header(headers, "x-functions-key") or params.get("code")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _json(status: int, body: Any) -> HttpAnswer:
    return HttpAnswer(status, (("Content-Type", "application/json"),), json.dumps(body, default=str).encode())


class _Server(ThreadingHTTPServer):
    # the default backlog of 5 overflows when Event Grid workers and clients connect at once; the
    # kernel then drops or resets connections the client already wrote its request to
    request_queue_size = 128


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_LINE = 4096
_MAX_TRAILERS = 100
_LINGER_SECONDS = 2.0


class _Handler(BaseHTTPRequestHandler):
    host: HostServer
    protocol_version = "HTTP/1.1"
    server_version = "manymodels-devhost"
    timeout = 60  # seconds a client may stay silent mid-request (or idle between requests) before it is dropped

    def _body(self) -> bytes:
        """The request body (Content-Length or chunked). Raises _Refused (400, 413) for a framing
        the host cannot read: answering at once beats reading until the client gives up."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._chunked()
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return b""
        if len(set(values)) > 1:
            raise _Refused(400, f"the request has {len(values)} different Content-Length headers")
        text = values[0].strip()
        if not text.isascii() or not text.isdigit():  # "-5" would read until the client closes
            raise _Refused(400, f"Content-Length must be a whole number of bytes >= 0, got {text[:40]!r}")
        length = int(text) if len(text) <= 20 else MAX_BODY + 1
        if length > MAX_BODY:
            raise _Refused(413, f"request body over {MAX_BODY} bytes")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Refused(400, f"the request body ended after {len(body)} of {length} bytes")
        return body

    def _chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            size_text = line.split(b";")[0].strip()
            if len(line) > _MAX_LINE or not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                raise _Refused(400, f"bad chunk size line {line[:40]!r}: expected hexadecimal digits and CRLF")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise _Refused(413, f"request body over {MAX_BODY} bytes")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(_MAX_LINE + 1).strip():
                raise _Refused(400, "a chunk is shorter than its size or not followed by CRLF")
            chunks.append(chunk)
        for _ in range(_MAX_TRAILERS):  # trailer lines, then the empty line that ends the body
            line = self.rfile.readline(_MAX_LINE + 1)
            if not line.strip():
                return b"".join(chunks)
        raise _Refused(400, f"more than {_MAX_TRAILERS} trailer lines after the last chunk")

    def _serve(self) -> None:
        refused = False
        try:
            body = self._body()
        except _Refused as e:
            answer = _json(e.status, {"error": e.message})
            self.close_connection = refused = True  # the rest of the stream cannot be framed
        else:
            try:
                answer = self.host.handle(self.command, self.path, dict(self.headers.items()), body)
            except Exception:
                log.exception("HTTP %s failed", self.command)
                answer = _json(500, {"error": "the host failed to handle the request"})
        self.send_response(answer.status)
        for k, v in answer.headers:
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)
        if refused:
            self._linger()

    def _linger(self) -> None:
        """Half-close, then read (and drop) what the client still sends for a moment: closing with
        unread bytes makes TCP reset the connection, and the client may lose the answer."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + _LINGER_SECONDS
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass  # the client went away first: nothing left to protect

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line holds ?code=: never logged; invocations log their own line
