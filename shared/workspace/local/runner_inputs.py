"""The input files of a run: which files of the dataset version, and where they are on disk.

``file:///dir`` datastores are read in place; ``azureblob://<container>`` files are downloaded into
``<run>/inputs/`` first (Azure ML mounts or downloads a FileDataset the same way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.errors import InvalidValue
from shared.workspace.base import DatasetFile, DatasetVersion
from shared.workspace.local.datasets import local_path

BLOB_SCHEME = "azureblob://"


@dataclass(frozen=True, slots=True)
class RunInputs:
    files: tuple[DatasetFile, ...]
    paths: tuple[str, ...]  # local path of each file, same order

    def name_of(self) -> dict[str, str]:
        """Local path (and bare file name, when unique) -> dataset file name: failure rows name files."""
        names = {path: f.name for f, path in zip(self.files, self.paths, strict=True)}
        basenames: dict[str, list[str]] = {}
        for f in self.files:
            basenames.setdefault(Path(f.name).name, []).append(f.name)
        names.update({base: found[0] for base, found in basenames.items() if len(found) == 1})
        return names


def select(dataset: DatasetVersion, *, mode: str) -> list[DatasetFile]:
    """Every file (``mode="all"``), or only those changed since the previous version (``"changed"``)."""
    if mode == "all":
        return list(dataset.files)
    if mode == "changed":
        changed = set(dataset.changed)
        return [f for f in dataset.files if f.name in changed]
    raise InvalidValue(f"run parameter mode={mode!r} is not allowed: expected 'changed' or 'all'")


def _local_paths(datastore: str, files: list[DatasetFile]) -> list[str]:
    """Where each file of a ``file:///`` datastore is (the root is parsed once, not per file)."""
    root = str(local_path(datastore, ""))
    return [os.path.join(root, f.path) for f in files]


def resolve(files: list[DatasetFile], *, datastore: str, storage_connection: str, inputs_dir: Path) -> RunInputs:
    """Local paths of ``files`` (downloading blob files into ``inputs_dir``)."""
    if datastore.startswith("file:///"):
        paths = _local_paths(datastore, files)
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise InvalidValue(f"{len(missing)} input file(s) of the dataset are gone, e.g. {missing[0]}: "
                               "a local dataset is read in place, so keep its folder until the run ends")
        return RunInputs(tuple(files), tuple(paths))
    if datastore.startswith(BLOB_SCHEME):
        # imported here: the runner reaches this step before its heavy imports are done
        from shared.storage.account import StorageAccount
        from shared.storage.blobs import BlobStore

        container = datastore[len(BLOB_SCHEME):].strip("/")
        store = BlobStore(StorageAccount(storage_connection), container)
        downloaded = store.download_many([f.path for f in files], inputs_dir)
        return RunInputs(tuple(files), tuple(str(p) for p in downloaded))
    raise InvalidValue(f"datastore {datastore!r} is not allowed: expected file:///abs/dir or azureblob://container")
