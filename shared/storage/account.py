"""One storage account, from ``AzureWebJobsStorage``: clients for blobs, queues and tables.

Locally the value is ``UseDevelopmentStorage=true`` (Azurite on its default ports) or a full
connection string (tests start Azurite on free ports). On Azure it is an account URL
(``https://{account}.blob.core.windows.net``) and every client authenticates with
``DefaultAzureCredential`` (managed identity): no account key is ever read or written here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.errors import SettingsError

if TYPE_CHECKING:  # for the annotations only: _default_credential imports it when first called
    from azure.identity import DefaultAzureCredential

# Azurite's documented, public development account (not a secret: it only opens the emulator).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def dev_connection_string(*, host: str = "127.0.0.1", blob_port: int = 10000, queue_port: int = 10001,
                          table_port: int = 10002) -> str:
    """The connection string of an Azurite listening on ``host`` with the given ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table_port}/{DEV_ACCOUNT};"
    )


@functools.cache
def _default_credential() -> DefaultAzureCredential:
    """One credential per process: managed identity on Azure, developer login elsewhere."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@dataclass(frozen=True, slots=True)
class StorageAccount:
    """Client factory for one account. ``connection`` is the value of ``AzureWebJobsStorage``."""

    connection: str

    @property
    def _connection_string(self) -> str | None:
        value = self.connection.strip()
        if value.lower().replace(" ", "") == "usedevelopmentstorage=true":
            return dev_connection_string()
        if ("=" in value and ";" in value) or value.lower().startswith("defaultendpointsprotocol"):
            return value
        return None

    def _account_url(self, service: str) -> str:
        value = self.connection.strip().rstrip("/")
        parsed = urlparse(value if "://" in value else f"https://{value}.blob.core.windows.net")
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise SettingsError(
                f"AzureWebJobsStorage={self.connection!r} is not allowed: expected "
                "'UseDevelopmentStorage=true', a connection string, or an account URL like "
                "https://myaccount.blob.core.windows.net"
            )
        account = parsed.hostname.split(".")[0]
        return f"https://{account}.{service}.core.windows.net"

    @property
    def _credential(self) -> DefaultAzureCredential:
        return _default_credential()

    def blob_service(self) -> BlobServiceClient:
        cs = self._connection_string
        if cs:
            return BlobServiceClient.from_connection_string(cs)
        return BlobServiceClient(self._account_url("blob"), credential=self._credential)

    def queue_service(self) -> QueueServiceClient:
        cs = self._connection_string
        if cs:
            return QueueServiceClient.from_connection_string(cs)
        return QueueServiceClient(self._account_url("queue"), credential=self._credential)

    def table_service(self) -> TableServiceClient:
        cs = self._connection_string
        if cs:
            return TableServiceClient.from_connection_string(cs)
        return TableServiceClient(endpoint=self._account_url("table"), credential=self._credential)
