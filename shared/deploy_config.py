"""Scoring-service configuration per deployment target, from ``pipelines/configuration/*-deploy-config.yml``.

One file per target (``local``, ``aci``, ``managed``, ``aks``), each with a ``models`` and a ``router`` role::

    computeType: ACI
    models:
      entryScript: scoring/model_webservice.py
      authEnabled: true
      containerResourceRequirements: {cpu_cores: 1, memory_gb: 1}
      environmentVariables: {WORKER_COUNT: "1"}
    router: ...

``authEnabled`` is passed to the service (key auth); ``WORKER_COUNT`` (times gunicorn's
``--threads`` in ``GUNICORN_CMD_ARGS``) is how many requests one container serves at once, which
the AML adapter passes on AKS as ``replica_max_concurrent_requests`` (SDK v2: the deployment's
``max_concurrent_requests_per_instance``). A field a target does not support is refused with the
reason, as is any field not listed here (a typo is not ignored).

Managed online endpoints (``managed``, SDK v2 only, shared/workspace/amlv2/services.py) run on a VM
size rather than container resources: ``instanceType`` (e.g. ``Standard_DS2_v2``, required) and
``instanceCount`` (default 1) instead of ``containerResourceRequirements``; ``authEnabled`` must be
true (Microsoft Entra tokens). On ``aks`` the same file serves the v1 AKS webservices and the v2
Kubernetes online endpoints, from ``containerResourceRequirements`` (the cluster's default
instance type).

The files hold no secrets: the router gets the group services' keys at deploy time only, never
through a stored environment definition (shared/workspace/aml/services.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml  # untyped: mypy.ini types it as Any

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT
from shared.workspace.base import ServiceConfig, ServiceKind

CONFIG_DIR = REPO_ROOT / "pipelines" / "configuration"
TARGETS = ("local", "aci", "managed", "aks")
ROLES = ("models", "router")
FIELDS = ("entryScript", "authEnabled", "containerResourceRequirements", "environmentVariables",
          "instanceType", "instanceCount")
# fields only some targets take, and why the others refuse them
_TARGET_FIELDS = {
    "containerResourceRequirements": (("local", "aci", "aks"),
                                      "a managed online deployment's size is its instanceType (a VM size)"),
    "instanceType": (("managed",), "only managed online endpoints run on a chosen VM size; the others take "
                                   "containerResourceRequirements"),
    "instanceCount": (("managed",), "only managed online endpoints take an instance count here"),
}
MAX_INSTANCES = 20  # per deployment; Azure ML's quota is per subscription and region
# fields of Azure ML's own deployment-config format that this product sets itself, and why
_NOT_SETTABLE = {
    "maxConcurrentRequestsPerContainer": "it follows from environmentVariables.WORKER_COUNT (and --threads in "
                                         "GUNICORN_CMD_ARGS) on AKS, and ACI has no such setting",
    "tokenAuthEnabled": "the target decides: key auth (authEnabled) on ACI/AKS, the router holding the group keys; "
                        "Microsoft Entra tokens on managed online endpoints",
}


def config_path(target: str) -> Path:
    if target not in TARGETS:
        raise InvalidValue(f"deployment target {target!r} is not allowed: expected one of {', '.join(TARGETS)}")
    return CONFIG_DIR / f"{target}-deploy-config.yml"


def load_service_config(target: str, role: str, *, path: Path | None = None) -> ServiceConfig:
    """The :class:`ServiceConfig` of ``role`` ("models" or "router") on ``target``.

    Raises:
        InvalidValue: unknown target/role, missing file, or a field with a value not allowed.
    """
    if role not in ROLES:
        raise InvalidValue(f"service role {role!r} is not allowed: expected 'models' or 'router'")
    file = path or config_path(target)
    return _parse(_read(file), role, file, target)


@functools.cache
def _read_cached(file: Path, mtime_ns: int) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise InvalidValue(f"{file} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise InvalidValue(f"{file}: expected a mapping with computeType, models and router")
    return data


def _read(file: Path) -> dict[str, Any]:
    try:
        mtime = file.stat().st_mtime_ns
    except OSError:
        raise InvalidValue(f"deployment config {file} does not exist: create it (see "
                           f"{CONFIG_DIR / 'local-deploy-config.yml'} for the format)") from None
    return _read_cached(file, mtime)


def _parse(data: dict[str, Any], role: str, file: Path, target: str) -> ServiceConfig:
    kind_text = str(data.get("computeType", "")).lower()
    try:
        kind = ServiceKind(kind_text)
    except ValueError:
        raise InvalidValue(f"{file}: computeType={data.get('computeType')!r} is not allowed: "
                           "expected local, ACI, Managed or AKS") from None
    if kind.value != target:
        raise InvalidValue(f"{file}: computeType={data.get('computeType')!r} does not match target {target!r}")
    section = data.get(role)
    if not isinstance(section, dict):
        raise InvalidValue(f"{file}: missing section {role!r} (with entryScript, containerResourceRequirements, "
                           "environmentVariables)")
    for name in section:
        if name in _NOT_SETTABLE:
            raise InvalidValue(f"{file}: {role}.{name} is not allowed: {_NOT_SETTABLE[name]}")
        if name not in FIELDS:
            raise InvalidValue(f"{file}: {role}.{name} is not a field of a deployment config: expected "
                               f"{', '.join(FIELDS)}")
        targets, why = _TARGET_FIELDS.get(name, (TARGETS, ""))
        if target not in targets:
            raise InvalidValue(f"{file}: {role}.{name} is not allowed on target {target!r}: {why}")
    resources = section.get("containerResourceRequirements") or {}
    env = section.get("environmentVariables") or {}
    if not isinstance(resources, dict) or not isinstance(env, dict):
        raise InvalidValue(f"{file}: {role}.containerResourceRequirements and {role}.environmentVariables "
                           "must be mappings")
    entry = section.get("entryScript")
    if not isinstance(entry, str) or not entry.endswith(".py"):
        raise InvalidValue(f"{file}: {role}.entryScript={entry!r} is not allowed: expected a path like "
                           "scoring/model_webservice.py")
    try:
        # Any: YAML gives any value here; float() raising TypeError/ValueError is the check
        cpu_given: Any = resources.get("cpu_cores", resources.get("cpu", 1.0))
        memory_given: Any = resources.get("memory_gb", resources.get("memoryInGB", 1.0))
        cpu = float(cpu_given)
        memory = float(memory_given)
    except (TypeError, ValueError):
        raise InvalidValue(f"{file}: {role}.containerResourceRequirements cpu_cores/memory_gb must be "
                           "numbers") from None
    if not (0 < cpu <= 16 and 0 < memory <= 64):
        raise InvalidValue(f"{file}: {role} cpu_cores={cpu}, memory_gb={memory} not allowed: expected "
                           "0 < cpu_cores <= 16 and 0 < memory_gb <= 64")
    auth = section.get("authEnabled", kind != ServiceKind.LOCAL)
    if not isinstance(auth, bool):
        raise InvalidValue(f"{file}: {role}.authEnabled={auth!r} is not allowed: expected true or false")
    if auth and kind == ServiceKind.LOCAL:
        raise InvalidValue(f"{file}: {role}.authEnabled=true is not allowed on the local target: local services "
                           "listen on 127.0.0.1 only and check no keys; set it to false")
    if kind == ServiceKind.MANAGED and not auth:
        raise InvalidValue(f"{file}: {role}.authEnabled=false is not allowed on managed online endpoints: they "
                           "always authenticate callers (Microsoft Entra tokens); set it to true")
    instance_type, instance_count = _instances(section, kind, f"{file}: {role}")
    concurrency(env, where=f"{file}: {role}.environmentVariables")  # refuses a bad WORKER_COUNT early
    return ServiceConfig(
        kind=kind,
        entry_script=entry,
        cpu_cores=cpu,
        memory_gb=memory,
        auth_enabled=auth,
        environment={str(k): str(v) for k, v in env.items()},
        tags={"manymodels_role": role, "manymodels_target": target},
        instance_type=instance_type,
        instance_count=instance_count,
    )


def _instances(section: Mapping[str, Any], kind: ServiceKind, where: str) -> tuple[str, int]:
    """``instanceType`` (a VM size such as ``Standard_DS2_v2``) and ``instanceCount`` of a managed role."""
    if kind != ServiceKind.MANAGED:
        return "", 1
    size = section.get("instanceType")
    if not isinstance(size, str) or not re.fullmatch(r"Standard_[A-Za-z0-9_]+", size):
        raise InvalidValue(f"{where}.instanceType={size!r} is not allowed: expected an Azure VM size supported by "
                           "managed online endpoints, e.g. Standard_DS2_v2 or Standard_F2s_v2")
    count = section.get("instanceCount", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_INSTANCES:
        raise InvalidValue(f"{where}.instanceCount={count!r} is not allowed: expected a whole number from 1 to "
                           f"{MAX_INSTANCES}")
    return size, count


def _positive_int(value: object, what: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise InvalidValue(f"{what}={value!r} is not allowed: expected a whole number >= 1")
    return int(text)


def concurrency(environment: Mapping[str, str], *, where: str = "environmentVariables") -> int:
    """Requests one container serves at once: ``WORKER_COUNT`` gunicorn workers (default 1, as
    azureml-inference-server-http) times the ``--threads`` each (default 1) in ``GUNICORN_CMD_ARGS``."""
    workers = _positive_int(environment.get("WORKER_COUNT", "1"), f"{where}.WORKER_COUNT")
    args = str(environment.get("GUNICORN_CMD_ARGS", "")).split()
    threads = 1
    for i, arg in enumerate(args):
        if arg == "--threads" and i + 1 < len(args):
            threads = _positive_int(args[i + 1], f"{where}.GUNICORN_CMD_ARGS --threads")
        elif arg.startswith("--threads="):
            threads = _positive_int(arg.split("=", 1)[1], f"{where}.GUNICORN_CMD_ARGS --threads")
    return workers * threads
