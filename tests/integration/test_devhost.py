"""The local host (shared/devhost) on a toy Function App: HTTP keys, the Event Grid webhook, blob events,
queue triggers with poison messages, timers, retries and dead-lettering, and ``up --detach``/``down``.

The toy app appends each invocation to the JSON-lines file named by ``TOY_LOG``, so the tests see
invocations whether the host runs in the test process or in a background process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.devhost import keys as host_keys
from shared.devhost.eventgrid import DeliveryPolicy, dead_letters
from shared.devhost.eventgrid import summary as eventgrid_summary
from shared.devhost.host import HostOptions, LocalHost
from shared.settings import Settings
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from shared.workspace.outbox import FolderEventSink, outbox_dir
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
YEARLY = "0 0 0 1 1 *"

TOY_APP = textwrap.dedent('''
    import json
    import os

    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


    def record(**fields):
        with open(os.environ["TOY_LOG"], "a") as f:
            f.write(json.dumps(fields, default=str) + "\\n")


    @app.route(route="echo/{name}", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        body = {"name": req.route_params.get("name"), "json": req.get_json(), "params": dict(req.params),
                "url": req.url, "method": req.method}
        return func.HttpResponse(json.dumps(body), mimetype="application/json")


    @app.route(route="open", auth_level=func.AuthLevel.ANONYMOUS)
    def open_door(req: func.HttpRequest) -> str:
        return "open"


    @app.route(route="vault", auth_level=func.AuthLevel.ADMIN)
    def vault(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("admin only", status_code=200)


    @app.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent, context: func.Context) -> None:
        if isinstance(event, func.CloudEvent):
            fields = {"schema": "cloudevents", "id": event.id, "type": event.type, "subject": event.subject,
                      "source": event.source, "data": event.get_json()}
        else:
            fields = {"schema": "eventgrid", "id": event.id, "type": event.event_type, "subject": event.subject,
                      "topic": event.topic, "data": event.get_json(), "data_version": event.data_version}
        record(fn="on_event", retry=context.retry_context.retry_count, **fields)
        if "fail" in (fields["subject"] or ""):
            raise RuntimeError("told to fail")


    @app.queue_trigger(arg_name="msg", queue_name="%TOY_QUEUE%", connection="AzureWebJobsStorage")
    def on_message(msg: func.QueueMessage) -> None:
        body = msg.get_body().decode()
        record(fn="on_message", body=body, dequeue_count=msg.dequeue_count, id=msg.id)
        if body == "poison":
            raise ValueError("cannot handle this message")
        if body.startswith("slow:"):
            import time
            time.sleep(float(body.split(":")[1]))
            record(fn="slow_done", id=msg.id)


    @app.timer_trigger(schedule="%TOY_TIMER%", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        record(fn="tick", past_due=timer.past_due, status=timer.schedule_status)
''')


def subscriptions(max_attempts: int = 3) -> dict[str, Any]:
    return {
        "topics": {"storage": {}, "workspace": {}},
        "subscriptions": [
            {"name": "blobs", "topic": "storage", "function": "on_event",
             "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
             "subjectBeginsWith": "/blobServices/default/containers/landing/", "maxDeliveryAttempts": 30},
            {"name": "ws", "topic": "workspace", "function": "on_event", "includedEventTypes": ["Test.Happened"],
             "maxDeliveryAttempts": max_attempts},
            {"name": "ws-cloud", "topic": "workspace", "function": "on_event", "includedEventTypes": ["Test.Cloud"],
             "eventDeliverySchema": "CloudEventSchemaV1_0"},
        ],
    }


def write_toy(folder: Path, *, max_attempts: int = 3) -> tuple[Path, Path]:
    """The toy app (unique module name per test) and its subscriptions file."""
    app = folder / f"toyapp_{uuid.uuid4().hex[:8]}.py"
    app.write_text(TOY_APP)
    subs = folder / "subscriptions.json"
    subs.write_text(json.dumps(subscriptions(max_attempts)))
    return app, subs


def records(log: Path, fn: str | None = None) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in rows if fn is None or r.get("fn") == fn]


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    return wait_until(check, timeout=timeout, interval=0.1, what=what)


def event(event_type: str, subject: str, **data: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "topic": "/subscriptions/local/resourceGroups/local/providers/Test/things/x",
            "subject": subject, "eventType": event_type, "eventTime": "2026-11-27T10:00:00.1234567Z",
            "data": data, "dataVersion": "1", "metadataVersion": "1"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def toy(tmp_path: Path, storage_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    app, subs = write_toy(tmp_path)
    log = tmp_path / "invocations.jsonl"
    queue = f"toyq{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("TOY_LOG", str(log))
    monkeypatch.setenv("TOY_QUEUE", queue)
    monkeypatch.setenv("TOY_TIMER", YEARLY)
    return {"app": app, "subs": subs, "log": log, "queue": queue, "settings": storage_settings}


def options(toy: dict[str, Any], **changes: Any) -> HostOptions:
    values: dict[str, Any] = {
        "app_path": toy["app"], "port": 0, "subscriptions_path": toy["subs"], "poll_interval": 0.2,
        "delivery": DeliveryPolicy(max_attempts=5, backoff_seconds=0.1, max_backoff_seconds=0.5),
        "queue_max_polling": 0.3, "queue_lease_seconds": 6.0,
    }
    values.update(changes)
    return HostOptions(**values)


@pytest.fixture
def start_host(toy: dict[str, Any]) -> Iterator[Callable[..., LocalHost]]:
    """Start in-process hosts on free ports; every one is stopped at the end."""
    started: list[LocalHost] = []

    def start(**changes: Any) -> LocalHost:
        host = LocalHost(toy["settings"], options(toy, **changes))
        host.start()
        started.append(host)
        return host

    yield start
    for host in started:
        if host._parts:
            host.stop()


def key_of(settings: Settings) -> host_keys.HostKeys:
    return host_keys.load_or_create(settings.home)


# --------------------------------------------------------------------------- HTTP


def test_http_functions_enforce_keys_like_azure(toy: dict[str, Any], start_host) -> None:
    host = start_host()
    keys = key_of(toy["settings"])
    url = f"{host.url}/api/echo/widget"

    assert requests.post(url, json={"a": 1}, timeout=10).status_code == 401
    assert requests.post(url, json={"a": 1}, headers={"x-functions-key": "wrong"}, timeout=10).status_code == 401
    ok = requests.post(url, json={"a": 1}, headers={"x-functions-key": keys.function}, timeout=10)
    assert ok.status_code == 200
    assert ok.json()["name"] == "widget" and ok.json()["json"] == {"a": 1} and ok.json()["method"] == "POST"

    by_query = requests.post(url, params={"code": keys.function, "x": "1"}, json={}, timeout=10)
    assert by_query.status_code == 200
    assert by_query.json()["params"] == {"x": "1"}  # the key never reaches the function
    assert keys.function not in by_query.json()["url"]

    assert requests.get(f"{host.url}/api/echo/widget", headers={"x-functions-key": keys.function},
                        timeout=10).status_code == 405
    assert requests.get(f"{host.url}/api/open", timeout=10).text == "open"
    assert requests.get(f"{host.url}/api/vault", headers={"x-functions-key": keys.function},
                        timeout=10).status_code == 401
    admin = requests.get(f"{host.url}/api/vault", headers={"x-functions-key": keys.master}, timeout=10)
    assert admin.status_code == 200
    assert requests.get(f"{host.url}/api/nothing-here", timeout=10).status_code == 404

    key_file = host_keys.keys_file(toy["settings"].home)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert host_keys.load_or_create(toy["settings"].home).function == keys.function  # generated once


# --------------------------------------------------------------------------- Event Grid webhook


def test_eventgrid_webhook_handshake_and_both_schemas(toy: dict[str, Any], start_host) -> None:
    host = start_host()
    keys = key_of(toy["settings"])
    hook = f"{host.url}/runtime/webhooks/eventgrid"
    params = {"functionName": "on_event", "code": keys.eventgrid}

    unauth = requests.post(hook, params={"functionName": "on_event"}, json=[], timeout=10)
    assert unauth.status_code == 401
    function_key = requests.post(hook, params={"functionName": "on_event", "code": keys.function}, json=[],
                                 headers={"aeg-event-type": "Notification"}, timeout=10)
    assert function_key.status_code == 401  # the webhook needs the extension's system key

    validation = event("Microsoft.EventGrid.SubscriptionValidationEvent", "", validationCode="512d38b6-c7b8")
    answer = requests.post(hook, params=params, json=[validation],
                           headers={"aeg-event-type": "SubscriptionValidation"}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"validationResponse": "512d38b6-c7b8"}
    assert records(toy["log"], "on_event") == []  # a handshake invokes nothing

    grid_event = event("Test.Happened", "things/1", n=1)
    sent = requests.post(hook, params=params, json=[grid_event], headers={"aeg-event-type": "Notification"},
                         timeout=10)
    assert sent.status_code == 202
    cloud = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/test/source", "type": "Test.Cloud",
             "subject": "things/2", "time": "2026-11-27T10:00:00Z", "data": {"n": 2}}
    sent = requests.post(hook, params=params, data=json.dumps(cloud),
                         headers={"aeg-event-type": "Notification", "Content-Type": "application/cloudevents+json"},
                         timeout=10)
    assert sent.status_code == 202
    seen = {r["id"]: r for r in records(toy["log"], "on_event")}
    assert seen[grid_event["id"]]["schema"] == "eventgrid"
    assert seen[grid_event["id"]]["type"] == "Test.Happened" and seen[grid_event["id"]]["data"] == {"n": 1}
    assert seen[cloud["id"]]["schema"] == "cloudevents" and seen[cloud["id"]]["source"] == "/test/source"

    failing = requests.post(hook, params=params, json=[event("Test.Happened", "fail/1")],
                            headers={"aeg-event-type": "Notification"}, timeout=10)
    assert failing.status_code == 500  # Event Grid will retry
    options_answer = requests.options(hook, params=params, headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
                                      timeout=10)
    assert options_answer.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert requests.post(hook, params={**params, "functionName": "echo"}, json=[grid_event],
                         headers={"aeg-event-type": "Notification"}, timeout=10).status_code == 404
    assert requests.post(hook, params=params, json=[grid_event], timeout=10).status_code == 400  # no aeg header


# --------------------------------------------------------------------------- local Event Grid


def test_blob_created_once_per_blob_version_across_restarts(toy: dict[str, Any], start_host) -> None:
    settings = toy["settings"]
    account = StorageAccount(settings.storage_connection)
    landing = BlobStore(account, settings.landing_container)
    landing.ensure_container()
    other = BlobStore(account, f"other{uuid.uuid4().hex[:8]}")
    other.ensure_container()
    host = start_host()

    first = landing.upload_bytes("train/b1/Store1_a.csv", b"x,y\n1,2\n", content_type="text/csv")
    landing.upload_bytes("train/b1/Store2_a.csv", b"x,y\n3,4\n")
    other.upload_bytes("ignored.csv", b"1")
    blob_events = wait_for(lambda: len(records(toy["log"], "on_event")) >= 2 and records(toy["log"], "on_event"),
                           what="two BlobCreated events")
    by_subject = {r["subject"]: r for r in blob_events}
    subject = f"/blobServices/default/containers/{settings.landing_container}/blobs/train/b1/Store1_a.csv"
    one = by_subject[subject]
    assert one["type"] == "Microsoft.Storage.BlobCreated"
    assert one["topic"].endswith("/providers/Microsoft.Storage/storageAccounts/devstoreaccount1")
    data = one["data"]
    assert data["api"] == "PutBlob" and data["blobType"] == "BlockBlob" and data["contentType"] == "text/csv"
    assert data["eTag"].strip('"') == first.etag and data["contentLength"] == first.size
    assert data["url"].endswith(f"/{settings.landing_container}/train/b1/Store1_a.csv")
    assert len(data["sequencer"]) == 32 and "storageDiagnostics" in data

    second = landing.upload_bytes("train/b1/Store1_a.csv", b"x,y\n1,2\n5,6\n")  # a new version: one more event
    wait_for(lambda: len(records(toy["log"], "on_event")) >= 3, what="the new version's event")
    host.stop()
    landing.upload_bytes("train/b2/Store3_a.csv", b"x\n1\n")  # uploaded while the host is down
    start_host()
    wait_for(lambda: len(records(toy["log"], "on_event")) >= 4, what="the event of a blob uploaded while down")
    time.sleep(1.0)  # several polls: nothing already announced comes again
    events = records(toy["log"], "on_event")
    assert len(events) == 4
    versions = sorted((e["data"]["sequencer"], e["data"]["eTag"].strip('"')) for e in events if e["subject"] == subject)
    assert [etag for _, etag in versions] == [first.etag, second.etag]  # the sequencer orders a blob's versions
    assert len({e["data"]["sequencer"] for e in events}) == 4
    assert not any("ignored.csv" in e["subject"] for e in events)


def test_workspace_events_retry_then_dead_letter(toy: dict[str, Any], start_host) -> None:
    home = toy["settings"].home
    sink = FolderEventSink(outbox_dir(home, "workspace"))
    good, bad = event("Test.Happened", "runs/ok"), event("Test.Happened", "runs/fail")
    cloud, unmatched = event("Test.Cloud", "runs/cloud"), event("Test.Other", "runs/other")
    sink.publish([good, bad, cloud, unmatched])  # published before the host runs: kept, not lost
    start_host()

    letters = wait_for(lambda: dead_letters(home), what="the failing event to be dead-lettered")
    attempts = [r for r in records(toy["log"], "on_event") if r["id"] == bad["id"]]
    assert [r["retry"] for r in attempts] == [0, 1, 2]  # the subscription's maxDeliveryAttempts: 3
    assert len(letters) == 1
    letter = letters[0]
    assert letter["id"] == bad["id"] and letter["subscription"] == "ws"
    assert letter["deadLetterReason"] == "MaxDeliveryAttemptsExceeded" and letter["deliveryAttempts"] == 3
    assert "told to fail" in letter["lastDeliveryOutcome"]
    delivered = {r["id"]: r for r in records(toy["log"], "on_event")}
    assert delivered[good["id"]]["schema"] == "eventgrid"
    assert delivered[cloud["id"]]["schema"] == "cloudevents"  # the subscription asks for CloudEvents
    assert unmatched["id"] not in delivered
    assert [r["id"] for r in records(toy["log"], "on_event")].count(good["id"]) == 1
    assert not list(outbox_dir(home, "workspace").glob("*.json"))
    summary = eventgrid_summary(home)  # what a status page shows
    assert summary["deadlettered"] == 1 and summary["recent_deadletters"][0]["reason"] == "MaxDeliveryAttemptsExceeded"


def test_duplicate_delivery_option_delivers_every_event_twice(toy: dict[str, Any], start_host) -> None:
    home = toy["settings"].home
    start_host(delivery=DeliveryPolicy(max_attempts=2, backoff_seconds=0.1, duplicate=True))
    happened = event("Test.Happened", "runs/twice")
    FolderEventSink(outbox_dir(home, "workspace")).publish([happened])
    wait_for(lambda: [r for r in records(toy["log"], "on_event") if r["id"] == happened["id"]][1:],
             what="two deliveries")


def test_invalid_outbox_file_is_set_aside(toy: dict[str, Any], start_host) -> None:
    home = toy["settings"].home
    folder = outbox_dir(home, "workspace")
    folder.mkdir(parents=True)
    (folder / "0001-bad.json").write_text("{not json")
    FolderEventSink(folder).publish([event("Test.Happened", "runs/after-bad")])
    start_host()
    wait_for(lambda: records(toy["log"], "on_event"), what="the good file to be delivered")
    assert (home / "eventgrid" / "deadletter" / "_invalid" / "workspace" / "0001-bad.json").exists()


# --------------------------------------------------------------------------- queues and timers


def _queue(settings: Settings, name: str) -> QueueClient:
    client = StorageAccount(settings.storage_connection).queue_service().get_queue_client(name)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def test_queue_trigger_base64_and_poison_after_five(toy: dict[str, Any], start_host) -> None:
    settings, name = toy["settings"], toy["queue"]
    queue = _queue(settings, name)
    start_host()
    queue.send_message(base64.b64encode(b"hello").decode())
    queue.send_message(base64.b64encode(b"poison").decode())
    queue.send_message("not base64 at all!")

    wait_for(lambda: [r for r in records(toy["log"], "on_message") if r["body"] == "hello"], what="hello")
    poison = QueueClient.from_connection_string(_conn(settings), f"{name}-poison")

    def poisoned() -> list[Any]:
        try:
            return list(poison.peek_messages(max_messages=32))
        except ResourceNotFoundError:  # the host creates the poison queue with its first message
            return []

    moved = wait_for(lambda: len(poisoned()) >= 2 and poisoned(), what="two poison messages")
    bad = [r for r in records(toy["log"], "on_message") if r["body"] == "poison"]
    assert [r["dequeue_count"] for r in bad] == [1, 2, 3, 4, 5]
    assert sorted(m.content for m in moved) == sorted([base64.b64encode(b"poison").decode(), "not base64 at all!"])
    assert next(r for r in records(toy["log"], "on_message") if r["body"] == "hello")["dequeue_count"] == 1
    assert not list(queue.peek_messages(max_messages=32))  # handled messages are deleted


def test_a_long_invocation_keeps_its_message_hidden(toy: dict[str, Any], start_host) -> None:
    settings, name = toy["settings"], toy["queue"]
    queue = _queue(settings, name)
    start_host(queue_lease_seconds=2.0)  # renewed every ~0.7s while the function runs
    queue.send_message(base64.b64encode(b"slow:4").decode())
    wait_for(lambda: records(toy["log"], "slow_done"), what="the slow message to finish")
    time.sleep(1.0)
    runs = records(toy["log"], "on_message")
    assert [r["dequeue_count"] for r in runs] == [1]  # never redelivered while it ran


def _conn(settings: Settings) -> str:
    return settings.storage_connection


def test_timer_trigger_fires_and_catches_up_past_due(toy: dict[str, Any], start_host,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_TIMER", "*/1 * * * * *")
    host = start_host()
    ticks = wait_for(lambda: len(records(toy["log"], "tick")) >= 2 and records(toy["log"], "tick"),
                     what="two timer ticks")
    assert not any(t["past_due"] for t in ticks[:2])
    assert ticks[0]["status"]["Next"]
    host.stop()

    monkeypatch.setenv("TOY_TIMER", YEARLY)  # the next occurrence is months away...
    state = toy["settings"].home / "devhost" / "timers" / "tick.json"
    body = {"schedule": YEARLY, "last": None, "next": "2020-01-01T00:00:00+00:00", "updated": None}
    state.write_text(json.dumps(body))  # ...but one was missed while the host was down
    count = len(records(toy["log"], "tick"))
    start_host()
    caught_up = wait_for(lambda: records(toy["log"], "tick")[count:], what="the past-due tick")
    assert caught_up[0]["past_due"] is True


def test_invocations_log_one_line_each_with_outcome(toy: dict[str, Any], start_host,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from shared.devhost.logs import JsonFormatter

    host = start_host()
    caplog.set_level("INFO", logger="manymodels.devhost.invocations")
    requests.get(f"{host.url}/api/open", timeout=10)
    lines = [r for r in caplog.records if r.name == "manymodels.devhost.invocations"]
    assert len(lines) == 1
    body = json.loads(JsonFormatter().format(lines[0]))
    assert body["function"] == "open_door" and body["trigger"] == "httpTrigger" and body["outcome"] == "Succeeded"
    assert isinstance(body["duration_ms"], float)


# --------------------------------------------------------------------------- CLI: up --detach / keys / down


def test_up_detach_keys_and_down(toy: dict[str, Any]) -> None:
    settings = toy["settings"]
    env = {**os.environ, "MANYMODELS_HOME": str(settings.home)}
    cli = [sys.executable, "-m", "shared.cli"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    up = run("up", "--detach", "--port", "0", "--app", str(toy["app"]), "--subscriptions", str(toy["subs"]),
             "--json-logs", "--json")
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout.strip().splitlines()[-1])
        assert requests.get(f"{state['url']}/admin/host/ping", timeout=10).status_code == 200
        printed = run("keys").stdout.strip()
        assert printed == key_of(settings).function
        answer = requests.post(f"{state['url']}/api/echo/x", json={}, headers={"x-functions-key": printed}, timeout=10)
        assert answer.status_code == 200
        again = run("up", "--detach", "--port", "0", "--app", str(toy["app"]), "--json")
        assert json.loads(again.stdout.strip().splitlines()[-1])["pid"] == state["pid"]  # one host per home
        log_lines = (settings.home / "logs" / "host.log").read_text().splitlines()
        assert any(json.loads(line).get("function") == "echo" for line in log_lines if line.startswith("{"))
        assert printed not in "\n".join(log_lines)  # keys are never logged
    finally:
        down = run("down", "--keep-storage")
    assert down.returncode == 0, down.stderr
    assert not (settings.home / "devhost" / "host.json").exists()
    with pytest.raises(requests.RequestException):
        requests.get(f"{state['url']}/admin/host/ping", timeout=2)
