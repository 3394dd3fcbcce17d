"""Deploy registered models in groups behind one routing webservice, per target (local, aci, aks).

The rollout is three steps, each safe to repeat (F's queue-based rollout runs them as tasks,
``manymodels deploy`` runs :func:`deploy` synchronously):

1. :func:`plan` - registered models + the target's deployment state -> a :class:`DeploymentPlan`;
2. :func:`execute_group` per group - deploy (new), update (update), delete (delete), nothing
   (unchanged). A group whose service already serves exactly its models is left alone, so
   re-running a half-done plan finishes it;
3. :func:`finish` - register the new deployment-state model (``deployed_models_info``: model ->
   version, group, webservice, endpoint; tag ``ModelType=_meta_``; no keys) and create or update
   the router with it. Service keys are read with ``services.get_keys`` and given only to the
   router's deployment (``MANYMODELS_SERVICE_KEYS``); the Azure ML adapter moves them into the
   workspace's Key Vault before anything is stored (shared/workspace/aml/services.py).

Run ``delete`` groups after :func:`finish` (as :func:`deploy` does) so the router never points
at a service that is already gone.

Targets are independent, as in the original accelerator: ACI names everything ``test-`` + the
AKS name; the local target keeps the plain prefixes and its own state model name.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.deploy_config import TARGETS, load_service_config
from shared.errors import Conflict, InvalidValue, ManyModelsError, NotFound
from shared.grouping import (
    META_MODEL_TYPE,
    MODEL_TYPE_TAG,
    DeploymentPlan,
    GroupAction,
    PlannedGroup,
    deployment_state,
    is_meta,
    plan_deployment,
)
from shared.settings import Settings
from shared.workspace import open_workspace as _open_workspace
from shared.workspace.base import (
    ModelRecord,
    NewModel,
    Service,
    ServiceConfig,
    ServiceKind,
    ServiceState,
    Workspace,
)
from shared.workspace.newest import newest_models

log = logging.getLogger(__name__)

STATE_FILE = "deployed_models_info.json"
KEYS_ENV = "MANYMODELS_SERVICE_KEYS"  # the router's {service: key}; never stored (Key Vault on Azure ML)
TARGET_TAG = "DeploymentTarget"
PARALLEL_GROUPS = 4  # group deployments in flight at once (each one mostly waits)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DeploymentTarget:
    """Names of one target's services and state."""

    name: str  # local | aci | aks
    kind: ServiceKind
    prefix: str  # model group services: {prefix}{group}-{n}
    state_model: str  # registered deployment-state model
    router_service: str


@dataclass(frozen=True, slots=True)
class DeploymentResult:
    target: str
    plan: DeploymentPlan
    dry_run: bool = False
    router: Service | None = None
    state_version: int | None = None
    seconds: float = 0.0
    errors: tuple[str, ...] = field(default=())

    @property
    def endpoint(self) -> str | None:
        return self.router.scoring_uri if self.router else None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "dry_run": self.dry_run, "counts": self.plan.counts(),
                "endpoint": self.endpoint, "router": self.router.name if self.router else None,
                "state_version": self.state_version, "seconds": round(self.seconds, 3),
                "errors": list(self.errors), **self.plan.to_dict()}


def open_workspace(settings: Settings) -> Workspace:
    return _open_workspace(settings)


def deploy_target(settings: Settings, target: str) -> DeploymentTarget:
    """The names used on ``target``: ACI prefixes everything with ``test-`` as the original did."""
    if target not in TARGETS:
        raise InvalidValue(f"deployment target {target!r} is not allowed: expected one of {', '.join(TARGETS)}")
    if target == "aci":
        return DeploymentTarget("aci", ServiceKind.ACI, f"test-{settings.webservice_prefix}",
                                f"test-{settings.routing_model_name}", f"test-{settings.routing_service_name}")
    if target == "aks":
        return DeploymentTarget("aks", ServiceKind.AKS, settings.webservice_prefix,
                                settings.routing_model_name, settings.routing_service_name)
    if target == "managed":  # own names: an amlv2 workspace may serve "aks" too (endpoint names: amlv2/services.py)
        return DeploymentTarget("managed", ServiceKind.MANAGED, f"managed-{settings.webservice_prefix}",
                                f"{settings.routing_model_name}_managed", f"managed-{settings.routing_service_name}")
    return DeploymentTarget("local", ServiceKind.LOCAL, settings.webservice_prefix,
                            f"{settings.routing_model_name}_local", settings.routing_service_name)


