"""Landing batches through ``on_landing_event`` / ``close_quiet_batches``: what gets into the
dataset version, what is refused and why, and one run per batch whatever happens. Submissions are
recorded (RecordingPipelines) instead of run: these tests are about what the app submits."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator

import pytest
from test_flows_support import (
    app_functions,
    blob_created,
    cloud_event,
    event_grid_event,
    open_context,
    timer,
    upload_batch,
)

from shared.data.manifest import BatchKind, ManifestFile
from shared.flows import ingest
from shared.flows.context import Context
from shared.ledger import BatchState
from shared.settings import Settings
from shared.storage.blobs import BlobStore
from shared.workspace.base import DatasetMode, PipelineKind
from tests.support.fakes import RecordingPipelines

pytestmark = pytest.mark.integration
FILES = [("Store1000_dominicks.csv", b"WeekStarting,Store\n1990-06-14,1000\n"),
         ("Store1001_tropicana.csv", b"WeekStarting,Store\n1990-06-14,1001\n"),
         ("Store1002_minute.maid.csv", b"WeekStarting,Store\n1990-06-14,1002\n")]


@pytest.fixture(scope="module")
def functions():
    return app_functions()


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings) as context:
        yield context


@pytest.fixture
def pipelines(ctx: Context) -> RecordingPipelines:
    recording = RecordingPipelines(ctx.workspace)
    ctx.workspace.pipelines = recording
    return recording


def deliver(functions, ctx: Context, infos, *, cloud: bool = False) -> None:
    for info in infos:
        if cloud:
            functions["on_landing_event"](cloud_event(blob_created(info, cloud=True)))
        else:
            functions["on_landing_event"](event_grid_event(blob_created(info)))


def test_quiet_batch_closes_after_data_quiet_seconds(functions, ctx: Context, pipelines, monkeypatch) -> None:
    ctx.settings = ctx.settings.replace(data_quiet_seconds=60)
    infos = upload_batch(ctx, BatchKind.TRAIN, "quiet", FILES, manifest=False)
    deliver(functions, ctx, infos, cloud=True)  # CloudEvents schema this time
    functions["close_quiet_batches"](timer())  # now: not quiet for 60 s yet
    assert ctx.ledger.batches.get("train", "quiet").state == BatchState.OPEN
    # the timer a minute later: the flow's clock is injected (its now=) instead of sleeping
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    monkeypatch.setattr(ingest, "close_quiet_batches", functools.partial(ingest.close_quiet_batches, now=later))
    for _ in range(2):
        functions["close_quiet_batches"](timer())
    batch = ctx.ledger.batches.get("train", "quiet")
    assert batch.state == BatchState.CLOSED and batch.file_count == 3
    assert len(pipelines.submitted) == 1 and pipelines.submitted[0].parameters == {"mode": "changed"}
    dataset = ctx.workspace.datasets.get("train")
    assert dataset.datastore == f"azureblob://{ctx.settings.landing_container}"
    assert {f.name for f in dataset.files} == {n for n, _ in FILES}
    assert {f.path for f in dataset.files} == {f"train/quiet/{n}" for n, _ in FILES}


def test_manifest_problems_are_recorded_and_good_files_still_register(functions, ctx: Context, pipelines) -> None:
    listed = [ManifestFile(FILES[0][0], len(FILES[0][1])),
              ManifestFile(FILES[1][0], 999),  # wrong size
              ManifestFile("Store1003_gone.csv", 10)]  # missing
    infos = upload_batch(ctx, BatchKind.INFERENCE, "b1", FILES, listed=listed)
    deliver(functions, ctx, infos)
    batch = ctx.ledger.batches.get("inference", "b1")
    assert batch.state == BatchState.CLOSED and batch.file_count == 1
    problems = " | ".join(batch.problems)
    assert "999" in problems and "Store1003_gone.csv" in problems and FILES[2][0] in problems
    assert [f.name for f in ctx.workspace.datasets.get("inference").files] == [FILES[0][0]]
    assert [r.kind for r in pipelines.submitted] == [PipelineKind.FORECASTING]


def test_a_bad_manifest_fails_the_batch_with_its_reason(functions, ctx: Context, pipelines) -> None:
    infos = upload_batch(ctx, BatchKind.TRAIN, "wrongkind", FILES[:1], manifest=False)
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    infos.append(store.upload_bytes("train/wrongkind/_manifest.json", b'{"kind": "inference"}'))
    deliver(functions, ctx, infos * 2)
    batch = ctx.ledger.batches.get("train", "wrongkind")
    assert batch.state == BatchState.FAILED and "'kind'" in batch.reason
    assert pipelines.submitted == [] and ctx.workspace.datasets.list() == []


def test_late_blobs_and_replays_never_start_a_second_run(functions, ctx: Context, pipelines) -> None:
    infos = upload_batch(ctx, BatchKind.TRAIN, "b2", FILES[:2])
    deliver(functions, ctx, infos)
    late = BlobStore(ctx.storage, ctx.settings.landing_container).upload_bytes("train/b2/late.csv", b"x,y\n")
    deliver(functions, ctx, [late, *infos])
    ctx.settings = ctx.settings.replace(data_quiet_seconds=1)
    functions["close_quiet_batches"](timer())
    assert len(pipelines.submitted) == 1
    assert "late.csv" not in {f.name for f in ctx.workspace.datasets.get("train").files}
    assert ctx.ledger.batches.get("train", "b2").state == BatchState.CLOSED


def test_partial_mode_from_the_manifest(functions, ctx: Context, pipelines) -> None:
    deliver(functions, ctx, upload_batch(ctx, BatchKind.TRAIN, "full", FILES))
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    changed = store.upload_bytes(f"train/part/{FILES[0][0]}", FILES[0][1] + b"1990-06-21,1000\n")
    manifest = store.upload_bytes("train/part/_manifest.json", b'{"kind": "train", "mode": "partial"}')
    deliver(functions, ctx, [changed, manifest])
    dataset = ctx.workspace.datasets.get("train")
    assert dataset.version == 2 and dataset.mode == DatasetMode.PARTIAL and dataset.changed == (FILES[0][0],)
    assert len(dataset.files) == 3 and len(pipelines.submitted) == 2


def test_malformed_and_refused_events_change_nothing(functions, ctx: Context, pipelines, caplog) -> None:
    info = upload_batch(ctx, BatchKind.TRAIN, "b3", FILES[:1], manifest=False)[0]
    bad = [{**blob_created(info), "data": "oops"},
           {**blob_created(info), "subject": "/blobServices/default/containers/"},
           {**blob_created(info), "subject": f"/blobServices/default/containers/{ctx.settings.landing_container}"
                                             "/blobs/train/b3/bad\x07name.csv"},
           {**blob_created(info), "subject": f"/blobServices/default/containers/{ctx.settings.landing_container}"
                                             "/blobs/train/only-a-batch"}]
    with caplog.at_level("WARNING"):
        for payload in bad:
            functions["on_landing_event"](event_grid_event(payload))  # acknowledged: no exception
    assert ctx.ledger.batches.all() == [] and pipelines.submitted == []
    logged = caplog.text
    assert "field 'data' expected an object" in logged and "field 'subject'" in logged
    assert "control characters" in logged and "outside the landing layout" in logged


def test_a_closer_that_crashed_is_taken_over_without_a_second_run(ctx: Context, pipelines, monkeypatch) -> None:
    upload_batch(ctx, BatchKind.TRAIN, "crash", FILES, manifest=False)
    claimed = ctx.ledger.batches.claim("train", "crash", token="dead", manifest=False, stale_after=300)
    # The dead closer got as far as registering and submitting, not as far as recording the run.
    files, _ = ingest.select_files({i.name.split("/", 2)[2]: i for i in BlobStore(
        ctx.storage, ctx.settings.landing_container).list("train/crash/")}, None, prefix="train/crash/")
    dataset = ctx.workspace.datasets.register("train", files, datastore="azureblob://x")
    ctx.ledger.batches.record_dataset("train", "crash", token="dead", dataset_name="train",
                                      dataset_version=dataset.version, file_count=len(files), problems=[])
    pipelines.submit("manymodels-training", dataset, tags={ingest.BATCH_TAG: claimed.key})
    monkeypatch.setattr(ingest, "CLOSING_LEASE_SECONDS", 0.0)
    ingest.close_quiet_batches(ctx)
    batch = ctx.ledger.batches.get("train", "crash")
    assert batch.state == BatchState.CLOSED and batch.run_id == pipelines.submitted[0].run_id
    assert len(pipelines.submitted) == 1


def _real_upload(ctx: Context, folder, *, kind: str, mode: str = "full", batch: str | None = None, clock=None):
    """``manymodels data upload`` itself (marker first, files, manifest last), without validation."""
    from shared.data.upload import upload_batch as cli_upload

    return cli_upload(ctx.settings, folder, kind=kind, mode=mode, batch=batch, validate=False, clock=clock)


def _blob_events(ctx: Context, prefix: str) -> list:
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    return sorted(store.list(prefix), key=lambda b: (b.name.endswith("_manifest.json"), b.name))


def _hold_back_manifest(ctx: Context, prefix: str) -> bytes:
    """Take the manifest out of storage again: as if its upload had not happened yet."""
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    body = store.download_bytes(prefix + "_manifest.json")
    store.delete(prefix + "_manifest.json")
    return body


def test_a_quiet_partial_upload_waits_for_its_manifest(functions, ctx: Context, pipelines, tmp_path) -> None:
    import datetime as dt

    for name, data in FILES:
        (tmp_path / name).write_bytes(data)
    first = _real_upload(ctx, tmp_path, kind="train", batch="full")
    deliver(functions, ctx, _blob_events(ctx, first.prefix))
    assert len(ctx.workspace.datasets.get("train").files) == 3

    # A partial upload whose files are in, but whose manifest comes after DATA_QUIET_SECONDS.
    part = tmp_path / "part"
    part.mkdir()
    (part / FILES[0][0]).write_bytes(FILES[0][1] + b"1990-06-21,1000\n")
    result = _real_upload(ctx, part, kind="train", mode="partial", batch="slow")
    held = _hold_back_manifest(ctx, result.prefix)
    deliver(functions, ctx, _blob_events(ctx, result.prefix))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ctx.settings.data_quiet_seconds + 60)
    assert ingest.close_quiet_batches(ctx, now=later) == []
    assert ctx.ledger.batches.get("train", "slow").state == BatchState.OPEN
    assert len(pipelines.submitted) == 1

    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    deliver(functions, ctx, [store.upload_bytes(result.manifest, held)])  # the manifest lands at last
    batch = ctx.ledger.batches.get("train", "slow")
    assert batch.state == BatchState.CLOSED and batch.manifest and batch.file_count == 1
    dataset = ctx.workspace.datasets.get("train")
    assert dataset.mode == DatasetMode.PARTIAL and dataset.changed == (FILES[0][0],)
    assert {f.name for f in dataset.files} == {n for n, _ in FILES}  # nothing dropped, no marker as data
    assert len(pipelines.submitted) == 2


def test_an_upload_that_never_writes_its_manifest_fails_with_the_reason(functions, ctx: Context, pipelines,
                                                                        tmp_path) -> None:
    import datetime as dt

    (tmp_path / FILES[0][0]).write_bytes(FILES[0][1])
    result = _real_upload(ctx, tmp_path, kind="train", mode="partial", batch="dead")
    _hold_back_manifest(ctx, result.prefix)  # the upload died before its manifest
    deliver(functions, ctx, _blob_events(ctx, result.prefix))
    much_later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ingest.UPLOAD_ABANDONED_SECONDS + 60)
    ingest.close_quiet_batches(ctx, now=much_later)
    batch = ctx.ledger.batches.get("train", "dead")
    assert batch.state == BatchState.FAILED and "_manifest.json" in batch.reason and "dead" in batch.reason
    assert pipelines.submitted == [] and ctx.workspace.datasets.list() == []


def test_two_uploads_in_the_same_second_get_their_own_batches(functions, ctx: Context, pipelines, tmp_path) -> None:
    import datetime as dt

    from shared.data.manifest import Manifest

    instant = dt.datetime(2026, 11, 27, 10, 23, 0, tzinfo=dt.UTC)
    folders = []
    for i, (name, data) in enumerate(FILES[:2]):
        folder = tmp_path / f"u{i}"
        folder.mkdir()
        (folder / name).write_bytes(data)
        folders.append(folder)
    results = [_real_upload(ctx, f, kind="train", clock=lambda: instant) for f in folders]
    assert results[0].batch != results[1].batch and all(r.batch.startswith("20261127T102300Z") for r in results)
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    for result, (name, _) in zip(results, FILES[:2], strict=True):
        manifest = Manifest.parse(store.download_bytes(result.manifest))
        assert [f.name for f in manifest.files] == [name]
        deliver(functions, ctx, _blob_events(ctx, result.prefix))
        assert ctx.ledger.batches.get("train", result.batch).file_count == 1
    assert len(pipelines.submitted) == 2
