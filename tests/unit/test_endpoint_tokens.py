"""The router's Microsoft Entra tokens (scoring/endpoint_tokens.py, ROUTER_AUTH=entra) against a local
HTTP server on 127.0.0.1 standing in for the managed identity endpoint and a group endpoint that checks
the token (the real protocols over real sockets; the clock is injected)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scoring"))
import endpoint_tokens
import routing_webservice as rw

NOW = 1_800_000_000.0


class FakeAzure(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.issued = 0
        self.lifetime = 3600
        self.now = NOW
        self.identity_status = 200
        self.revoked: set[str] = set()
        self.identity_calls: list[dict[str, list[str]]] = []
        self.score_auth: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeAzure
    protocol_version = "HTTP/1.1"  # keep-alive, as Azure ML's endpoints

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # the identity endpoint (App Service / Azure ML's IDENTITY_ENDPOINT protocol)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.server.identity_calls.append(query)
        if self.headers.get("X-IDENTITY-HEADER") != "id-header":
            return self._answer(401, {"error": "bad identity header"})
        if self.server.identity_status != 200:
            return self._answer(self.server.identity_status, {"error": "invalid_request"})
        self.server.issued += 1
        return self._answer(200, {"access_token": f"tok-{self.server.issued}-{query['resource'][0]}",
                                  "expires_on": str(int(self.server.now + self.server.lifetime)),
                                  "resource": query["resource"][0], "token_type": "Bearer"})

    def do_POST(self) -> None:  # a group endpoint with auth_mode aad_token
        records = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"[]")
        auth = self.headers.get("Authorization", "")
        self.server.score_auth.append(auth)
        if not auth.startswith("Bearer tok-") or auth.removeprefix("Bearer ") in self.server.revoked:
            return self._answer(401, {"message": "invalid token"})
        self._answer(200, [{**r, "forecast": {"service": "g1"}} for r in records])


@pytest.fixture
def azure() -> Iterator[FakeAzure]:
    server = FakeAzure()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _env(azure: FakeAzure, **extra: str) -> dict[str, str]:
    return {"IDENTITY_ENDPOINT": f"{azure.url}/identity", "IDENTITY_HEADER": "id-header", **extra}


class Clock:
    def __init__(self, azure: FakeAzure) -> None:
        self.azure = azure

    def __call__(self) -> float:
        return self.azure.now


def test_the_token_is_cached_until_shortly_before_it_expires(azure):
    tokens = endpoint_tokens.TokenCache.from_environment(_env(azure, MANYMODELS_IDENTITY_CLIENT_ID="cid"),
                                                         clock=Clock(azure))
    first = tokens.header()
    assert first == "Bearer tok-1-https://ml.azure.com"
    azure.now += 3600 - endpoint_tokens.REFRESH_BEFORE - 1  # still more than the margin left
    assert tokens.header() == first and azure.issued == 1
    azure.now += 2  # within the margin: fetched again
    assert tokens.header() == "Bearer tok-2-https://ml.azure.com"
    assert [q["resource"] for q in azure.identity_calls] == [["https://ml.azure.com"]] * 2
    assert azure.identity_calls[0]["client_id"] == ["cid"]
    tokens.invalidate()
    assert tokens.header() == "Bearer tok-3-https://ml.azure.com"


def test_a_token_that_is_about_to_expire_is_used_once_and_fetched_again(azure):
    azure.lifetime = 60  # less than the refresh margin
    tokens = endpoint_tokens.TokenCache.from_environment(_env(azure), clock=Clock(azure))
    assert tokens.header() != tokens.header()
    assert azure.issued == 2


def test_identity_errors_name_the_endpoint_and_never_a_token(azure):
    tokens = endpoint_tokens.TokenCache.from_environment(_env(azure), clock=Clock(azure))
    assert tokens.header().startswith("Bearer tok-1")
    azure.identity_status = 400
    tokens.invalidate()
    with pytest.raises(endpoint_tokens.EndpointTokenError) as error:
        tokens.header()
    message = str(error.value)
    assert f"{azure.url}/identity" in message and "HTTP 400" in message and "score action" in message
    assert "tok-" not in message


def test_bad_settings_are_refused_with_what_is_allowed(azure):
    with pytest.raises(endpoint_tokens.EndpointTokenError, match="ROUTER_AUTH='aad' is not allowed"):
        endpoint_tokens.auth_mode({"ROUTER_AUTH": "aad"})
    assert endpoint_tokens.auth_mode({}) == "keys" and endpoint_tokens.auth_mode({"ROUTER_AUTH": " Entra "}) == "entra"
    with pytest.raises(endpoint_tokens.EndpointTokenError, match=r"ROUTER_TOKEN_AUDIENCE='ml\.azure\.com'"):
        endpoint_tokens.TokenCache.from_environment(_env(azure, ROUTER_TOKEN_AUDIENCE="ml.azure.com"))
    custom = endpoint_tokens.TokenCache.from_environment(_env(azure, ROUTER_TOKEN_AUDIENCE="https://ml.azure.us"))
    assert custom.header() == "Bearer tok-1-https://ml.azure.us"


@pytest.fixture(autouse=True)
def _close_router_connections(monkeypatch) -> Iterator[None]:
    """The router keeps a keep-alive connection per thread: closed after each test (before monkeypatch
    puts the module's own thread-local back)."""
    yield
    for conn in list(getattr(rw._local, "conns", {}).values()):
        conn.close()


def _router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azure: FakeAzure) -> None:
    state = {"lr_dominicks_1": {"version": 1, "group": "g1", "webservice": "g1",
                                "endpoint": f"{azure.url}/score"}}
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / rw.STATE_FILE).write_text(json.dumps(state))
    monkeypatch.setattr(rw, "_tokens", None)  # restored after the test: other tests use keys
    monkeypatch.setattr(rw, "_local", threading.local())  # no connection of another test
    for name, value in _env(azure, ROUTER_AUTH="entra").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv(rw.KEYS_ENV, json.dumps({"g1": "a-key"}))  # ignored: Entra tokens, never keys
    rw.init()
    monkeypatch.setattr(rw._tokens, "_clock", Clock(azure))


