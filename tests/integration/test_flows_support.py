"""Helpers of the Function App integration tests (imported by test_function_app*.py and
test_flows_*.py): the app's functions, a context on Azurite + the local workspace, binding
objects built by hand, and the in-memory stores of tests/support/fakes.py.

Scoring services are recorded instead of started (the tests here are about events, the ledger
and the rollout protocol; the deployment issue's tests run real ones), and submitted runs are
recorded without a runner unless ``real_runner``. Both fakes run through the workspace contract
suite (tests/unit/workspace_contract/). Everything else is real: Azurite, the local workspace.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from shared.data.manifest import BatchKind, Manifest, ManifestFile
from shared.flows.context import Context, reset_context, set_context
from shared.settings import Settings
from shared.storage.blobs import BlobInfo, BlobStore
from tests.support.fakes import FakeServices, RecordingPipelines, install_fakes  # noqa: F401 - re-exported

REPO = Path(__file__).resolve().parents[2]


def load_function_app():
    """``function_app.py`` (at the repository root, outside the installed packages)."""
    if "function_app" not in sys.modules:
        spec = importlib.util.spec_from_file_location("function_app", REPO / "function_app.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["function_app"] = module
        spec.loader.exec_module(module)
    return sys.modules["function_app"]


def app_functions() -> dict[str, Any]:
    """name -> the user function, from a fresh app object (get_functions() works once per app)."""
    app = load_function_app().create_app()
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


@contextlib.contextmanager
def open_context(storage_settings: Settings, *, real_services: bool = False,
                 real_runner: bool = False) -> Iterator[Context]:
    """A context on the session's Azurite and a local workspace in this test's home, with
    :class:`FakeServices` (or the local scoring services, stopped at the end when
    ``real_services``) and :class:`RecordingPipelines` (or the local runner when ``real_runner``);
    set for every function of the process while it is open."""
    from shared.workspace.local.workspace import LocalWorkspace

    workspace = install_fakes(LocalWorkspace(storage_settings), services=not real_services,
                              pipelines=not real_runner)
    context = Context(storage_settings, workspace=workspace)
    BlobStore(context.storage, storage_settings.landing_container).ensure_container()
    set_context(context)
    try:
        yield context
    finally:
        if real_services:
            from shared.flows import deploy

            for target in storage_settings.enabled_targets:  # stops every service process it started
                deploy.delete_all(workspace, storage_settings, target)
        for run in workspace.runs.list():  # never leave a runner process behind
            # (RecordingPipelines records runs like the runner would, but starts none)
            if real_runner and not run.status.is_final and "run_dir" in run.outputs:
                workspace.runs.wait(run.run_id, timeout=180)
        reset_context()
        workspace.close()


# --------------------------------------------------------------------------- binding objects


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def event_grid_event(payload: Mapping[str, Any]) -> func.EventGridEvent:
    """What the worker hands an Event Grid trigger for one event in Event Grid schema."""
    time = payload.get("eventTime")
    return func.EventGridEvent(id=payload.get("id"), data=payload.get("data"), topic=payload.get("topic"),
                               subject=payload.get("subject"), event_type=payload.get("eventType"),
                               event_time=dt.datetime.fromisoformat(time.replace("Z", "+00:00")) if time else None,
                               data_version=payload.get("dataVersion", ""))


def blob_created(info: BlobInfo, *, event_id: str | None = None, cloud: bool = False) -> dict[str, Any]:
    """A BlobCreated event for a blob of the session's Azurite, as Event Grid raises it."""
    subject = f"/blobServices/default/containers/{info.container}/blobs/{info.name}"
    data = {"api": "PutBlob", "eTag": f"\"{info.etag}\"", "contentType": "text/csv", "contentLength": info.size,
            "blobType": "BlockBlob", "url": f"http://127.0.0.1:10000/devstoreaccount1/{info.container}/{info.name}",
            "sequencer": "0000000000000000000000000000000100000000000000a1"}
    source = "/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/devstoreaccount1"
    if cloud:
        return {"specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": source, "subject": subject,
                "type": "Microsoft.Storage.BlobCreated", "time": now_iso(), "data": data}
    return {"id": event_id or str(uuid.uuid4()), "topic": source, "subject": subject,
            "eventType": "Microsoft.Storage.BlobCreated", "eventTime": now_iso(), "data": data,
            "dataVersion": "", "metadataVersion": "1"}