def _state_model_names(settings: Settings) -> set[str]:
    return {deploy_target(settings, t).state_model for t in TARGETS}


def _check_backend(settings: Settings, target: str) -> None:
    if target == "local" and settings.backend != "local":
        raise InvalidValue("deployment target 'local' needs MANYMODELS_BACKEND=local: local services run "
                           "beside the local workspace; use --target aci or aks with the aml backend")
    if target == "aci" and settings.backend != "aml":
        raise InvalidValue("deployment target 'aci' needs MANYMODELS_BACKEND=aml (SDK v1 webservices); with amlv2 "
                           "deploy to --target managed, with the local backend to --target local")
    if target == "aks" and settings.backend not in ("aml", "amlv2"):
        raise InvalidValue("deployment target 'aks' needs MANYMODELS_BACKEND=aml or amlv2 (an Azure ML workspace); "
                           "with the local backend deploy to --target local")
    if target == "managed" and settings.backend != "amlv2":
        raise InvalidValue("deployment target 'managed' needs MANYMODELS_BACKEND=amlv2: managed online endpoints "
                           "are SDK v2 only")


# --------------------------------------------------------------------------- reading state


def registered_models(workspace: Workspace, settings: Settings, target: str) -> list[ModelRecord]:
    """The newest-data version of every deployable model (no ``_meta_`` / deployment-state models).

    Not the highest version: a run that finished late may have registered older data's models
    last (shared/workspace/newest.py).
    """
    excluded = _state_model_names(settings)
    every = [m for m in workspace.models.list(latest=False) if m.name not in excluded and not is_meta(m.tags)]
    return newest_models(every, workspace.runs)


def _latest_state_record(workspace: Workspace, target: DeploymentTarget) -> ModelRecord | None:
    records = workspace.models.list(latest=True, name=target.state_model)
    return records[-1] if records else None


def _read_state(workspace: Workspace, record: ModelRecord) -> dict[str, Any]:
    local = Path(record.path) / STATE_FILE if record.path else None
    if local is not None and local.is_file():
        text = local.read_text()
    else:
        with tempfile.TemporaryDirectory(prefix="mm-state-") as tmp:
            found = list(Path(workspace.models.download(record, tmp)).rglob(STATE_FILE))
            if not found:
                raise NotFound(f"deployment state model {record.name}:{record.version} has no {STATE_FILE}")
            text = found[0].read_text()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise InvalidValue(f"{record.name}:{record.version}/{STATE_FILE} is not a JSON object")
    return data


def current_state(workspace: Workspace, settings: Settings, target: str, *,
                  services: Sequence[Service] | None = None) -> dict[str, Any]:
    """The target's ``deployed_models_info``, without models whose service no longer exists
    (as the original: they are deployed again)."""
    names = deploy_target(settings, target)
    record = _latest_state_record(workspace, names)
    if record is None:
        return {}
    state = _read_state(workspace, record)
    listed = workspace.services.list(kind=names.kind) if services is None else services
    existing = {s.name for s in listed}
    return {m: info for m, info in state.items() if isinstance(info, dict) and info.get("webservice") in existing}


# --------------------------------------------------------------------------- the three steps


def plan(workspace: Workspace, settings: Settings, target: str, *, reset: bool = False,
         update: bool = False) -> DeploymentPlan:
    """Plan the target's next deployment (``RESET_DEPLOYMENT``/``UPDATE_DEPLOYMENT`` apply too).

    Groups whose service is not healthy are planned as ``update`` so a rollout repairs them.
    Raises InvalidValue when the plan is refused (e.g. a smaller container size without reset).
    """
    _check_backend(settings, target)
    names = deploy_target(settings, target)
    services = workspace.services.list(kind=names.kind)
    state = current_state(workspace, settings, target, services=services)
    result = plan_deployment(
        registered_models(workspace, settings, target), state,
        container_size=settings.max_container_size, prefix=names.prefix,
        splitting_tags=settings.splitting_tags, sorting_tags=settings.sorting_tags,
        reset=reset or settings.reset_deployment, update_all=update or settings.update_deployment,
    )
    unhealthy = {s.name for s in services if s.state != ServiceState.HEALTHY}
    if unhealthy:
        groups = tuple(replace(g, action=GroupAction.UPDATE)
                       if g.action == GroupAction.UNCHANGED and g.service in unhealthy else g
                       for g in result.groups)
        result = DeploymentPlan(groups, result.skipped)
    return result


