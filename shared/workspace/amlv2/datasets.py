"""Dataset versions as Azure ML data assets (SDK v2), versioned "1", "2", ... per name.

A version is a ``uri_folder`` data asset on the landing datastore whose path is the deepest folder
holding every file of the version (``azureml://datastores/landing/paths/train/batch-7/`` for a full
batch; the dataset's folder for a partial version, whose files come from several batches). A
data asset knows a folder, not the files' eTags/MD5s, so each version's file list is written as a
JSON document to the ``datasets`` container (never the landing container: that would raise
landing events), the same document the v1 adapter writes; the asset's tags carry the content
fingerprint and a pointer to that document (tag values are short strings: a file list does not
fit). What a new version holds is decided by shared/workspace/dataset_versions.plan_version: an
identical file list registers nothing (replays are normal).

Job inputs (:meth:`AmlV2DatasetStore.job_inputs`): a folder can hold files that are not in the
version (a full version drops files an older batch left in the folder), and a v2 job input is one
folder or one file, never a list. So a pipeline job always gets two inputs: ``data``, the version's
``uri_folder`` asset, and ``only_files``, a ``uri_file`` JSON list of the paths (relative to that
folder) to process - every file of the version, or only the changed ones for
``TRAINING_MODE=changed``. The list is a JSON document written next to the version's file list in
the ``datasets`` container (with the product's identity, like every blob it writes) and read by the
job through the identity-based ``datasets`` datastore (infra/modules/aml.bicep registers the
product's containers as datastores without keys), so its length is not limited like a string
input's and nothing is uploaded with the workspace's storage keys. The entry scripts skip
mini-batch files that are not in the list.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import posixpath
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes, InputOutputModes
from azure.ai.ml.entities import Data

from shared.errors import AlreadyExists, Conflict, InvalidValue, NotFound
from shared.settings import Settings
from shared.storage.blobs import BlobStore
from shared.workspace.amlv2.sdk_errors import sdk_call
from shared.workspace.amlv2.tags import (
    INPUT_DATA,
    INPUT_ONLY_FILES,
    INTERNAL_DATASET_TAGS,
    METADATA_CONTAINER,
    TAG_CHANGED_COUNT,
    TAG_FILES,
    TAG_FINGERPRINT,
    TAG_MODE,
)
from shared.workspace.base import DatasetFile, DatasetMode, DatasetStore, DatasetVersion, parse_version
from shared.workspace.dataset_versions import fingerprint, plan_version

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

def datastore_name(datastore: str) -> str:
    """The Azure ML datastore of ``azureblob://<container>``: the container's name with ``-`` as ``_``
    (how infra/modules/aml.bicep names the datastores it registers)."""
    scheme, _, container = datastore.partition("://")
    if scheme != "azureblob" or not container or "/" in container:
        raise InvalidValue(f"datastore={datastore!r} is not allowed on Azure ML: expected "
                           "'azureblob://<container>' (a container of the product's storage account)")
    return container.replace("-", "_")


def version_folder(files: Sequence[DatasetFile]) -> str:
    """The deepest folder (relative to the datastore, "" for its root) holding every file."""
    parents = [posixpath.dirname(f.path.lstrip("/")) for f in files]
    return posixpath.commonpath(parents) if parents else ""


def folder_uri(datastore: str, folder: str) -> str:
    """``azureml://datastores/<name>/paths/<folder>/`` - the long-form datastore URI of a folder."""
    return f"azureml://datastores/{datastore_name(datastore)}/paths/{folder.strip('/') + '/' if folder else ''}"


def file_uri(datastore: str, path: str) -> str:
    """``azureml://datastores/<name>/paths/<path>`` - the long-form datastore URI of a file."""
    return f"azureml://datastores/{datastore_name(datastore)}/paths/{path.strip('/')}"


