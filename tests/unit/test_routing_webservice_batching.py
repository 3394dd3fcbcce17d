"""The router's shared calls (requests waiting for a busy service go together) and its HTTP client."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

SCORING = Path(__file__).resolve().parents[2] / "scoring"
sys.path.insert(0, str(SCORING))
import routing_webservice as rw  # noqa: E402

STATE = {f"lr_dominicks_{i}": {"version": 1, "group": "g", "webservice": "svc-1", "endpoint": "http://127.0.0.1:1/score"}
         for i in range(1, 7)}


def record(store: int) -> dict:
    return {"id": {"Store": store, "Brand": "dominicks"}, "model_type": "lr", "forecast_horizon": 1}


class GatedService:
    """A service whose first call blocks until released, so that other requests queue behind it."""

    def __init__(self, answer=None) -> None:
        self.bodies: list[list] = []
        self.release = threading.Event()
        self.answer = answer or (lambda records: (200, json.dumps([{**r, "forecast": r["id"]["Store"]}
                                                                   for r in records]).encode()))

    def __call__(self, endpoint: rw.Endpoint, body: bytes) -> tuple[int, bytes]:
        records = json.loads(body)
        self.bodies.append(records)
        if len(self.bodies) == 1:
            assert self.release.wait(10)
        return self.answer(records)


def _route_concurrently(routes: rw.Routes, requests: list[list[dict]], service: GatedService) -> list:
    results: list = [None] * len(requests)

    def send(i: int) -> None:
        results[i] = rw.route(requests[i], routes, json.dumps(requests[i]).encode())

    threads = [threading.Thread(target=send, args=(0,))]
    threads[0].start()
    while not service.bodies:  # the first request holds the only call slot
        time.sleep(0.005)
    for i in range(1, len(requests)):
        threads.append(threading.Thread(target=send, args=(i,)))
        threads[-1].start()
    lane = rw._lanes["svc-1"]
    deadline = time.monotonic() + 10
    while len(lane.queue) < len(requests) - 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    service.release.set()
    for t in threads:
        t.join(10)
    assert lane.busy == 0 and not lane.queue  # the slot is free again
    return results


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> rw.Routes:
    monkeypatch.setattr(rw, "_calls_per_service", 1)
    monkeypatch.setattr(rw, "_lanes", {})
    return rw.load_routes(STATE, {})


def test_requests_waiting_for_a_busy_service_share_its_next_call(routes, monkeypatch):
    service = GatedService()
    monkeypatch.setattr(rw, "call_service", service)
    requests = [[record(1)], [record(2), record(3)], [record(4)], [record(5), record(6)]]
    results = _route_concurrently(routes, requests, service)
    assert len(service.bodies) == 2  # the first call, then one call for the three that waited
    assert sorted(r["id"]["Store"] for r in service.bodies[1]) == [2, 3, 4, 5, 6]
    for request, (answers, raw) in zip(requests, results, strict=True):
        got = json.loads(raw) if raw is not None else answers
        assert [a["forecast"] for a in got] == [r["id"]["Store"] for r in request]  # its own, in order


def test_a_failing_shared_call_fails_each_waiting_request_on_its_own(routes, monkeypatch):
    calls = iter([(200, None), (500, b'{"message": "boom"}')])

    def answer(records):
        status, body = next(calls)
        return status, body or json.dumps([{"forecast": 1} for _ in records]).encode()

    service = GatedService(answer)
    monkeypatch.setattr(rw, "call_service", service)
    results = _route_concurrently(routes, [[record(1)], [record(2)], [record(3), record(4)]], service)
    assert results[0][1] is not None  # the first call answered
    for answers, _ in results[1:]:
        assert all(a["status"] == 503 and "answered 500" in a["error"] for a in answers)


def test_a_shared_answer_with_the_wrong_item_count_is_a_502_for_each_record(routes, monkeypatch):
    service = GatedService(lambda records: (200, b"[1]"))
    monkeypatch.setattr(rw, "call_service", service)
    results = _route_concurrently(routes, [[record(1)], [record(2)], [record(3)]], service)
    for answers, _ in results[1:]:
        assert [a["status"] for a in answers] == [502]


def test_only_utf8_arrays_are_joined_as_is():
    assert rw.joinable(b' [{"a": 1}] ')
    assert not rw.joinable('[{"a": 1}]'.encode("utf-16-le"))
    assert not rw.joinable(b'\xef\xbb\xbf[{"a": 1}]')


def _connection(sock: socket.socket) -> rw.Connection:
    conn = rw.Connection.__new__(rw.Connection)
    conn.sock, conn.host, conn.buffer = sock, "127.0.0.1:1", bytearray()
    return conn


@pytest.mark.parametrize(("wire", "status", "body", "closes"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: application/json\r\n\r\n[1,2,3]", 200, b"[1,2,3]", False),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\n[1,\r\n2\r\n2]\r\n0\r\nT: v\r\n\r\n",
     200, b"[1,2]", False),
    (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\ndown", 503, b"down", True),
    (b"HTTP/1.0 200 OK\r\n\r\n[1]", 200, b"[1]", True),  # no length: up to the close
])
def test_the_client_reads_each_kind_of_answer(wire, status, body, closes):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = _connection(ours)
        conn.request("POST", "/score", b"[]", {"Content-Type": "application/json"})
        sent = theirs.recv(65536)
        assert sent.startswith(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Length: 2\r\n")
        assert sent.endswith(b"Content-Type: application/json\r\n\r\n[]")
        theirs.sendall(wire)
        if closes and b"Content-Length" not in wire:
            theirs.shutdown(socket.SHUT_WR)
        response = conn.getresponse()
        assert (response.status, response.read(), response.will_close) == (status, body, closes)


def test_a_closed_keep_alive_is_a_remote_disconnect_and_a_cut_answer_an_incomplete_read():
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        with pytest.raises(http.client.RemoteDisconnected):
            _connection(ours).getresponse()
    ours, theirs = socket.socketpair()
    with ours:
        theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[1")
        theirs.close()
        with pytest.raises(http.client.IncompleteRead):
            _connection(ours).getresponse()


def test_the_configured_read_timeout_reaches_the_routers_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """ROUTER_TIMEOUT_SECONDS is read in init(); the client (scoring/router_http.py) takes it as an option."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        endpoint = rw.Endpoint("svc-timeout", False, "127.0.0.1", listener.getsockname()[1], "/score", {})
        monkeypatch.setattr(rw, "_read_timeout", 7.5)
        monkeypatch.setattr(rw._local, "conns", {}, raising=False)
        conn = rw._connection(endpoint)
        try:
            assert conn.sock.gettimeout() == 7.5
        finally:
            conn.sock.close()
        plain = rw.Connection(endpoint)
        try:
            assert plain.sock.gettimeout() == 60.0  # the client's own default
        finally:
            plain.sock.close()
    finally:
        listener.close()
