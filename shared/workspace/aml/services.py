"""Scoring webservices on ACI or AKS: ``Model.deploy`` / ``Webservice.update`` / ``delete``.

Deployment configs come from ``ServiceConfig`` (``pipelines/configuration/*-deploy-config.yml``,
shared/deploy_config.py): models 1 CPU / 1 GB, router 0.1 CPU / 0.5 GB, key auth as
``authEnabled`` says; on AKS ``replica_max_concurrent_requests`` is what one container serves at
once (``shared.deploy_config.concurrency``). Keys are read with ``get_keys()`` only when asked for.

Secrets never go into an environment definition: Azure ML stores ``Environment`` objects in the
workspace, readable by everyone who can read the workspace. The router's group keys
(``MANYMODELS_SERVICE_KEYS``, put into its config by shared/flows/deploy.py) are moved into the
workspace's Key Vault instead, and the environment only names the secret; the router reads it at
start with its managed identity (scoring/service_keys.py). Any other variable whose name says it
holds a secret is refused.
"""

from __future__ import annotations

import builtins  # builtins.list: in a class body after `def list`, a bare `list[...]` names the method
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from azureml.core import Model, Webservice
from azureml.core import Workspace as SdkWorkspace
from azureml.core.compute import AksCompute
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice, AksWebservice

from pipelines.aml.environments import scoring_environment
from shared.deploy_config import concurrency
from shared.errors import InvalidValue, NotFound, Unavailable
from shared.paths import REPO_ROOT
from shared.settings import Settings
from shared.workspace.aml.sdk_errors import sdk_call
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

STATE = {
    "Healthy": ServiceState.HEALTHY,
    "Transitioning": ServiceState.TRANSITIONING,
    "Unhealthy": ServiceState.UNHEALTHY,
    "Unschedulable": ServiceState.UNHEALTHY,
    "Failed": ServiceState.FAILED,
}
COMPUTE_TYPE = {"ACI": ServiceKind.ACI, "AKS": ServiceKind.AKS}
# the router's {service: key} (shared/flows/deploy.py KEYS_ENV) and what names it in Key Vault
# instead (scoring/service_keys.py); tests/unit/test_aml_adapter.py keeps the names equal


def to_service(service: Webservice) -> Service:
    kind = COMPUTE_TYPE.get(str(getattr(service, "compute_type", "")).upper(), ServiceKind.ACI)
    models = tuple(f"{m.name}:{m.version}" for m in (getattr(service, "models", None) or []))
    updated = getattr(service, "updated_time", None) or getattr(service, "created_time", None)
    error = getattr(service, "error", None)
    return Service(
        name=service.name, kind=kind, state=STATE.get(service.state, ServiceState.TRANSITIONING),
        scoring_uri=service.scoring_uri or "", models=models, updated=str(updated or ""),
        error=str(error.get("message", error)) if isinstance(error, dict) else (str(error) if error else None),
    )


def deployment_config(config: ServiceConfig) -> Any:
    """The SDK deployment configuration (``AciWebservice``/``AksWebservice.deploy_configuration``)."""
    tags = dict(config.tags) or None
    if config.kind == ServiceKind.ACI:
        return AciWebservice.deploy_configuration(cpu_cores=config.cpu_cores, memory_gb=config.memory_gb,
                                                  auth_enabled=config.auth_enabled, tags=tags)
    if config.kind == ServiceKind.AKS:
        return AksWebservice.deploy_configuration(cpu_cores=config.cpu_cores, memory_gb=config.memory_gb,
                                                  auth_enabled=config.auth_enabled, tags=tags,
                                                  replica_max_concurrent_requests=concurrency(config.environment))
    raise InvalidValue(f"service kind {config.kind!r} is not allowed on Azure ML: expected 'aci' or 'aks'")


def vault_url(ws: SdkWorkspace) -> str:
    """``https://<vault>.vault.azure.net`` of the workspace's Key Vault (its ARM id is in the details)."""
    resource_id = str((ws.get_details() or {}).get("keyVault") or "")
    name = resource_id.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise Unavailable("the workspace's details name no Key Vault (keyVault): the router's keys cannot be stored")
    return f"https://{name}.vault.azure.net"


def inference_config(config: ServiceConfig) -> InferenceConfig:
    """Entry script and its directory (``scoring/``, self-contained) + the scoring environment."""
    script = Path(config.entry_script)
    source = script.parent if script.is_absolute() else REPO_ROOT / script.parent
    if not (source / script.name).is_file():
        raise InvalidValue(f"entry script {source / script.name} does not exist: check entry_script in the "
                           "deployment config")
    # one environment per entry script; neither holds a secret (the router's names its Key Vault secret)
    environment = scoring_environment(f"manymodels-{script.stem.replace('_', '-')}")
    stored = environment_without_secrets(config.environment, where="an Azure ML environment")
    environment.environment_variables = {**environment.environment_variables, **stored}
    return InferenceConfig(entry_script=script.name, source_directory=str(source), environment=environment)


