"""Scoring services on Azure ML SDK v2: one online endpoint per service, blue/green deployments.

SDK v2 has no multi-model webservice. Each service (a model group, or the router) is an online
endpoint with ONE live deployment, whose model is a Model asset holding the group's models in the
registered-model layout ``<name>/<version>/...`` that scoring/model_webservice.py reads from
``AZUREML_MODEL_DIR`` (v1's ``Model.deploy`` of several models gives the same layout). Azure ML puts
the asset's folder under ``AZUREML_MODEL_DIR`` (``<AZUREML_MODEL_DIR>/<folder>/<name>/<version>``),
so the folder is named :data:`MODELS_FOLDER` and the deployment says so in ``MANYMODELS_MODELS_SUBDIR``.

- Managed online endpoints (target "managed", ``ServiceKind.MANAGED``): ``auth_mode="aad_token"``
  and a system-assigned identity. No keys exist: :meth:`AmlV2ServiceStore.get_keys` answers an empty
  primary key, so shared/flows/deploy.py gives the router none; the router calls the groups with a
  Microsoft Entra token of its own identity (scoring/endpoint_tokens.py, ``ROUTER_AUTH=entra`` in
  pipelines/configuration/managed-deploy-config.yml). Its identity needs the score action on the
  workspace (``Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action``).
- Kubernetes online endpoints (target "aks", ``ServiceKind.AKS``) on the attached compute ``AKS_NAME``:
  Azure ML supports no Entra tokens there, so they use key auth. The router's group keys are moved
  into the workspace's Key Vault as the v1 adapter does (shared/workspace/aml/services.py), and the
  router reads them with its identity (scoring/service_keys.py).

Update is blue/green: a new deployment ("blue" or "green", whichever is not live) is created and
must come up healthy; then the endpoint's traffic moves 100% to it in the same write that records
its models, and the old deployment is deleted. A failed new deployment is deleted and leaves the
traffic (and the models recorded) on the old one. Deploying an existing endpoint is an update;
deleting a missing one succeeds.

An endpoint's models ("name:version") are the ``properties`` of its Model asset (tag
:data:`TAG_ASSET` on the endpoint names it): endpoint tags are Azure resource tags, 256 characters
per value, too small for a group's list. Names: the endpoint of service ``s`` is
:func:`endpoint_name` (3-32 characters, a letter first, letters/digits/dashes, unique per region
through a hash of the workspace and ``s``); tag :data:`TAG_SERVICE` keeps ``s``.

Environment variables of a deployment are stored in the workspace and readable by all its readers:
any whose name says it holds a secret is refused (shared/workspace/service_environment.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    CodeConfiguration,
    Environment,
    IdentityConfiguration,
    KubernetesOnlineDeployment,
    KubernetesOnlineEndpoint,
    ManagedIdentityConfiguration,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineDeployment,
    OnlineEndpoint,
    OnlineRequestSettings,
    ProbeSettings,
    ResourceRequirementsSettings,
    ResourceSettings,
)

from shared.deploy_config import concurrency
from shared.errors import InvalidValue, ManyModelsError, NotFound, OperationTimeout, Unavailable
from shared.grouping import META_MODEL_TYPE, MODEL_TYPE_TAG
from shared.paths import REPO_ROOT, path_inside
from shared.settings import Settings
from shared.workspace.amlv2.sdk_errors import sdk_call
from shared.workspace.base import (
    ModelRecord,
    Service,
    ServiceConfig,
    ServiceKeys,
    ServiceKind,
    ServiceState,
    ServiceStore,
)
from shared.workspace.service_environment import (
    SECRET_ENV,
    SERVICE_KEYS_ENV,
    VAULT_ENV,
    environment_without_secrets,
    secret_name,
)

if TYPE_CHECKING:
    from azure.ai.ml import MLClient

log = logging.getLogger(__name__)

SCORING_ENVIRONMENT = REPO_ROOT / "pipelines" / "configuration" / "environment-scoring.yml"
# the base image of the conda environment (Azure ML's curated inference base, Ubuntu 22.04)
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
DEPLOYMENTS = ("blue", "green")
MODELS_FOLDER = "models"  # <AZUREML_MODEL_DIR>/models/<name>/<version>/
# tells scoring/model_webservice.py the folder under AZUREML_MODEL_DIR that holds <name>/<version>/
MODELS_FOLDER_ENV = "MANYMODELS_MODELS_SUBDIR"
TAG_SERVICE = "manymodels_service"  # the port's service name (the endpoint's name is derived from it)
TAG_ASSET = "manymodels_models_asset"  # "<asset>:<version>" of the live deployment's Model asset
PROPERTY_MODELS = "manymodels_models"  # on the asset: JSON list of "name:version"
KEY_VAULT_API = "7.4"
CLIENT_ID_ENV = "MANYMODELS_IDENTITY_CLIENT_ID"  # scoring/service_keys.py: which identity's token to ask for
ROUTER_AUTH_ENV = "ROUTER_AUTH"  # "entra": the router calls the groups with Entra tokens (scoring/endpoint_tokens.py)
AUTH_MODE = {ServiceKind.MANAGED: "aad_token", ServiceKind.AKS: "key"}
# request timeouts: a group answers within the router's read timeout (ROUTER_TIMEOUT_SECONDS, 60 by
# default); the router's own requests get that plus its connect timeout and a margin. 180 s is the
# managed endpoints' maximum.
GROUP_REQUEST_TIMEOUT_MS = 60_000
MAX_REQUEST_TIMEOUT_MS = 180_000
# the models load in init(): readiness waits up to 10 minutes for it; liveness restarts a container
# that stops answering for 5 minutes, from 2 minutes after its start
READINESS = ProbeSettings(initial_delay=10, period=10, timeout=10, failure_threshold=60, success_threshold=1)
LIVENESS = ProbeSettings(initial_delay=120, period=10, timeout=10, failure_threshold=30, success_threshold=1)

STATE = {
    "succeeded": ServiceState.HEALTHY,
    "creating": ServiceState.TRANSITIONING,
    "updating": ServiceState.TRANSITIONING,
    "deleting": ServiceState.TRANSITIONING,
    "failed": ServiceState.FAILED,
    "canceled": ServiceState.FAILED,
}
_NOT_NAME = re.compile(r"[^a-z0-9]+")


# --------------------------------------------------------------------------- names and checks


def endpoint_name(service: str, *, workspace: str) -> str:
    """The endpoint of ``service``: ``<slug>-<8 hex>``, 3-32 characters, a letter first, letters,
    digits and dashes, no dash last (``EndpointConfigurations`` in azure-ai-ml). The hash of the
    workspace's identity and the exact name keeps endpoint names unique per region (two workspaces,
    or two services that slug alike) and deterministic."""
    digest = hashlib.sha256(f"{workspace}\x00{service}".encode()).hexdigest()[:8]
    slug = _NOT_NAME.sub("-", service.lower()).strip("-")
    if not slug[:1].isalpha():
        slug = f"mm-{slug}".rstrip("-")
    return f"{slug[:23].rstrip('-')}-{digest}"


# --------------------------------------------------------------------------- entities


def scoring_environment() -> Environment:
    """The scoring environment (pipelines/configuration/environment-scoring.yml) on Azure ML's base
    image; anonymous, so Azure ML reuses the built image while the file is unchanged."""
    return Environment(conda_file=str(SCORING_ENVIRONMENT), image=BASE_IMAGE,
                       description="manymodels scoring webservices")


def code_configuration(config: ServiceConfig) -> CodeConfiguration:
    """The entry script and its directory (``scoring/``, self-contained)."""
    script = Path(config.entry_script)
    source = script.parent if script.is_absolute() else REPO_ROOT / script.parent
    if not (source / script.name).is_file():
        raise InvalidValue(f"entry script {source / script.name} does not exist: check entry_script in the "
                           "deployment config")
    return CodeConfiguration(code=str(source), scoring_script=script.name)


def request_settings(config: ServiceConfig) -> OnlineRequestSettings:
    """What one instance serves at once (``WORKER_COUNT`` x threads) and how long a request may take."""
    env = config.environment
    if "ROUTER_TIMEOUT_SECONDS" in env:  # the router: its calls to the groups, then a margin
        try:
            seconds = float(env["ROUTER_TIMEOUT_SECONDS"]) + float(env.get("ROUTER_CONNECT_TIMEOUT_SECONDS", 5))
        except ValueError:
            raise InvalidValue(f"ROUTER_TIMEOUT_SECONDS={env['ROUTER_TIMEOUT_SECONDS']!r} / "
                               f"ROUTER_CONNECT_TIMEOUT_SECONDS={env.get('ROUTER_CONNECT_TIMEOUT_SECONDS')!r} "
                               "are not allowed: expected numbers of seconds") from None
        timeout = min(MAX_REQUEST_TIMEOUT_MS, int(seconds * 1000) + 10_000)
    else:
        timeout = GROUP_REQUEST_TIMEOUT_MS
    return OnlineRequestSettings(max_concurrent_requests_per_instance=concurrency(env), request_timeout_ms=timeout)


def endpoint_entity(name: str, service: str, config: ServiceConfig, *, compute: str = "",
                    identity: IdentityConfiguration | None = None,
                    tags: Mapping[str, str] | None = None,
                    traffic: Mapping[str, int] | None = None) -> ManagedOnlineEndpoint | KubernetesOnlineEndpoint:
    """The endpoint of ``service``: managed (aad_token) or Kubernetes on ``compute`` (key), with
    ``identity`` (default system-assigned; the router calls the groups, or reads Key Vault, with it)."""
    if config.kind not in AUTH_MODE:
        raise InvalidValue(f"service kind {config.kind.value!r} is not allowed on Azure ML SDK v2: expected "
                           "'managed' or 'aks'")
    common: dict[str, Any] = dict(
        name=name, auth_mode=AUTH_MODE[config.kind], identity=identity or IdentityConfiguration(type="system_assigned"),
        tags={**config.tags, **(tags or {}), TAG_SERVICE: service}, traffic=dict(traffic or {}),
        description=f"manymodels service {service}",
    )
    if config.kind == ServiceKind.MANAGED:
        return ManagedOnlineEndpoint(**common)
    if config.kind == ServiceKind.AKS:
        if not compute:
            raise InvalidValue("Kubernetes online endpoints need AKS_NAME: the Kubernetes compute attached to the "
                               "workspace")
        return KubernetesOnlineEndpoint(compute=compute, **common)
    raise InvalidValue(f"service kind {config.kind.value!r} is not allowed on Azure ML SDK v2: expected "
                       "'managed' or 'aks'")


def deployment_entity(name: str, endpoint: str, model: str,
                      config: ServiceConfig) -> ManagedOnlineDeployment | KubernetesOnlineDeployment:
    """One deployment of ``endpoint`` serving Model asset ``model`` ("azureml:<asset>:<version>")."""
    common: dict[str, Any] = dict(
        name=name, endpoint_name=endpoint, model=model, code_configuration=code_configuration(config),
        environment=scoring_environment(),
        environment_variables=environment_without_secrets(config.environment, where="an online deployment"),
        request_settings=request_settings(config), readiness_probe=READINESS, liveness_probe=LIVENESS,
        instance_count=config.instance_count, tags=dict(config.tags), app_insights_enabled=True,
    )
    if config.kind == ServiceKind.MANAGED:
        if not config.instance_type:
            raise InvalidValue("a managed online deployment needs an instance type (instanceType in "
                               "pipelines/configuration/managed-deploy-config.yml, e.g. Standard_DS2_v2)")
        return ManagedOnlineDeployment(instance_type=config.instance_type, **common)
    if config.kind == ServiceKind.AKS:
        memory = f"{round(config.memory_gb * 1024)}Mi"
        resources = ResourceRequirementsSettings(requests=ResourceSettings(cpu=str(config.cpu_cores), memory=memory),
                                                 limits=ResourceSettings(memory=memory))
        return KubernetesOnlineDeployment(instance_type=config.instance_type or None, resources=resources, **common)
    raise InvalidValue(f"service kind {config.kind.value!r} is not allowed on Azure ML SDK v2: expected "
                       "'managed' or 'aks'")


def _text(value: object) -> str:
    """A REST enum member (``DeploymentProvisioningState.SUCCEEDED``, as the SDK deserializes it) or a string."""
    return str(getattr(value, "value", value) or "")


def _state(provisioning_state: object) -> ServiceState:
    return STATE.get(_text(provisioning_state).lower(), ServiceState.TRANSITIONING)


def live_deployment(endpoint: OnlineEndpoint) -> str | None:
    """The deployment taking the endpoint's traffic (the most, if ever split), or None."""
    traffic = {k: int(v) for k, v in (endpoint.traffic or {}).items() if int(v or 0) > 0}
    return max(sorted(traffic), key=lambda k: traffic[k]) if traffic else None


