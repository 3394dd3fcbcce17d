"""``manymodels deploy``: deploy the registered models in groups behind the router, synchronously.

    manymodels deploy [--target local|aci|aks] [--reset] [--update] [--dry-run] [--json]
    manymodels deploy --target local --delete-all

Without ``--target`` every enabled target is deployed (``DEPLOY_LOCAL`` with the local backend,
``DEPLOY_ACI``, ``DEPLOY_AKS``). The Function App does the same through its queue
(``POST /api/deploy``); this command is for people and scripts.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands.output import emit_json, info, table
from shared.errors import InvalidValue
from shared.flows import deploy as flow
from shared.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy registered models in groups behind the routing webservice")
    p.add_argument("--target", choices=flow.TARGETS,
                   help="one target (default: every enabled one: DEPLOY_LOCAL, DEPLOY_ACI, DEPLOY_MANAGED, DEPLOY_AKS)")
    p.add_argument("--reset", action="store_true", help="rebuild every group from scratch (RESET_DEPLOYMENT)")
    p.add_argument("--update", action="store_true", help="update every group, changed or not (UPDATE_DEPLOYMENT)")
    p.add_argument("--dry-run", action="store_true", help="only show the plan")
    p.add_argument("--delete-all", action="store_true",
                   help="delete the router and every model-group service of the target (local only)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_deploy)


def _targets(args: argparse.Namespace) -> tuple[str, ...]:
    if args.target:
        return (args.target,)
    targets = get_settings().enabled_targets
    if not targets:
        raise InvalidValue("no deployment target is enabled: set DEPLOY_LOCAL=true (local backend), "
                           "DEPLOY_ACI=true, DEPLOY_MANAGED=true or DEPLOY_AKS=true, or pass --target")
    return targets


def _deploy(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.delete_all:
        if args.target != "local":
            raise InvalidValue("--delete-all needs --target local (delete Azure services with the Azure ML tools)")
        workspace = flow.open_workspace(settings)
        try:
            count = flow.delete_all(workspace, settings, "local", progress=None if args.json else info)
        finally:
            workspace.close()
        if args.json:
            emit_json({"target": "local", "deleted": count})
        else:
            print(f"deleted {count} local services")
        return 0
    results: list[dict[str, Any]] = []
    workspace = flow.open_workspace(settings)
    try:
        for target in _targets(args):
            result = flow.deploy(workspace, settings, target, reset=args.reset, update=args.update,
                                 dry_run=args.dry_run, progress=info)
            results.append(result.to_dict())
    finally:
        workspace.close()
    failed = any(r["errors"] for r in results)
    if args.json:
        emit_json({"endpoint": results[0]["endpoint"] if results else None, "targets": results})
        return 1 if failed else 0
    for r in results:
        rows = [{"group": g["group"], "service": g["service"], "action": g["action"], "models": len(g["models"])}
                for g in r["groups"]]
        print(table(rows, ["group", "service", "action", "models"]))
        counts = ", ".join(f"{n} {a}" for a, n in r["counts"].items())
        if r["dry_run"]:
            print(f"{r['target']}: plan only ({counts})")
        else:
            print(f"{r['target']}: {counts}; router {r['router'] or '-'} at {r['endpoint'] or '-'} "
                  f"(state version {r['state_version']}, {r['seconds']:.1f}s)")
        for error in r["errors"]:
            print(f"  failed: {error}")
    return 1 if failed else 0
