"""The product's settings: one typed, frozen object built from environment variables.

Names and defaults follow the original accelerator's variable group (docs/architecture.md §7). A bad value
fails at start-up with the variable's name, the value and what is allowed::

    SettingsError: MAX_CONTAINER_SIZE=5000 is not allowed: expected a whole number from 1 to 1000
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, TypeVar

from shared.errors import SettingsError
from shared.run_parameters import TrainingMode

T = TypeVar("T")

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Setting:
    """How one environment variable becomes one field."""

    env: str
    default: str
    allowed: str  # what the error message says is allowed
    parse: Callable[[str, Setting], Any]
    description: str


def _fail(setting: Setting, value: str) -> SettingsError:
    return SettingsError(f"{setting.env}={value!r} is not allowed: expected {setting.allowed}")


def _choice(*options: str) -> Callable[[str, Setting], str]:
    def parse(value: str, setting: Setting) -> str:
        v = value.strip().lower()
        if v not in options:
            raise _fail(setting, value)
        return v

    return parse


def _bool(value: str, setting: Setting) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise _fail(setting, value)


def _int_range(lo: int, hi: int) -> Callable[[str, Setting], int]:
    def parse(value: str, setting: Setting) -> int:
        try:
            n = int(value.strip())
        except ValueError:
            raise _fail(setting, value) from None
        if not lo <= n <= hi:
            raise _fail(setting, value)
        return n

    return parse


def _text(value: str, setting: Setting) -> str:
    return value.strip()


def _name(value: str, setting: Setting) -> str:
    v = value.strip()
    if not v or any(c.isspace() or ord(c) < 32 for c in v):
        raise _fail(setting, value)
    return v


def _tags(value: str, setting: Setting) -> tuple[str, ...]:
    parts = [p.strip() for p in value.replace(";", ",").split(",")]
    tags = tuple(p for p in parts if p)
    if any(any(c.isspace() for c in t) for t in tags):
        raise _fail(setting, value)
    return tags


def _path(value: str, setting: Setting) -> Path:
    if not value.strip():
        raise _fail(setting, value)
    return Path(value.strip()).expanduser()


LOCAL_TOPIC = "local"  # EVENTS_TOPIC_ENDPOINT=local: the local Event Grid's topic (shared/flows/outbox.py)


def _endpoint(value: str, setting: Setting) -> str:
    """Empty, ``local``, an https:// URL, or http:// to this machine (the local Event Grid)."""
    from urllib.parse import urlsplit

    v = value.strip()
    if not v or v.lower() == LOCAL_TOPIC:
        return v.lower()
    parts = urlsplit(v)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local):
        raise _fail(setting, value)
    return v