class AmlServiceStore(ServiceStore):
    def __init__(self, ws: SdkWorkspace, *, settings: Settings) -> None:
        self._ws = ws
        self._settings = settings

    def list(self, *, kind: ServiceKind | None = None) -> list[Service]:
        compute_type = {ServiceKind.ACI: "ACI", ServiceKind.AKS: "AKS"}.get(kind) if kind else None
        if kind == ServiceKind.LOCAL:
            return []
        with sdk_call("list webservices"):
            services = Webservice.list(self._ws, compute_type=compute_type)
        return sorted((to_service(s) for s in services), key=lambda s: s.name)

    def get(self, name: str) -> Service:
        return to_service(self._sdk_service(name))

    def deploy(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        deploy_config = deployment_config(config)
        config = self._keys_to_vault(name, config)
        inference = inference_config(config)
        target = self._target(config)
        with sdk_call(f"deploy webservice {name!r} ({len(models)} models)"):
            service = Model.deploy(self._ws, name, self._models(models), inference_config=inference,
                                   deployment_config=deploy_config, deployment_target=target, overwrite=True)
        return self._wait(service, name, timeout)

    def update(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        service = self._sdk_service(name)
        deployment_config(config)  # refuses what the target does not support before anything changes
        config = self._keys_to_vault(name, config)
        inference = inference_config(config)
        with sdk_call(f"update webservice {name!r} ({len(models)} models)"):
            if config.kind == ServiceKind.AKS:
                service.update(models=self._models(models), inference_config=inference,
                               auth_enabled=config.auth_enabled, cpu_cores=config.cpu_cores,
                               memory_gb=config.memory_gb,
                               replica_max_concurrent_requests=concurrency(config.environment))
            else:
                service.update(models=self._models(models), inference_config=inference,
                               auth_enabled=config.auth_enabled)
        return self._wait(service, name, timeout)

    def delete(self, name: str) -> None:
        try:
            service = self._sdk_service(name)
        except NotFound:
            return
        with sdk_call(f"delete webservice {name!r}"):
            service.delete()

    def get_keys(self, name: str) -> ServiceKeys:
        service = self._sdk_service(name)
        with sdk_call(f"get the keys of webservice {name!r}"):
            primary, secondary = service.get_keys()
        return ServiceKeys(primary=primary or "", secondary=secondary or "")

    # ------------------------------------------------------------------ internals

    def _keys_to_vault(self, name: str, config: ServiceConfig) -> ServiceConfig:
        """``config`` with the router's group keys moved from its environment into the workspace's
        Key Vault (secret :func:`secret_name`); the environment keeps only the vault and the name."""
        environment = dict(config.environment)
        keys = environment.pop(SERVICE_KEYS_ENV, None)
        if keys is None:
            return config
        if config.kind == ServiceKind.ACI and keys.strip() not in ("", "{}"):
            # refused here rather than failing the router's init() on ACI a few minutes later
            raise InvalidValue(
                f"the router {name!r} cannot be deployed to ACI while its groups use key auth: Azure ML "
                "SDK v1 gives an ACI container no managed identity to read the keys from Key Vault, and "
                "keys in its environment would be readable by every workspace reader. Deploy to AKS "
                "(DEPLOY_AKS=true), where the router reads them with the cluster's identity")
        secret = secret_name(name)
        with sdk_call(f"store the group keys of {name!r} in the workspace's Key Vault"):
            # stored even when empty ("{}"): a router whose groups lost auth must not keep old keys
            self._ws.get_default_keyvault().set_secret(name=secret, value=keys)
            vault = vault_url(self._ws)
        return replace(config, environment={**environment, VAULT_ENV: vault, SECRET_ENV: secret})

    def _sdk_service(self, name: str) -> Webservice:
        with sdk_call(f"get webservice {name!r}"):
            return Webservice(self._ws, name)

    def _models(self, records: Sequence[ModelRecord]) -> builtins.list[Model]:
        if not records:
            raise InvalidValue("a webservice needs at least one model")
        with sdk_call("get the models to deploy"):
            return [Model(self._ws, name=r.name, version=int(r.version)) for r in records]

    def _target(self, config: ServiceConfig) -> AksCompute | None:
        if config.kind != ServiceKind.AKS:
            return None
        aks_name = self._settings.aks_name
        if not aks_name:
            raise InvalidValue("AKS deployments need AKS_NAME: the AKS compute target attached to the workspace")
        with sdk_call(f"get AKS compute target {aks_name!r}"):
            return AksCompute(self._ws, aks_name)

    def _wait(self, service: Webservice, name: str, timeout: float) -> Service:
        with sdk_call(f"wait for webservice {name!r}"):
            service.wait_for_deployment(show_output=False, timeout_sec=int(timeout))
        record = to_service(service)
        if record.state != ServiceState.HEALTHY:
            raise Unavailable(f"webservice {name!r} is {service.state} after deployment: "
                              f"{record.error or 'see its logs in Azure ML studio'}")
        return record
