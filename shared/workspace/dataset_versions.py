"""Dataset versioning rules every backend follows (the port is shared/workspace/base.py).

An adapter only stores and numbers versions; what a new version holds is decided here, once:
which file lists are allowed, how a partial batch merges over the previous version, the content
fingerprint that makes a replay register nothing, and which files changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import InvalidValue
from shared.workspace.base import DatasetFile, DatasetMode, DatasetVersion

DATASTORE_SCHEMES = ("azureblob://", "file:///")


@dataclass(frozen=True, slots=True)
class NewVersion:
    """What :func:`plan_version` decided a registration adds."""

    files: tuple[DatasetFile, ...]  # the whole version, in order
    fingerprint: str
    changed: tuple[str, ...]  # names of files that differ from the previous version, in file order


def check_files(name: str, files: Sequence[DatasetFile], *, datastore: str, mode: DatasetMode | str) -> DatasetMode:
    """Refuse a registration no backend may accept; returns ``mode`` as a :class:`DatasetMode`."""
    if not name or not name.strip() or "/" in name:
        raise InvalidValue(f"dataset name {name!r} is not allowed: expected a non-empty name without '/'")
    try:
        mode = DatasetMode(mode)
    except ValueError:
        raise InvalidValue(f"dataset mode {mode!r} is not allowed: expected 'full' or 'partial'") from None
    if not datastore.startswith(DATASTORE_SCHEMES):
        raise InvalidValue(f"datastore {datastore!r} is not allowed: expected azureblob://<container> "
                           "or file:///abs/dir")
    if not files:
        raise InvalidValue(f"dataset {name!r}: a version needs at least one file, got none")
    seen: set[str] = set()
    for f in files:
        if not f.name:
            raise InvalidValue(f"dataset {name!r}: a file has an empty name (path {f.path!r})")
        if not f.fingerprint:
            raise InvalidValue(f"dataset {name!r}: file {f.name!r} has neither md5 nor etag")
        if f.name in seen:
            raise InvalidValue(f"dataset {name!r}: file name {f.name!r} appears twice; names must be unique")
        seen.add(f.name)
    return mode


def merge_partial(previous: Sequence[DatasetFile], batch: Sequence[DatasetFile]) -> tuple[DatasetFile, ...]:
    """A partial batch on top of the previous version: same names replaced in place, new ones appended
    in batch order (so a version's order is stable across partial batches)."""
    replacements = {f.name: f for f in batch}
    merged = [replacements.pop(f.name, f) for f in previous]
    return (*merged, *(f for f in batch if f.name in replacements))


def fingerprint(files: Sequence[DatasetFile]) -> str:
    """Content fingerprint of a file list: same names and contents give the same value, whatever the
    order or the batch folder a file arrived in (a replay from another batch registers nothing)."""
    h = hashlib.sha256()
    for name, content in sorted((f.name, f.fingerprint) for f in files):
        h.update(f"{name}\0{content}\n".encode())
    return h.hexdigest()


def changed_names(previous: Sequence[DatasetFile] | None, files: Sequence[DatasetFile]) -> tuple[str, ...]:
    """Names in ``files`` whose content differs from ``previous`` (every name when there is none)."""
    before = {f.name: f.fingerprint for f in previous or ()}
    return tuple(f.name for f in files if previous is None or before.get(f.name) != f.fingerprint)


def plan_version(name: str, files: Sequence[DatasetFile], *, datastore: str, mode: DatasetMode | str,
                 latest: DatasetVersion | None) -> NewVersion | None:
    """What registering ``files`` on top of ``latest`` adds, or None when it is a replay (the resulting
    file list equals the latest version's: same names and fingerprints).

    Raises InvalidValue for a file list :func:`check_files` refuses and for a partial batch on a
    dataset with no version yet.
    """
    mode = check_files(name, files, datastore=datastore, mode=mode)
    if mode is DatasetMode.PARTIAL:
        if latest is None:
            raise InvalidValue(f"dataset {name!r} has no version yet, so a partial batch has nothing to "
                               "update: upload the first batch with mode 'full'")
        files = merge_partial(latest.files, files)
    files = tuple(files)
    digest = fingerprint(files)
    if latest is not None and fingerprint(latest.files) == digest:
        return None
    return NewVersion(files=files, fingerprint=digest,
                      changed=changed_names(latest.files if latest is not None else None, files))


def changed_files(version: DatasetVersion) -> list[DatasetFile]:
    """The files ``TRAINING_MODE=changed`` trains on ``version``; refused when there are none (a
    version that only dropped files), on every backend, at submit rather than as an empty run."""
    changed = set(version.changed)
    files = [f for f in version.files if f.name in changed]
    if not files:
        raise InvalidValue(f"dataset {version.name!r} version {version.version} changed no file, so "
                           "TRAINING_MODE=changed has nothing to train: submit with mode 'all' to retrain all")
    return files
