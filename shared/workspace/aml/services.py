"""Scoring webservices on ACI or AKS: ``Model.deploy`` / ``Webservice.update`` / ``delete``.

Both targets have key auth enabled; keys are read with ``get_keys()`` only when asked for and
are never stored. Deployment configs come from ``ServiceConfig`` (E's
``pipelines/configuration/*-deploy-config.yml``): models 1 CPU / 1 GB, router 0.1 CPU / 0.5 GB.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from azureml.core import Model, Webservice
from azureml.core.compute import AksCompute
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice, AksWebservice

from pipelines.aml.environments import REPO_ROOT, scoring_environment
from shared.errors import InvalidValue, NotFound, Unavailable
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

if TYPE_CHECKING:
    from shared.workspace.aml.workspace import AmlWorkspace

STATE = {
    "Healthy": ServiceState.HEALTHY,
    "Transitioning": ServiceState.TRANSITIONING,
    "Unhealthy": ServiceState.UNHEALTHY,
    "Unschedulable": ServiceState.UNHEALTHY,
    "Failed": ServiceState.FAILED,
}
COMPUTE_TYPE = {"ACI": ServiceKind.ACI, "AKS": ServiceKind.AKS}


def to_service(service) -> Service:
    kind = COMPUTE_TYPE.get(str(getattr(service, "compute_type", "")).upper(), ServiceKind.ACI)
    models = tuple(f"{m.name}:{m.version}" for m in (getattr(service, "models", None) or []))
    updated = getattr(service, "updated_time", None) or getattr(service, "created_time", None)
    error = getattr(service, "error", None)
    return Service(
        name=service.name, kind=kind, state=STATE.get(service.state, ServiceState.TRANSITIONING),
        scoring_uri=service.scoring_uri or "", models=models, updated=str(updated or ""),
        error=str(error.get("message", error)) if isinstance(error, dict) else (str(error) if error else None),
    )


def deployment_config(config: ServiceConfig):
    """The SDK deployment configuration: auth is always on (the router holds the keys)."""
    tags = dict(config.tags) or None
    if config.kind == ServiceKind.ACI:
        return AciWebservice.deploy_configuration(cpu_cores=config.cpu_cores, memory_gb=config.memory_gb,
                                                  auth_enabled=True, tags=tags)
    if config.kind == ServiceKind.AKS:
        return AksWebservice.deploy_configuration(cpu_cores=config.cpu_cores, memory_gb=config.memory_gb,
                                                  auth_enabled=True, tags=tags)
    raise InvalidValue(f"service kind {config.kind!r} is not allowed on Azure ML: expected 'aci' or 'aks'")


def inference_config(config: ServiceConfig) -> InferenceConfig:
    """Entry script and its directory (``scoring/``, self-contained) + the scoring environment."""
    script = Path(config.entry_script)
    source = script.parent if script.is_absolute() else REPO_ROOT / script.parent
    if not (source / script.name).is_file():
        raise InvalidValue(f"entry script {source / script.name} does not exist: check entry_script in the "
                           "deployment config")
    # one environment per entry script: the router's carries the group keys, the models' none
    environment = scoring_environment(f"manymodels-{script.stem.replace('_', '-')}")
    environment.environment_variables = {**environment.environment_variables, **dict(config.environment)}
    return InferenceConfig(entry_script=script.name, source_directory=str(source), environment=environment)


class AmlServiceStore(ServiceStore):
    def __init__(self, workspace: AmlWorkspace) -> None:
        self._workspace = workspace

    @property
    def _ws(self):
        return self._workspace.ws

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
        inference = inference_config(config)
        target = self._target(config)
        with sdk_call(f"deploy webservice {name!r} ({len(models)} models)"):
            service = Model.deploy(self._ws, name, self._models(models), inference_config=inference,
                                   deployment_config=deploy_config, deployment_target=target, overwrite=True)
        return self._wait(service, name, timeout)

    def update(self, name: str, models: Sequence[ModelRecord], config: ServiceConfig, *,
               timeout: float = 600) -> Service:
        service = self._sdk_service(name)
        inference = inference_config(config)
        with sdk_call(f"update webservice {name!r} ({len(models)} models)"):
            if config.kind == ServiceKind.AKS:
                service.update(models=self._models(models), inference_config=inference, auth_enabled=True,
                               cpu_cores=config.cpu_cores, memory_gb=config.memory_gb)
            else:
                service.update(models=self._models(models), inference_config=inference, auth_enabled=True)
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

    def _sdk_service(self, name: str):
        with sdk_call(f"get webservice {name!r}"):
            return Webservice(self._ws, name)

    def _models(self, records: Sequence[ModelRecord]) -> list:
        if not records:
            raise InvalidValue("a webservice needs at least one model")
        with sdk_call("get the models to deploy"):
            return [Model(self._ws, name=r.name, version=int(r.version)) for r in records]

    def _target(self, config: ServiceConfig):
        if config.kind != ServiceKind.AKS:
            return None
        aks_name = self._workspace.settings.aks_name
        if not aks_name:
            raise InvalidValue("AKS deployments need AKS_NAME: the AKS compute target attached to the workspace")
        with sdk_call(f"get AKS compute target {aks_name!r}"):
            return AksCompute(self._ws, aks_name)

    def _wait(self, service, name: str, timeout: float) -> Service:
        with sdk_call(f"wait for webservice {name!r}"):
            service.wait_for_deployment(show_output=False, timeout_sec=int(timeout))
        record = to_service(service)
        if record.state != ServiceState.HEALTHY:
            raise Unavailable(f"webservice {name!r} is {service.state} after deployment: "
                              f"{record.error or 'see its logs in Azure ML studio'}")
        return record
