"""The local host's HTTP server (shared/devhost/server.py) on raw sockets, serving the real
function_app.py: request framing it cannot read answers 400/413 at once (never a dropped
connection or a wait for the client to give up), hostile JSON answers 400 from the HTTP functions
and the Event Grid webhook, and after a barrage of both the same server still answers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.devhost.functions import index_app, load_module
from shared.devhost.keys import HostKeys
from shared.devhost.server import MAX_BODY, HostServer
from shared.flows.context import Context, reset_context, set_context
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = HostKeys(function="f" * 40, master="m" * 40, eventgrid="e" * 40)
ANSWER_WITHIN = 5.0  # seconds: every refused request must be answered well inside this


@pytest.fixture(scope="module")
def specs():
    module = load_module(REPO_ROOT / "function_app.py")
    return index_app(module.create_app(), directory=str(REPO_ROOT))  # a fresh app: get_functions() runs once


@pytest.fixture
def server(specs, settings: Settings) -> Iterator[HostServer]:
    set_context(Context(settings))
    host = HostServer(specs, KEYS, port=0)
    host.start()
    try:
        yield host
    finally:
        host.stop()
        reset_context()


def exchange(server: HostServer, raw: bytes, *, half_close: bool = False) -> tuple[int, dict, float]:
    """Send ``raw`` on a new connection; returns (status, JSON body or {}, seconds to the answer).
    The status is 0 when the server closed the connection without answering."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pytest.fail(f"no answer within {ANSWER_WITHIN}s to {raw[:80]!r}")
    elapsed = time.monotonic() - started
    if not data:
        return 0, {}, elapsed
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(body) if body.strip() else {}), elapsed


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def request(method: str, target: str, body: bytes = b"", *, headers: dict[str, str] | None = None,
            framing: str | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(framing if framing is not None else f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


TRAIN = f"/api/train?code={KEYS.function}"
HOOK = f"/runtime/webhooks/eventgrid?functionName=on_landing_event&code={KEYS.eventgrid}"
NOTIFY = {"aeg-event-type": "Notification", "Content-Type": "application/json"}


@pytest.mark.parametrize(("framing", "body", "status", "words"), [
    ("Transfer-Encoding: chunked", b"zz\r\n{}\r\n0\r\n\r\n", 400, "bad chunk size"),
    ("Transfer-Encoding: chunked", b"-2\r\n{}\r\n0\r\n\r\n", 400, "bad chunk size"),
    ("Transfer-Encoding: chunked", b"1" * 17 + b"\r\n", 400, "bad chunk size"),
    ("Transfer-Encoding: chunked", b"2\r\n{}XX0\r\n\r\n", 400, "not followed by CRLF"),
    ("Transfer-Encoding: chunked", b"7FFFFFFF\r\n{", 413, f"over {MAX_BODY} bytes"),
    ("Content-Length: -5", b"{}", 400, "Content-Length must be a whole number of bytes >= 0, got '-5'"),
    ("Content-Length: abc", b"{}", 400, "got 'abc'"),
    ("Content-Length: 1e3", b"{}", 400, "got '1e3'"),
    ("Content-Length: \u0662", b"{}", 400, "Content-Length"),
    ("Content-Length: 2\r\nContent-Length: 3", b"{}", 400, "2 different Content-Length headers"),
    (f"Content-Length: {MAX_BODY + 1}", b"{", 413, f"over {MAX_BODY} bytes"),
    ("Content-Length: " + "9" * 40, b"{", 413, f"over {MAX_BODY} bytes"),
])
def test_unreadable_framing_answers_at_once(server: HostServer, framing: str, body: bytes, status: int,
                                            words: str) -> None:
    # a bad chunk size used to drop the connection unanswered, a negative Content-Length to block
    # until the client gave up
    got, answer, elapsed = exchange(server, request("POST", TRAIN, body, framing=framing))
    assert (got, elapsed < ANSWER_WITHIN) == (status, True), answer
    assert words in answer["error"]


def test_a_body_cut_short_answers_400_when_the_client_stops_sending(server: HostServer) -> None:
    got, answer, _ = exchange(server, request("POST", TRAIN, b'{"mode"', framing="Content-Length: 50"),
                              half_close=True)
    assert got == 400 and "ended after 7 of 50 bytes" in answer["error"]


def test_chunked_bodies_still_reach_the_function(server: HostServer) -> None:
    body = b'{"dataset_version": 100000000000000000000}'
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    got, answer, _ = exchange(server, request("POST", TRAIN, chunked, framing="Transfer-Encoding: chunked"))
    assert got == 400 and "'dataset_version' must be a whole number from 1 to 2147483647" in answer["error"]
    got, answer, _ = exchange(server, request("POST", "/api/train", chunked, framing="Transfer-Encoding: chunked"))
    assert got == 401  # the function key is still needed


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(("body", "words"), [
    (DEEP, "nested too deeply"),
    (b'[{"id": "1", "eventType": "Microsoft.Storage.BlobCreated", "subject": "s", "data": '
     + b"[" * 80 + b"]" * 80 + b"}]", "nested 82 levels deep"),
    (b'[{"id": "1", "eventType": "T", "data": {"n": NaN}}]', "NaN is not a JSON value"),
    (b'[{"id": "1", "eventType": "T", "data": {"n": 1e999}}]', "out of the range"),
    (b'[{"id": "\xff"}]', "not UTF-8 text"),
    (b"", "expected an event object"),
    (b"42", "expected an event object"),
    (b"[]", "expected an event object"),
])
def test_the_webhook_answers_400_to_hostile_json(server: HostServer, body: bytes, words: str) -> None:
    got, answer, _ = exchange(server, request("POST", HOOK, body, headers=NOTIFY))
    assert got == 400 and words in answer["error"], answer


def test_a_validation_handshake_with_data_not_an_object_is_400(server: HostServer) -> None:
    body = json.dumps([{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                        "data": ["validationCode"]}]).encode()
    got, answer, _ = exchange(server, request("POST", HOOK, body,
                                              headers={"aeg-event-type": "SubscriptionValidation"}))
    assert got == 400 and "data.validationCode" in answer["error"]
    got, _, _ = exchange(server, request("POST", HOOK.replace(KEYS.eventgrid, KEYS.function), body,
                                         headers={"aeg-event-type": "SubscriptionValidation"}))
    assert got == 401  # the webhook still needs its system key


def test_a_barrage_of_bad_requests_leaves_the_same_server_answering(server: HostServer) -> None:
    thread = server.serving_thread
    bad = [request("POST", TRAIN, b"zz\r\n", framing="Transfer-Encoding: chunked"),
           request("POST", TRAIN, b"{}", framing="Content-Length: -1"),
           request("POST", TRAIN, b"{}", framing="Content-Length: x"),
           request("POST", TRAIN, DEEP),
           request("POST", TRAIN, b'{"dataset_version": 1' + b"0" * 30 + b"}"),
           request("POST", f"/api/forecast?code={KEYS.function}", b"\xc3\x28"),
           request("POST", f"/api/deploy?code={KEYS.function}", b'{"reset": NaN}'),
           request("POST", HOOK, DEEP, headers=NOTIFY),
           request("POST", HOOK, b"[{]", headers=NOTIFY)]
    statuses: list[int] = []
    errors: list[BaseException] = []

    def fire(raw: bytes) -> None:
        try:
            statuses.append(exchange(server, raw)[0])
        except BaseException as e:  # a reset connection is an answer lost
            errors.append(RuntimeError(f"{e!r} on {raw[60:140]!r}"))

    threads = [threading.Thread(target=fire, args=(raw,)) for raw in bad * 6]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(statuses) == len(threads)
    assert sorted(set(statuses)) == [400], statuses
    assert server.serving_thread is thread and thread is not None and thread.is_alive()
    assert exchange(server, request("GET", "/admin/host/ping"))[0] == 200
    status, answer, _ = exchange(server, request("GET", f"/api/health?code={KEYS.function}"))
    assert status == 200 and answer["status"] == "ok"
