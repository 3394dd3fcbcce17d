"""The deployment planner: registered models + current deployment state -> a plan of groups.

Pure and fast (no I/O): the same function serves the deploy flow, the Function App's rollout,
``manymodels plan`` and the benchmarks. Semantics are the original accelerator's
(``deploy_or_update_models.py``), with its rough edges fixed:

- models split into groups by ``splitting_tags`` (no tags: one group ``modelgroup``); a model
  missing a splitting tag is left out (and reported in :attr:`DeploymentPlan.skipped`);
- existing assignments stay where they are: a model only moves when its group disappears (its
  splitting tags changed) or on ``reset``;
- new models, sorted by ``sorting_tags`` (natural order, then name), fill the existing subgroups
  up to ``container_size``, then reuse index gaps, then take new indices;
- a subgroup is ``new`` (its service does not exist), ``update`` (a model added, removed or at
  another version), ``unchanged`` or ``delete`` (emptied); ``update_all`` turns every
  ``unchanged`` into ``update``; ``reset`` rebuilds every assignment from scratch (and so
  updates every group it keeps);
- a subgroup whose service already exists is never planned as ``delete`` + ``new``: it is an
  ``update``, so the same service name is never deleted and created concurrently;
- shrinking ``container_size`` below a deployed subgroup's size is refused without ``reset``;
- deployment-state models (tag ``ModelType=_meta_``) are never deployed as models.

Service names are ``{prefix}{group}-{n}`` lower case, valid Azure ML service names (3-32
characters: lower-case letters, digits and dashes, starting with a letter, not ending with a
dash). Names that need cleaning or shortening get a short hash of the full name, so they stay
unique and are the same on every run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from shared.errors import InvalidValue

DEFAULT_GROUP = "modelgroup"
META_MODEL_TYPE = "_meta_"
MODEL_TYPE_TAG = "ModelType"
SERVICE_NAME_MIN = 3
SERVICE_NAME_MAX = 32

_INVALID_CHARS = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")


class GroupAction(StrEnum):
    NEW = "new"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class PlannedModel:
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class PlannedGroup:
    """One subgroup and its service. ``models`` is what the service serves after the plan
    (empty for ``delete``)."""

    group: str
    service: str
    action: GroupAction
    models: tuple[PlannedModel, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "service": self.service, "action": str(self.action),
                "models": [{"name": m.name, "version": m.version} for m in self.models]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlannedGroup:
        try:
            action = GroupAction(str(data["action"]))
            models = tuple(PlannedModel(str(m["name"]), int(m["version"])) for m in data.get("models", ()))
            return cls(str(data["group"]), str(data["service"]), action, models)
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidValue(f"planned group {dict(data)!r} is not valid: {e}; expected "
                               "{'group', 'service', 'action': new|update|unchanged|delete, "
                               "'models': [{'name', 'version'}]}") from None


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    groups: tuple[PlannedGroup, ...]
    skipped: tuple[str, ...] = field(default=(), compare=False)  # models without the splitting tags

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [g.to_dict() for g in self.groups]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentPlan:
        groups = data.get("groups") if isinstance(data, Mapping) else None
        if not isinstance(groups, list):
            raise InvalidValue("a deployment plan must be an object with a 'groups' list")
        return cls(tuple(PlannedGroup.from_dict(g) for g in groups))

    def by_action(self, action: GroupAction) -> tuple[PlannedGroup, ...]:
        return tuple(g for g in self.groups if g.action == action)

    @property
    def changes(self) -> tuple[PlannedGroup, ...]:
        """Groups that need work (everything but ``unchanged``)."""
        return tuple(g for g in self.groups if g.action != GroupAction.UNCHANGED)

    def counts(self) -> dict[str, int]:
        counts = {str(a): 0 for a in GroupAction}
        for g in self.groups:
            counts[str(g.action)] += 1
        return counts


class RegisteredModel(Protocol):
    """What the planner needs of a registered model (:class:`shared.workspace.base.ModelRecord`).

    Read-only members, so a frozen dataclass satisfies it."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def tags(self) -> Mapping[str, str]: ...


# --------------------------------------------------------------------------- names