_SPEC: dict[str, Setting] = {
    "backend": Setting("MANYMODELS_BACKEND", "local", "'local', 'aml' or 'amlv2'", _choice("local", "aml", "amlv2"),
                       "Where Azure ML work runs: the local workspace, Azure ML through SDK v1 (existing "
                       "workspaces; v1 support ended 30 June 2026) or Azure ML through SDK v2 (azure-ai-ml)."),
    "home": Setting("MANYMODELS_HOME", ".manymodels", "a directory path", _path,
                    "Local workspace directory (SQLite, models, runs, Azurite data, logs)."),
    "storage_connection": Setting("AzureWebJobsStorage", "UseDevelopmentStorage=true",
                                  "a storage connection string or account URL", _text,
                                  "Storage: 'UseDevelopmentStorage=true' locally, an account URL "
                                  "(https://{account}.blob.core.windows.net) with managed identity on Azure."),
    "landing_container": Setting("LANDING_CONTAINER", "landing", "a container name", _name,
                                 "Container where new train/inference batches land."),
    "predictions_container": Setting("PREDICTIONS_CONTAINER", "predictions", "a container name", _name,
                                     "Container where batch forecasts are written."),
    "training_method": Setting("TRAINING_METHOD", "customscript", "'customscript' or 'automl'",
                               _choice("customscript", "automl"),
                               "Training method of the original accelerator (customscript = scoring/train.py)."),
    "deploy_local": Setting("DEPLOY_LOCAL", "true", "true or false", _bool,
                            "Deploy to local scoring services (local backend only)."),
    "deploy_aci": Setting("DEPLOY_ACI", "false", "true or false", _bool,
                          "Deploy model groups and the router to Azure Container Instances."),
    "deploy_managed": Setting("DEPLOY_MANAGED", "false", "true or false", _bool,
                              "Deploy model groups and the router to managed online endpoints (amlv2 backend)."),
    "deploy_aks": Setting("DEPLOY_AKS", "false", "true or false", _bool,
                          "Deploy model groups and the router to the attached AKS cluster (a Kubernetes "
                          "online endpoint on the amlv2 backend)."),
    "aks_name": Setting("AKS_NAME", "", "an AKS compute target name", _text,
                        "Name of the AKS compute target attached to the workspace."),
    "aks_resource_group": Setting("AKS_RESOURCE_GROUP", "", "a resource group name", _text,
                                  "Resource group of the AKS cluster."),
    "max_container_size": Setting("MAX_CONTAINER_SIZE", "500", "a whole number from 1 to 1000",
                                  _int_range(1, 1000), "Most models served by one scoring container."),
    "reset_deployment": Setting("RESET_DEPLOYMENT", "false", "true or false", _bool,
                                "Rebuild every group from scratch on the next deployment."),
    "update_deployment": Setting("UPDATE_DEPLOYMENT", "false", "true or false", _bool,
                                 "Redeploy every group, changed or not, on the next deployment."),
    "splitting_tags": Setting("SPLITTING_TAGS", "", "comma-separated tag names", _tags,
                              "Model tags that split models into separate groups."),
    "sorting_tags": Setting("SORTING_TAGS", "", "comma-separated tag names", _tags,
                            "Model tags that order new models before they fill groups."),
    "webservice_prefix": Setting("WEBSERVICE_PREFIX", "manymodels-", "a service-name prefix", _name,
                                 "Prefix of model group service names."),
    "routing_model_name": Setting("ROUTING_MODEL_NAME", "deployed_models_info", "a model name", _name,
                                  "Registered model holding the deployment state (model -> service)."),
    "routing_service_name": Setting("ROUTING_SERVICE_NAME", "routing-manymodels", "a service name", _name,
                                    "Name of the routing webservice."),
    "data_quiet_seconds": Setting("DATA_QUIET_SECONDS", "120", "a whole number of seconds from 1 to 86400",
                                  _int_range(1, 86400),
                                  "A batch without a manifest closes after this long with no new blob."),
    "training_mode": Setting("TRAINING_MODE", TrainingMode.CHANGED, "'changed' or 'all'", _choice(*TrainingMode),
                             "Train only the series whose files changed, or every series."),
    "dataset_maxfiles": Setting("DATASET_MAXFILES", "11973", "a whole number from 1 to 1000000",
                                _int_range(1, 1_000_000), "Sample series the bootstrap uploads."),
    "deploy_queue": Setting("DEPLOY_QUEUE", "deploy-tasks", "a queue name", _name,
                            "Queue of deployment group tasks."),
    "ledger_table": Setting("LEDGER_TABLE", "manymodelsledger", "a table name (letters and digits)", _name,
                            "Table storage table of the idempotency ledger."),
    "namespace": Setting("NAMESPACE", "manymodels", "a resource name prefix", _text,
                         "Prefix of Azure resource names ({ns}aml, {ns}sa, ...)."),
    "location": Setting("LOCATION", "", "an Azure region", _text, "Azure region."),
    "resource_group": Setting("RESOURCE_GROUP", "", "a resource group name", _text,
                              "Resource group holding the workspace."),
    "subscription_id": Setting("AZURE_SUBSCRIPTION_ID", "", "a subscription id", _text,
                               "Subscription of the Azure ML workspace (aml and amlv2 backends)."),
    "workspace_name": Setting("AML_WORKSPACE_NAME", "", "an Azure ML workspace name", _text,
                              "Azure ML workspace name (aml and amlv2 backends)."),
    "compute_name": Setting("AML_COMPUTE_NAME", "cpu-compute", "a compute target name", _name,
                            "Compute cluster the AML pipelines run on."),
    "training_pipeline_name": Setting("TRAINING_PIPELINE_NAME", "manymodels-training", "a pipeline name",
                                      _name, "Published training pipeline name."),
    "forecasting_pipeline_name": Setting("FORECASTING_PIPELINE_NAME", "manymodels-forecasting",
                                         "a pipeline name", _name, "Published forecasting pipeline name."),
    "run_timeout_minutes": Setting("RUN_TIMEOUT_MINUTES", "240", "a whole number from 1 to 10080",
                                   _int_range(1, 10080),
                                   "A submitted run with no completion event after this long is polled."),
    # SDK v2 router endpoint identity (infra/modules/routeridentity.bicep; empty on other backends).
    "router_identity_resource_id": Setting(
        "ROUTER_IDENTITY_RESOURCE_ID", "", "empty or a user-assigned identity's resource id", _text,
        "amlv2: the user-assigned identity the router endpoint runs as and calls the group endpoints with."),
    "router_identity_client_id": Setting(
        "ROUTER_IDENTITY_CLIENT_ID", "", "empty or the identity's client id", _text,
        "amlv2: client id of ROUTER_IDENTITY_RESOURCE_ID (the router asks for a token of that identity)."),
    # Retention (shared/flows/retention.py): what the hourly `retention` timer removes.
    "retention_ledger_hours": Setting(
        "RETENTION_LEDGER_HOURS", "48",
        "a whole number of hours from 24 to 87600 (not below 24: Event Grid redelivers an event for up "
        "to 24 hours, and a forgotten event id would be handled again)", _int_range(24, 87600),
        "Processed-event ids and the blob lists of closed batches are deleted from the ledger after this long."),
    "retention_model_versions": Setting(
        "RETENTION_MODEL_VERSIONS", "3", "a whole number from 0 (keep every version) to 10000",
        _int_range(0, 10000),
        "Versions kept per model name; older ones are deleted unless deployed or in an unfinished plan."),
    "retention_run_days": Setting(
        "RETENTION_RUN_DAYS", "14", "a whole number of days from 0 (keep every run) to 3650",
        _int_range(0, 3650),
        "Finished local runs (folder and record) are deleted this many days after they ended."),
    # The product's own events (shared/product_events.py, published by shared/flows/outbox.py).
    "events_topic_endpoint": Setting(
        "EVENTS_TOPIC_ENDPOINT", "",
        "empty, 'local' or an Event Grid topic endpoint URL (https://..., or http:// on 127.0.0.1)",
        _endpoint, "Custom topic the product publishes its CloudEvents to; 'local': the local Event Grid's topic "
        "(created on first use, its key read from MANYMODELS_HOME); empty: events are not published."),
    "events_topic_key": Setting(
        "EVENTS_TOPIC_KEY", "", "the topic's access key (local Event Grid only)", _text,
        "Topic key sent as aeg-sas-key (locally); empty: DefaultAzureCredential (the managed identity on Azure). "
        "Never logged or shown."),
}


