"""Landing batches: blobs -> an open batch -> one dataset version -> one pipeline run.

Layout (docs/architecture.md §3.1): ``<landing container>/train|inference/<batch>/<files...>``. A batch closes
when its ``_manifest.json`` lands, or when no new blob arrived in it for ``DATA_QUIET_SECONDS``
(:func:`close_quiet_batches`, every minute). Closing is claimed in the ledger (``open ->
closing``), so however many deliveries race, one closer registers the dataset version and
submits the run, and the batch records both; a closer that crashed is taken over once its claim
goes stale.

The files of a closed batch are what storage holds in its folder when it closes (the listing is
the truth, events can be late): every blob, or only the manifest's ``files`` when it lists them,
each checked against the manifest's size and MD5. A bad or missing file is recorded as a
problem of the batch and left out; the good files still make the dataset version.

A batch whose folder holds ``_upload.json`` (written first by ``manymodels data upload``) has a
manifest coming: the quiet timer leaves it open until the manifest lands (a slow upload is not
closed as a full batch, which would drop every file a partial batch does not replace), and fails
it with the reason after :data:`UPLOAD_ABANDONED_SECONDS` without one.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.data.manifest import MANIFEST_NAME, UPLOAD_MARKER, BatchKind, Manifest
from shared.errors import InvalidValue, ManyModelsError, NotFound
from shared.events import BlobCreated
from shared.flows.context import Context, handle_event
from shared.ledger import Batch, BatchFile, BatchState, RunEntry, RunState, age_seconds, encode_key
from shared.storage.blobs import BlobInfo, BlobStore
from shared.workspace.base import DatasetFile, DatasetMode, DatasetVersion, PipelineKind, Run

log = logging.getLogger(__name__)

CLOSING_LEASE_SECONDS = 300.0  # a closer silent this long crashed: another one takes over
UPLOAD_ABANDONED_SECONDS = 24 * 3600.0  # an upload marker this old without a manifest: the upload died
DATASET_NAMES = {BatchKind.TRAIN: "train", BatchKind.INFERENCE: "inference"}
BATCH_TAG = "manymodels_batch"


@dataclass(frozen=True, slots=True)
class LandingPath:
    """Where a blob sits in the landing layout."""

    kind: BatchKind
    batch: str
    name: str  # relative to the batch folder

    @property
    def blob(self) -> str:
        return f"{self.kind}/{self.batch}/{self.name}"

    @property
    def is_manifest(self) -> bool:
        return self.name == MANIFEST_NAME


def landing_path(container: str, blob: str, *, landing_container: str) -> LandingPath:
    """The batch a blob belongs to. Raises InvalidValue saying why the blob is refused."""
    if container != landing_container:
        raise InvalidValue(f"container {container!r} is not the landing container {landing_container!r}")
    problem = unsafe_name(blob)
    if problem:
        raise InvalidValue(f"blob name {blob!r} is unsafe: {problem}")
    parts = blob.split("/")
    if len(parts) < 3 or parts[0] not in {str(k) for k in BatchKind}:
        raise InvalidValue(f"blob {blob!r} is outside the landing layout: expected "
                           "train/<batch>/<file> or inference/<batch>/<file>")
    for what, key in (("batch name", "batchfile:" + encode_key(f"{parts[0]}/{parts[1]}")),
                      ("file name", encode_key("/".join(parts[2:])))):
        if len(key.encode("utf-16-le")) > 1024:  # the ledger keys batches and files by them: 1 KiB at most
            raise InvalidValue(f"blob {blob[:60]!r}... ({len(blob)} characters): its {what} is too long for a "
                               "ledger key (1 KiB in UTF-16 after percent-encoding / \\ # ? %): use shorter names")
    return LandingPath(BatchKind(parts[0]), parts[1], "/".join(parts[2:]))


def unsafe_name(path: str) -> str:
    """Why ``path`` is not a safe relative blob path ('' when it is)."""
    if not path:
        return "it is empty"
    if len(path) > 1024:
        return "it is longer than 1024 characters"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "it is absolute"
    if "\\" in path:
        return "it contains a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "it contains control characters"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "it has an empty, '.' or '..' path segment"
    return ""


# --------------------------------------------------------------------------- events


def handle_landing_event(ctx: Context, delivery: Any) -> str:
    """``on_landing_event``: one Event Grid delivery of the landing container (a binding or its dict).

    Event ids are not remembered here: recording a blob is an upsert keyed by its name (the eTag
    is kept) and closing is a ledger claim, so replays are harmless and thousands of blobs cost
    two ledger calls fewer each.
    """
    return handle_event(ctx, delivery, {BlobCreated: on_blob_created}, function="on_landing_event",
                        forget=(BlobCreated,))


def on_blob_created(ctx: Context, event: BlobCreated) -> str:
    try:
        where = landing_path(event.container, event.blob, landing_container=ctx.settings.landing_container)
    except InvalidValue as e:
        log.warning("blob refused: %s (event %s)", e.message, event.id)
        return f"refused: {e.message}"
    if where.is_manifest:
        batch = close_batch(ctx, where.kind, where.batch, manifest=True)
        return f"manifest: batch {where.kind}/{where.batch} is {batch.state if batch else 'unknown'}"
    header = ctx.ledger.batches.record_file(
        str(where.kind), where.batch, BatchFile(where.name, where.blob, event.etag, event.size),
        touch_after=min(5.0, ctx.settings.data_quiet_seconds / 10))
    if header.state == BatchState.OPEN:
        return f"recorded in batch {header.key}"
    if _in_dataset(ctx, header, where.blob, event.etag):
        return f"already in dataset {header.dataset_name} v{header.dataset_version}"
    log.warning("blob %s arrived after batch %s was %s; it is not in its dataset version: upload it in a "
                "new batch", where.blob, header.key, header.state)
    return f"late: batch {header.key} is {header.state}"


def _in_dataset(ctx: Context, batch: Batch, blob: str, etag: str) -> bool:
    if not batch.dataset_name or batch.dataset_version is None:
        return False
    key = (ctx.workspace.name, batch.dataset_name, batch.dataset_version)
    if key not in _DATASET_FILES:
        try:
            dataset = ctx.workspace.datasets.get(batch.dataset_name, batch.dataset_version)
        except NotFound:
            return False
        if len(_DATASET_FILES) >= 8:  # stragglers come right after their batch closes: keep a few
            _DATASET_FILES.pop(next(iter(_DATASET_FILES)))
        _DATASET_FILES[key] = frozenset((f.path, f.etag) for f in dataset.files)
    return (blob, etag) in _DATASET_FILES[key]


_DATASET_FILES: dict[tuple[str, str, int], frozenset[tuple[str, str]]] = {}


# --------------------------------------------------------------------------- closing


def close_quiet_batches(ctx: Context, *, now: dt.datetime | None = None) -> list[Batch]:
    """``close_quiet_batches``: close open batches with no blob for ``DATA_QUIET_SECONDS``, and
    take over closings whose closer went silent. One bad batch never stops the others.

    ``now`` is the current UTC time (tests pass a later one instead of sleeping).
    """
    quiet = ctx.settings.data_quiet_seconds
    due = [b for b in ctx.ledger.batches.all(state=BatchState.OPEN) if age_seconds(b.last_blob, now=now) >= quiet]
    due += [b for b in ctx.ledger.batches.all(state=BatchState.CLOSING)
            if age_seconds(b.closing_since, now=now) >= CLOSING_LEASE_SECONDS]
    closed = []
    for batch in due:
        try:
            result = close_batch(ctx, BatchKind(batch.kind), batch.batch, manifest=False, now=now)
        except Exception:
            log.exception("closing batch %s failed; the next run of the timer tries again", batch.key)
            continue
        if result is not None and result.state != BatchState.OPEN:  # open: its manifest is still coming
            closed.append(result)
    return closed


def close_batch(ctx: Context, kind: BatchKind, batch: str, *, manifest: bool, now: dt.datetime | None = None
                ) -> Batch | None:
    """Close one batch: dataset version + run, exactly once. Returns the batch as it is now.

    Raises what storage or the workspace raised when it may pass (the claim then goes stale and
    a later delivery or the timer finishes the job); a problem with the data fails the batch.
    """
    token = uuid.uuid4().hex
    claimed = ctx.ledger.batches.claim(str(kind), batch, token=token, manifest=manifest,
                                       stale_after=CLOSING_LEASE_SECONDS)
    if claimed is None:
        current = ctx.ledger.batches.get(str(kind), batch)
        if current is not None and current.state == BatchState.FAILED:
            log.warning("batch %s failed earlier (%s): upload the fixed files as a new batch", current.key,
                        current.reason)
        elif manifest and current is not None and current.state == BatchState.CLOSED and not current.manifest:
            log.error("batch %s: %s arrived after the batch was closed without it (quiet for DATA_QUIET_SECONDS); "
                      "dataset %s v%s holds the files as a full batch: upload them again as a new batch with "
                      "`manymodels data upload`, which waits for its manifest", current.key, MANIFEST_NAME,
                      current.dataset_name, current.dataset_version)
        else:
            log.info("batch %s/%s is %s: nothing to close", kind, batch, current.state if current else "unknown")
        return current
    try:
        return _close(ctx, claimed, token, now=now)
    except ManyModelsError as e:
        if e.retryable:  # shared/errors.py decides, for every flow
            raise
        log.error("batch %s failed: %s", claimed.key, e.message)
        return ctx.ledger.batches.fail(claimed.kind, claimed.batch, token=token, reason=e.message)


def _close(ctx: Context, batch: Batch, token: str, *, now: dt.datetime | None = None) -> Batch:
    kind = BatchKind(batch.kind)
    store = BlobStore(ctx.storage, ctx.settings.landing_container)
    prefix = f"{kind}/{batch.batch}/"
    blobs = {b.name[len(prefix):]: b for b in store.list(prefix)}
    if MANIFEST_NAME not in blobs and UPLOAD_MARKER in blobs and batch.dataset_version is None:
        return _await_manifest(ctx, batch, token, blobs[UPLOAD_MARKER], now=now)
    manifest = _read_manifest(store, prefix, blobs, kind)
    files, problems = select_files(blobs, manifest, prefix=prefix)
    for problem in problems:
        log.warning("batch %s: %s", batch.key, problem)
    if not files:
        reason = "no usable files" + (f": {'; '.join(problems[:5])}" if problems else " in the batch folder")
        raise InvalidValue(f"batch {batch.key}: {reason}")
    mode = manifest.mode if manifest else DatasetMode.FULL
    resumed = batch.dataset_version is not None  # a closer before us got this far, then went silent
    dataset = _register(ctx, batch, files, mode)
    batch = ctx.ledger.batches.record_dataset(batch.kind, batch.batch, token=token, dataset_name=dataset.name,
                                              dataset_version=dataset.version, file_count=len(files),
                                              problems=problems)
    run = _submit(ctx, batch, dataset, resumed=resumed)
    ctx.ledger.runs.record(RunEntry(run.run_id, str(run.kind), RunState.SUBMITTED, submitted=run.submitted,
                                    dataset_name=dataset.name, dataset_version=dataset.version, batch=batch.key,
                                    source="batch", experiment=run.experiment))
    closed = ctx.ledger.batches.close(batch.kind, batch.batch, token=token, run_id=run.run_id)
    log.info("batch %s closed: %d files -> dataset %s v%d -> %s run %s", batch.key, len(files), dataset.name,
             dataset.version, run.kind, run.run_id)
    return closed


def _await_manifest(ctx: Context, batch: Batch, token: str, marker: BlobInfo, *, now: dt.datetime | None
                    ) -> Batch:
    """A batch whose upload said a manifest follows: back to ``open`` until it lands (its arrival
    closes the batch), or failed once the upload is clearly dead."""
    started = age_seconds(marker.last_modified, now=now)
    if started < UPLOAD_ABANDONED_SECONDS:
        log.info("batch %s is quiet but its upload has not written %s yet: left open", batch.key, MANIFEST_NAME)
        return ctx.ledger.batches.reopen(batch.kind, batch.batch, token=token)
    raise InvalidValue(f"batch {batch.key}: its upload started {marker.last_modified} ({UPLOAD_MARKER}) but never "
                       f"wrote {MANIFEST_NAME}; run `manymodels data upload <folder> --kind {batch.kind}` again "
                       "as a new batch")


def _read_manifest(store: BlobStore, prefix: str, blobs: Mapping[str, BlobInfo], kind: BatchKind) -> Manifest | None:
    if MANIFEST_NAME not in blobs:
        return None
    manifest = Manifest.parse(store.download_bytes(prefix + MANIFEST_NAME), source=prefix + MANIFEST_NAME)
    if manifest.kind != kind:
        raise InvalidValue(f"{prefix}{MANIFEST_NAME}: field 'kind' is {str(manifest.kind)!r} but the batch is "
                           f"under {str(kind)!r}/; move the batch or fix the manifest")
    return manifest


def select_files(blobs: Mapping[str, BlobInfo], manifest: Manifest | None, *, prefix: str
                 ) -> tuple[list[DatasetFile], list[str]]:
    """The batch's dataset files (name relative to the batch folder), and a problem per bad file."""
    problems: list[str] = []
    candidates = {n: b for n, b in blobs.items() if n not in (MANIFEST_NAME, UPLOAD_MARKER)}
    if manifest is not None and manifest.files is not None:
        listed = {f.name: f for f in manifest.files}
        for name in sorted(set(candidates) - set(listed)):
            problems.append(f"{name}: not listed in {MANIFEST_NAME}; left out")
        chosen = {}
        for name, entry in listed.items():
            blob = candidates.get(name)
            if blob is None:
                problems.append(f"{name}: listed in {MANIFEST_NAME} but missing from {prefix}")
            elif entry.size is not None and entry.size != blob.size:
                problems.append(f"{name}: size is {blob.size} bytes, {MANIFEST_NAME} says {entry.size}")
            elif entry.md5 and blob.md5 and entry.md5 != blob.md5:
                problems.append(f"{name}: MD5 is {blob.md5}, {MANIFEST_NAME} says {entry.md5}")
            else:
                chosen[name] = blob
        candidates = chosen
    files = []
    for name in sorted(candidates):
        problem = unsafe_name(name)
        if problem:
            problems.append(f"{name!r}: unsafe name ({problem}); left out")
            continue
        blob = candidates[name]
        files.append(DatasetFile(name=name, path=blob.name, etag=blob.etag, size=blob.size, md5=blob.md5))
    return files, problems