def service_name(prefix: str, group: str) -> str:
    """``{prefix}{group}`` as a valid Azure ML service name, the same on every call.

    Lower-cased (as the original does); anything else that had to change (characters outside
    ``a-z0-9-``, leading/trailing dashes, length) adds an 8-character hash of the exact name, so
    two different groups never share a service.
    """
    raw = f"{prefix}{group}"
    lowered = raw.lower()
    clean = _DASHES.sub("-", _INVALID_CHARS.sub("-", lowered)).strip("-")
    if clean and not clean[0].isalpha():
        clean = f"s-{clean}"
    if clean == lowered and SERVICE_NAME_MIN <= len(clean) <= SERVICE_NAME_MAX:
        return clean
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    # keep the subgroup index visible at the end: "...-<hash>-<n>"
    head, sep, index = clean.rpartition("-")
    suffix = f"-{digest}-{index}" if sep and index.isdigit() else f"-{digest}"
    base = head if sep and index.isdigit() else clean
    base = base[: SERVICE_NAME_MAX - len(suffix)].rstrip("-") or "s"
    return f"{base}{suffix}"


def subgroup_name(group: str, index: int) -> str:
    return f"{group}-{index}"


def group_of(tags: Mapping[str, str], splitting_tags: Sequence[str]) -> str | None:
    """The split group of a model, or None when it lacks a splitting tag."""
    if not splitting_tags:
        return DEFAULT_GROUP
    values = []
    for tag in splitting_tags:
        value = tags.get(tag)
        if value is None or str(value) == "":
            return None
        values.append(str(value))
    return "-".join(values)


def _natural(value: str) -> tuple[int, int, str]:
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def is_meta(tags: Mapping[str, str]) -> bool:
    return tags.get(MODEL_TYPE_TAG) == META_MODEL_TYPE


# --------------------------------------------------------------------------- planning


@dataclass(slots=True)
class _Deployed:
    service: str
    models: dict[str, int]  # name -> version