def _with_identity_storage(env: Mapping[str, str]) -> Mapping[str, str]:
    """On Azure the Functions host uses identity-based storage (``AzureWebJobsStorage__accountName``
    or ``__blobServiceUri``, no connection string): read the account URL from those."""
    if "AzureWebJobsStorage" in env:
        return env
    account = env.get("AzureWebJobsStorage__accountName", "").strip()
    uri = env.get("AzureWebJobsStorage__blobServiceUri", "").strip() or (
        f"https://{account}.blob.core.windows.net" if account else "")
    return {**env, "AzureWebJobsStorage": uri} if uri else env


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the product. Build with :func:`Settings.from_env` or :func:`get_settings`."""

    backend: str
    home: Path
    storage_connection: str
    landing_container: str
    predictions_container: str
    training_method: str
    deploy_local: bool
    deploy_aci: bool
    deploy_managed: bool
    deploy_aks: bool
    aks_name: str
    aks_resource_group: str
    max_container_size: int
    reset_deployment: bool
    update_deployment: bool
    splitting_tags: tuple[str, ...]
    sorting_tags: tuple[str, ...]
    webservice_prefix: str
    routing_model_name: str
    routing_service_name: str
    data_quiet_seconds: int
    training_mode: str
    dataset_maxfiles: int
    deploy_queue: str
    ledger_table: str
    namespace: str
    location: str
    resource_group: str
    subscription_id: str
    workspace_name: str
    compute_name: str
    training_pipeline_name: str
    forecasting_pipeline_name: str
    run_timeout_minutes: int
    retention_ledger_hours: int
    retention_model_versions: int
    retention_run_days: int
    events_topic_endpoint: str = ""
    router_identity_resource_id: str = ""
    router_identity_client_id: str = ""
    events_topic_key: str = dataclass_field(default="", repr=False)  # a secret: never in repr or logs

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting; raise :class:`SettingsError` naming the first bad variable."""
        env = _with_identity_storage(os.environ if environ is None else environ)
        values = {name: spec.parse(env.get(spec.env, spec.default), spec) for name, spec in _SPEC.items()}
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.deploy_aks and not self.aks_name:
            raise SettingsError("DEPLOY_AKS=true needs AKS_NAME: set it to the AKS compute target's name")
        if self.events_topic_endpoint == LOCAL_TOPIC and self.backend != "local":
            raise SettingsError("EVENTS_TOPIC_ENDPOINT=local needs MANYMODELS_BACKEND=local: on Azure set it to "
                                "the custom topic's endpoint (infra/main.bicep sets it)")
        if self.backend in ("aml", "amlv2"):
            missing = [s.env for n, s in _SPEC.items()
                       if n in ("subscription_id", "resource_group", "workspace_name") and not getattr(self, n)]
            if missing:
                raise SettingsError(f"MANYMODELS_BACKEND={self.backend} needs {', '.join(missing)}: set the Azure ML "
                                    "workspace's subscription id, resource group and name")
        if self.backend == "aml" and self.training_method == "automl":
            raise SettingsError("TRAINING_METHOD=automl needs MANYMODELS_BACKEND=amlv2: the AutoML v1 runtime does "
                                "not install beside the product's pins, so on SDK v1 only customscript trains; "
                                "SDK v2 runs Azure AutoML many models from its registry components")
        if self.backend == "amlv2" and self.training_method == "automl" and self.training_mode != TrainingMode.ALL:
            raise SettingsError("TRAINING_METHOD=automl on MANYMODELS_BACKEND=amlv2 needs TRAINING_MODE=all: Azure "
                                "AutoML many models trains every series of the dataset folder it is given")
        if self.deploy_managed and self.backend != "amlv2":
            raise SettingsError("DEPLOY_MANAGED=true needs MANYMODELS_BACKEND=amlv2: managed online endpoints are "
                                "an Azure ML SDK v2 resource")
        if self.deploy_aci and self.backend == "amlv2":
            raise SettingsError("DEPLOY_ACI=true is not available with MANYMODELS_BACKEND=amlv2: SDK v2 has no ACI "
                                "webservices; set DEPLOY_MANAGED=true (managed online endpoints) instead")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and CLI flags)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)

    @property
    def enabled_targets(self) -> tuple[str, ...]:
        """Deployment targets switched on, in deployment order."""
        targets = []
        if self.deploy_local and self.backend == "local":
            targets.append("local")
        if self.deploy_aci:
            targets.append("aci")
        if self.deploy_managed:
            targets.append("managed")
        if self.deploy_aks:
            targets.append("aks")
        return tuple(targets)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, description) of every setting, for docs and example files."""
    return [(s.env, s.default, s.description) for s in _SPEC.values()]


def env_names() -> tuple[str, ...]:
    return tuple(s.env for s in _SPEC.values())


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read once (tests call ``get_settings.cache_clear()``)."""
    return Settings.from_env()
