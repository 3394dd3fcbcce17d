"""The Function App through its functions (``app.get_functions()``), with hand-built binding
objects, on a real Azurite, the local workspace and the local pipeline runner.

The chain: a train batch's events, each delivered 3 times and shuffled with others -> one dataset
version, one training run -> its RunCompleted, 3 times -> one deployment plan -> the deploy queue
drained twice over -> each group deployed once, the router finished once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from test_flows_support import (
    app_functions,
    blob_created,
    csv_bytes,
    drain_queue,
    event_grid_event,
    http_request,
    open_context,
    timer,
    upload_batch,
)

from shared.data.manifest import BatchKind
from shared.flows import deploy
from shared.flows.context import Context
from shared.ledger import BatchState, PlanState, RunState, TaskState
from shared.settings import Settings
from shared.workspace.base import RunStatus, ServiceState
from shared.workspace.local.events import model_registered, run_completed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def functions():
    return app_functions()


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings, real_services=True, real_runner=True) as context:
        yield context


def test_batch_to_router_with_duplicated_shuffled_events(functions, ctx: Context) -> None:
    infos = upload_batch(ctx, BatchKind.TRAIN, "b1", csv_bytes(3))
    store_events = [blob_created(i) for i in infos]
    noise = [
        {"id": "malformed-1", "topic": "t", "subject": "/blobServices/default/containers/x", "eventType":
         "Microsoft.Storage.BlobCreated", "eventTime": "2026-11-27T10:00:00Z", "data": {}, "dataVersion": ""},
        {**blob_created(infos[0]), "id": "elsewhere",
         "subject": f"/blobServices/default/containers/other/blobs/{infos[0].name}"},
        {**blob_created(infos[0]), "id": "outside", "subject":
         f"/blobServices/default/containers/{ctx.settings.landing_container}/blobs/misc/notes.txt"},
        {**blob_created(infos[0]), "id": "unsafe", "subject":
         f"/blobServices/default/containers/{ctx.settings.landing_container}/blobs/train/b1/../../etc/passwd"},
    ]
    deliveries = store_events * 3 + noise
    random.Random(5).shuffle(deliveries)
    for payload in deliveries:
        functions["on_landing_event"](event_grid_event(payload))
    functions["close_quiet_batches"](timer())  # nothing is quiet yet; must not close anything twice

    datasets = ctx.workspace.datasets.list("train")
    assert [d.version for d in datasets] == [1]
    assert sorted(f.name for f in datasets[0].files) == sorted(n.name.split("/")[-1] for n in infos[:-1])
    runs = ctx.workspace.runs.list()
    assert len(runs) == 1 and runs[0].parameters["mode"] == ctx.settings.training_mode
    batch = ctx.ledger.batches.get("train", "b1")
    assert batch.state == BatchState.CLOSED and batch.run_id == runs[0].run_id and batch.dataset_version == 1
    assert ctx.ledger.runs.get(runs[0].run_id).state == RunState.SUBMITTED

    run = ctx.workspace.runs.wait(runs[0].run_id, timeout=180)
    assert run.status == RunStatus.COMPLETED, run.error
    models = ctx.workspace.models.list()
    completed = run_completed(run)
    aml = [completed] * 3 + [model_registered(m) for m in models]
    random.Random(6).shuffle(aml)
    for payload in aml:
        functions["on_aml_event"](event_grid_event(payload))

    plans = ctx.ledger.plans.all()
    assert [p.plan_id for p in plans] == [f"local-{run.run_id}"]
    assert ctx.ledger.runs.get(run.run_id).state == RunState.COMPLETED
    messages = drain_queue(ctx, functions["deploy_group"], deliveries=2)
    assert messages == plans[0].to_execute >= 1

    plan = ctx.ledger.plans.get(plans[0].plan_id)
    assert plan.state == PlanState.DONE, plan.reason
    assert {t.state for t in ctx.ledger.plans.tasks(plan.plan_id)} <= {TaskState.DONE, TaskState.SKIPPED}
    state_models = ctx.workspace.models.list(latest=False, tags={"ModelType": "_meta_"})
    assert len(state_models) == 1  # finished exactly once: one deployment-state version
    services = {s.name: s for s in ctx.workspace.services.list()}
    router = services.pop(ctx.settings.routing_service_name)
    assert router.state == ServiceState.HEALTHY
    assert deploy.router_endpoint(ctx.workspace, ctx.settings, "local") == router.scoring_uri
    served = {m for s in services.values() for m in s.models}
    assert served == {f"{m.name}:{m.version}" for m in models}

    status = functions["status"](http_request("GET", "status"))
    body = status.get_body().decode()
    assert status.status_code == 200 and '"b1"' in body and plan.plan_id in body
    for name in services:
        key = ctx.workspace.services.get_keys(name).primary
        assert not key or key not in body  # never a secret in a GET answer


def test_concurrent_manifest_deliveries_start_one_run(functions, ctx: Context) -> None:
    import threading

    infos = upload_batch(ctx, BatchKind.TRAIN, "b2", csv_bytes(2))
    manifest = blob_created(infos[-1])
    start = threading.Barrier(6)

    def deliver() -> None:
        start.wait()
        functions["on_landing_event"](event_grid_event({**manifest, "id": f"copy-{threading.get_ident()}"}))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(ctx.workspace.runs.list()) == 1
    assert len(ctx.workspace.datasets.list("train")) == 1
    assert ctx.ledger.batches.get("train", "b2").state == BatchState.CLOSED