def cloud_event(payload: Mapping[str, Any]) -> func.CloudEvent:
    return func.CloudEvent(id=payload["id"], source=payload["source"], type=payload["type"], specversion="1.0",
                           data=payload["data"], subject=payload.get("subject"))


def http_request(method: str, route: str, body: Any = None) -> func.HttpRequest:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return func.HttpRequest(method=method, url=f"http://127.0.0.1:7071/api/{route}", headers={}, body=raw)


def timer() -> TimerRequest:
    # func.TimerRequest is the abstract type; the worker builds azure.functions.timer.TimerRequest
    return TimerRequest(past_due=False, schedule_status={}, schedule={"AdjustForDST": True})


def csv_bytes(series: int) -> list[tuple[str, bytes]]:
    """Small but trainable files, from the product's simulator."""
    import tempfile

    from shared.data.simulate import write_simulated

    with tempfile.TemporaryDirectory() as tmp:
        write_simulated(tmp, series=series)
        files = sorted((Path(tmp) / "train").glob("*.csv"))
        return [(f.name, f.read_bytes()) for f in files]


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def upload_batch(ctx: Context, kind: BatchKind, batch: str, files: Sequence[tuple[str, bytes]], *,
                 manifest: bool = True, listed: Sequence[ManifestFile] | None = None) -> list[BlobInfo]:
    """Upload a batch like ``manymodels data upload``: the files, then ``_manifest.json`` last."""
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    infos = [store.upload_bytes(f"{kind}/{batch}/{name}", data) for name, data in files]
    if manifest:
        entries = listed if listed is not None else [ManifestFile(n, len(d), md5_b64(d)) for n, d in files]
        body = Manifest(kind=kind, mode="full", batch=batch, files=tuple(entries)).to_json()  # type: ignore[arg-type]
        infos.append(store.upload_bytes(f"{kind}/{batch}/_manifest.json", body.encode()))
    return infos


def drain_queue(ctx: Context, deploy_group, *, deliveries: int = 1) -> int:
    """Deliver every deploy-queue message to ``deploy_group`` like the host (``deliveries`` times
    each: at-least-once), deleting it after success. Returns how many messages there were."""
    queue = ctx.deploy_queue
    seen = 0
    while True:
        batch = list(queue.receive_messages(max_messages=32, visibility_timeout=60))
        if not batch:
            return seen
        for message in batch:
            seen += 1
            for _ in range(deliveries):
                deploy_group(QueueMessage(id=message.id, body=message.content.encode(), dequeue_count=1,
                                          pop_receipt=message.pop_receipt))
            queue.delete_message(message)


# --------------------------------------------------------------------------- runs without a runner


def make_run(workspace, kind, *, submitted: str | None = None, status=None, dataset_name: str = "train",
             dataset_version: int = 1, parameters: Mapping[str, Any] | None = None,
             tags: Mapping[str, str] | None = None, outputs: Mapping[str, str] | None = None,
             error: str | None = None, pipeline: str | None = None):
    """A run record in the local workspace (optionally already final)."""
    from shared.workspace.base import Run, RunStatus

    name = pipeline or ("manymodels-training" if str(kind) == "training" else "manymodels-forecasting")
    run = Run(run_id=str(uuid.uuid4()), pipeline=name, kind=kind, experiment=name, status=RunStatus.QUEUED,
              dataset_name=dataset_name, dataset_version=dataset_version, parameters=dict(parameters or {}),
              tags={**dict(tags or {}), "manymodels_kind": str(kind)}, submitted=submitted or now_iso())
    workspace.runs.create(run)
    if status is not None:
        return workspace.runs.update(run.run_id, status=status, ended=now_iso(), outputs=outputs, error=error)
    return workspace.runs.get(run.run_id)


def register_models(workspace, names: Sequence[str], folder: Path, *, run_id: str, dataset_version: int = 1):
    """Register one version of each model (a small artifact dir each), tagged like training does."""
    from shared.workspace.base import NewModel

    new = []
    for name in names:
        path = folder / f"{name}-{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        (path / "model.json").write_text(json.dumps({"name": name}))
        new.append(NewModel(name=name, path=str(path), tags={"ModelType": "lr", "Store": name.split("_")[-1],
                                                             "RunId": run_id,
                                                             "DatasetVersion": str(dataset_version)}))
    return workspace.models.register_many(new)