def _serves(service: Service, models: Sequence[str]) -> bool:
    return service.state == ServiceState.HEALTHY and sorted(service.models) == sorted(models)


def _get_service(workspace: Workspace, name: str) -> Service | None:
    try:
        return workspace.services.get(name)
    except NotFound:
        return None


def execute_group(workspace: Workspace, settings: Settings, target: str, group: PlannedGroup, *,
                  force: bool = False) -> None:
    """Deploy, update or delete one group's service.

    A service that is already healthy and serves exactly the group's models is left alone (a
    replayed task, or a re-run of a half-done plan), unless ``force`` (``--update``/``--reset``,
    also ``UPDATE_DEPLOYMENT``/``RESET_DEPLOYMENT``) asks to redeploy it anyway.
    """
    _check_backend(settings, target)
    services = workspace.services
    if group.action == GroupAction.DELETE:
        services.delete(group.service)
        return
    if group.action == GroupAction.UNCHANGED:
        return
    wanted = [f"{m.name}:{m.version}" for m in group.models]
    existing = _get_service(workspace, group.service)
    forced = force or settings.update_deployment or settings.reset_deployment
    if existing is not None and _serves(existing, wanted) and not forced:
        return
    records = [workspace.models.get(m.name, m.version) for m in group.models]
    config = load_service_config(target, "models")
    config = replace(config, tags={**config.tags, "group": group.group})
    if existing is None:
        log.info("deploying %s (%s, %d models)", group.service, group.group, len(records))
        services.deploy(group.service, records, config)
    else:
        log.info("updating %s (%s, %d models)", group.service, group.group, len(records))
        services.update(group.service, records, config)


def _router_config(workspace: Workspace, target: str, plan: DeploymentPlan) -> ServiceConfig:
    config = load_service_config(target, "router")
    models = load_service_config(target, "models")
    keys: dict[str, str] = {}
    if models.auth_enabled:
        for g in plan.groups:
            if g.action != GroupAction.DELETE:
                primary = workspace.services.get_keys(g.service).primary
                if primary:
                    keys[g.service] = primary
    return replace(config, environment={**config.environment, KEYS_ENV: json.dumps(keys, sort_keys=True)})


def _register_state(workspace: Workspace, names: DeploymentTarget, state: dict[str, Any]) -> ModelRecord:
    latest = _latest_state_record(workspace, names)
    if latest is not None and _read_state(workspace, latest) == state:
        return latest  # a replayed finish: same content, no new version
    with tempfile.TemporaryDirectory(prefix="mm-state-") as tmp:
        (Path(tmp) / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True))
        groups = {v["group"] for v in state.values()}
        new = NewModel(name=names.state_model, path=tmp,
                       tags={MODEL_TYPE_TAG: META_MODEL_TYPE, TARGET_TAG: names.name},
                       properties={"models": str(len(state)), "groups": str(len(groups))})
        return workspace.models.register_many([new])[0]


def finish(workspace: Workspace, settings: Settings, target: str, plan: DeploymentPlan, *,
           force: bool = False) -> Service:
    """Register the new deployment state and create or update the router (idempotent).

    Raises:
        Conflict: a group of the plan has no service yet (run :func:`execute_group` first).
    """
    _check_backend(settings, target)
    names = deploy_target(settings, target)
    endpoints: dict[str, str | None] = {}
    for g in plan.groups:
        if g.action == GroupAction.DELETE:
            continue
        service = _get_service(workspace, g.service)
        if service is None:
            raise Conflict(f"group {g.group!r} has no service {g.service!r} yet: execute its group task "
                           "before finishing the deployment")
        endpoints[g.service] = service.scoring_uri
    state = deployment_state(plan, endpoints)
    record = _register_state(workspace, names, state)
    config = _router_config(workspace, target, plan)
    router = _get_service(workspace, names.router_service)
    wanted = [f"{record.name}:{record.version}"]
    if router is None:
        return workspace.services.deploy(names.router_service, [record], config)
    # Keys never leave the router's environment, so they cannot be compared here: new or updated
    # groups change the state model (and so update the router); rotated keys need force (--update).
    if _serves(router, wanted) and not (force or settings.update_deployment or settings.reset_deployment):
        return router
    return workspace.services.update(names.router_service, [record], config)


