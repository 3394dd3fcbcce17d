"""What publishing a product event costs: outbox row (Azurite) + EventGridPublisherClient + mark sent.

    .venv/bin/python benchmarks/event_publish.py [--target local|recorder] [--repeats 30] [--batch 100]

Starts its own Azurite (in memory, free ports) and, on a free 127.0.0.1 port, either the local
Event Grid's real topic endpoint (``--target local``, default: shared/devhost/topics.py validates
each event and appends it, fsynced, to the topic's log) or a recorder that only answers 200
(``--target recorder``: the client and outbox alone). Measures, ``--repeats`` times each:

- ``single``: one event as a flow pays it: ``outbox.record`` then ``outbox.drain`` (one list query,
  one publish request, one ``mark sent``);
- ``batch``: ``--batch`` events recorded, then one drain (publish requests of 100 events);
- ``sdk_only``: one ``EventGridPublisherClient.send`` of one event, no outbox.

Prints progress to stderr and one JSON object as the last line (median milliseconds per event).
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import product_events
from shared.flows import outbox
from shared.flows.context import Context
from shared.settings import Settings
from shared.storage import azurite

TOPIC = "benchmark"


def _server(home: Path, target: str) -> tuple[ThreadingHTTPServer, str, str]:
    """(server, endpoint, key) of the local topic endpoint or a plain recorder."""
    if target == "local":
        from shared.devhost.eventgrid import LocalEventGrid
        from shared.devhost.topics import PublishEndpoint, ensure_topic

        grid = LocalEventGrid(home, [], lambda *a: None)  # no subscriber: publish = validate + log
        endpoint = PublishEndpoint(home, grid)
        key = ensure_topic(home, TOPIC, host_url="http://127.0.0.1:1").key

        def answer(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
            result = endpoint.handle("POST", TOPIC, dict(handler.headers.items()), body)
            return result.status, result.body
    else:
        key = "recorder-key"

        def answer(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
            return (200 if handler.headers.get("aeg-sas-key") == key else 401), b""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = answer(self, body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/topics/{TOPIC}/api/events", key


def _event() -> product_events.ProductEvent:
    return product_events.run_failed(namespace="bench", run_id=str(uuid.uuid4()), kind="training", state="failed",
                                     reason="benchmark event", ended=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("local", "recorder"), default="local")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mm-events-bench-"))
    proc = azurite.start(work / "azurite", ports=None, in_memory=True)
    server = None
    try:
        server, endpoint, key = _server(work / "home", args.target)
        env = {**os.environ, "MANYMODELS_HOME": str(work / "home"), "AzureWebJobsStorage": proc.connection_string,
               "LEDGER_TABLE": "eventsbench", "MANYMODELS_BACKEND": "local",
               "EVENTS_TOPIC_ENDPOINT": endpoint, "EVENTS_TOPIC_KEY": key}
        ctx = Context(Settings.from_env(env))
        outbox.record(ctx, _event())
        assert outbox.drain(ctx).sent == 1, "warm-up publish failed"

        single, batch, sdk_only = [], [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            outbox.record(ctx, _event())
            result = outbox.drain(ctx)
            single.append((time.perf_counter() - started) * 1000)
            assert result.sent == 1, result
        print(f"single: median {statistics.median(single):.2f} ms per event", file=sys.stderr)
        for _ in range(max(3, args.repeats // 10)):
            started = time.perf_counter()
            for _ in range(args.batch):
                outbox.record(ctx, _event())
            result = outbox.drain(ctx)
            batch.append((time.perf_counter() - started) * 1000 / args.batch)
            assert result.sent == args.batch, result
        print(f"batch of {args.batch}: median {statistics.median(batch):.2f} ms per event", file=sys.stderr)
        client = outbox.publisher(ctx.settings)
        for _ in range(args.repeats):
            cloud = _event().to_cloud_event()
            started = time.perf_counter()
            client.send([cloud])
            sdk_only.append((time.perf_counter() - started) * 1000)
        summary = {"benchmark": "event_publish", "target": args.target, "repeats": args.repeats,
                   "batch": args.batch,
                   "single_ms_per_event": round(statistics.median(single), 2),
                   "batch_ms_per_event": round(statistics.median(batch), 2),
                   "sdk_only_ms_per_event": round(statistics.median(sdk_only), 2),
                   "outbox_overhead_ms": round(statistics.median(single) - statistics.median(sdk_only), 2)}
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        azurite.stop(work / "azurite")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
