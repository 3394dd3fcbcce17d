"""A small blob module over ``azure-storage-blob``: parallel transfers and listings with eTags."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobProperties, ContainerClient, ContentSettings

from shared.errors import InvalidValue, NotFound
from shared.paths import path_inside
from shared.storage.account import StorageAccount
from shared.storage.errors import storage_call, storage_error

DEFAULT_WORKERS = 8


@dataclass(frozen=True, slots=True)
class BlobInfo:
    container: str
    name: str
    etag: str
    size: int
    md5: str | None  # base64, as the service reports Content-MD5
    last_modified: str  # ISO 8601


def _info(container: str, props: BlobProperties) -> BlobInfo:
    md5 = props.content_settings.content_md5 if props.content_settings else None
    return BlobInfo(
        container=container,
        name=props.name,
        etag=props.etag.strip('"'),
        size=int(props.size or 0),
        md5=base64.b64encode(bytes(md5)).decode() if md5 else None,
        last_modified=props.last_modified.isoformat() if props.last_modified else "",
    )


class BlobStore:
    """One container. Storage errors leave as product errors by their HTTP status
    (shared/storage/errors.py): :class:`~shared.errors.Unavailable` when storage cannot be reached or
    throttles, :class:`~shared.errors.PermissionDenied` on a missing role, and so on."""

    def __init__(self, account: StorageAccount, container: str) -> None:
        self.container = container
        self._client: ContainerClient = account.blob_service().get_container_client(container)

    def ensure_container(self) -> None:
        try:
            self._client.create_container()
        except ResourceExistsError:
            pass
        except HttpResponseError as e:
            # only this answer is about the name; 403 (a missing role), 503 (throttling) and the rest
            # are translated by status, so their retryability is kept
            # error_code is set by azure-storage's error handler, not declared on HttpResponseError
            code = str(getattr(e, "error_code", "") or "")
            if e.status_code == 400 and code in ("InvalidResourceName", "OutOfRangeInput", ""):
                raise InvalidValue(f"container {self.container!r} could not be created ({code or e.reason}): "
                                   "container names are 3-63 lower-case letters, digits and single dashes") from e
            raise storage_error(e, f"create container {self.container!r}") from e
        except AzureError as e:  # no answer at all (ServiceRequestError) and the like
            raise storage_error(e, f"create container {self.container!r}") from e

    def upload_bytes(self, name: str, data: bytes, *, content_type: str | None = None) -> BlobInfo:
        settings = ContentSettings(content_type=content_type) if content_type else None
        blob = self._client.get_blob_client(name)
        with storage_call(f"upload {self.container}/{name}"):
            result = blob.upload_blob(data, overwrite=True, content_settings=settings)
        # the upload's response already has what a properties call would return: save the round trip
        md5 = result.get("content_md5")
        modified = result.get("last_modified")
        return BlobInfo(
            container=self.container,
            name=name,
            etag=str(result["etag"]).strip('"'),
            size=len(data),
            md5=base64.b64encode(bytes(md5)).decode() if md5 else None,
            last_modified=modified.isoformat() if modified else "",
        )

    def upload_file(self, name: str, path: str | Path) -> BlobInfo:
        return self.upload_bytes(name, Path(path).read_bytes())

    def upload_many(
        self,
        items: Sequence[tuple[str, str | Path]],
        *,
        max_workers: int = DEFAULT_WORKERS,
        progress: Callable[[int], None] | None = None,
    ) -> list[BlobInfo]:
        """Upload (blob name, local path) pairs in parallel; results in the order given."""
        def one(item: tuple[str, str | Path]) -> BlobInfo:
            info = self.upload_file(*item)
            if progress:
                progress(1)
            return info

        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            return list(pool.map(one, items))

    def download_bytes(self, name: str) -> bytes:
        try:
            with storage_call(f"download {self.container}/{name}"):
                return self._client.download_blob(name).readall()
        except NotFound as e:
            raise NotFound(f"blob {self.container}/{name} does not exist") from e

    def download_many(
        self, names: Iterable[str], target_dir: str | Path, *, max_workers: int = DEFAULT_WORKERS,
        strip_prefix: str = "",
    ) -> list[Path]:
        """Download blobs into ``target_dir`` (keeping their relative paths after ``strip_prefix``)."""
        target = Path(target_dir)

        def one(name: str) -> Path:
            rel = name[len(strip_prefix):] if strip_prefix and name.startswith(strip_prefix) else name
            path = path_inside(target, rel, what=f"blob {self.container}/{name}: local path")  # no ../ escapes
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.download_bytes(name))
            return path

        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            return list(pool.map(one, list(names)))

    def get(self, name: str) -> BlobInfo:
        try:
            with storage_call(f"read the properties of {self.container}/{name}"):
                return _info(self.container, self._client.get_blob_client(name).get_blob_properties())
        except NotFound as e:
            raise NotFound(f"blob {self.container}/{name} does not exist") from e

    def exists(self, name: str) -> bool:
        with storage_call(f"check {self.container}/{name}"):
            return self._client.get_blob_client(name).exists()

    def list(self, prefix: str = "") -> list[BlobInfo]:
        try:
            with storage_call(f"list {self.container}/{prefix}"):
                return [_info(self.container, p) for p in self._client.list_blobs(name_starts_with=prefix or None)]
        except NotFound:  # no container yet: nothing in it
            return []

    def delete(self, name: str) -> None:
        with storage_call(f"delete {self.container}/{name}"), contextlib.suppress(ResourceNotFoundError):
            self._client.delete_blob(name)

    @property
    def url(self) -> str:
        return self._client.url