# --------------------------------------------------------------------------- the store


class AmlV2ServiceStore(ServiceStore):
    """Services as online endpoints of the workspace ``client`` (an ``azure.ai.ml.MLClient``)."""

    def __init__(self, client: MLClient, settings: Settings, *, key_vault_url: str | None = None) -> None:
        """``key_vault_url``: where a Kubernetes router's group keys go (default: the workspace's Key Vault)."""
        self._client = client
        self._settings = settings
        self._key_vault_url = key_vault_url
        self._workspace_id = f"{settings.subscription_id}/{settings.resource_group}/{settings.workspace_name}"

    def endpoint_name(self, service: str) -> str:
        return endpoint_name(service, workspace=self._workspace_id)

    # ------------------------------------------------------------------ reading

    def list(self, *, kind: ServiceKind | None = None) -> list[Service]:
        if kind in (ServiceKind.LOCAL, ServiceKind.ACI):
            return []
        with sdk_call("list online endpoints"):
            endpoints = [e for e in self._client.online_endpoints.list() if (e.tags or {}).get(TAG_SERVICE)]
        endpoints = [e for e in endpoints if kind is None or self._kind(e) == kind]
        with ThreadPoolExecutor(max_workers=8) as pool:  # one asset read per endpoint: its models
            services = list(pool.map(self._to_service, endpoints))
        return sorted(services, key=lambda s: s.name)

    def get(self, name: str) -> Service:
        return self._to_service(self._endpoint(name))

    def get_keys(self, name: str) -> ServiceKeys:
        endpoint = self._endpoint(name)
        if _text(endpoint.auth_mode).lower() != "key":
            return ServiceKeys(primary="")  # aad_token: callers use their own Entra token, no key exists
        with sdk_call(f"get the keys of online endpoint {endpoint.name!r}"):
            keys = self._client.online_endpoints.get_keys(name=endpoint.name)
        return ServiceKeys(primary=getattr(keys, "primary_key", "") or "",
                           secondary=getattr(keys, "secondary_key", "") or "")

    # ------------------------------------------------------------------ writing

    def deploy(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        """Create the endpoint if needed, then roll out ``models`` to it (an existing endpoint: update)."""
        self._check(name, config)
        ep = self.endpoint_name(name)
        try:
            self._sdk_endpoint(ep)
        except NotFound:
            entity = endpoint_entity(ep, name, config, compute=self._compute(config), identity=self._identity(config))
            with sdk_call(f"create online endpoint {ep!r} for {name!r}"):
                self._client.online_endpoints.begin_create_or_update(entity).result(timeout=timeout)
        return self.update(name, models, config, timeout=timeout)

    def update(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        """Blue/green: new deployment, healthy, traffic 100% to it, old one deleted."""
        self._check(name, config)
        endpoint = self._endpoint(name)
        config = self._keys_to_vault(name, config)
        ep = self.endpoint_name(name)
        live = live_deployment(endpoint)
        new = DEPLOYMENTS[1] if live == DEPLOYMENTS[0] else DEPLOYMENTS[0]
        with sdk_call(f"list the deployments of online endpoint {ep!r}"):
            existing = {d.name for d in self._client.online_deployments.list(endpoint_name=ep)}
        if new in existing:  # a leftover of a failed update: never live, safe to replace
            self._delete_deployment(ep, new, timeout)
        asset = self._register_models(name, ep, models)
        config = replace(config, environment={**config.environment, MODELS_FOLDER_ENV: MODELS_FOLDER})
        deployment = deployment_entity(new, ep, f"azureml:{asset.name}:{asset.version}", config)
        self._create_deployment(name, ep, deployment, timeout)
        # one write moves the traffic and records the models now served
        endpoint.traffic = {new: 100, **({live: 0} if live else {})}
        endpoint.tags = {**(endpoint.tags or {}), **config.tags, TAG_SERVICE: name,
                         TAG_ASSET: f"{asset.name}:{asset.version}"}
        with sdk_call(f"move the traffic of online endpoint {ep!r} to deployment {new!r}"):
            self._client.online_endpoints.begin_create_or_update(endpoint).result(timeout=timeout)
        for old in sorted(existing - {new}):
            self._delete_deployment(ep, old, timeout)
        return self.get(name)

    def delete(self, name: str) -> None:
        ep = self.endpoint_name(name)
        try:
            self._sdk_endpoint(ep)
        except NotFound:
            return
        try:
            with sdk_call(f"delete online endpoint {ep!r}"):
                self._client.online_endpoints.begin_delete(name=ep).result()
        except NotFound:
            return  # deleted meanwhile

    # ------------------------------------------------------------------ internals

    def _check(self, name: str, config: ServiceConfig) -> None:
        """Refuse what the endpoints cannot honour before anything changes."""
        if config.kind not in AUTH_MODE:
            raise InvalidValue(f"service kind {config.kind.value!r} is not allowed on Azure ML SDK v2 (amlv2): "
                               "expected 'managed' (DEPLOY_MANAGED) or 'aks' (DEPLOY_AKS)")
        if not config.auth_enabled:
            raise InvalidValue("authEnabled=false is not allowed on Azure ML online endpoints: every endpoint "
                               "authenticates its callers (Entra tokens on managed endpoints, keys on Kubernetes)")
        environment = dict(config.environment)
        keys = environment.pop(SERVICE_KEYS_ENV, None)
        if environment.get(ROUTER_AUTH_ENV, "").strip().lower() == "entra" and config.kind != ServiceKind.MANAGED:
            raise InvalidValue(f"{ROUTER_AUTH_ENV}=entra is not allowed for {name!r} on Kubernetes online endpoints: "
                               "they take no Microsoft Entra tokens (key auth only); remove it from the "
                               "deployment config")
        if config.kind == ServiceKind.MANAGED and keys is not None and keys.strip() not in ("", "{}"):
            raise InvalidValue(f"the router {name!r} was given service keys, but managed online endpoints use "
                               "Microsoft Entra tokens (auth_mode aad_token): the group endpoints have no keys")
        if self._router_identity(config) and not self._settings.router_identity_client_id:
            raise InvalidValue("ROUTER_IDENTITY_CLIENT_ID is empty while ROUTER_IDENTITY_RESOURCE_ID is set: the "
                               "router asks for a token of that identity by its client id; set both (infra/ "
                               "outputs them) or neither (a system-assigned identity)")
        # secrets in the environment, a missing entry script or VM size
        deployment_entity(DEPLOYMENTS[0], "check", "azureml:check:1", replace(config, environment=environment))

    def _router_identity(self, config: ServiceConfig) -> bool:
        """Whether ``config`` is the managed router's and ROUTER_IDENTITY_RESOURCE_ID names its identity
        (a user-assigned identity infra/ grants the score action: docs/architecture.md §7 settings)."""
        return (config.kind == ServiceKind.MANAGED and config.tags.get("manymodels_role") == "router"
                and bool(self._settings.router_identity_resource_id))

    def _identity(self, config: ServiceConfig) -> IdentityConfiguration:
        if not self._router_identity(config):
            return IdentityConfiguration(type="system_assigned")
        resource = ManagedIdentityConfiguration(resource_id=self._settings.router_identity_resource_id)
        return IdentityConfiguration(type="user_assigned", user_assigned_identities=[resource])

    def _kind(self, endpoint: OnlineEndpoint) -> ServiceKind:
        return ServiceKind.AKS if isinstance(endpoint, KubernetesOnlineEndpoint) else ServiceKind.MANAGED

    def _compute(self, config: ServiceConfig) -> str:
        return self._settings.aks_name if config.kind == ServiceKind.AKS else ""

    def _sdk_endpoint(self, endpoint: str) -> OnlineEndpoint:
        with sdk_call(f"get online endpoint {endpoint!r}"):
            found: OnlineEndpoint = self._client.online_endpoints.get(name=endpoint)
        return found

    def _endpoint(self, name: str) -> OnlineEndpoint:
        try:
            return self._sdk_endpoint(self.endpoint_name(name))
        except NotFound:
            raise NotFound(f"service {name!r} does not exist (online endpoint {self.endpoint_name(name)!r})") from None

    def _served(self, endpoint: OnlineEndpoint) -> tuple[tuple[str, ...], str]:
        """The live deployment's models ("name:version") and when they were registered (its update time)."""
        ref = (endpoint.tags or {}).get(TAG_ASSET, "")
        asset, _, version = ref.rpartition(":")
        if not asset:
            return (), ""
        try:
            with sdk_call(f"get the models of online endpoint {endpoint.name!r} ({ref})"):
                model = self._client.models.get(name=asset, version=version)
        except NotFound:
            return (), ""
        context = getattr(model, "creation_context", None)
        created = getattr(context, "created_at", None)
        try:
            names = json.loads((model.properties or {}).get(PROPERTY_MODELS, "[]"))
        except ValueError:
            names = []
        served = tuple(str(n) for n in names) if isinstance(names, list) else ()
        return served, created.isoformat() if isinstance(created, dt.datetime) else str(created or "")

    def _to_service(self, endpoint: OnlineEndpoint) -> Service:
        state = _state(endpoint.provisioning_state)
        error = None
        if state == ServiceState.HEALTHY and live_deployment(endpoint) is None:
            state, error = ServiceState.UNHEALTHY, "no deployment takes the endpoint's traffic"
        models, updated = self._served(endpoint)
        return Service(name=str((endpoint.tags or {}).get(TAG_SERVICE) or endpoint.name), kind=self._kind(endpoint),
                       state=state, scoring_uri=endpoint.scoring_uri or "", models=models,
                       updated=updated or str((endpoint.properties or {}).get("lastModifiedAt") or ""), error=error)

    def _register_models(self, service: str, endpoint: str, records: Sequence[ModelRecord]) -> Model:
        """The group's models copied into one Model asset (``models/<name>/<version>/...``)."""
        if not records:
            raise InvalidValue("an online deployment needs at least one model")
        models = sorted(f"{r.name}:{r.version}" for r in records)
        with tempfile.TemporaryDirectory(prefix="mm-group-") as tmp:
            folder = Path(tmp) / MODELS_FOLDER
            for r in records:
                scratch = Path(tmp) / "download" / f"{r.name}-{r.version}"
                with sdk_call(f"download model {r.name}:{r.version}"):
                    self._client.models.download(name=r.name, version=str(r.version), download_path=str(scratch))
                # ModelOperations.download writes <download_path>/<name>/... (a folder asset adds its
                # folder's name: one level under the version, which model_webservice.py searches)
                source = scratch / r.name
                if not source.exists():
                    raise Unavailable(f"model {r.name}:{r.version} downloaded nothing to {source}")
                target = path_inside(folder, f"{r.name}/{int(r.version)}", what="model folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), str(target))
            asset = Model(name=f"{endpoint}-models", path=str(folder), type=AssetTypes.CUSTOM_MODEL,
                          description=f"the models served by {service}",
                          tags={MODEL_TYPE_TAG: META_MODEL_TYPE, TAG_SERVICE: service},
                          properties={PROPERTY_MODELS: json.dumps(models), "models": str(len(models))})
            with sdk_call(f"register the models of {service!r} ({len(models)} models)"):
                registered: Model = self._client.models.create_or_update(asset)
        return registered

    def _create_deployment(self, service: str, endpoint: str, deployment: OnlineDeployment, timeout: float) -> None:
        """Create ``deployment`` and wait until it is healthy; on failure delete it (never live)."""
        try:
            with sdk_call(f"create deployment {deployment.name!r} of online endpoint {endpoint!r}"):
                poller = self._client.online_deployments.begin_create_or_update(deployment)
                poller.result(timeout=timeout)
                if not poller.done():
                    raise OperationTimeout(f"deployment {deployment.name!r} of {service!r} is not ready after "
                                           f"{timeout:.0f} s; the traffic stays on the live deployment")
            with sdk_call(f"get deployment {deployment.name!r} of online endpoint {endpoint!r}"):
                created = self._client.online_deployments.get(name=deployment.name, endpoint_name=endpoint)
            if _state(created.provisioning_state) != ServiceState.HEALTHY:
                state = _text(created.provisioning_state)
                raise Unavailable(f"deployment {deployment.name!r} of {service!r} is {state} after creation: see "
                                  "its logs in Azure ML studio; the traffic stays on the live deployment")
        except ManyModelsError as e:
            log.warning("deployment %s of %s failed (%s); deleting it", deployment.name, endpoint, e.message)
            try:
                self._delete_deployment(endpoint, str(deployment.name), timeout)
            except ManyModelsError as cleanup:
                log.warning("could not delete failed deployment %s of %s: %s", deployment.name, endpoint,
                            cleanup.message)
            raise

    def _delete_deployment(self, endpoint: str, deployment: str, timeout: float) -> None:
        try:
            with sdk_call(f"delete deployment {deployment!r} of online endpoint {endpoint!r}"):
                self._client.online_deployments.begin_delete(name=deployment, endpoint_name=endpoint).result(
                    timeout=timeout)
        except NotFound:
            return

    def _keys_to_vault(self, name: str, config: ServiceConfig) -> ServiceConfig:
        """``config`` without the router's group keys in its environment: on managed endpoints there are
        none (Entra tokens of the router's identity); on Kubernetes they go to the workspace's Key Vault
        and the environment keeps only the vault and the secret's name (scoring/service_keys.py reads it)."""
        environment = dict(config.environment)
        keys = environment.pop(SERVICE_KEYS_ENV, None)
        if config.kind == ServiceKind.MANAGED:  # no keys (checked in _check)
            if keys is not None or config.tags.get("manymodels_role") == "router":
                environment[ROUTER_AUTH_ENV] = "entra"
            if self._router_identity(config):  # the token of the user-assigned identity, by its client id
                environment[CLIENT_ID_ENV] = self._settings.router_identity_client_id
            return replace(config, environment=environment)
        if keys is None:
            return config
        secret = secret_name(name)
        vault = self._key_vault_url or self._vault_url()
        self._set_secret(vault, secret, keys)  # stored even when "{}": a router must not keep old keys
        return replace(config, environment={**environment, VAULT_ENV: vault, SECRET_ENV: secret})

    def _vault_url(self) -> str:
        with sdk_call("get the workspace's Key Vault"):
            workspace = self._client.workspaces.get(self._settings.workspace_name)
        name = str(getattr(workspace, "key_vault", "") or "").rstrip("/").rsplit("/", 1)[-1]
        if not name:
            raise Unavailable("the workspace names no Key Vault (key_vault): the router's keys cannot be stored")
        return f"https://{name}.vault.azure.net"

    def _set_secret(self, vault: str, secret: str, value: str) -> None:
        """PUT the secret with Key Vault's REST API (azure-core's pipeline, the client's credential)."""
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
        from azure.core.rest import HttpRequest, HttpResponse

        credential = getattr(self._client, "_credential", None)
        if credential is None:
            raise Unavailable("the Azure ML client has no credential to write the router's keys to Key Vault")
        policies = [RetryPolicy(), BearerTokenCredentialPolicy(credential, "https://vault.azure.net/.default")]
        url = f"{vault}/secrets/{urllib.parse.quote(secret)}?api-version={KEY_VAULT_API}"
        loopback = urllib.parse.urlsplit(vault).hostname in ("127.0.0.1", "localhost", "::1")  # a test's vault
        pipeline: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(base_url=vault, policies=policies)
        with sdk_call(f"store the group keys of the router in Key Vault {vault} (secret {secret!r})"), pipeline:
            response = pipeline.send_request(HttpRequest("PUT", url, json={"value": value}),
                                             enforce_https=not loopback)
            response.raise_for_status()