def _ask(store: int = 1) -> list[dict]:
    record = {"id": {"Store": store, "Brand": "dominicks"}, "model_type": "lr", "forecast_horizon": 2}
    answers, passed = rw.route([record], rw.loaded_routes())
    return json.loads(passed) if passed is not None else answers


def test_the_router_calls_the_groups_with_its_identitys_token(tmp_path, monkeypatch, azure):
    _router(tmp_path, monkeypatch, azure)
    assert azure.issued == 1  # fetched in init(): a missing identity stops the router there
    assert "Authorization" not in rw.loaded_routes().endpoints["g1"].headers  # no key in the routes
    assert _ask()[0]["forecast"] == {"service": "g1"}
    assert _ask()[0]["forecast"] == {"service": "g1"}
    assert azure.score_auth == ["Bearer tok-1-https://ml.azure.com"] * 2 and azure.issued == 1
    azure.now += 3600  # expired: the next call gets a new one
    assert _ask()[0]["forecast"] == {"service": "g1"}
    assert azure.score_auth[-1] == "Bearer tok-2-https://ml.azure.com"


def test_a_401_gets_one_retry_with_a_new_token(tmp_path, monkeypatch, azure):
    _router(tmp_path, monkeypatch, azure)
    azure.revoked.add("tok-1-https://ml.azure.com")
    assert _ask()[0]["forecast"] == {"service": "g1"}
    assert azure.score_auth == ["Bearer tok-1-https://ml.azure.com", "Bearer tok-2-https://ml.azure.com"]
    azure.revoked.add("tok-2-https://ml.azure.com")
    azure.revoked.add("tok-3-https://ml.azure.com")
    answer = _ask()[0]  # still refused: the group's 401 is the record's answer, after one retry only
    assert answer["status"] == 401 and len(azure.score_auth) == 4


def test_no_token_makes_the_records_503_with_the_reason(tmp_path, monkeypatch, azure):
    _router(tmp_path, monkeypatch, azure)
    azure.identity_status = 403
    azure.now += 3600
    answer = _ask()[0]
    assert answer["status"] == 503 and "could not get a Microsoft Entra token" in answer["error"]
    assert "tok-" not in answer["error"]


def test_init_stops_with_the_reason_when_there_is_no_identity(tmp_path, monkeypatch, azure):
    azure.identity_status = 400
    with pytest.raises(endpoint_tokens.EndpointTokenError, match="managed identity"):
        _router(tmp_path, monkeypatch, azure)
