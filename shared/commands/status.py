"""``manymodels status [--json]``: datasets, runs, models, services, batches, deployments, retention."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands.output import emit_json, table
from shared.devhost.grid_access import HomeEventGrid
from shared.flows.context import Context
from shared.flows.status import collect_status
from shared.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show datasets, runs, models, services, batches and deployments")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    settings = get_settings()
    ctx = Context(settings, local_event_grid=HomeEventGrid.of(settings) if settings.backend == "local" else None)
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
            lines += [table([{**r, "model_types": ", ".join(f"{k} {v}" for k, v in r.get("model_types", {}).items())}
                             for r in runs["recent"]],
                            ["run_id", "kind", "status", "dataset", "submitted", "failed_series", "warnings",
                             "model_types"])]
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
    events = report.get("events")  # the product's own events (shared/flows/outbox.py status)
    if events and not _error(events):
        pending = f", {events['pending']} pending" if "pending" in events else ""
        failing = f" (last error: {events['last_error']})" if events.get("last_error") else ""
        lines += [f"Product events: to {events['endpoint']}{pending}{failing}" if events["enabled"]
                  else f"Product events: off ({events['reason']})", ""]
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
    lines += _retention(report.get("retention"))
    return "\n".join(lines)


def _retention(section: Any) -> list[str]:
    """One line on the last retention pass (shared/flows/retention.py) and what it skipped."""
    if section is None:
        return []
    if _error(section):
        return ["", f"Retention: unavailable: {_error(section)}"]
    limits = section["limits"]
    versions = f"{limits['model_versions']} versions" if limits["model_versions"] else "all versions"
    runs = f"{limits['run_days']} days of runs" if limits["run_days"] else "all runs"
    keeps = f"keeps {limits['ledger_hours']} h of ledger history, {versions} per model, {runs}"
    last = section["last"]
    if not last:
        return ["", f"Retention ({keeps}): no pass yet"]
    lines = ["", f"Retention ({keeps}): last pass {last.get('at')} removed {last.get('event_ids', 0)} event ids, "
                 f"{last.get('batch_file_rows', 0)} batch file rows, {last.get('plans', 0)} plans, "
                 f"{last.get('run_records', 0)} ledger run rows, {last.get('model_versions', 0)} model "
                 f"versions, {last.get('runs', 0)} runs; kept {last.get('kept_deployed', 0)} deployed and "
                 f"{last.get('kept_planned', 0)} planned old versions, {last.get('kept_in_progress', 0)} "
                 "unfinished runs"]
    lines += [f"  {part} skipped: {why}" for part, why in sorted((last.get("skipped") or {}).items())]
    return lines


def _block(title: str, rows: Any, columns: list[str]) -> list[str]:
    if _error(rows):
        return [title, f"  unavailable: {_error(rows)}", ""]
    if not rows:
        return [f"{title}: none", ""]
    return [title, table(rows, columns), ""]