class AmlV2DatasetStore(DatasetStore):
    def __init__(self, client: MLClient, settings: Settings, *, metadata: BlobStore) -> None:
        self._client = client
        self._settings = settings
        self._metadata = metadata

    # ------------------------------------------------------------------ port

    def register(
        self,
        name: str,
        files: Sequence[DatasetFile],
        *,
        datastore: str,
        mode: DatasetMode = DatasetMode.FULL,
        tags: Mapping[str, str] | None = None,
    ) -> DatasetVersion:
        datastore_name(datastore)  # refuse a datastore Azure ML cannot read before anything is written
        latest = self._latest_or_none(name)
        planned = plan_version(name, files, datastore=datastore, mode=mode, latest=latest)
        if planned is None:
            assert latest is not None  # a replay is of the latest version
            return latest
        mode = DatasetMode(mode)  # plan_version checked it
        number = (latest.version if latest else 0) + 1
        folder = version_folder(planned.files)
        document = f"{name}/{planned.fingerprint}-after-{number - 1}.json"
        self._write_document(document, datastore=datastore, folder=folder, mode=mode, files=planned.files,
                             changed=planned.changed, created=datetime.now(UTC).isoformat())
        asset = Data(
            name=name, version=str(number), type=AssetTypes.URI_FOLDER, path=folder_uri(datastore, folder),
            description=f"manymodels {mode} dataset ({len(planned.files)} files)",
            tags={**(tags or {}), TAG_FINGERPRINT: planned.fingerprint, TAG_FILES: document, TAG_MODE: str(mode),
                  TAG_CHANGED_COUNT: str(len(planned.changed))},
        )
        try:
            with sdk_call(f"register version {number} of dataset {name!r} ({len(planned.files)} files in "
                          f"{asset.path})"):
                created = self._client.data.create_or_update(asset)
        except (AlreadyExists, Conflict):
            # another registration took this number first: a replay of the same content is success
            winner = self._latest_or_none(name)
            if winner is not None and winner.version >= number and fingerprint(winner.files) == planned.fingerprint:
                return winner
            raise
        return self._record(created)

    def get(self, name: str, version: int | str = "latest") -> DatasetVersion:
        number = parse_version(f"dataset {name!r}", version)
        if number is None:
            latest = self._latest_or_none(name)
            if latest is None:
                raise NotFound(f"dataset {name!r} has no version in Azure ML: register one by uploading a batch to "
                               "the landing container")
            return latest
        with sdk_call(f"get dataset {name!r} version {number}"):
            asset = self._client.data.get(name=name, version=str(number))
        return self._record(asset)

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        if name is not None:
            return [self._record(a) for a in self._manymodels_versions(name)]
        with sdk_call("list data assets"):
            names = sorted({a.name for a in self._client.data.list()})
        versions: builtins.list[DatasetVersion] = []
        for n in names:
            versions.extend(self._record(a) for a in self._manymodels_versions(n))
        return versions

    # ------------------------------------------------------------------ for pipeline jobs (pipelines.py)

    def job_input(self, version: DatasetVersion, *, only_changed: bool = False) -> Input:
        """The version's ``uri_folder`` asset as a read-only mounted job input (``azureml:<name>:<n>``).

        ``only_changed`` is checked (a version that changed no file has nothing to train) but the
        folder is the same: the file selection is :meth:`job_inputs`'s ``only_files``."""
        self._selected(version, only_changed=only_changed)
        return Input(type=AssetTypes.URI_FOLDER, path=f"azureml:{version.name}:{version.version}",
                     mode=InputOutputModes.RO_MOUNT)

    def job_inputs(self, version: DatasetVersion, *, only_changed: bool = False) -> dict[str, Input]:
        """``{"data": <uri_folder>, "only_files": <uri_file JSON list of relative paths>}`` (module docstring)."""
        selected = self._selected(version, only_changed=only_changed)
        folder = version_folder(version.files)
        relative = [posixpath.relpath(f.path.lstrip("/"), folder or ".") for f in selected]
        body = json.dumps(relative).encode()
        # named by content: a resubmission of the same selection rewrites the same document
        document = f"{version.name}/selections/v{version.version}-{hashlib.sha256(body).hexdigest()[:16]}.json"
        self._metadata.ensure_container()
        self._metadata.upload_bytes(document, body, content_type="application/json")
        return {INPUT_DATA: self.job_input(version, only_changed=only_changed),
                INPUT_ONLY_FILES: Input(type=AssetTypes.URI_FILE, mode=InputOutputModes.DOWNLOAD,
                                        path=file_uri(f"azureblob://{METADATA_CONTAINER}", document))}

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _selected(version: DatasetVersion, *, only_changed: bool) -> builtins.list[DatasetFile]:
        if not only_changed:
            return list(version.files)
        changed = set(version.changed)
        files = [f for f in version.files if f.name in changed]
        if not files:
            raise InvalidValue(f"dataset {version.name!r} version {version.version} changed no file, so "
                               "TRAINING_MODE=changed has nothing to train: submit with mode 'all' to retrain all")
        return files

    def _manymodels_versions(self, name: str) -> builtins.list[Data]:
        """The versions of ``name`` this product registered (numbered, tagged), oldest first."""
        try:
            with sdk_call(f"list the versions of dataset {name!r}"):
                assets = list(self._client.data.list(name=name))
        except NotFound:
            return []
        return sorted((a for a in assets if str(a.version).isdigit() and TAG_FILES in (a.tags or {})),
                      key=lambda a: int(str(a.version)))

    def _latest_or_none(self, name: str) -> DatasetVersion | None:
        versions = self._manymodels_versions(name)
        return self._record(versions[-1]) if versions else None

    def _write_document(self, document: str, *, datastore: str, folder: str, mode: DatasetMode,
                        files: Sequence[DatasetFile], changed: Sequence[str], created: str) -> None:
        body: dict[str, Any] = {
            "datastore": datastore, "folder": folder, "mode": str(mode), "changed": list(changed), "created": created,
            "files": [{"name": f.name, "path": f.path, "etag": f.etag, "size": f.size, "md5": f.md5} for f in files]}
        self._metadata.ensure_container()
        self._metadata.upload_bytes(document, json.dumps(body).encode(), content_type="application/json")

    def _record(self, asset: Data) -> DatasetVersion:
        tags = {str(k): str(v) for k, v in (asset.tags or {}).items()}
        document = tags.get(TAG_FILES)
        if not document or not str(asset.version).isdigit():
            raise NotFound(f"dataset {asset.name!r} version {asset.version} was not registered by manymodels "
                           f"(no {TAG_FILES!r} tag): register datasets through the landing container")
        body = json.loads(self._metadata.download_bytes(document))
        files = tuple(DatasetFile(name=f["name"], path=f["path"], etag=f["etag"], size=int(f["size"]),
                                  md5=f.get("md5")) for f in body["files"])
        return DatasetVersion(
            name=str(asset.name), version=int(str(asset.version)), datastore=body["datastore"], files=files,
            changed=tuple(body["changed"]), mode=DatasetMode(body["mode"]),
            tags={k: v for k, v in tags.items() if k not in INTERNAL_DATASET_TAGS}, created=body.get("created", ""),
        )
