"""``AmlV2Workspace``: the workspace port on Azure ML through SDK v2 (``azure-ai-ml``).

Authentication is ``DefaultAzureCredential`` handed to ``MLClient``: the Function App's managed
identity on Azure, a developer's ``az login`` elsewhere. No key, no service principal secret.

Each store is built with only what it uses (the ``MLClient``, the settings, the blob store of
dataset file lists), never a reference back to the workspace: the stores stay testable one by one
on a fake client (tests/unit/workspace_contract/amlv2_backend.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.settings import Settings
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from shared.workspace.amlv2.datasets import AmlV2DatasetStore
from shared.workspace.amlv2.models import AmlV2ModelRegistry
from shared.workspace.amlv2.runs import AmlV2RunStore
from shared.workspace.amlv2.sdk_errors import sdk_call
from shared.workspace.amlv2.tags import METADATA_CONTAINER
from shared.workspace.base import PipelineStore, ServiceStore, Workspace

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

log = logging.getLogger(__name__)


def connect(settings: Settings) -> MLClient:
    """The ``MLClient`` of the workspace the settings name (no call to Azure is made yet: the
    client authenticates on its first request)."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    with sdk_call(f"open workspace {settings.workspace_name!r} in resource group {settings.resource_group!r}"):
        return MLClient(DefaultAzureCredential(), subscription_id=settings.subscription_id,
                        resource_group_name=settings.resource_group, workspace_name=settings.workspace_name)


class AzureMlEvents:
    """Azure ML raises its own run events to Event Grid (docs/architecture.md §2): nothing to publish here."""

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        if events:
            log.debug("Azure ML publishes its own events; %d local event(s) ignored", len(events))


def _pipeline_store(client: MLClient, settings: Settings, datasets: AmlV2DatasetStore) -> PipelineStore | None:
    try:  # written alongside this module (shared/workspace/amlv2/pipelines.py); absent on a partial checkout
        from shared.workspace.amlv2.pipelines import AmlV2PipelineStore
    except ModuleNotFoundError as e:
        if e.name != "shared.workspace.amlv2.pipelines":
            raise  # the module exists but one of its imports does not: a real error
        return None
    return AmlV2PipelineStore(client, settings, datasets=datasets)


def _service_store(client: MLClient, settings: Settings) -> ServiceStore | None:
    try:  # shared/workspace/amlv2/services.py
        from shared.workspace.amlv2.services import AmlV2ServiceStore
    except ModuleNotFoundError as e:
        if e.name != "shared.workspace.amlv2.services":
            raise  # the module exists but one of its imports does not: a real error
        return None
    return AmlV2ServiceStore(client, settings)


class AmlV2Workspace(Workspace):
    def __init__(self, settings: Settings, client: MLClient, *, metadata: BlobStore | None = None) -> None:
        """``metadata`` is where dataset versions' file lists are kept (the ``datasets`` container of the
        product's storage account unless given)."""
        self.settings = settings
        self.client = client
        self.storage = StorageAccount(settings.storage_connection)  # the product's account (as on every backend)
        self.metadata = metadata or BlobStore(self.storage, METADATA_CONTAINER)
        self.datasets = AmlV2DatasetStore(client, settings, metadata=self.metadata)
        self.runs = AmlV2RunStore(client, settings)
        self.models = AmlV2ModelRegistry(client, settings)
        self.events = AzureMlEvents()
        pipelines = _pipeline_store(client, settings, self.datasets)
        if pipelines is not None:
            self.pipelines = pipelines
        services = _service_store(client, settings)
        if services is not None:
            self.services = services

    def __getattr__(self, name: str) -> Any:
        # only reached for a store whose module is missing: say so instead of a bare AttributeError
        if name in ("pipelines", "services"):
            raise ImportError(f"the amlv2 backend's {name} store (shared/workspace/amlv2/{name}.py) is not available")
        raise AttributeError(name)

    @classmethod
    def from_settings(cls, settings: Settings) -> AmlV2Workspace:
        return cls(settings, connect(settings))

    @property
    def name(self) -> str:
        return f"amlv2:{self.settings.workspace_name}"
