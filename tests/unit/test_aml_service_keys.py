"""scoring/service_keys.py against a local HTTP server standing in for the managed identity
endpoint and Key Vault's REST API (the real protocol over real sockets on 127.0.0.1)."""

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
import service_keys

KEYS = {"manymodels-g1-1": "k1", "manymodels-g2-1": "k2"}


class FakeAzure(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.secrets = {"routing-manymodels-service-keys": json.dumps(KEYS)}
        self.token_failures = 0  # identity endpoint answers 503 this many times first
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeAzure

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        self.server.requests.append((parts.path, query, dict(self.headers)))
        if parts.path == "/identity":
            if self.headers.get("X-IDENTITY-HEADER") != "id-header":
                return self._answer(401, {"error": "bad identity header"})
            if self.server.token_failures > 0:
                self.server.token_failures -= 1
                return self._answer(503, {"error": "not ready"})
            return self._answer(200, {"access_token": f"token-for-{query['resource'][0]}"})
        if parts.path.startswith("/secrets/"):
            if self.headers.get("Authorization") != "Bearer token-for-https://vault.azure.net":
                return self._answer(403, {"error": {"code": "Forbidden"}})
            name = parts.path.split("/")[2]
            if name not in self.server.secrets:
                return self._answer(404, {"error": {"code": "SecretNotFound"}})
            return self._answer(200, {"value": self.server.secrets[name], "id": f"{self.server.url}/secrets/{name}/1"})
        return self._answer(404, {})


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    server = FakeAzure()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _env(fake: FakeAzure, **extra: str) -> dict[str, str]:
    return {service_keys.VAULT_ENV: fake.url, service_keys.SECRET_ENV: "routing-manymodels-service-keys",
            "IDENTITY_ENDPOINT": f"{fake.url}/identity", "IDENTITY_HEADER": "id-header", **extra}


def test_keys_are_read_from_key_vault_with_the_managed_identity(fake, monkeypatch):
    monkeypatch.setattr(service_keys, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    fake.token_failures = 2  # the identity endpoint is not ready while the container starts
    keys = service_keys.load_service_keys(_env(fake, MANYMODELS_IDENTITY_CLIENT_ID="cid"))

    assert keys == KEYS
    token_calls = [q for p, q, _ in fake.requests if p == "/identity"]
    assert len(token_calls) == 3 and token_calls[-1]["client_id"] == ["cid"]
    assert token_calls[-1]["resource"] == ["https://vault.azure.net"]
    assert [q["api-version"] for p, q, _ in fake.requests if p.startswith("/secrets/")] == [["7.4"]]


def test_a_missing_role_or_secret_fails_with_the_reason_and_no_key(fake):
    fake.secrets.clear()
    with pytest.raises(service_keys.ServiceKeysError, match="HTTP 404") as raised:
        service_keys.load_service_keys(_env(fake))
    assert "Key Vault Secrets User" in str(raised.value)
    with pytest.raises(service_keys.ServiceKeysError, match=r"HTTP 401.*managed identity"):
        service_keys.load_service_keys(_env(fake, IDENTITY_HEADER="wrong"))
    fake.secrets["routing-manymodels-service-keys"] = "not json k1"
    with pytest.raises(service_keys.ServiceKeysError, match="not valid JSON") as raised:
        service_keys.load_service_keys(_env(fake))
    assert "k1" not in str(raised.value)


def test_local_keys_come_from_the_process_environment_and_bad_settings_are_refused():
    assert service_keys.load_service_keys({service_keys.KEYS_ENV: json.dumps(KEYS)}) == KEYS
    assert service_keys.load_service_keys({}) == {}
    with pytest.raises(service_keys.ServiceKeysError, match="must be set together"):
        service_keys.load_service_keys({service_keys.VAULT_ENV: "https://kv.vault.azure.net"})
    with pytest.raises(service_keys.ServiceKeysError, match="https://<vault>"):  # a token is never sent in clear
        service_keys.load_service_keys({service_keys.VAULT_ENV: "http://kv.example.com",
                                         service_keys.SECRET_ENV: "s"})
    with pytest.raises(service_keys.ServiceKeysError, match="object"):
        service_keys.load_service_keys({service_keys.KEYS_ENV: "[1, 2]"})


def test_the_token_audience_follows_the_vault_cloud():
    assert service_keys.vault_resource("https://kv.vault.azure.cn") == "https://vault.azure.cn"
    assert service_keys.vault_resource("https://kv.vault.azure.net") == "https://vault.azure.net"


def test_the_router_reads_its_group_keys_from_key_vault_at_init(fake, tmp_path, monkeypatch):
    import routing_webservice as rw

    state = {"lr_1": {"version": 1, "group": "g1", "webservice": "manymodels-g1-1",
                      "endpoint": "http://127.0.0.1:9/score"}}
    (tmp_path / rw.STATE_FILE).write_text(json.dumps(state))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    monkeypatch.delenv(service_keys.KEYS_ENV, raising=False)
    for name, value in _env(fake).items():
        monkeypatch.setenv(name, value)

    rw.init()

    assert rw.loaded_routes().endpoints["manymodels-g1-1"].headers["Authorization"] == "Bearer k1"
    fake.secrets.clear()
    with pytest.raises(service_keys.ServiceKeysError, match="404"):  # no silent start without keys
        rw.init()
