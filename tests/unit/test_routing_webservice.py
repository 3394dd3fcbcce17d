"""The routing webservice's routing, errors, keys and retries, with the service calls faked."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest

SCORING = Path(__file__).resolve().parents[2] / "scoring"
sys.path.insert(0, str(SCORING))
import routing_webservice as rw  # noqa: E402

STATE = {
    "lr_dominicks_1": {"version": 1, "group": "modelgroup-1", "webservice": "svc-1", "endpoint": "http://127.0.0.1:1/score"},
    "lr_dominicks_2": {"version": 3, "group": "modelgroup-2", "webservice": "svc-2", "endpoint": "http://127.0.0.1:2/score"},
    "lr_dominicks_3": {"version": 1, "group": "modelgroup-1", "webservice": "svc-1", "endpoint": "http://127.0.0.1:1/score"},
    "lr_dominicks_4": {"version": 1, "group": "modelgroup-3", "webservice": "svc-3", "endpoint": None},
}


def record(store: int, brand: str = "dominicks") -> dict:
    return {"id": {"Store": store, "Brand": brand}, "model_type": "lr", "forecast_horizon": 2}


class FakeServices:
    """Answers like a model service: each record echoed with a forecast naming the service."""

    def __init__(self, down: tuple[str, ...] = ()) -> None:
        self.down = down
        self.calls: list[tuple[str, list]] = []

    def __call__(self, endpoint: rw.Endpoint, body: bytes) -> tuple[int, bytes]:
        records = json.loads(body)
        self.calls.append((endpoint.service, records))
        if endpoint.service in self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        return 200, json.dumps([{**r, "forecast": {"service": endpoint.service}} for r in records]).encode()


@pytest.fixture
def routes() -> rw.Routes:
    return rw.load_routes(STATE, {"svc-1": "secret-key-1"})


def test_answers_come_back_in_request_order_across_services(routes, monkeypatch):
    fake = FakeServices()
    monkeypatch.setattr(rw, "call_service", fake)
    records = [record(2), record(1), record(3), record(2)]
    answers, raw = rw.route(records, routes)
    assert raw is None
    assert [a["id"]["Store"] for a in answers] == [2, 1, 3, 2]
    assert [a["forecast"]["service"] for a in answers] == ["svc-2", "svc-1", "svc-1", "svc-2"]
    assert sorted((s, len(r)) for s, r in fake.calls) == [("svc-1", 2), ("svc-2", 2)]


def test_one_service_answer_is_passed_through_untouched(routes, monkeypatch):
    monkeypatch.setattr(rw, "call_service", lambda endpoint, body: (200, b'[{"raw": true}, {"raw": 1}]'))
    answers, raw = rw.route([record(1), record(3)], routes)
    assert answers is None and raw == b'[{"raw": true}, {"raw": 1}]'


def test_unknown_model_gets_its_own_404_and_the_others_succeed(routes, monkeypatch):
    monkeypatch.setattr(rw, "call_service", FakeServices())
    answers, _ = rw.route([record(1), record(99), record(4), {"id": "bad"}], routes)
    assert answers[0]["forecast"]["service"] == "svc-1"
    assert answers[1]["status"] == 404 and "lr_dominicks_99 is not deployed" in answers[1]["error"]
    assert answers[2]["status"] == 404  # its group has no endpoint (failed deployment)
    assert answers[3]["status"] == 400
    assert answers[1]["id"] == {"Store": 99, "Brand": "dominicks"}  # the record is echoed


def test_a_service_that_is_down_fails_only_its_records(routes, monkeypatch):
    monkeypatch.setattr(rw, "call_service", FakeServices(down=("svc-2",)))
    answers, _ = rw.route([record(1), record(2), record(3)], routes)
    assert answers[0]["forecast"]["service"] == "svc-1" and answers[2]["forecast"]["service"] == "svc-1"
    assert answers[1]["status"] == 503 and "svc-2 is unavailable" in answers[1]["error"]


def test_a_failing_service_answer_becomes_per_record_errors(routes, monkeypatch):
    monkeypatch.setattr(rw, "call_service", lambda endpoint, body: (500, b'{"message": "boom"}'))
    answers, _ = rw.route([record(1)], routes)
    assert answers[0]["status"] == 503 and "boom" in answers[0]["error"]
    monkeypatch.setattr(rw, "call_service", lambda endpoint, body: (200, b'[{"only": "one"}]'))
    answers, _ = rw.route([record(1), record(2), record(3)], routes)
    assert answers[0]["status"] == 502 or answers[1]["status"] == 502


def test_keys_go_only_into_the_authorization_header(routes):
    assert routes.endpoints["svc-1"].headers["Authorization"] == "Bearer secret-key-1"
    assert "Authorization" not in routes.endpoints["svc-2"].headers
    public = json.loads(routes.public)
    assert public == {"lr_dominicks_1": "svc-1", "lr_dominicks_2": "svc-2", "lr_dominicks_3": "svc-1"}
    assert b"secret" not in routes.public and b"127.0.0.1" not in routes.public


class FakeRequest:
    def __init__(self, method: str, body: bytes = b"") -> None:
        self.method = method
        self._body = body

    def get_data(self) -> bytes:
        return self._body


def _init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: dict) -> None:
    for version, content in ((1, {}), (10, state), (9, {})):
        folder = tmp_path / "deployed_models_info_local" / str(version)
        folder.mkdir(parents=True)
        (folder / rw.STATE_FILE).write_text(json.dumps(content))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv(rw.KEYS_ENV, json.dumps({"svc-2": "k2"}))
    rw.init()


def test_init_loads_the_highest_version_and_run_answers_get_and_post(tmp_path, monkeypatch):
    _init(tmp_path, monkeypatch, STATE)
    response = rw.run(FakeRequest("GET"))
    assert response.status_code == 200
    assert json.loads(response.get_data()) == {"lr_dominicks_1": "svc-1", "lr_dominicks_2": "svc-2",
                                               "lr_dominicks_3": "svc-1"}
    assert rw.loaded_routes().endpoints["svc-2"].headers["Authorization"] == "Bearer k2"
    monkeypatch.setattr(rw, "call_service", FakeServices())
    response = rw.run(FakeRequest("POST", json.dumps([record(2), record(1)]).encode()))
    assert [a["forecast"]["service"] for a in json.loads(response.get_data())] == ["svc-2", "svc-1"]
    single = rw.run(FakeRequest("POST", json.dumps(record(1)).encode()))
    assert json.loads(single.get_data())["forecast"]["service"] == "svc-1"
    assert rw.run(FakeRequest("POST", b"{not json")).status_code == 400
    assert rw.run(FakeRequest("POST", b"42")).status_code == 400


class FlakyConnection:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.requests = 0

    def request(self, method, path, body=None, headers=None):
        self.requests += 1
        if self.failures:
            raise self.failures.pop(0)

    def getresponse(self):
        class Response:
            status = 200
            will_close = False

            def read(self):
                return b"[]"

        return Response()

    def close(self):
        pass


def test_one_retry_on_a_connection_error_then_give_up(routes, monkeypatch):
    conn = FlakyConnection([http.client.RemoteDisconnected("closed keep-alive")])
    monkeypatch.setattr(rw, "_connection", lambda endpoint, fresh=False: conn)
    assert rw.call_service(routes.endpoints["svc-1"], b"[]") == (200, b"[]")
    assert conn.requests == 2
    conn = FlakyConnection([ConnectionResetError(), ConnectionRefusedError()])
    monkeypatch.setattr(rw, "_connection", lambda endpoint, fresh=False: conn)
    with pytest.raises(ConnectionRefusedError):
        rw.call_service(routes.endpoints["svc-1"], b"[]")
    conn = FlakyConnection([TimeoutError("read timed out")])
    monkeypatch.setattr(rw, "_connection", lambda endpoint, fresh=False: conn)
    with pytest.raises(TimeoutError):
        rw.call_service(routes.endpoints["svc-1"], b"[]")
    assert conn.requests == 1  # a slow service is not called twice


def test_model_names_match_the_forecaster():
    import forecaster

    for ids in ({"Store": 1000, "Brand": "dominicks"}, {"b": 1, "a": "x", "C": 2}):
        assert rw.model_name("lr", ids) == forecaster.model_name("lr", ids)


def test_the_request_body_is_forwarded_as_is_when_one_service_takes_every_record(routes, monkeypatch):
    sent = []
    monkeypatch.setattr(rw, "call_service", lambda endpoint, body: (sent.append(body), (200, b"[1, 2]"))[1])
    raw = (b'[{"id": {"Store": 1, "Brand": "dominicks"}, "model_type": "lr"},  '
           b'{"id": {"Brand": "dominicks", "Store": 3}, "model_type": "lr"}]')
    rw.route(json.loads(raw), routes, raw)
    assert sent == [raw]
    rw.route([*json.loads(raw), record(2)], routes)  # split across services: re-encoded subsets
    assert b"Store" in sent[1] and sent[1] != raw


def strict_loads(data: bytes) -> object:
    def reject(token: str) -> None:
        raise ValueError(f"{token} is not strict JSON")

    return json.loads(data, parse_constant=reject)


def post(body: bytes) -> tuple[int, object]:
    response = rw.run(FakeRequest("POST", body))
    return response.status_code, strict_loads(response.get_data())


@pytest.mark.parametrize("body, statuses", [
    (b"[]", []),
    (b"[1, \"x\", null, [], {}]", [400, 400, 400, 400, 400]),
    (json.dumps([record(99)]).encode(), [404]),
    (json.dumps([{"model_type": "lr"}, {"id": {}, "model_type": "lr"}]).encode(), [400, 400]),
    *[(json.dumps([{"id": v, "model_type": "lr"}]).encode(), [400]) for v in (5, [1], None, "1", True)],
    *[(json.dumps([{**record(1), "model_type": v}]).encode(), [400]) for v in (5, ["lr"], {"a": 1}, None)],
    (json.dumps([record(99), {"id": 3}, record(4)]).encode(), [404, 400, 404]),
])
def test_a_request_with_no_routable_record_gets_its_per_record_errors(tmp_path, monkeypatch, body, statuses):
    _init(tmp_path, monkeypatch, STATE)
    fake = FakeServices()
    monkeypatch.setattr(rw, "call_service", fake)
    status, answers = post(body)
    assert status == 200 and [a["status"] for a in answers] == statuses and all(a["error"] for a in answers)
    assert fake.calls == []


def test_one_record_that_cannot_be_routed_is_answered_and_a_body_that_is_no_record_is_a_400(tmp_path, monkeypatch):
    _init(tmp_path, monkeypatch, STATE)
    monkeypatch.setattr(rw, "call_service", FakeServices())
    status, answer = post(json.dumps(record(99)).encode())
    assert status == 200 and answer["status"] == 404 and answer["id"]["Store"] == 99
    status, answer = post(b'{"model_type": "lr"}')
    assert status == 200 and answer["status"] == 400
    for body in (b"{}", b'"records"', b"42", b"null", b"NaN"):
        status, answer = post(body)
        assert status == 400 and "JSON array of records" in answer["error"], body


def test_a_body_nested_too_deeply_is_a_400(tmp_path, monkeypatch):
    _init(tmp_path, monkeypatch, STATE)
    monkeypatch.setattr(rw, "call_service", FakeServices())
    deep = b"[" * 100_000 + b"]" * 100_000
    in_a_record = b'[{"id": {"Store": 99, "Brand": "dominicks"}, "model_type": "lr", "x": ' + deep + b"}]"
    for body in (deep, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, in_a_record):
        status, answer = post(body)
        assert status == 400 and "nested too deeply" in answer["error"]


def test_non_finite_tokens_are_echoed_as_words_and_forwarded_as_sent(tmp_path, monkeypatch):
    _init(tmp_path, monkeypatch, STATE)
    sent = []

    def service(endpoint, body):
        sent.append(body)
        return FakeServices()(endpoint, body)

    monkeypatch.setattr(rw, "call_service", service)
    unknown = b'[{"id": {"Store": 99, "Brand": "dominicks"}, "model_type": "lr", "price": [NaN, -Infinity, 1e999]}]'
    status, answers = post(unknown)
    assert status == 200 and answers[0]["price"] == ["NaN", "-Infinity", "Infinity"] and answers[0]["status"] == 404
    one_service = b'[{"id": {"Store": 1, "Brand": "dominicks"}, "model_type": "lr", "price": NaN}]'
    rw.run(FakeRequest("POST", one_service))
    assert sent[-1] == one_service  # the service sees the token and says why the record is refused
    status, answers = post(one_service[:-1] + b", " + json.dumps(record(2)).encode() + b"]")  # two services
    assert status == 200 and answers[0]["price"] == "NaN" and b"NaN" in sent[-2] + sent[-1]
    for body in sent[-2:]:
        strict_loads(body)  # split requests are re-encoded strictly too
