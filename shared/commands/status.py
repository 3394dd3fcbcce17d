"""``manymodels status [--json]``: datasets, runs, models, services, batches and deployments."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands.output import emit_json, table
from shared.flows.context import Context
from shared.flows.status import collect_status
from shared.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show datasets, runs, models, services, batches and deployments")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    ctx = Context(get_settings())
    try:
        report = collect_status(ctx)
    finally:
        ctx.close()
    if args.json:
        emit_json(report)
    else:
        print(render(report))
    return 0


def _error(section: Any) -> str | None:
    return section.get("error") if isinstance(section, dict) and "error" in section else None


def render(report: dict[str, Any]) -> str:
    """The status report as text for people."""
    lines = [f"backend {report['backend']} ({report.get('workspace')}), deployment targets: "
             f"{', '.join(report['targets']) or 'none'}", ""]
    lines += _block("Datasets", report["datasets"], ["name", "latest_version", "versions", "files", "changed",
                                                     "mode", "created"])
    runs = report["runs"]
    if _error(runs):
        lines += ["Runs", f"  unavailable: {_error(runs)}", ""]
    else:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(runs["counts"].items())) or "none"
        lines += [f"Runs: {counts}"]
        if runs["recent"]:
            lines += [table(runs["recent"], ["run_id", "kind", "status", "dataset", "submitted", "failed_series"])]
        if runs["failures"]["total"]:
            lines += [f"{runs['failures']['total']} series failed; first ones:",
                      table(runs["failures"]["first"], ["run_id", "file", "series", "reason"])]
        lines.append("")
    models = report["models"]
    if _error(models):
        lines += [f"Models: unavailable: {_error(models)}", ""]
    else:
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(models["by_type"].items()))
        lines += [f"Models: {models['count']}" + (f" ({kinds})" if kinds else ""), ""]
    lines += _block("Services", report["services"], ["name", "kind", "state", "models", "scoring_uri"])
    routers = report["routers"]
    if not _error(routers):
        for target, endpoint in routers.items():
            lines.append(f"Router ({target}): {endpoint or 'not deployed'}")
        lines.append("")
    grid = report.get("event_grid")
    if grid and not _error(grid):
        lines.append(f"Event Grid (local): {grid['pending']} deliveries pending, {grid['deadlettered']} dead-lettered")
        if grid["recent_deadletters"]:
            lines += [table(grid["recent_deadletters"], ["subscription", "eventType", "subject", "reason", "attempts"])]
        lines.append("")
    if not report["storage"]["reachable"]:
        lines.append(f"Batches and deployments: storage not reachable ({report['storage'].get('reason')})")
        return "\n".join(lines)
    lines += _block("Batches", report["batches"], ["kind", "batch", "state", "file_count", "dataset_version",
                                                   "run_id", "reason"])
    deployments = report["deployments"]
    if _error(deployments):
        lines.append(f"Deployments: unavailable: {_error(deployments)}")
    else:
        plans = [{**p, "tasks": ", ".join(f"{n} {s}" for s, n in p["tasks"].items())} for p in deployments["plans"]]
        lines += _block("Deployments", plans, ["plan_id", "target", "state", "groups", "to_execute", "tasks",
                                               "reason"])
    return "\n".join(lines)


def _block(title: str, rows: Any, columns: list[str]) -> list[str]:
    if _error(rows):
        return [title, f"  unavailable: {_error(rows)}", ""]
    if not rows:
        return [f"{title}: none", ""]
    return [title, table(rows, columns), ""]