def _parse_deployed(deployed: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[int, _Deployed]]:
    """``deployed_models_info`` -> {split group: {index: subgroup}}."""
    groups: dict[str, dict[int, _Deployed]] = {}
    for name, info in deployed.items():
        if not isinstance(info, Mapping):
            raise InvalidValue(f"deployment state entry {name!r} is not an object: expected "
                               "{'version', 'group', 'webservice', 'endpoint'}")
        try:
            sub = str(info["group"])
            version = int(info["version"])
            service = str(info["webservice"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidValue(f"deployment state entry {name!r} is not valid ({e}): expected "
                               "{'version': int, 'group': '<group>-<n>', 'webservice', 'endpoint'}") from None
        base, sep, index = sub.rpartition("-")
        if not sep or not index.isdigit() or int(index) < 1:
            raise InvalidValue(f"deployment state entry {name!r} has group {sub!r}: expected '<group>-<n>' "
                               "with n a whole number from 1")
        entry = groups.setdefault(base, {}).setdefault(int(index), _Deployed(service, {}))
        entry.models[name] = version
    return groups


def _latest(models: Iterable[RegisteredModel]) -> dict[str, RegisteredModel]:
    latest: dict[str, RegisteredModel] = {}
    for m in models:
        if m.tags.get(MODEL_TYPE_TAG) == META_MODEL_TYPE:
            continue
        seen = latest.get(m.name)
        if seen is None or int(m.version) > int(seen.version):
            latest[m.name] = m
    return latest


def _sort_new(names: list[str], registered: Mapping[str, RegisteredModel], sorting_tags: Sequence[str]) -> list[str]:
    if not sorting_tags:
        return sorted(names)
    natural: dict[str, tuple[int, int, str]] = {}  # tag values repeat a lot: convert each once

    def key_of(value: Any) -> tuple[int, int, str]:
        text = "" if value is None else str(value)
        key = natural.get(text)
        if key is None:
            key = natural[text] = _natural(text)
        return key

    if len(sorting_tags) == 1:
        tag = sorting_tags[0]
        return sorted(names, key=lambda n: (key_of(registered[n].tags.get(tag)), n))
    return sorted(names, key=lambda n: (tuple(key_of(registered[n].tags.get(t)) for t in sorting_tags), n))


def _fill(existing: dict[int, list[str]], new_models: list[str], container_size: int) -> dict[int, list[str]]:
    """Existing subgroups first (in index order), then index gaps, then new indices."""
    result = {i: list(v) for i, v in existing.items()}
    if not new_models:
        return result
    order = sorted(result)
    top = max(order, default=0)
    gaps = [i for i in range(1, top) if i not in result]
    candidates = iter([*order, *gaps])
    pos = 0
    while pos < len(new_models):
        index = next(candidates, None)
        if index is None:
            top += 1
            index = top
        members = result.setdefault(index, [])
        room = container_size - len(members)
        if room > 0:
            members.extend(new_models[pos:pos + room])
            pos += room
    return {i: v for i, v in result.items() if v}


def plan_deployment(
    models: Iterable[RegisteredModel],
    deployed: Mapping[str, Mapping[str, Any]],
    *,
    container_size: int,
    prefix: str,
    splitting_tags: Sequence[str] = (),
    sorting_tags: Sequence[str] = (),
    reset: bool = False,
    update_all: bool = False,
) -> DeploymentPlan:
    """Plan which subgroups to deploy, update, keep and delete.

    Args:
        models: one version per model name, the one to serve (shared/flows/deploy.py picks the
            newest data's with shared/workspace/newest.py; given several, the highest version wins).
            ``_meta_`` models are ignored.
        deployed: the current ``deployed_models_info`` (``{model: {version, group, webservice, endpoint}}``).
        container_size: the most models one service serves (``MAX_CONTAINER_SIZE``).
        prefix: service-name prefix (``WEBSERVICE_PREFIX``, ``test-`` + it for ACI).
    Returns:
        The plan, groups in order: split group, then subgroup index; ``delete`` groups last.
    Raises:
        InvalidValue: container size below 1, a deployed subgroup bigger than ``container_size``
            without ``reset``, a malformed state, or two groups whose service names collide.
    """
    if container_size < 1:
        raise InvalidValue(f"container size {container_size} is not allowed: expected a whole number from 1")
    registered = _latest(models)
    deployed_groups = _parse_deployed(deployed)

    split: dict[str, list[str]] = {}
    skipped = []
    for name, m in registered.items():
        g = group_of(m.tags, splitting_tags)
        if g is None:
            skipped.append(name)
        else:
            split.setdefault(g, []).append(name)

    planned: dict[str, dict[int, list[str]]] = {}
    for g, names in split.items():
        current = {} if reset else deployed_groups.get(g, {})
        members = set(names)
        retained = {i: [n for n in sorted(sub.models) if n in members] for i, sub in current.items()}
        retained = {i: v for i, v in retained.items() if v}
        too_big = {i: len(v) for i, v in retained.items() if len(v) > container_size}
        if too_big:
            i, size = max(too_big.items(), key=lambda kv: kv[1])
            raise InvalidValue(
                f"container size {container_size} is smaller than deployed subgroup "
                f"{subgroup_name(g, i)!r}, which keeps {size} models: shrinking the container size needs "
                "a reset (manymodels deploy --reset, or RESET_DEPLOYMENT=true) that rebuilds every group")
        placed = {n for v in retained.values() for n in v}
        new_models = _sort_new([n for n in names if n not in placed], registered, sorting_tags)
        planned[g] = _fill(retained, new_models, container_size)

    deployed_by_sub = {subgroup_name(g, i): sub for g, subs in deployed_groups.items() for i, sub in subs.items()}
    groups: list[PlannedGroup] = []
    services: dict[str, str] = {}
    for g in sorted(planned, key=_natural):
        for i in sorted(planned[g]):
            sub = subgroup_name(g, i)
            service = service_name(prefix, sub)
            other = services.setdefault(service, sub)
            if other != sub:
                raise InvalidValue(f"groups {other!r} and {sub!r} would share the service name {service!r}: "
                                   "use splitting tag values that differ by more than letter case")
            chosen = tuple(PlannedModel(n, int(registered[n].version)) for n in planned[g][i])
            before = deployed_by_sub.get(sub)
            if before is None or before.service != service:
                action = GroupAction.NEW  # (a changed prefix also gives a new service; the old one is deleted)
            elif reset or update_all or before.models != {m.name: m.version for m in chosen}:
                action = GroupAction.UPDATE
            else:
                action = GroupAction.UNCHANGED
            groups.append(PlannedGroup(sub, service, action, chosen))

    kept = {(g.group, g.service) for g in groups}
    for sub in sorted(deployed_by_sub, key=_sub_key):
        old = deployed_by_sub[sub]
        if (sub, old.service) not in kept and old.service not in services:
            groups.append(PlannedGroup(sub, old.service, GroupAction.DELETE, ()))
    return DeploymentPlan(tuple(groups), tuple(sorted(skipped)))


def _sub_key(sub: str) -> tuple[tuple[int, int, str], int]:
    base, _, index = sub.rpartition("-")
    return (_natural(base), int(index))


def deployment_state(plan: DeploymentPlan, endpoints: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """The ``deployed_models_info`` after ``plan``: every model of every kept group, with its
    service's endpoint from ``endpoints`` (service name -> scoring URI). No keys."""
    state: dict[str, dict[str, Any]] = {}
    for g in plan.groups:
        if g.action == GroupAction.DELETE:
            continue
        endpoint = endpoints.get(g.service)
        for m in g.models:
            state[m.name] = {"version": m.version, "group": g.group, "webservice": g.service, "endpoint": endpoint}
    return state
