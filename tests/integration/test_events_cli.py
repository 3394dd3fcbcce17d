"""``manymodels events subscribe|tail`` and ``EVENTS_TOPIC_ENDPOINT=local``: the product's events
published through the outbox with the real ``EventGridPublisherClient`` to the local Event Grid's
real topic endpoint (shared/devhost/topics.py), served here on a free 127.0.0.1 port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared import cli, product_events
from shared.devhost.eventgrid import LocalEventGrid
from shared.devhost.grid_access import HomeEventGrid
from shared.devhost.topics import PublishEndpoint, ensure_topic, read_events, subscriptions_of
from shared.flows import outbox
from shared.flows.context import Context
from shared.settings import Settings

pytestmark = pytest.mark.integration
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def topic_server(storage_settings: Settings) -> Iterator[str]:
    """The local topic's publish endpoint (no subscriber yet); yields its URL."""
    home = storage_settings.home
    endpoint = PublishEndpoint(home, LocalEventGrid(home, [], lambda *a: None))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            topic = self.path.split("/")[2]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = endpoint.handle("POST", topic, dict(self.headers.items()), body)
            self.send_response(answer.status)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def failed(run_id: str) -> product_events.ProductEvent:
    return product_events.run_failed(namespace="ns", run_id=run_id, kind="training", state="failed",
                                     reason="boom", ended=None)


def test_local_events_reach_the_topic_and_tail_prints_them(storage_settings, topic_server, capsys) -> None:
    access = ensure_topic(storage_settings.home, outbox.LOCAL_TOPIC, host_url=topic_server)
    local = storage_settings.replace(events_topic_endpoint="local")
    assert outbox.topic_access(local, HomeEventGrid.of(local))[1] == access.key  # `local`: the home's topic key
    ctx = Context(storage_settings.replace(events_topic_endpoint=access.endpoint, events_topic_key=access.key))
    events = [failed("run-a"), failed("run-b")]
    for event in events:
        outbox.record(ctx, event)
    assert outbox.drain(ctx).sent == 2
    assert [e.event["id"] for e in read_events(storage_settings.home, outbox.LOCAL_TOPIC)] == [e.id for e in events]

    assert cli.main(["events", "tail", "--all", "--json", "--exit-after", "0.3"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["id"] for e in printed] == [e.id for e in events]
    assert printed[0]["type"] == "manymodels.run.failed" and printed[0]["specversion"] == "1.0"


def test_subscribe_adds_a_webhook_subscription_with_its_filter(storage_settings, capsys) -> None:
    assert cli.main(["events", "subscribe", "--webhook", "http://127.0.0.1:9/hook", "--types",
                     "manymodels.forecasts.ready", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[-1])
    [sub] = subscriptions_of(storage_settings.home, outbox.LOCAL_TOPIC)
    assert sub.name == answer["subscription"] and sub.webhook_url == "http://127.0.0.1:9/hook"
    assert sub.included_event_types == ("manymodels.forecasts.ready",)

    assert cli.main(["events", "subscribe", "--webhook", "http://127.0.0.1:9/hook", "--types", "nope"]) == 1
    assert "'nope' is not an event type of the product" in capsys.readouterr().err


def test_tail_ends_cleanly_on_ctrl_c(storage_settings) -> None:
    env = {**os.environ, "MANYMODELS_HOME": str(storage_settings.home)}
    proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "events", "tail"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "following topic" in proc.stderr.readline()  # it is in its loop
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
