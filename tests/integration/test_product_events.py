"""The product's own events through the outbox (shared/flows/outbox.py) on Azurite, published
by the real ``EventGridPublisherClient`` to a 127.0.0.1 recorder that keeps what it gets."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_flows_support import (
    app_functions,
    drain_queue,
    event_grid_event,
    make_run,
    open_context,
    register_models,
    timer,
)

from shared import product_events
from shared.flows import outbox
from shared.flows.context import Context
from shared.ledger import OutboxState, RunState
from shared.product_events import ProductEventType, event_id
from shared.settings import Settings
from shared.workspace.base import PipelineKind, RunStatus
from shared.workspace.local.events import run_completed, run_failed

pytestmark = pytest.mark.integration
NAMES = ("lr_a_1000", "lr_b_1001")
KEY = "test-topic-key"


class Recorder:
    """A tiny Event Grid topic: answers 200 and records (headers, body) of every POST."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], Any]] = []
        self.refuse_subject = ""  # a request holding an event with this subject gets a 400, as Azure answers
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if recorder.refuse_subject and any(e.get("subject") == recorder.refuse_subject for e in body):
                    answer = json.dumps({"error": {"code": "BadRequest", "message": "event [0] is refused"}}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                recorder.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for _, body in self.requests for e in body]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def functions():
    return app_functions()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def ctx(storage_settings: Settings, recorder: Recorder) -> Iterator[Context]:
    settings = storage_settings.replace(events_topic_endpoint=recorder.endpoint, events_topic_key=KEY)
    with open_context(settings) as context:
        yield context


def completed_training(ctx: Context, tmp_path: Path):
    run = make_run(ctx.workspace, PipelineKind.TRAINING)
    register_models(ctx.workspace, NAMES, tmp_path, run_id=run.run_id)
    return ctx.workspace.runs.update(run.run_id, status=RunStatus.COMPLETED,
                                     counts={"series": 2, "succeeded": 2, "failed": 0, "model_type_lr": 2})


def test_a_crash_between_fact_and_publish_loses_nothing_and_publishes_once(functions, ctx, recorder, tmp_path,
                                                                          monkeypatch) -> None:
    run = completed_training(ctx, tmp_path)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the worker died before publishing")

    with monkeypatch.context() as m:
        m.setattr(outbox, "drain_after", crash)
        with pytest.raises(RuntimeError):
            functions["on_aml_event"](event_grid_event(run_completed(run)))
    assert ctx.ledger.runs.get(run.run_id).state == RunState.COMPLETED  # the fact is durable
    assert recorder.events == []  # ... and nothing was published
    [pending] = ctx.ledger.outbox.all(state=OutboxState.PENDING)
    assert pending.event_id == event_id(ProductEventType.TRAINING_FINISHED, run.run_id)

    functions["reconcile"](timer())  # the reconcile timer drains the outbox
    functions["reconcile"](timer())
    functions["on_aml_event"](event_grid_event(run_completed(run)))  # a redelivery of the run's event

    [event] = recorder.events
    assert event["type"] == "manymodels.training.finished" and event["id"] == pending.event_id
    assert event["specversion"] == "1.0" and event["subject"] == f"runs/{run.run_id}"
    assert event["data"]["run_id"] == run.run_id and event["data"]["dataset_version"] == 1
    assert event["data"]["models_by_type"] == {"lr": 2} and event["data"]["failed"] == 0
    headers, _ = recorder.requests[0]
    assert headers["content-type"].startswith("application/cloudevents-batch+json")
    assert headers["aeg-sas-key"] == KEY
    assert ctx.ledger.outbox.all(state=OutboxState.PENDING) == []


