"""``Microsoft.Storage.BlobCreated`` events from Azurite, which raises none itself.

Every ``interval`` seconds the watched containers (those the storage subscriptions filter on) are
listed with their eTags; each blob version not seen before becomes one event in the real schema.
Seen versions are stored with the queued deliveries in one transaction, so a restart announces
only what changed while the host was down, and a version is announced once (delivery itself is at
least once). The first start announces the blobs already there: locally nothing uploaded before
``manymodels up`` is lost.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.eventgrid import SystemEventNames
from azure.storage.blob import BlobServiceClient

from shared.devhost.bindings import event_time
from shared.devhost.eventgrid import LocalEventGrid

log = logging.getLogger(__name__)

TOPIC = "storage"
IDLE_FACTOR = 2
BLOB_CREATED = SystemEventNames.StorageBlobCreatedEventName.value  # .value: a plain str in JSON and logs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_blobs (
    container TEXT NOT NULL, name TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (container, name, etag)
)
"""


@dataclass(frozen=True, slots=True)
class BlobVersion:
    container: str
    name: str
    etag: str  # as the service returns it, with its quotes
    size: int
    content_type: str
    blob_type: str
    last_modified: object  # datetime


def storage_topic(account: str) -> str:
    return f"/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/{account}"


def blob_created(version: BlobVersion, *, account: str, url: str, sequencer: int) -> dict:
    """One BlobCreated event in Event Grid schema, shaped like Azure Storage raises it."""
    return {
        "topic": storage_topic(account),
        "subject": f"/blobServices/default/containers/{version.container}/blobs/{version.name}",
        "eventType": BLOB_CREATED,
        "id": str(uuid.uuid4()),
        "data": {
            "api": "PutBlob",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": version.etag,
            "contentType": version.content_type,
            "contentLength": version.size,
            "blobType": version.blob_type,
            "url": url,
            "sequencer": f"{sequencer:032X}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
        "dataVersion": "",
        "metadataVersion": "1",
        "eventTime": event_time(version.last_modified),  # type: ignore[arg-type]
    }


class BlobCreatedSource:
    """Polls containers and publishes BlobCreated to the local Event Grid's ``storage`` topic."""

    def __init__(self, grid: LocalEventGrid, service: BlobServiceClient, *, containers: Iterable[str] | None,
                 interval: float = 1.0) -> None:
        self.grid = grid
        self.service = service
        self.account = service.account_name or "devstoreaccount1"
        self.containers = None if containers is None else tuple(sorted(set(containers)))
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreachable = False
        with grid.store.transaction() as db:
            db.execute(_SCHEMA)
        self._seen = {(c, n, e) for c, n, e in grid.store.query("SELECT container, name, etag FROM seen_blobs")}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="blob-events", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        # listing a big landing container every second costs Azurite CPU: when nothing changes the
        # wait grows to IDLE_FACTOR x interval, and drops back as soon as a new blob shows up
        wait = self.interval
        while not self._stop.is_set():
            try:
                found = self.poll()
            except Exception:
                log.exception("blob polling failed; retrying")
                found = 0
            wait = self.interval if found else min(self.interval * IDLE_FACTOR, wait * 1.5)
            self._stop.wait(wait)

    def poll(self) -> int:
        """List the watched containers once; publish every new blob version. Returns how many."""
        new = [v for v in self._list() if (v.container, v.name, v.etag) not in self._seen]
        if not new:
            return 0
        # oldest first, so a batch's manifest (written last) is announced after its files
        new.sort(key=lambda v: (v.last_modified, v.container, v.name))
        with self.grid.store.transaction() as db:
            events = []
            for v in new:
                url = f"{self.service.get_container_client(v.container).url}/{quote(v.name)}"
                events.append(blob_created(v, account=self.account, url=url,
                                           sequencer=self.grid.store.next_value(db, "blob_sequencer")))
            self.grid.enqueue(db, TOPIC, events)
            db.executemany("INSERT OR IGNORE INTO seen_blobs (container, name, etag) VALUES (?, ?, ?)",
                           [(v.container, v.name, v.etag) for v in new])
        self._seen.update((v.container, v.name, v.etag) for v in new)
        self.grid.wake()
        log.info("%d new blob version(s) announced as BlobCreated", len(new))
        return len(new)

    def _list(self) -> list[BlobVersion]:
        try:
            names = self.containers or tuple(c.name for c in self.service.list_containers())
            found = [v for c in names for v in self._list_container(c)]
        except AzureError as e:
            if not self._unreachable:
                log.warning("storage is not reachable for blob events (%s); retrying every %.1fs", e, self.interval)
            self._unreachable = True
            return []
        self._unreachable = False
        return found

    def _list_container(self, container: str) -> list[BlobVersion]:
        client = self.service.get_container_client(container)
        try:
            return [BlobVersion(container, p.name, _quoted(p.etag), int(p.size or 0),
                                (p.content_settings.content_type if p.content_settings else None)
                                or "application/octet-stream",
                                str(getattr(p.blob_type, "value", p.blob_type) or "BlockBlob"), p.last_modified)
                    for p in client.list_blobs()]
        except ResourceNotFoundError:
            return []  # the container does not exist yet


def _quoted(etag: str) -> str:
    etag = str(etag)
    return etag if etag.startswith('"') else f'"{etag}"'
