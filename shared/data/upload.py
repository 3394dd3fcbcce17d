"""Upload a folder of data files as one landing batch: ``<landing>/<kind>/<batch>/...``.

The data files go first, in parallel; the batch's ``_manifest.json`` (kind, mode and every file
with its size and base64 MD5) goes last, because its arrival is what closes the batch: a reader
that sees the manifest sees every file it names (docs/architecture.md §3.1). Before the data files, a small
``_upload.json`` marker says a manifest follows, so a slow upload is not closed by the quiet
timer as a full batch without its manifest (shared/flows/ingest.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from azure.core.exceptions import AzureError

from shared.data.manifest import MANIFEST_NAME, UPLOAD_MARKER, BatchKind, Manifest, ManifestFile
from shared.data.schema import DatasetSchema
from shared.data.tables import list_data_files
from shared.data.validate import validate_folder
from shared.errors import BadData, InvalidValue, ManyModelsError, Unavailable
from shared.settings import Settings
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from shared.workspace.base import DatasetMode

_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_Choice = TypeVar("_Choice", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class UploadResult:
    container: str
    kind: BatchKind
    mode: DatasetMode
    batch: str
    prefix: str  # "<kind>/<batch>/"
    files: tuple[ManifestFile, ...]
    manifest: str  # blob name of the manifest, written last

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def to_dict(self) -> dict[str, object]:
        return {"container": self.container, "kind": str(self.kind), "mode": str(self.mode), "batch": self.batch,
                "prefix": self.prefix, "files": len(self.files), "bytes": self.total_bytes,
                "manifest": self.manifest}


def new_batch_id(now: datetime | None = None) -> str:
    """A sortable UTC timestamp and a random suffix: ``20261127T102300Z-3f9a1c``.

    The suffix keeps two uploads started in the same second apart (they would otherwise share a
    folder and overwrite each other's manifest).
    """
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def content_md5(path: Path) -> str:
    """Base64 MD5 of a file, as storage reports Content-MD5."""
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def upload_batch(
    settings: Settings,
    folder: str | Path,
    *,
    kind: str | BatchKind,
    batch: str | None = None,
    mode: str | DatasetMode = DatasetMode.FULL,
    progress: Callable[[int], None] | None = None,
    schema: DatasetSchema | None = None,
    validate: bool = True,
    max_workers: int = 8,
    clock: Callable[[], datetime] | None = None,
) -> UploadResult:
    """Upload every CSV/Parquet file under ``folder`` as batch ``batch`` of ``kind``, manifest last.

    Args:
        settings: storage connection and landing container.
        folder: local folder; relative paths inside it are kept under the batch prefix.
        kind: ``train`` or ``inference``.
        batch: batch id (default: the UTC time, ``20261127T102300Z``).
        mode: ``full`` (the files are the whole dataset) or ``partial`` (they replace files by name).
        progress: called with 1 after each uploaded file.
        schema: dataset schema used to validate (default: the repo's ``script_settings.json``).
        validate: check every file first and refuse to upload when any has errors.
        clock: the current UTC time (tests pass a fixed one; default: the system clock).

    Returns:
        What was uploaded, with the manifest's blob name.

    Raises:
        InvalidValue: a bad argument, or no data files in ``folder``.
        BadData: ``validate`` found errors (the message names the files).
        Unavailable: storage cannot be reached.
    """
    batch_kind = _enum(BatchKind, kind, "kind")
    batch_mode = _enum(DatasetMode, mode, "mode")
    now = clock or (lambda: datetime.now(UTC))
    batch_id = batch or new_batch_id(now())
    if not _BATCH_ID.match(batch_id):
        raise InvalidValue(f"batch id {batch_id!r} is not allowed: use letters, digits, '.', '_' or '-' "
                           "(at most 128, no '/'), e.g. 20261127T102300Z")
    root = Path(folder)
    if not root.is_dir():
        raise InvalidValue(f"{root} is not a folder")
    if validate:
        _refuse_errors(root, schema or DatasetSchema.load(), batch_kind)
    paths = list_data_files(root)
    if not paths:
        raise InvalidValue(f"{root} holds no data files (.csv, .parquet); nothing to upload")

    prefix = f"{batch_kind}/{batch_id}/"
    names = [prefix + p.relative_to(root).as_posix() for p in paths]
    store = BlobStore(StorageAccount(settings.storage_connection), settings.landing_container)
    store.ensure_container()
    marker = {"kind": str(batch_kind), "mode": str(batch_mode), "batch": batch_id,
              "started": now().strftime("%Y-%m-%dT%H:%M:%SZ")}
    store.upload_bytes(prefix + UPLOAD_MARKER, json.dumps(marker).encode(), content_type="application/json")
    try:
        infos = store.upload_many(list(zip(names, paths, strict=True)), max_workers=max_workers, progress=progress)
    except (ManyModelsError, AzureError, OSError) as e:
        reason = e.message if isinstance(e, ManyModelsError) else str(e).splitlines()[0]
        raise Unavailable(f"upload of batch {batch_id} stopped: {reason}. The batch has no manifest yet; run "
                          f"`manymodels data upload {root} --kind {batch_kind} --batch {batch_id}` again to "
                          "finish it") from e
    files = []
    for path, info in zip(paths, infos, strict=True):
        md5 = content_md5(path)
        if info.md5 and info.md5 != md5:
            raise Unavailable(f"{info.name}: storage reports MD5 {info.md5} but the local file has {md5}; "
                              "the upload was damaged, upload the batch again")
        files.append(ManifestFile(name=path.relative_to(root).as_posix(), size=info.size, md5=md5))
    manifest = Manifest(kind=batch_kind, mode=batch_mode, batch=batch_id, files=tuple(files),
                        created=now().strftime("%Y-%m-%dT%H:%M:%SZ"))
    store.upload_bytes(prefix + MANIFEST_NAME, manifest.to_json().encode(), content_type="application/json")
    return UploadResult(container=settings.landing_container, kind=batch_kind, mode=batch_mode, batch=batch_id,
                        prefix=prefix, files=tuple(files), manifest=prefix + MANIFEST_NAME)


def _enum(enum: type[_Choice], value: Any, name: str) -> _Choice:
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(str(m) for m in enum)
        raise InvalidValue(f"--{name} {value!r} is not allowed: expected one of {allowed}") from None


def _refuse_errors(root: Path, schema: DatasetSchema, kind: BatchKind) -> None:
    report = validate_folder(root, schema, kind=str(kind))
    bad = report.files_with_errors
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise BadData(f"not uploading: {len(bad)} file(s) in {root} have errors: {shown}. "
                      f"See `manymodels data validate {root}`, fix or remove them, or pass --skip-validation")
