"""Scoring-service configuration per deployment target, from ``pipelines/configuration/*-deploy-config.yml``.

One file per target (``local``, ``aci``, ``aks``), each with a ``models`` and a ``router`` role::

    computeType: ACI
    models:
      entryScript: scoring/model_webservice.py
      authEnabled: true
      containerResourceRequirements: {cpu_cores: 1, memory_gb: 1}
      environmentVariables: {WORKER_COUNT: "1"}
    router: ...

The files hold no secrets: service keys are added to the router's environment at deploy time only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from shared.errors import InvalidValue
from shared.workspace.base import ServiceConfig, ServiceKind

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "pipelines" / "configuration"
TARGETS = ("local", "aci", "aks")
ROLES = ("models", "router")


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
                           "expected local, ACI or AKS") from None
    if kind.value != target:
        raise InvalidValue(f"{file}: computeType={data.get('computeType')!r} does not match target {target!r}")
    section = data.get(role)
    if not isinstance(section, dict):
        raise InvalidValue(f"{file}: missing section {role!r} (with entryScript, containerResourceRequirements, "
                           "environmentVariables)")
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
        cpu = float(resources.get("cpu_cores", resources.get("cpu", 1.0)))
        memory = float(resources.get("memory_gb", resources.get("memoryInGB", 1.0)))
    except (TypeError, ValueError):
        raise InvalidValue(f"{file}: {role}.containerResourceRequirements cpu_cores/memory_gb must be "
                           "numbers") from None
    if not (0 < cpu <= 16 and 0 < memory <= 64):
        raise InvalidValue(f"{file}: {role} cpu_cores={cpu}, memory_gb={memory} not allowed: expected "
                           "0 < cpu_cores <= 16 and 0 < memory_gb <= 64")
    auth = section.get("authEnabled", kind != ServiceKind.LOCAL)
    if not isinstance(auth, bool):
        raise InvalidValue(f"{file}: {role}.authEnabled={auth!r} is not allowed: expected true or false")
    return ServiceConfig(
        kind=kind,
        entry_script=entry,
        cpu_cores=cpu,
        memory_gb=memory,
        auth_enabled=auth,
        environment={str(k): str(v) for k, v in env.items()},
        tags={"manymodels_role": role, "manymodels_target": target},
    )
