"""The scoring-latency benchmark's load generator answers for every call, or says why not.

It runs against a plain HTTP/1.1 server on 127.0.0.1 (no timing assertions: only that each call is
sent, answered and counted, across kept-alive and closed connections).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "scoring_latency.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("scoring_latency", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scoring_latency = _load_benchmark()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    close_every = 0  # close the connection after every n-th answer (0: keep it alive)
    announce_close = True  # say "Connection: close" first (False: close it unannounced)
    status = 200
    seen: list[dict] = []

    def do_POST(self) -> None:
        record = json.loads(self.rfile.read(int(self.headers["Content-Length"])))[0]
        type(self).seen.append(record)
        body = json.dumps([{**record, "forecast": {"values": [1.0]}}]).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_every and len(self.seen) % self.close_every == 0:
            if self.announce_close:
                self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stopped reading (the error test): nothing to report


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"seen": []})
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/score", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_every_call_is_answered_and_timed_once(server: tuple[str, type[_Handler]]) -> None:
    uri, handler = server
    client = scoring_latency.Client()
    try:
        calls = [(uri, scoring_latency.body(str(store))) for store in range(200)]
        latencies, seconds = client.measure(calls, 8)
    finally:
        client.close()
    assert len(latencies) == 200 and all(latency > 0 for latency in latencies)
    assert seconds > 0
    assert sorted(int(r["id"]["Store"]) for r in handler.seen) == list(range(200))


@pytest.mark.parametrize("announced", [True, False], ids=["connection-close", "unannounced"])
def test_a_connection_the_server_closes_is_reopened(server: tuple[str, type[_Handler]], announced: bool) -> None:
    uri, handler = server
    handler.close_every, handler.announce_close = 3, announced
    client = scoring_latency.Client()
    try:
        latencies, _ = client.measure([(uri, scoring_latency.body("1"))] * 60, 4)
        latencies += client.measure([(uri, scoring_latency.body("2"))] * 10, 4)[0]  # kept connections reused
    finally:
        client.close()
    assert len(latencies) == 70 and all(latency > 0 for latency in latencies)
    assert len(handler.seen) == 70


def test_an_error_answer_stops_the_run_with_the_status(server: tuple[str, type[_Handler]]) -> None:
    uri, handler = server
    handler.status = 503
    client = scoring_latency.Client()
    try:
        with pytest.raises(RuntimeError, match="503"):
            client.measure([(uri, scoring_latency.body("1"))] * 5, 2)
    finally:
        client.close()
