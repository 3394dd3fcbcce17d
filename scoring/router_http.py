"""The routing webservice's HTTP/1.1 client: one keep-alive connection to a model-group service.

scoring/routing_webservice.py calls the group services with this rather than ``http.client``, whose
header parsing and two sends per request cost more CPU than the routing itself. It is what brought
the routed p50 under 5 ms: benchmarks/scoring_latency.py measures it, docs/benchmarks.md
"Scoring latency" has the numbers and how they were reached. The latency load generator in that
benchmark uses this same connection, so the two sides of a measurement parse HTTP alike.

Only what the router needs: each request goes out in one send, and the answer is read with a plain
parser (Content-Length, chunked, or up to the close). Errors are ``http.client``'s, so callers tell
a retryable closed keep-alive (:data:`CONNECTION_ERRORS`) from a garbled answer as they would with
``http.client``. Stdlib only: the router never loads pandas.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import NamedTuple

# Errors after which a request is worth one retry on a new connection (a closed keep-alive, a
# restarting service); any other OSError or HTTPException (a timeout, a garbled answer) is not.
CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
                     http.client.CannotSendRequest, http.client.ResponseNotReady, socket.gaierror)

MAX_HEAD = 65536  # bytes of status line + headers accepted from a service
_ssl_context: ssl.SSLContext | None = None


# NamedTuples, not dataclasses, as in scoring/routing_webservice.py (which the inference server
# imports without registering it in sys.modules): one record type for both files.
class Endpoint(NamedTuple):
    """Where to call one service."""

    service: str
    https: bool
    host: str
    port: int
    path: str
    headers: dict[str, str]


class Response(NamedTuple):
    status: int
    body: bytes
    will_close: bool

    def read(self) -> bytes:
        return self.body


class Connection:
    """One keep-alive HTTP/1.1 connection to a service, with the part of ``http.client.HTTPConnection``'s
    interface that the router's ``call_service`` uses: each request goes out in one send and the answer
    is read with a plain parser (Content-Length, chunked, or up to the close)."""

    def __init__(self, endpoint: Endpoint, *, connect_timeout: float = 5.0, read_timeout: float = 60.0) -> None:
        global _ssl_context
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.https:
            _ssl_context = _ssl_context or ssl.create_default_context()
            sock = _ssl_context.wrap_socket(sock, server_hostname=endpoint.host)
        sock.settimeout(read_timeout)
        self.sock = sock
        default_port = 443 if endpoint.https else 80
        self.host = endpoint.host if endpoint.port == default_port else f"{endpoint.host}:{endpoint.port}"
        self.buffer = bytearray()

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def getresponse(self) -> Response:
        end = self._fill_until(b"\r\n\r\n", first=True)
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        del self.buffer[:end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            raise http.client.BadStatusLine(lines[0])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(code)
        will_close = version == "HTTP/1.0" or "close" in headers.get("connection", "").lower()
        if status < 200 or status in (204, 304):
            return Response(status, b"", will_close)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Response(status, self._read_chunked(), will_close)
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise http.client.BadStatusLine(f"Content-Length: {headers['content-length']}") from None
            return Response(status, self._take(length), will_close)
        while self._recv():  # no length: the body ends with the connection
            pass
        body = bytes(self.buffer)
        self.buffer.clear()
        return Response(status, body, True)

    def close(self) -> None:
        self.sock.close()

    def _recv(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _fill_until(self, marker: bytes, *, first: bool = False) -> int:
        """The position of ``marker`` in the buffer, reading until it comes."""
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > MAX_HEAD:
                raise http.client.LineTooLong("response head")
            if not self._recv():
                if first and not self.buffer:  # a kept-alive connection the service closed: retried
                    raise http.client.RemoteDisconnected("the service closed the connection without a response")
                raise http.client.IncompleteRead(bytes(self.buffer))
        return end

    def _take(self, length: int) -> bytes:
        while len(self.buffer) < length:
            if not self._recv():
                raise http.client.IncompleteRead(bytes(self.buffer), length - len(self.buffer))
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            end = self._fill_until(b"\r\n")
            try:
                size = int(self.buffer[:end].split(b";", 1)[0], 16)
            except ValueError:
                raise http.client.IncompleteRead(bytes(body)) from None
            del self.buffer[:end + 2]
            if size == 0:
                while (end := self._fill_until(b"\r\n")) > 0:  # trailer lines, up to the empty one
                    del self.buffer[:end + 2]
                del self.buffer[:2]
                return bytes(body)
            body += self._take(size + 2)[:size]