def test_a_publish_retried_after_a_crash_carries_the_same_id(ctx, recorder, monkeypatch) -> None:
    event = product_events.run_failed(namespace="ns", run_id="run-1", kind="training", state="failed",
                                      reason="boom", ended=None)
    again = product_events.run_failed(namespace="ns", run_id="run-1", kind="training", state="failed",
                                      reason="boom", ended=None)
    assert event.id == again.id  # derived from the fact, not random
    assert outbox.record(ctx, event) and not outbox.record(ctx, again)

    with monkeypatch.context() as m:  # published, then the worker dies before marking it sent
        m.setattr(type(ctx.ledger.outbox), "mark_sent_many", lambda self, event_ids: (_ for _ in ()).throw(
            ConnectionError("storage went away")))
        assert outbox.drain(ctx).sent == 1
    assert outbox.drain(ctx).sent == 1  # sent again: at least once ...
    assert outbox.drain(ctx).sent == 0
    assert [e["id"] for e in recorder.events] == [event.id, event.id]  # ... with the same id


def test_an_unreachable_topic_delays_the_event_but_the_flow_succeeds(functions, ctx, recorder) -> None:
    ctx.settings = ctx.settings.replace(events_topic_endpoint=f"http://127.0.0.1:{closed_port()}/api/events")
    run = make_run(ctx.workspace, PipelineKind.FORECASTING)
    run = ctx.workspace.runs.update(run.run_id, status=RunStatus.FAILED, error="step forecast: out of memory")

    functions["on_aml_event"](event_grid_event(run_failed(run)))  # does not raise

    assert ctx.ledger.runs.get(run.run_id).state == RunState.FAILED
    [pending] = ctx.ledger.outbox.all(state=OutboxState.PENDING)
    assert pending.attempts == 1 and "ServiceRequestError" in pending.error  # the reason is kept
    assert outbox.status(ctx)["pending"] == 1

    ctx.settings = ctx.settings.replace(events_topic_endpoint=recorder.endpoint)  # the topic is back
    assert outbox.drain(ctx).sent == 1
    [event] = recorder.events
    assert event["type"] == "manymodels.run.failed" and event["data"]["reason"] == "step forecast: out of memory"
    assert event["data"]["run_id"] == run.run_id and event["data"]["kind"] == "forecasting"


def test_a_finished_rollout_publishes_deployment_completed_without_keys(functions, ctx, recorder,
                                                                       tmp_path) -> None:
    run = completed_training(ctx, tmp_path)
    functions["on_aml_event"](event_grid_event(run_completed(run)))
    drain_queue(ctx, functions["deploy_group"])

    [deployed] = [e for e in recorder.events if e["type"] == "manymodels.deployment.completed"]
    plan_id = f"local-{run.run_id}"
    assert deployed["id"] == event_id(ProductEventType.DEPLOYMENT_COMPLETED, plan_id)
    assert deployed["data"]["plan_id"] == plan_id and deployed["data"]["models"] == len(NAMES)
    assert deployed["data"]["router_endpoint"].startswith("http://127.0.0.1")
    assert [g["action"] for g in deployed["data"]["groups_changed"]] == ["new"]
    assert "key-of-" not in json.dumps(recorder.events)  # FakeServices' keys never leave the router


def test_forecasts_ready_names_the_blob_rows_series_and_window(functions, ctx, recorder, tmp_path) -> None:
    local = tmp_path / "forecasts.csv"
    local.write_text("WeekStarting,Prediction,Quantity,Store,Brand\n2026-01-05,1.0,,1,a\n2026-01-12,2.0,,1,a\n"
                     "2026-01-05,3.0,,2,a\n")  # 2 series of pipelines/configuration/script_settings.json's ids
    run = make_run(ctx.workspace, PipelineKind.FORECASTING, dataset_name="inference")
    run = ctx.workspace.runs.update(run.run_id, status=RunStatus.COMPLETED, counts={"predictions": 3, "succeeded": 3},
                                    outputs={"predictions": "predictions/forecasts.csv",
                                             "predictions_file": str(local)})
    functions["on_aml_event"](event_grid_event(run_completed(run)))

    [event] = recorder.events
    assert event["type"] == "manymodels.forecasts.ready"
    assert event["data"] == {"run_id": run.run_id, "dataset_name": "inference", "dataset_version": 1,
                             "predictions": "predictions/forecasts.csv", "rows": 3, "series": 2,
                             "forecast_window": {"start": "2026-01-05", "end": "2026-01-12"}}


