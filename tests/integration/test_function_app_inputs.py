"""Hostile inputs to the Function App on a real Azurite: blob names with unusual characters in a
BlobCreated subject, event data nested too deeply, and a barrage of bad requests against the real
local host (shared/devhost) serving function_app.py, which must keep answering without a restart."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func
import pytest
import requests
from test_flows_support import app_functions, event_grid_event, open_context

from shared.devhost import keys as host_keys
from shared.devhost.eventgrid import DeliveryPolicy
from shared.devhost.eventgrid import summary as eventgrid_summary
from shared.devhost.host import HostOptions, LocalHost
from shared.flows.context import Context, reset_context
from shared.settings import Settings
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

# names Azure Storage accepts as blob names; each lands in batch "b1" of the train folder
ACCEPTED = ["with space.csv", "100%.csv", "%2e%2e%2fescape.csv", "\u00fcn\u00efc\u00f8d\u00e9 \u6587\u4ef6.csv",
            "a#b.csv", "a?b=c.csv", "sub/dir/x.csv", "\u202etxt.csv", "x" * 300 + ".csv"]
# names refused with a logged reason (never a failed invocation, never a path outside the layout)
REFUSED = ["../../../etc/passwd", "..", "./x.csv", "a//b.csv", "x" * 1000 + ".csv", "\u00e9" * 600,
           "\U0001F600" * 300, "%" * 200, "tab\there.csv"]


def landing_event(ctx: Context, blob: str, **data) -> dict:
    return {"id": str(uuid.uuid4()), "topic": "/subscriptions/local/x",
            "subject": f"/blobServices/default/containers/{ctx.settings.landing_container}/blobs/{blob}",
            "eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2026-11-27T10:00:00Z",
            "data": {"eTag": '"0x8D4BCC2E4835CD0"', "contentLength": 3, "url": "http://127.0.0.1/x", **data},
            "dataVersion": ""}


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings) as context:
        yield context


def test_unusual_blob_names_are_recorded_verbatim_or_refused_never_fail(ctx: Context) -> None:
    # a 1004-character name (valid in Azure) is longer than a table key: the upsert failed with
    # InvalidInput and the webhook answered 500 (Event Grid retried it until dead-lettered)
    functions = app_functions()
    for name in ACCEPTED + REFUSED:
        functions["on_landing_event"](event_grid_event(landing_event(ctx, f"train/b1/{name}")))
    recorded = {f.name for f in ctx.ledger.batches.files("train", "b1")}
    assert recorded == set(ACCEPTED)
    assert [(f.name, f.path) for f in ctx.ledger.batches.files("train", "b1") if f.path != f"train/b1/{f.name}"] == []
    long_batch = "b" * 600
    functions["on_landing_event"](event_grid_event(landing_event(ctx, f"train/{long_batch}/x.csv")))
    assert all(b.batch != long_batch for b in ctx.ledger.batches.all())


def test_event_data_that_cannot_be_read_is_acknowledged(ctx: Context) -> None:
    functions = app_functions()
    deep: list = []
    for _ in range(200):
        deep = [deep]
    functions["on_landing_event"](event_grid_event(landing_event(ctx, "train/b2/x.csv", extra=deep)))
    functions["on_landing_event"](event_grid_event(landing_event(ctx, "train/b2/y.csv", contentLength=10**20)))
    binding = func.EventGridEvent(id="e-aml", data={"ModelName": "m", "ModelVersion": 2**40}, topic="t",
                                  subject="models/m:1", event_type="Microsoft.MachineLearningServices.ModelRegistered",
                                  event_time=dt.datetime(2026, 11, 27, tzinfo=dt.UTC), data_version="")
    functions["on_aml_event"](binding)  # acknowledged with a logged reason, not raised
    functions["on_aml_event"](func.EventGridEvent(
        id="x" * 2000, data={}, topic="t", subject="experiments/e/runs/r",
        event_type="Microsoft.MachineLearningServices.RunCompleted", event_time=None, data_version=""))
    assert ctx.ledger.batches.files("train", "b2") == []


@pytest.fixture
def real_host(storage_settings: Settings) -> Iterator[LocalHost]:
    reset_context()  # the functions run in this process: their context must be this test's settings
    host = LocalHost(storage_settings, HostOptions(port=0, poll_interval=0.5, delivery=DeliveryPolicy(
        max_attempts=2, backoff_seconds=0.1, max_backoff_seconds=0.2)))
    host.start()
    try:
        yield host
    finally:
        host.stop()
        reset_context()


def test_the_real_host_survives_a_barrage_and_keeps_answering(real_host: LocalHost,
                                                              storage_settings: Settings) -> None:
    keys = host_keys.load_or_create(storage_settings.home)
    base, thread, pid = real_host.url, real_host.server.serving_thread, os.getpid()
    hook = f"{base}/runtime/webhooks/eventgrid"
    hook_params = {"functionName": "on_landing_event", "code": keys.eventgrid}
    notify = {"aeg-event-type": "Notification", "Content-Type": "application/json"}
    fn = {"x-functions-key": keys.function}
    landing = storage_settings.landing_container
    deep = b"[" * 100_000 + b"]" * 100_000

    def subject_event(name: str) -> bytes:
        return json.dumps([{"id": str(uuid.uuid4()), "topic": "t", "eventType": "Microsoft.Storage.BlobCreated",
                            "subject": f"/blobServices/default/containers/{landing}/blobs/train/bz/{name}",
                            "eventTime": "2026-11-27T10:00:00Z", "dataVersion": "",
                            "data": {"eTag": "0x1", "contentLength": 1}}]).encode()

    calls = [("POST", f"{base}/api/train", fn, b'{"dataset_version": 1e20}', 400),
             ("POST", f"{base}/api/train", fn, b'{"dataset_version": 100000000000000000000}', 400),
             ("POST", f"{base}/api/forecast", fn, b'{"dataset_version": 100000000000000000000}', 400),
             ("POST", f"{base}/api/forecast", fn, deep, 400),
             ("POST", f"{base}/api/deploy", fn, b"\xff\xfe", 400),
             ("POST", f"{base}/api/train", fn, b'{"dataset_version": NaN}', 400),
             ("POST", f"{base}/api/train", {}, b"{}", 401),
             ("POST", hook, notify, deep, 400),
             ("POST", hook, notify, b'[{"id": "1", "eventType": "T", "data": NaN}]', 400)]
    calls += [("POST", hook, notify, subject_event(name), 202) for name in ACCEPTED + REFUSED]

    def send(call: tuple) -> tuple[int, int, str]:
        method, url, headers, body, expected = call
        params = hook_params if url == hook else None
        answer = requests.request(method, url, params=params, headers=headers, data=body, timeout=60)
        return answer.status_code, expected, f"{url} {body[:60]!r}: {answer.text[:200]}"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, calls * 3))
    wrong = [r for r in results if r[0] != r[1]]
    assert not wrong, wrong
    assert requests.get(f"{base}/admin/host/ping", timeout=10).status_code == 200
    health = requests.get(f"{base}/api/health", headers=fn, timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert real_host.server.serving_thread is thread and thread.is_alive() and os.getpid() == pid  # no restart


def test_uploaded_blobs_with_unusual_names_reach_the_ledger_through_the_real_host(real_host: LocalHost,
                                                                                  storage_settings: Settings) -> None:
    # Azurite -> blob polling -> local Event Grid -> webhook -> on_landing_event, names untouched
    from shared.storage.blobs import BlobStore

    ctx = Context(storage_settings)
    store = BlobStore(ctx.storage, storage_settings.landing_container)
    store.ensure_container()
    names = ["with space.csv", "100%.csv", "a#b?c.csv", "\u00fcn\u00efc\u00f8d\u00e9.csv", "x" * 900 + ".csv"]
    for name in names:
        store.upload_bytes(f"train/bu/{name}", b"a,b\n1,2\n")
    ledger = ctx.ledger
    def recorded_names() -> set[str]:
        return {f.name for f in ledger.batches.files("train", "bu")}

    with contextlib.suppress(AssertionError):  # the assertion below names what is missing
        wait_until(lambda: recorded_names() >= set(names[:-1]) and real_host.grid.pending() == 0,
                   timeout=60, interval=0.1, what="every delivery to finish")  # every delivery finished
    recorded = recorded_names()
    assert recorded == set(names[:-1])  # the 904-character one is refused with a logged reason
    assert eventgrid_summary(storage_settings.home)["deadlettered"] == 0  # every delivery was acknowledged
    ctx.close()
