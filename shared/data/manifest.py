"""The batch manifest: ``landing/<kind>/<batch>/_manifest.json``, written last, closes a batch.

Example::

    {"kind": "train", "mode": "partial", "batch": "2026-11-27T10-00-00",
     "files": [{"name": "Store1000_dominicks.csv", "size": 5342, "md5": "5evUwCzvvnlVl3xnraJCtw=="}],
     "created": "2026-11-27T10:00:03Z"}

``files`` is optional: without it, every blob of the batch folder belongs to the batch. ``size``
and ``md5`` (base64, like Content-MD5) are optional per file; when given, closing the batch checks
them.

``_upload.json`` (:data:`UPLOAD_MARKER`), written *first* by ``manymodels data upload``, says a
manifest will follow: the quiet-batch timer (shared/flows/ingest.py) then waits for the manifest
instead of closing a slow upload as a full batch without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from shared.errors import InvalidValue
from shared.workspace.base import DatasetMode

MANIFEST_NAME = "_manifest.json"
UPLOAD_MARKER = "_upload.json"  # written first: "a manifest follows"; never a data file of the batch

_Choice = TypeVar("_Choice", bound=StrEnum)


class BatchKind(StrEnum):
    TRAIN = "train"
    INFERENCE = "inference"


@dataclass(frozen=True, slots=True)
class ManifestFile:
    name: str
    size: int | None = None
    md5: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    kind: BatchKind
    mode: DatasetMode
    batch: str
    files: tuple[ManifestFile, ...] | None = None  # None: every blob in the batch folder
    created: str = ""

    def to_json(self) -> str:
        body: dict[str, Any] = {"kind": str(self.kind), "mode": str(self.mode), "batch": self.batch}
        if self.files is not None:
            body["files"] = [{k: v for k, v in (("name", f.name), ("size", f.size), ("md5", f.md5)) if v is not None}
                             for f in self.files]
        if self.created:
            body["created"] = self.created
        return json.dumps(body, indent=1)

    @classmethod
    def parse(cls, raw: bytes | str, *, source: str = MANIFEST_NAME) -> Manifest:
        """Parse and check a manifest; :class:`InvalidValue` names the field and what is allowed."""
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidValue(f"{source}: not valid JSON ({e})") from None
        if not isinstance(body, dict):
            raise InvalidValue(f"{source}: expected a JSON object, got {type(body).__name__}")
        kind = _choice(body, "kind", BatchKind, source)
        mode = _choice(body, "mode", DatasetMode, source, default="full")
        batch = body.get("batch", "")
        if not isinstance(batch, str):
            raise InvalidValue(f"{source}: field 'batch' must be a string, got {batch!r}")
        files = body.get("files")
        parsed_files = None if files is None else tuple(_file(f, i, source) for i, f in enumerate(_list(files, source)))
        return cls(kind=kind, mode=mode, batch=batch, files=parsed_files, created=str(body.get("created", "")))


def _choice(body: dict[str, Any], field: str, enum: type[_Choice], source: str,
            default: str | None = None) -> _Choice:
    value = body.get(field, default)
    allowed = [str(m) for m in enum]
    if value not in allowed:
        raise InvalidValue(f"{source}: field '{field}' is {value!r}; allowed: {', '.join(allowed)}")
    return enum(value)


def _list(files: Any, source: str) -> list[Any]:
    if not isinstance(files, list):
        raise InvalidValue(f"{source}: field 'files' must be a list of {{name, size, md5}} objects")
    return files


def _file(entry: Any, index: int, source: str) -> ManifestFile:
    where = f"{source}: files[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise InvalidValue(f"{where}: expected an object with a non-empty string 'name'")
    size = entry.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidValue(f"{where}: 'size' must be a non-negative integer, got {size!r}")
    md5 = entry.get("md5")
    if md5 is not None and not isinstance(md5, str):
        raise InvalidValue(f"{where}: 'md5' must be a base64 string, got {md5!r}")
    return ManifestFile(name=entry["name"], size=size, md5=md5)
