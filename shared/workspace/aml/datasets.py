"""Dataset versions as Azure ML ``FileDataset`` versions on the landing datastore.

A FileDataset knows its paths but not the eTags/MD5s the product needs to tell which files
changed, so each version's file list is also written as a small JSON document to the
``datasets`` container (never the landing container: that would raise landing events). The
registered dataset carries a content fingerprint in its tags: registering the same files again
returns the existing version (replays are normal), and ``create_new_version`` does the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azureml.core import Dataset, Datastore
from azureml.core import Workspace as SdkWorkspace

from shared.errors import InvalidValue, NotFound
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from shared.workspace.aml.sdk_errors import sdk_call
from shared.workspace.base import DatasetFile, DatasetMode, DatasetStore, DatasetVersion
from shared.workspace.dataset_versions import changed_files, plan_version

METADATA_CONTAINER = "datasets"
TAG_FINGERPRINT = "manymodels_fingerprint"
TAG_FILES = "manymodels_files"
TAG_MODE = "manymodels_mode"
_INTERNAL_TAGS = (TAG_FINGERPRINT, TAG_FILES, TAG_MODE)


def datastore_name(datastore: str) -> str:
    """AML datastore name for ``azureblob://<container>`` (names allow letters, digits and ``_``)."""
    scheme, _, container = datastore.partition("://")
    if scheme != "azureblob" or not container:
        raise InvalidValue(f"datastore={datastore!r} is not allowed on Azure ML: expected "
                           "'azureblob://<container>' (a container of the product's storage account)")
    return container.replace("-", "_")


class AmlDatasetStore(DatasetStore):
    def __init__(self, ws: SdkWorkspace, *, storage: StorageAccount) -> None:
        self._ws = ws
        self._storage = storage

    def _metadata(self) -> BlobStore:
        return BlobStore(self._storage, METADATA_CONTAINER)

    def register(
        self,
        name: str,
        files: Sequence[DatasetFile],
        *,
        datastore: str,
        mode: DatasetMode = DatasetMode.FULL,
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion:
        store_name = datastore_name(datastore)
        latest = self._latest_or_none(name)
        planned = plan_version(name, files, datastore=datastore, mode=mode, latest=latest)
        if planned is None:
            assert latest is not None  # a replay is of the latest version
            return latest
        files, fp, changed = planned.files, planned.fingerprint, planned.changed
        document = f"{name}/{fp}-after-{latest.version if latest else 0}.json"
        self._write_document(document, datastore=datastore, mode=mode, files=files, changed=changed,
                             created=datetime.now(UTC).isoformat())
        all_tags = {**(tags or {}), TAG_FINGERPRINT: fp, TAG_FILES: document, TAG_MODE: str(mode)}
        with sdk_call(f"register version of dataset {name!r} ({len(files)} files on datastore {store_name!r})"):
            store = Datastore.get(self._ws, store_name)
            dataset = Dataset.File.from_files(path=[(store, f.path) for f in files], validate=False)
            registered = dataset.register(self._ws, name, description=f"manymodels {mode} dataset",
                                          tags=all_tags, create_new_version=True)
        return self._record(registered)

    def get(self, name: str, version: int | str = "latest") -> DatasetVersion:
        with sdk_call(f"get dataset {name!r} version {version}"):
            dataset = Dataset.get_by_name(self._ws, name, version=str(version))
        return self._record(dataset)

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        with sdk_call("list datasets"):
            names = [name] if name else sorted(Dataset.get_all(self._ws).keys())
        versions: list[DatasetVersion] = []
        for n in names:
            latest = self._latest_or_none(n)
            if latest is None:
                continue
            versions.extend(self.get(n, v) for v in range(1, latest.version))
            versions.append(latest)
        return versions

    def submission(self, version: DatasetVersion, *, only_changed: bool) -> Any:
        """The FileDataset a pipeline run consumes: the registered version, or just its changed files."""
        if not only_changed or set(version.changed) == {f.name for f in version.files}:
            with sdk_call(f"get dataset {version.name!r} version {version.version}"):
                return Dataset.get_by_name(self._ws, version.name, version=str(version.version))
        paths = [f.path for f in changed_files(version)]
        with sdk_call(f"select the changed files of dataset {version.name!r} version {version.version}"):
            store = Datastore.get(self._ws, datastore_name(version.datastore))
            return Dataset.File.from_files(path=[(store, p) for p in paths], validate=False)

    # ------------------------------------------------------------------ internals

    def _latest_or_none(self, name: str) -> DatasetVersion | None:
        try:
            return self.get(name)
        except NotFound:
            return None

    def _write_document(self, document: str, *, datastore: str, mode: DatasetMode,
                        files: Sequence[DatasetFile], changed: Sequence[str], created: str) -> None:
        body = {"datastore": datastore, "mode": str(mode), "changed": list(changed), "created": created,
                "files": [{"name": f.name, "path": f.path, "etag": f.etag, "size": f.size, "md5": f.md5}
                          for f in files]}
        blobs = self._metadata()
        blobs.ensure_container()
        blobs.upload_bytes(document, json.dumps(body).encode(), content_type="application/json")

    def _record(self, dataset: Any) -> DatasetVersion:
        tags = dict(dataset.tags or {})
        document = tags.get(TAG_FILES)
        if not document:
            raise NotFound(f"dataset {dataset.name!r} version {dataset.version} was not registered by manymodels "
                           f"(no {TAG_FILES!r} tag): register datasets through the landing container")
        body = json.loads(self._metadata().download_bytes(document))
        files = tuple(DatasetFile(name=f["name"], path=f["path"], etag=f["etag"], size=int(f["size"]),
                                  md5=f.get("md5")) for f in body["files"])
        return DatasetVersion(
            name=dataset.name, version=int(dataset.version), datastore=body["datastore"], files=files,
            changed=tuple(body["changed"]), mode=DatasetMode(body["mode"]),
            tags={k: v for k, v in tags.items() if k not in _INTERNAL_TAGS}, created=body.get("created", ""),
        )
