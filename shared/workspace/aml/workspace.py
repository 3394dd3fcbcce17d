"""``AmlWorkspace``: the workspace port on Azure ML (azureml-core SDK v1).

Authentication is ``DefaultAzureCredential`` wrapped in the SDK's ``TokenAuthentication``: the
Function App's managed identity on Azure, a developer's ``az login`` elsewhere. No key, no
service principal secret.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.settings import Settings
from shared.storage.account import StorageAccount
from shared.workspace.aml.datasets import AmlDatasetStore
from shared.workspace.aml.models import AmlModelRegistry
from shared.workspace.aml.pipelines import AmlPipelineStore
from shared.workspace.aml.runs import AmlRunStore
from shared.workspace.aml.sdk_errors import sdk_call
from shared.workspace.aml.services import AmlServiceStore
from shared.workspace.base import Workspace

if TYPE_CHECKING:  # for the annotation only: _credential imports it when first called
    from azure.identity import DefaultAzureCredential

log = logging.getLogger(__name__)


@functools.cache
def _credential() -> DefaultAzureCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def token_for_audience(audience: str) -> str:
    """What ``TokenAuthentication`` calls: an AAD token for the ARM or Azure ML audience."""
    scope = audience if audience.endswith("/.default") else audience.rstrip("/") + "/.default"
    return _credential().get_token(scope).token


def connect(settings: Settings) -> Any:
    """The SDK's ``Workspace`` named by the settings (azureml-core has no type hints: ``Any``)."""
    from azureml.core import Workspace as SdkWorkspace
    from azureml.core.authentication import TokenAuthentication

    with sdk_call(f"open workspace {settings.workspace_name!r} in resource group {settings.resource_group!r}"):
        return SdkWorkspace(subscription_id=settings.subscription_id, resource_group=settings.resource_group,
                            workspace_name=settings.workspace_name,
                            auth=TokenAuthentication(token_for_audience))


class AzureMlEvents:
    """Azure ML raises its own events to Event Grid: nothing to publish from here."""

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        if events:
            log.debug("Azure ML publishes its own events; %d local event(s) ignored", len(events))


class AmlWorkspace(Workspace):
    def __init__(self, settings: Settings, ws: Any) -> None:
        self.settings = settings
        self.ws = ws
        self.storage = StorageAccount(settings.storage_connection)
        self.datasets = AmlDatasetStore(ws, storage=self.storage)
        self.pipelines = AmlPipelineStore(ws, settings=settings, datasets=self.datasets)
        self.runs = AmlRunStore(ws, settings=settings)
        self.models = AmlModelRegistry(ws)
        self.services = AmlServiceStore(ws, settings=settings)
        self.events = AzureMlEvents()

    @classmethod
    def from_settings(cls, settings: Settings) -> AmlWorkspace:
        return cls(settings, connect(settings))

    @property
    def name(self) -> str:
        return f"aml:{self.settings.workspace_name}"
