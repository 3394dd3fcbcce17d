"""Pure parts of the local host: routes, subscription filters, schedules, host.json, keys, bindings."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import azure.functions as func
import pytest

from shared.devhost import subscriptions as subs
from shared.devhost.bindings import event_input, http_answer
from shared.devhost.eventgrid import DeliveryPolicy
from shared.devhost.hostconfig import HostConfig, timespan_seconds
from shared.devhost.keys import HostKeys
from shared.devhost.server import compile_route
from shared.devhost.timers import Schedule
from shared.errors import InvalidValue

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_route_templates_match_like_aspnet() -> None:
    items = compile_route("items/{id:int}/{rest?}")
    assert items.match("/items/42").groupdict() == {"id": "42", "rest": None}
    assert items.match("/ITEMS/42/x").groupdict() == {"id": "42", "rest": "x"}  # case-insensitive
    assert items.match("/items/abc") is None
    assert compile_route("files/{*path}").match("/files/a/b/c.csv").group("path") == "a/b/c.csv"
    assert compile_route("status").match("/status/")
    assert compile_route("status").match("/statusx") is None


def test_the_repo_subscriptions_file_loads_and_follows_the_landing_container() -> None:
    loaded = {s.name: s for s in subs.load(landing_container="landing-test1")}
    landing = loaded["landing-blob-created"]
    assert landing.function == "on_landing_event" and landing.topic == "storage"
    assert landing.container == "landing-test1"
    blob = {"eventType": "Microsoft.Storage.BlobCreated",
            "subject": "/blobServices/default/containers/landing-test1/blobs/train/b/x.csv"}
    assert landing.matches(blob)
    assert not landing.matches({**blob, "subject": "/blobServices/default/containers/landing/blobs/x.csv"})
    assert not landing.matches({**blob, "eventType": "Microsoft.Storage.BlobDeleted"})
    aml = loaded["aml-run-events"]
    assert aml.matches({"eventType": "microsoft.machinelearningservices.runcompleted", "subject": "experiments/x"})
    assert aml.container is None


def test_a_bad_subscription_names_the_entry_and_field(tmp_path: Path) -> None:
    path = tmp_path / "subs.json"
    path.write_text(json.dumps({"topics": {"storage": {}}, "subscriptions": [
        {"name": "x", "topic": "storage", "function": "f", "maxDeliveryAttempts": 99}]}))
    with pytest.raises(InvalidValue, match=r"subscriptions\[0\]: 'maxDeliveryAttempts' is 99"):
        subs.load(path)
    path.write_text(json.dumps({"topics": {"storage": {}}, "subscriptions": [
        {"name": "x", "topic": "elsewhere", "function": "f"}]}))
    with pytest.raises(InvalidValue, match="topic 'elsewhere' is not declared"):
        subs.load(path)


def test_cloud_event_conversion_keeps_the_fields() -> None:
    event = {"id": "1", "topic": "/t", "subject": "s", "eventType": "T", "eventTime": "2026-01-01T00:00:00Z",
             "data": {"a": 1}, "dataVersion": "1"}
    cloud = subs.to_cloud_event(event)
    assert cloud == {"specversion": "1.0", "id": "1", "source": "/t", "type": "T", "subject": "s",
                     "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json", "data": {"a": 1}}
    assert isinstance(event_input(cloud), func.CloudEvent)
    grid = event_input(event)
    assert isinstance(grid, func.EventGridEvent) and grid.event_type == "T" and grid.get_json() == {"a": 1}


def test_ncrontab_schedules_have_six_fields_and_timespans_work() -> None:
    start = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=dt.UTC)
    assert Schedule("0 */5 * * * *").next_after(start) == start + dt.timedelta(minutes=5)
    assert Schedule("*/10 * * * * *").next_after(start) == start + dt.timedelta(seconds=10)
    assert Schedule("00:00:30").next_after(start) == start + dt.timedelta(seconds=30)
    with pytest.raises(InvalidValue, match="six fields"):
        Schedule("*/5 * * * *")  # five-field cron is not NCRONTAB
    with pytest.raises(InvalidValue):
        Schedule("every minute")


def test_host_json_queue_settings(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {
        "http": {"routePrefix": "/v1/"},
        "queues": {"batchSize": 4, "maxDequeueCount": 3, "visibilityTimeout": "00:00:30",
                   "maxPollingInterval": "00:00:01", "messageEncoding": "none"}}}))
    config = HostConfig.load(tmp_path, max_polling_cap=2.0)
    assert config.route_prefix == "v1"
    q = config.queues
    assert (q.batch_size, q.max_dequeue_count, q.visibility_timeout, q.max_polling_interval, q.message_encoding) == \
        (4, 3, 30.0, 1.0, "none")
    assert HostConfig.load(tmp_path / "nothing").queues.max_dequeue_count == 5
    assert timespan_seconds(2000, field="x") == 2.0
    with pytest.raises(InvalidValue, match="TimeSpan"):
        timespan_seconds("30s", field="extensions.queues.visibilityTimeout")


def test_the_repo_host_json_is_understood() -> None:
    config = HostConfig.load(REPO_ROOT)
    assert config.queues.max_dequeue_count == 5 and config.queues.message_encoding == "base64"


def test_keys_open_their_levels_only() -> None:
    keys = HostKeys(function="f" * 20, master="m" * 20, eventgrid="e" * 20)
    assert keys.allows("anonymous", None)
    assert keys.allows("function", "f" * 20) and keys.allows("function", "m" * 20)
    assert not keys.allows("function", "e" * 20) and not keys.allows("function", None)
    assert keys.allows("admin", "m" * 20) and not keys.allows("admin", "f" * 20)
    assert keys.allows_eventgrid("e" * 20) and not keys.allows_eventgrid("f" * 20)
    assert "f" * 20 not in repr(keys)


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = DeliveryPolicy(backoff_seconds=1.0, max_backoff_seconds=5.0)
    waits = [policy.backoff(n) for n in (1, 2, 3, 4)]
    assert 0.9 <= waits[0] <= 1.1 and 1.8 <= waits[1] <= 2.2 and 3.6 <= waits[2] <= 4.4 and waits[3] <= 5.5


def test_http_return_values_become_answers() -> None:
    answer = http_answer(func.HttpResponse("x", status_code=201, mimetype="text/csv"))
    assert answer.status == 201 and answer.body == b"x"
    assert ("Content-Type", "text/csv; charset=utf-8") in answer.headers
    assert http_answer(None).status == 204
    assert http_answer("hi").body == b"hi"
    assert json.loads(http_answer({"a": 1}).body) == {"a": 1}


def test_local_settings_values_fill_the_environment_without_overriding(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.devhost.hostconfig import load_local_settings

    monkeypatch.setenv("DEVHOST_TEST_SET", "from-env")
    monkeypatch.delenv("DEVHOST_TEST_NEW", raising=False)
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"DEVHOST_TEST_SET": "from-file", "DEVHOST_TEST_NEW": "7"}}))
    try:
        assert load_local_settings(tmp_path) == ["DEVHOST_TEST_NEW"]
        assert os.environ["DEVHOST_TEST_SET"] == "from-env" and os.environ["DEVHOST_TEST_NEW"] == "7"
    finally:
        os.environ.pop("DEVHOST_TEST_NEW", None)
    assert load_local_settings(tmp_path / "none") == []
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(InvalidValue, match="IsEncrypted"):
        load_local_settings(tmp_path)


def test_functions_are_indexed_once_per_app_from_their_bindings() -> None:
    from shared.devhost.functions import TriggerKind, index_app, resolve_setting

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.queue_trigger(arg_name="msg", queue_name="%SOME_QUEUE%", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage) -> None: ...

    @app.route(route="things/{id}", methods=["GET"])
    def things(req: func.HttpRequest) -> str:
        return "x"

    first = index_app(app)
    assert index_app(app) is first  # the library refuses a second get_functions() on one app
    specs = {s.name: s for s in first}
    assert specs["work"].kind is TriggerKind.QUEUE and specs["work"].trigger["queueName"] == "%SOME_QUEUE%"
    assert specs["things"].trigger["authLevel"] == "FUNCTION" and specs["things"].trigger_param == "req"
    assert resolve_setting("%SOME_QUEUE%-x", environ={"SOME_QUEUE": "q1"}) == "q1-x"
    with pytest.raises(InvalidValue, match="SOME_QUEUE is not set"):
        resolve_setting("%SOME_QUEUE%", environ={})