def deploy(workspace: Workspace, settings: Settings, target: str, *, reset: bool = False, update: bool = False,
           dry_run: bool = False, progress: Progress | None = None) -> DeploymentResult:
    """The whole rollout, synchronously: plan, groups, state + router, then deletes."""
    say = progress or (lambda message: None)
    started = time.monotonic()
    the_plan = plan(workspace, settings, target, reset=reset, update=update)
    counts = the_plan.counts()
    say(f"{target}: {counts['new']} new, {counts['update']} to update, {counts['unchanged']} unchanged, "
        f"{counts['delete']} to delete")
    if dry_run:
        return DeploymentResult(target, the_plan, dry_run=True, seconds=time.monotonic() - started)
    names = deploy_target(settings, target)
    work = [g for g in the_plan.groups if g.action in (GroupAction.NEW, GroupAction.UPDATE)]
    errors = _execute_all(workspace, settings, target, work, force=reset or update, say=say)
    if errors:
        # The router keeps the last good state (updates are rolling, so every model it names still
        # answers); nothing is deleted; running the deployment again retries the failed groups.
        say(f"{target}: {len(errors)} groups failed; the router and the deployment state are unchanged")
        return DeploymentResult(target, the_plan, router=_get_service(workspace, names.router_service),
                                seconds=time.monotonic() - started, errors=tuple(errors))
    router = None
    kept = [g for g in the_plan.groups if g.action != GroupAction.DELETE]
    if kept or _get_service(workspace, names.router_service) is not None:
        say(f"{target}: registering {names.state_model} and updating {names.router_service}")
        router = finish(workspace, settings, target, the_plan, force=reset or update)
    for group in the_plan.by_action(GroupAction.DELETE):
        say(f"{target}: delete {group.service}")
        execute_group(workspace, settings, target, group)
    latest = _latest_state_record(workspace, names)
    return DeploymentResult(target, the_plan, router=router, state_version=latest.version if latest else None,
                            seconds=time.monotonic() - started)


def _execute_all(workspace: Workspace, settings: Settings, target: str, groups: Sequence[PlannedGroup], *,
                 force: bool, say: Progress) -> list[str]:
    """Deploy/update groups concurrently (as the original launched every deployment, then waited)."""
    errors: list[str] = []
    if not groups:
        return errors

    def one(group: PlannedGroup) -> None:
        say(f"{target}: {group.action} {group.service} ({len(group.models)} models)")
        execute_group(workspace, settings, target, group, force=force)

    with ThreadPoolExecutor(max_workers=PARALLEL_GROUPS) as pool:
        futures = {pool.submit(one, g): g for g in groups}
        for future in as_completed(futures):
            group = futures[future]
            try:
                future.result()
            except ManyModelsError as e:
                log.error("group %s (%s) failed: %s", group.group, group.service, e.message)
                errors.append(f"{group.service}: {e.message}")
    return errors


def router_endpoint(workspace: Workspace, settings: Settings, target: str) -> str | None:
    """The router's scoring URI on ``target``, or None when it is not deployed."""
    router = _get_service(workspace, deploy_target(settings, target).router_service)
    return router.scoring_uri if router else None


def delete_all(workspace: Workspace, settings: Settings, target: str, *, progress: Progress | None = None) -> int:
    """Delete the router and every model-group service of ``target``; returns how many.

    The deployment-state model stays registered; the next deployment sees its services gone and
    deploys every model again.
    """
    _check_backend(settings, target)
    say = progress or (lambda message: None)
    names = deploy_target(settings, target)
    count = 0
    services = workspace.services.list(kind=names.kind)
    ours = [s for s in services if s.name == names.router_service or s.name.startswith(names.prefix)]
    for s in sorted(ours, key=lambda s: s.name != names.router_service):  # the router first
        say(f"{target}: delete {s.name}")
        workspace.services.delete(s.name)
        count += 1
    return count
