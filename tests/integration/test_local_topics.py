"""Custom topics of the local Event Grid (shared/devhost/topics.py) on the real local host:
``EventGridPublisherClient`` publishes Event Grid schema events and CloudEvents to
``/topics/<topic>/api/events`` unchanged, what Azure refuses is refused with a clear 4xx (and
nothing is kept), accepted events land in the topic's append-only log and reach webhook
subscribers (a small HTTP server in the test) with Event Grid's headers, retries and dead letters.
"""

from __future__ import annotations

import json
import stat
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from shared.devhost import topics
from shared.devhost.eventgrid import DeliveryPolicy, dead_letters
from shared.devhost.host import HostOptions, LocalHost
from shared.devhost.subscriptions import DeliverySchema
from shared.errors import InvalidValue, NotFound
from shared.settings import Settings
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

EG = topics.TopicSchema.EVENT_GRID
CE = topics.TopicSchema.CLOUD_EVENTS

# an app with an Event Grid function only: the host needs no storage listener for these tests
APP = textwrap.dedent('''
    import azure.functions as func

    app = func.FunctionApp()


    @app.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent) -> None:
        pass
''')


class Webhook:
    """A subscriber on 127.0.0.1: records every request; answers the statuses queued in ``answers``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.lock:
                    status = hook.answers.pop(0) if hook.answers else 200
                    hook.received.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": json.loads(body), "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def ok(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if 200 <= r["status"] < 300 and (path is None or r["path"] == path)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    return wait_until(check, timeout=timeout, interval=0.05, what=what)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def start_host(tmp_path: Path, settings: Settings) -> Iterator[Callable[[], LocalHost]]:
    app = tmp_path / f"topicsapp_{uuid.uuid4().hex[:8]}.py"
    app.write_text(APP)
    subs = tmp_path / "subscriptions.json"
    subs.write_text(json.dumps({"topics": {}, "subscriptions": []}))
    started: list[LocalHost] = []

    def start() -> LocalHost:
        options = HostOptions(app_path=app, port=0, subscriptions_path=subs, poll_interval=0.2,
                              delivery=DeliveryPolicy(max_attempts=4, backoff_seconds=0.05, max_backoff_seconds=0.2))
        host = LocalHost(settings, options)
        host.start()
        started.append(host)
        return host

    yield start
    for host in started:
        if host._parts:
            host.stop()


@pytest.fixture
def host(start_host: Callable[[], LocalHost]) -> LocalHost:
    return start_host()


def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- the SDK's own client


def test_sdk_publishes_event_grid_events_which_are_logged_and_delivered(host: LocalHost, webhook: Webhook) -> None:
    name = topic_name()
    endpoint, key = topics.ensure_topic(host.home, name, input_schema=EG, host_url=host.url)
    assert endpoint == f"{host.url}/topics/{name}/api/events"
    topics.subscribe(host.home, name, webhook.url("/eg"), name="eg-hook")  # subscribed while the host runs
    topics.subscribe(host.home, name, webhook.url("/ce"), name="ce-hook", delivery_schema=DeliverySchema.CLOUD_EVENTS)
    topics.subscribe(host.home, name, webhook.url("/other"), name="other-hook", included_event_types=["Other.Type"])

    client = EventGridPublisherClient(endpoint, AzureKeyCredential(key))
    sent = [EventGridEvent(subject=f"/forecasts/{i}", event_type="ManyModels.Test", data={"n": i}, data_version="2")
            for i in range(2)]
    client.send(sent)  # raises unless the endpoint answered 200

    logged = topics.read_events(host.home, name)
    assert [e.sequence for e in logged] == [1, 2]
    assert [e.event["id"] for e in logged] == [str(e.id) for e in sent]
    topic_id = f"/subscriptions/local/resourceGroups/local/providers/Microsoft.EventGrid/topics/{name}"
    assert all(e.event["topic"] == topic_id and e.event["metadataVersion"] == "1" for e in logged)
    assert topics.read_events(host.home, name, after=1)[0].event["id"] == str(sent[1].id)

    eg = wait_for(lambda: len(webhook.ok("/eg")) == 2 and webhook.ok("/eg"), what="Event Grid schema deliveries")
    assert sorted(r["body"][0]["id"] for r in eg) == sorted(str(e.id) for e in sent)
    first = eg[0]
    assert isinstance(first["body"], list) and len(first["body"]) == 1  # Event Grid delivers arrays
    assert first["headers"]["aeg-event-type"] == "Notification"
    assert first["headers"]["aeg-subscription-name"] == f"{name}.eg-hook".upper()
    assert first["headers"]["aeg-delivery-count"] == "0"
    assert first["headers"]["aeg-data-version"] == "2"
    ce = wait_for(lambda: len(webhook.ok("/ce")) == 2 and webhook.ok("/ce"), what="CloudEvents deliveries")
    assert ce[0]["headers"]["content-type"].startswith("application/cloudevents+json")
    assert ce[0]["body"]["specversion"] == "1.0" and ce[0]["body"]["source"] == topic_id
    assert ce[0]["body"]["type"] == "ManyModels.Test"
    time.sleep(0.3)
    assert webhook.ok("/other") == []  # filtered out by its event types


def test_sdk_publishes_cloud_events_in_a_batch_and_one_at_a_time(host: LocalHost, webhook: Webhook) -> None:
    name = topic_name()
    endpoint, key = topics.ensure_topic(host.home, name, host_url=host.url)  # CloudEvents is the default
    topics.subscribe(host.home, name, webhook.url())
    client = EventGridPublisherClient(endpoint, AzureKeyCredential(key))
    batch = [CloudEvent(source="/manymodels/local", type="manymodels.forecasts.ready", subject="run-1",
                        data={"rows": 10}),
             CloudEvent(source="/manymodels/local", type="manymodels.run.failed", data=b"raw bytes",
                        extensions={"runid": "r1"})]
    client.send(batch)
    client.send(CloudEvent(source="/manymodels/local", type="manymodels.training.finished", data=None))
    single = {"specversion": "1.0", "id": "raw-1", "source": "/curl", "type": "manymodels.curl"}
    answer = requests.post(endpoint, data=json.dumps(single), timeout=10, headers={
        "aeg-sas-key": key, "Content-Type": "application/cloudevents+json; charset=utf-8"})
    assert (answer.status_code, answer.content) == (200, b"")

    logged = topics.read_events(host.home, name)
    assert [e.event["type"] for e in logged] == ["manymodels.forecasts.ready", "manymodels.run.failed",
                                                "manymodels.training.finished", "manymodels.curl"]
    assert logged[0].event["id"] == batch[0].id and logged[1].event["runid"] == "r1"
    assert "data_base64" in logged[1].event
    got = wait_for(lambda: len(webhook.ok()) == 4 and webhook.ok(), what="four CloudEvents deliveries")
    assert sorted(r["body"]["id"] for r in got) == sorted(e.event["id"] for e in logged)
    assert all(r["headers"]["content-type"].startswith("application/cloudevents+json") for r in got)


def test_sdk_sees_a_wrong_key_as_an_authentication_error(host: LocalHost) -> None:
    name = topic_name()
    endpoint, _ = topics.ensure_topic(host.home, name, input_schema=EG, host_url=host.url)
    client = EventGridPublisherClient(endpoint, AzureKeyCredential("not-the-key"))
    with pytest.raises(ClientAuthenticationError):
        client.send([EventGridEvent(subject="s", event_type="T", data={}, data_version="1")])
    big = EventGridPublisherClient(endpoint, AzureKeyCredential(topics.topic_key(host.home, name)))
    with pytest.raises(HttpResponseError) as raised:
        big.send([EventGridEvent(subject="s", event_type="T", data={"x": "y" * 70_000}, data_version="1")])
    assert raised.value.status_code == 413 and "64 KB" in str(raised.value)
    assert topics.read_events(host.home, name) == []


def test_concurrent_publishers_get_unique_ordered_sequences_and_one_delivery_each(host: LocalHost,
                                                                                   webhook: Webhook) -> None:
    name = topic_name()
    endpoint, key = topics.ensure_topic(host.home, name, host_url=host.url)
    topics.subscribe(host.home, name, webhook.url())
    errors: list[BaseException] = []

    def publish(worker: int) -> None:
        try:
            client = EventGridPublisherClient(endpoint, AzureKeyCredential(key))
            for batch in range(5):
                client.send([CloudEvent(source=f"/w{worker}", type="T", data={"batch": batch, "i": i})
                             for i in range(3)])
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    logged = topics.read_events(host.home, name)
    assert [e.sequence for e in logged] == list(range(1, 61))
    assert len({e.event["id"] for e in logged}) == 60
    got = wait_for(lambda: len(webhook.ok()) >= 60 and webhook.ok(), what="60 deliveries")
    time.sleep(0.3)
    assert sorted(r["body"]["id"] for r in webhook.ok()) == sorted(e.event["id"] for e in logged)
    assert len(got) == 60
    assert host.status()["topics"] == [{"name": name, "inputSchema": CE.value, "lastSequence": 60,
                                        "subscriptions": [topics.subscriptions_of(host.home, name)[0].name]}]


# --------------------------------------------------------------------------- what Azure refuses


def _eg(**changes: Any) -> dict[str, Any]:
    event = {"id": str(uuid.uuid4()), "subject": "/s", "eventType": "T", "eventTime": "2026-12-03T07:00:00.1234567Z",
             "data": {"a": 1}, "dataVersion": "1"}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def _ce(**changes: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/src", "type": "T", "data": {"a": 1}}
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


JSON = "application/json; charset=utf-8"
BATCH = "application/cloudevents-batch+json; charset=utf-8"

REFUSED = [
    # (topic schema, body, content type, key, status, words the message must hold)
    (EG, [_eg()], JSON, None, 401, "aeg-sas-key header is required"),
    (EG, [_eg()], JSON, "wrong", 401, "does not hold a key"),
    (EG, [_eg(id=None)], JSON, "key", 400, "'id' is missing"),
    (EG, [_eg(), _eg(subject=None)], JSON, "key", 400, "event [1]: required field 'subject'"),
    (EG, [_eg(eventType=7)], JSON, "key", 400, "'eventType' must be a non-empty string, got number"),
    (EG, [_eg(eventTime="yesterday")], JSON, "key", 400, "'eventTime' must be an RFC 3339"),
    (EG, [_eg(metadataVersion="2")], JSON, "key", 400, "'metadataVersion'"),
    (EG, _eg(), JSON, "key", 400, "must be a JSON array"),
    (EG, [], JSON, "key", 400, "no events"),
    (EG, [_ce()], JSON, "key", 400, "is a CloudEvent"),
    (EG, [_ce()], BATCH, "key", 400, "not CloudEvents"),
    (EG, [_eg(data="x" * (64 * 1024))], JSON, "key", 413, "64 KB"),
    (EG, [_eg(data="x" * 60_000) for _ in range(20)], JSON, "key", 413, "1 MB"),
    (EG, b"[{not json", JSON, "key", 400, "not valid JSON"),
    (EG, b'[{"id": "1", "subject": "/s", "eventType": "T", "eventTime": "2026-12-03T07:00:00Z", "data": NaN}]',
     JSON, "key", 400, "not valid JSON"),
    (EG, b"", JSON, "key", 400, "the request body is empty"),
    (EG, b"null", JSON, "key", 400, "must be a JSON array of events, got a JSON null"),
    (CE, [_eg()], BATCH, "key", 400, "is an Event Grid schema event"),
    (CE, [_ce()], JSON, "key", 400, "Content-Type must be application/cloudevents-batch+json"),
    (CE, _ce(), BATCH, "key", 400, "needs a JSON array"),
    (CE, [_ce()], "application/cloudevents+json", "key", 400, "needs one CloudEvent"),
    (CE, [_ce(source=None)], BATCH, "key", 400, "'source' is missing"),
    (CE, [_ce(specversion="0.3")], BATCH, "key", 400, "'specversion' must be \"1.0\""),
    (CE, [_ce(time="noon")], BATCH, "key", 400, "'time' must be an RFC 3339"),
    (CE, [_ce(data_base64="eHg=")], BATCH, "key", 400, "cannot both be set"),
    (CE, [_ce(MyExt="v")], BATCH, "key", 400, "'MyExt' are not allowed"),
]


@pytest.mark.parametrize(("schema", "body", "content_type", "key", "status", "words"), REFUSED)
def test_what_azure_refuses_answers_a_clear_4xx_and_keeps_nothing(host: LocalHost, webhook: Webhook,
                                                                  schema: topics.TopicSchema, body: Any,
                                                                  content_type: str, key: str | None, status: int,
                                                                  words: str) -> None:
    name = topic_name()
    endpoint, real_key = topics.ensure_topic(host.home, name, input_schema=schema, host_url=host.url)
    topics.subscribe(host.home, name, webhook.url())
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["aeg-sas-key"] = real_key if key == "key" else key
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = requests.post(f"{endpoint}?api-version=2018-01-01", data=data, headers=headers, timeout=10)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error["message"], error
    assert error["code"]
    assert topics.read_events(host.home, name) == []
    time.sleep(0.2)
    assert webhook.received == [] and host.grid.pending() == 0


def test_unknown_topic_and_other_methods(host: LocalHost) -> None:
    answer = requests.post(f"{host.url}/topics/nosuch/api/events", json=[_eg()], headers={"aeg-sas-key": "k"},
                           timeout=10)
    assert answer.status_code == 404 and "nosuch" in answer.json()["error"]["message"]
    name = topic_name()
    endpoint, key = topics.ensure_topic(host.home, name, host_url=host.url)
    answer = requests.get(endpoint, headers={"aeg-sas-key": key}, timeout=10)
    assert answer.status_code == 405
    # the second key opens the topic too, as Azure's key2 does
    key2 = json.loads((topics.topic_dir(host.home, name) / "topic.json").read_text())["key2"]
    answer = requests.post(endpoint, data=json.dumps([_ce()]), headers={"aeg-sas-key": key2, "Content-Type": BATCH},
                           timeout=10)
    assert answer.status_code == 200


# --------------------------------------------------------------------------- delivery


def test_a_failing_webhook_is_retried_and_a_refusing_one_dead_lettered(host: LocalHost, webhook: Webhook) -> None:
    name = topic_name()
    endpoint, key = topics.ensure_topic(host.home, name, input_schema=EG, host_url=host.url)
    topics.subscribe(host.home, name, webhook.url("/flaky"), name="flaky")
    webhook.answers = [503, 500]  # the first two deliveries fail, the third succeeds
    EventGridPublisherClient(endpoint, AzureKeyCredential(key)).send(
        [EventGridEvent(subject="/a", event_type="T", data={}, data_version="1")])
    wait_for(lambda: webhook.ok("/flaky"), what="the delivery after two failures")
    assert [r["headers"]["aeg-delivery-count"] for r in webhook.received] == ["0", "1", "2"]
    assert dead_letters(host.home) == []

    topics.unsubscribe(host.home, name, "flaky")
    topics.subscribe(host.home, name, webhook.url("/refuses"), name="refuses")
    webhook.answers = [400]  # Event Grid does not retry a 400: dead-lettered at once
    EventGridPublisherClient(endpoint, AzureKeyCredential(key)).send(
        [EventGridEvent(subject="/b", event_type="T", data={}, data_version="1")])
    letters = wait_for(lambda: dead_letters(host.home), what="a dead letter")
    assert letters[0]["subscription"] == f"{name}.refuses"
    assert letters[0]["deadLetterReason"] == "DeliveryFailedWithoutRetry" and letters[0]["deliveryAttempts"] == 1
    assert [r["path"] for r in webhook.received] == ["/flaky"] * 3 + ["/refuses"]


def test_an_unreachable_webhook_is_retried_then_dead_lettered(host: LocalHost) -> None:
    name = topic_name()
    endpoint, key = topics.ensure_topic(host.home, name, host_url=host.url)
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there
    topics.subscribe(host.home, name, f"http://127.0.0.1:{port}/gone", name="gone", max_delivery_attempts=2)
    EventGridPublisherClient(endpoint, AzureKeyCredential(key)).send([CloudEvent(source="/s", type="T", data={})])
    letters = wait_for(lambda: dead_letters(host.home), what="a dead letter")
    assert letters[0]["deadLetterReason"] == "MaxDeliveryAttemptsExceeded" and letters[0]["deliveryAttempts"] == 2
    assert "no answer from the webhook" in letters[0]["lastDeliveryOutcome"]


def test_the_log_survives_a_restart_and_its_sequence_continues_past_a_torn_line(start_host: Callable[[], LocalHost],
                                                          webhook: Webhook) -> None:
    first = start_host()
    name = topic_name()
    endpoint, key = topics.ensure_topic(first.home, name, input_schema=EG, host_url=first.url)
    EventGridPublisherClient(endpoint, AzureKeyCredential(key)).send(
        [EventGridEvent(subject="/1", event_type="T", data={}, data_version="1")])
    first.stop()
    with open(topics.log_file(first.home, name), "a") as f:
        f.write('{"sequence": 2, "receivedTi')  # a write cut short by a crash

    second = start_host()
    endpoint, key = topics.ensure_topic(second.home, name, host_url=second.url, input_schema=EG)
    topics.subscribe(second.home, name, webhook.url())
    EventGridPublisherClient(endpoint, AzureKeyCredential(key)).send(
        [EventGridEvent(subject="/2", event_type="T", data={}, data_version="1")])
    logged = topics.read_events(second.home, name)
    assert [(e.sequence, e.event["subject"]) for e in logged] == [(1, "/1"), (2, "/2")]
    wait_for(lambda: webhook.ok(), what="the delivery after the restart")


# --------------------------------------------------------------------------- the functions the CLI calls


def test_topic_and_subscription_rules(home: Path) -> None:
    endpoint, key = topics.ensure_topic(home, "product-events", host_url="http://127.0.0.1:9999/")
    assert endpoint == "http://127.0.0.1:9999/topics/product-events/api/events"
    assert topics.ensure_topic(home, "product-events", host_url="http://h").key == key  # created once
    assert topics.topic_key(home, "product-events") == key
    assert stat.S_IMODE((topics.topic_dir(home, "product-events") / "topic.json").stat().st_mode) == 0o600
    assert topics.list_topics(home) == ["product-events"]
    assert "7071" in topics.ensure_topic(home, "product-events").endpoint  # no host running: the default port
    with pytest.raises(InvalidValue, match="cannot change"):
        topics.ensure_topic(home, "product-events", input_schema=EG)
    with pytest.raises(InvalidValue, match="3 to 50"):
        topics.ensure_topic(home, "no/slash")
    with pytest.raises(NotFound, match="ensure_topic"):
        topics.topic_key(home, "never-made")
    with pytest.raises(InvalidValue, match="CloudEvents"):
        topics.subscribe(home, "product-events", "http://127.0.0.1:1/x", delivery_schema=DeliverySchema.EVENT_GRID)
    with pytest.raises(InvalidValue, match="webhook_url"):
        topics.subscribe(home, "product-events", "ftp://x/y")
    with pytest.raises(InvalidValue, match="max_delivery_attempts"):
        topics.subscribe(home, "product-events", "http://127.0.0.1:1/x", max_delivery_attempts=0)
    one = topics.subscribe(home, "product-events", "http://127.0.0.1:1/x?code=secret")
    again = topics.subscribe(home, "product-events", "http://127.0.0.1:1/x?code=secret", included_event_types=["A"])
    assert one.name == again.name and one.name.startswith("product-events.webhook-")
    assert [s.included_event_types for s in topics.subscriptions_of(home, "product-events")] == [("A",)]
    assert "secret" not in repr(again)
    assert topics.unsubscribe(home, "product-events", again.name.split(".", 1)[1])
    assert not topics.unsubscribe(home, "product-events", "nothing-here")
    assert topics.subscriptions_of(home, "product-events") == ()
