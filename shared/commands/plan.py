"""``manymodels plan``: preview a deployment plan, from files or from the workspace.

    manymodels plan --registered MODELS.json --deployed STATE.json --container-size 500 --json

MODELS.json is a list of ``{"name", "version", "tags"}``; STATE.json is a ``deployed_models_info``
(``{model: {"version", "group", "webservice", "endpoint"}}``). Without ``--registered`` the plan is
made from the workspace's registered models and the target's deployment state. A refused plan
(e.g. a smaller container size without ``--reset``) exits with status 1 and the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.commands.output import emit_json, info, table
from shared.errors import InvalidValue, ManyModelsError
from shared.flows import deploy as flow
from shared.grouping import DeploymentPlan, plan_deployment
from shared.settings import get_settings
from shared.workspace.base import ModelRecord


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="preview which model groups a deployment would create, update or delete")
    p.add_argument("--registered", type=Path, metavar="MODELS.json",
                   help='registered models: a JSON list of {"name", "version", "tags"} (default: the workspace)')
    p.add_argument("--deployed", type=Path, metavar="STATE.json",
                   help="current deployed_models_info (default: none with --registered, else the target's state)")
    p.add_argument("--target", choices=flow.TARGETS, default="local",
                   help="deployment target whose prefix and state to use (default: local)")
    p.add_argument("--container-size", type=int, help="most models per service (default: MAX_CONTAINER_SIZE)")
    p.add_argument("--splitting-tags", nargs="*", metavar="TAG", help="tags that split models into groups")
    p.add_argument("--sorting-tags", nargs="*", metavar="TAG", help="tags that order new models")
    p.add_argument("--prefix", help="service-name prefix (default: the target's, from WEBSERVICE_PREFIX)")
    p.add_argument("--reset", action="store_true", help="rebuild every group from scratch")
    p.add_argument("--update", action="store_true", help="update every group, changed or not")
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    p.set_defaults(func=_plan)


def _tags(values: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if values is None:
        return default
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise InvalidValue(f"cannot read {what} file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InvalidValue(f"{what} file {path} is not valid JSON: {e}") from None


def load_registered(path: Path) -> list[ModelRecord]:
    data = _read_json(path, "registered models")
    if not isinstance(data, list):
        raise InvalidValue(f'{path}: expected a JSON list of {{"name", "version", "tags"}}')
    records = []
    for i, item in enumerate(data):
        try:
            tags = item.get("tags") or {}
            if not isinstance(tags, dict):
                raise TypeError("tags must be an object")
            records.append(ModelRecord(str(item["name"]), int(item["version"]),
                                       {str(k): str(v) for k, v in tags.items()}, ""))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise InvalidValue(f'{path}: item {i} is not valid ({e}): expected {{"name": str, "version": int, '
                               '"tags": {...}}') from None
    return records


def load_state(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = _read_json(path, "deployment state")
    if not isinstance(data, dict):
        raise InvalidValue(f'{path}: expected a JSON object {{model: {{"version", "group", "webservice", '
                           '"endpoint"}}')
    return data


def _make_plan(args: argparse.Namespace) -> DeploymentPlan:
    settings = get_settings()
    settings = settings.replace(
        max_container_size=args.container_size or settings.max_container_size,
        splitting_tags=_tags(args.splitting_tags, settings.splitting_tags),
        sorting_tags=_tags(args.sorting_tags, settings.sorting_tags),
    )

    target = flow.deploy_target(settings, args.target)
    prefix = args.prefix if args.prefix is not None else target.prefix
    if args.registered is None:
        workspace = flow.open_workspace(settings)
        try:
            registered = flow.registered_models(workspace, settings, args.target)
            state = load_state(args.deployed) if args.deployed else flow.current_state(workspace, settings,
                                                                                      args.target)
        finally:
            workspace.close()
    else:
        registered, state = load_registered(args.registered), load_state(args.deployed)
    return plan_deployment(registered, state, container_size=settings.max_container_size, prefix=prefix,
                           splitting_tags=settings.splitting_tags, sorting_tags=settings.sorting_tags,
                           reset=args.reset, update_all=args.update)


def _plan(args: argparse.Namespace) -> int:
    try:
        plan = _make_plan(args)
    except ManyModelsError as e:
        if not args.json:
            raise
        info(f"manymodels: plan refused: {e.message}")
        emit_json({"error": e.message, "code": str(e.code)})
        return 1
    if plan.skipped:
        info(f"{len(plan.skipped)} models lack a splitting tag and are not deployed: "
             f"{', '.join(plan.skipped[:10])}{' ...' if len(plan.skipped) > 10 else ''}")
    if args.json:
        emit_json(plan.to_dict())
        return 0
    rows = [{"group": g.group, "service": g.service, "action": g.action, "models": len(g.models)}
            for g in plan.groups]
    print(table(rows, ["group", "service", "action", "models"]))
    counts = plan.counts()
    print(", ".join(f"{n} {a}" for a, n in counts.items()))
    return 0
