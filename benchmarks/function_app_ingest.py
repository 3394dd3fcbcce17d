"""How fast ``on_landing_event`` takes a batch of N blobs, then closes it (one dataset version).

Starts its own Azurite (in memory, free ports) and a local workspace in a temporary folder,
uploads N tiny blobs + a manifest, then delivers their BlobCreated events through the function,
once on one thread and once on 8 threads (two batches of the same size, measured side by side),
and times closing each batch (listing, validation, dataset registration; the run submission is
recorded, not run). Usage::

    .venv/bin/python benchmarks/function_app_ingest.py --blobs 2000 [--json]

Last line: {"blobs", "sequential_events_per_s", "threaded_events_per_s", "threads", "close_seconds_median"}
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import azure.functions as func

from shared.data.manifest import MANIFEST_NAME
from shared.flows import ingest
from shared.flows.context import Context, set_context
from shared.settings import Settings
from shared.storage import azurite
from shared.storage.blobs import BlobStore
from shared.workspace.base import PipelineKind, Run, RunStatus

THREADS = 8


class _RecordedPipelines:
    """Records the submitted run instead of starting the runner (training is not measured here)."""

    def __init__(self, workspace) -> None:
        self.workspace = workspace

    def submit(self, name, dataset, *, parameters=None, tags=None):
        run = Run(str(uuid.uuid4()), name, PipelineKind.TRAINING, name, RunStatus.QUEUED, dataset.name,
                  dataset.version, dict(parameters or {}), dict(tags or {}), dt.datetime.now(dt.UTC).isoformat())
        return self.workspace.runs.create(run)


def _event(container: str, name: str, etag: str, size: int) -> func.EventGridEvent:
    return func.EventGridEvent(id=str(uuid.uuid4()), topic="bench",
                               subject=f"/blobServices/default/containers/{container}/blobs/{name}",
                               event_type="Microsoft.Storage.BlobCreated", event_time=dt.datetime.now(dt.UTC),
                               data={"eTag": etag, "contentLength": size, "api": "PutBlob"}, data_version="")


def _batch(ctx: Context, store: BlobStore, batch: str, blobs: int) -> list[func.EventGridEvent]:
    items = [(f"train/{batch}/Store{1000 + i}_dominicks.csv", b"WeekStarting,Store\n") for i in range(blobs)]
    with ThreadPoolExecutor(16) as pool:
        infos = list(pool.map(lambda item: store.upload_bytes(*item), items))
    return [_event(store.container, i.name, i.etag, i.size) for i in infos]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        proc = azurite.start(Path(tmp) / "azurite-home", ports=None, in_memory=True)
        try:
            result = _run(Path(tmp), proc.connection_string, args.blobs)
        finally:
            azurite.stop(Path(tmp) / "azurite-home")
    if not args.json:
        print(f"{args.blobs} blobs: {result['sequential_events_per_s']} events/s on 1 thread, "
              f"{result['threaded_events_per_s']} on {THREADS}; closing took {result['close_seconds_median']} s")
    print(json.dumps(result))
    return 0


def _run(tmp: Path, connection: str, blobs: int) -> dict:
    from shared.workspace.local.workspace import LocalWorkspace

    settings = Settings.from_env({"MANYMODELS_HOME": str(tmp / "home"), "AzureWebJobsStorage": connection,
                                  "LANDING_CONTAINER": "landing", "DATA_QUIET_SECONDS": "3600"})
    workspace = LocalWorkspace(settings)
    workspace.__dict__["pipelines"] = _RecordedPipelines(workspace)
    ctx = Context(settings, workspace=workspace)
    set_context(ctx)
    store = BlobStore(ctx.storage, "landing")
    store.ensure_container()
    handle = ingest.handle_landing_event
    from shared.events import payload_of

    rates, closes = {}, []
    for mode, batch in (("sequential", "seq"), ("threaded", "thr")):
        events = _batch(ctx, store, batch, blobs)
        started = time.perf_counter()
        if mode == "sequential":
            for event in events:
                handle(ctx, payload_of(event))
        else:
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(lambda e: handle(ctx, payload_of(e)), events))
        rates[mode] = blobs / (time.perf_counter() - started)
        manifest = store.upload_bytes(f"train/{batch}/{MANIFEST_NAME}", b'{"kind": "train"}')
        started = time.perf_counter()
        handle(ctx, payload_of(_event("landing", manifest.name, manifest.etag, manifest.size)))
        closes.append(time.perf_counter() - started)
        assert ctx.ledger.batches.get("train", batch).file_count == blobs
    set_context(None)
    workspace.close()
    return {"blobs": blobs, "sequential_events_per_s": round(rates["sequential"], 1),
            "threaded_events_per_s": round(rates["threaded"], 1), "threads": THREADS,
            "close_seconds_median": round(statistics.median(closes), 3)}


if __name__ == "__main__":
    sys.exit(main())