def test_no_endpoint_means_no_events_and_status_says_so(functions, ctx, recorder, tmp_path) -> None:
    ctx.settings = ctx.settings.replace(events_topic_endpoint="")
    run = completed_training(ctx, tmp_path)
    functions["on_aml_event"](event_grid_event(run_completed(run)))
    assert ctx.ledger.outbox.all() == [] and recorder.events == []
    from shared.flows.status import collect_status

    assert collect_status(ctx, storage=False)["events"]["enabled"] is False
    assert outbox.status(ctx) == {"enabled": False,
                                  "reason": "EVENTS_TOPIC_ENDPOINT is empty: the product's events are not published"}
    assert KEY not in repr(ctx.settings.replace(events_topic_endpoint="http://127.0.0.1:1/api/events"))


def test_reconcile_prunes_only_sent_events_older_than_the_ledger_retention(functions, ctx, recorder) -> None:
    old, pending = failed_event("old"), failed_event("pending")
    outbox.record(ctx, old)
    assert outbox.drain(ctx).sent == 1
    ctx.settings = ctx.settings.replace(events_topic_endpoint=f"http://127.0.0.1:{closed_port()}/api/events")
    outbox.record(ctx, pending)  # stays pending: the topic is down
    assert ctx.ledger.outbox.prune(before="2000-01-01T00:00:00Z", limit=10) == 0  # sent after that: kept
    assert ctx.ledger.outbox.prune(before="2999-01-01T00:00:00Z", limit=10) == 1  # only the sent one
    assert [e.event_id for e in ctx.ledger.outbox.all()] == [pending.id]
    functions["reconcile"](timer())  # drains (fails: topic down) and prunes without raising
    assert ctx.ledger.outbox.get(pending.id).attempts == 1


def failed_event(run_id: str) -> product_events.ProductEvent:
    return product_events.run_failed(namespace="ns", run_id=run_id, kind="training", state="failed", reason="x",
                                     ended=None)


def test_an_event_the_topic_refuses_does_not_block_the_others(ctx, recorder) -> None:
    good, poison, later = failed_event("good"), failed_event("poison"), failed_event("later")
    for event in (good, poison, later):
        outbox.record(ctx, event)
    recorder.refuse_subject = "runs/poison"

    result = outbox.drain(ctx)

    assert (result.sent, result.pending) == (2, 0)
    assert sorted(e["id"] for e in recorder.events) == sorted([good.id, later.id])
    assert ctx.ledger.outbox.get(poison.id).state == OutboxState.REFUSED
    assert "HTTP 400" in ctx.ledger.outbox.get(poison.id).error
    assert outbox.drain(ctx).sent == 0  # never retried
    assert outbox.status(ctx)["refused"] == 1


def test_a_crash_after_the_outbox_row_before_the_run_is_marked_done(functions, ctx, recorder, monkeypatch) -> None:
    run = make_run(ctx.workspace, PipelineKind.TRAINING)
    run = ctx.workspace.runs.update(run.run_id, status=RunStatus.FAILED, error="step train: killed")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the worker died while marking the run")

    with monkeypatch.context() as m:
        m.setattr(type(ctx.ledger.runs), "finish", crash)
        with pytest.raises(RuntimeError):
            functions["on_aml_event"](event_grid_event(run_failed(run)))
    [pending] = ctx.ledger.outbox.all(state=OutboxState.PENDING)  # written first: not lost

    functions["on_aml_event"](event_grid_event(run_failed(run)))  # Event Grid redelivers: the flow completes

    assert ctx.ledger.runs.get(run.run_id).state == RunState.FAILED
    assert [e["id"] for e in recorder.events] == [pending.event_id]  # once, with the id of the first try