def _register(ctx: Context, batch: Batch, files: list[DatasetFile], mode: DatasetMode) -> DatasetVersion:
    name = DATASET_NAMES[BatchKind(batch.kind)]
    if batch.dataset_version is not None:  # a closer before us got this far
        return ctx.workspace.datasets.get(batch.dataset_name or name, batch.dataset_version)
    return ctx.workspace.datasets.register(name, files, datastore=f"azureblob://{ctx.settings.landing_container}",
                                           mode=mode, tags={BATCH_TAG: batch.key})


def _submit(ctx: Context, batch: Batch, dataset: DatasetVersion, *, resumed: bool) -> Run:
    if batch.run_id:
        return ctx.workspace.runs.get(batch.run_id)
    if resumed:  # the silent closer may have submitted before it could record the run
        for run in ctx.workspace.runs.list():
            if run.tags.get(BATCH_TAG) == batch.key:
                log.info("batch %s: run %s was already submitted by an earlier closer", batch.key, run.run_id)
                return run
    training = BatchKind(batch.kind) == BatchKind.TRAIN
    pipeline = ctx.settings.training_pipeline_name if training else ctx.settings.forecasting_pipeline_name
    parameters = {"mode": ctx.settings.training_mode} if training else {}
    run = ctx.workspace.pipelines.submit(pipeline, dataset, parameters=parameters,
                                         tags={BATCH_TAG: batch.key, "manymodels_source": "landing"})
    log.info("batch %s: submitted %s run %s on %s v%d", batch.key,
             PipelineKind.TRAINING if training else PipelineKind.FORECASTING, run.run_id, dataset.name,
             dataset.version)
    return run
