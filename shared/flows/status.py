"""What the product is doing: ``GET /api/status`` and ``manymodels status``.

Every section is collected on its own: one that cannot be read (storage down, a workspace store
not built) says why in ``{"error": ...}`` and the others still answer. Nothing secret is ever
included (no keys, no connection strings).
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from shared.errors import Unavailable
from shared.flows import deploy, outbox
from shared.flows.context import Context
from shared.ledger import records_as_dict

log = logging.getLogger(__name__)

RECENT = 10
META_MODEL_TYPE = "_meta_"


def health(ctx: Context) -> dict[str, Any]:
    """Cheap liveness: settings load and the app answers (no storage or workspace calls)."""
    return {"status": "ok", "backend": ctx.settings.backend, "targets": list(ctx.settings.enabled_targets)}


def collect_status(ctx: Context, *, storage: bool = True) -> dict[str, Any]:
    """Datasets, runs (counts, recent, failures), models, services, router endpoints, and, when
    storage is reachable, batches, deployments and the last retention pass from the ledger."""
    settings = ctx.settings
    out: dict[str, Any] = {"backend": settings.backend, "targets": list(settings.enabled_targets)}
    out["workspace"] = _section(lambda: ctx.workspace.name)
    out["datasets"] = _section(lambda: _datasets(ctx))
    out["runs"] = _section(lambda: _runs(ctx))
    out["models"] = _section(lambda: _models(ctx))
    out["services"] = _section(lambda: _services(ctx))
    out["routers"] = _section(lambda: _routers(ctx))
    if settings.backend == "local":
        out["event_grid"] = _section(lambda: _local_event_grid(ctx))
    reachable, why = storage_reachable(ctx) if storage else (False, "not asked")
    out["storage"] = {"reachable": reachable, **({} if reachable else {"reason": why})}
    if reachable:
        out["batches"] = _section(lambda: _batches(ctx))
        out["deployments"] = _section(lambda: _deployments(ctx))
        out["retention"] = _section(lambda: _retention(ctx))
    out["events"] = _section(lambda: outbox.status(ctx, ledger=reachable))  # the product's own events
    return out


def _retention(ctx: Context) -> dict[str, Any]:
    """What the last retention pass removed and when (shared/flows/retention.py), and the limits."""
    s = ctx.settings
    limits = {"ledger_hours": s.retention_ledger_hours, "model_versions": s.retention_model_versions,
              "run_days": s.retention_run_days}
    return {"last": ctx.ledger.retention.last(), "limits": limits}


def _local_event_grid(ctx: Context) -> dict[str, Any]:
    """Pending deliveries and dead letters of the local host (on Azure they are in `deadletter`)."""
    grid = ctx.local_event_grid
    if grid is None:
        raise Unavailable("this process was given no local Event Grid (shared/flows/context.py): ask the local "
                          "host (`GET /api/status`) or `manymodels status`")
    return grid.summary()


def _section(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as e:  # one unreadable part must not hide the others
        message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        log.warning("status: %s", message)
        return {"error": message}


def _datasets(ctx: Context) -> list[dict[str, Any]]:
    latest: dict[str, Any] = {}
    versions: Counter[str] = Counter()
    for ds in ctx.workspace.datasets.list():
        versions[ds.name] += 1
        if ds.name not in latest or ds.version > latest[ds.name].version:
            latest[ds.name] = ds
    return [{"name": n, "latest_version": d.version, "versions": versions[n], "files": len(d.files),
             "changed": len(d.changed), "mode": str(d.mode), "created": d.created} for n, d in sorted(latest.items())]


def _runs(ctx: Context) -> dict[str, Any]:
    runs = ctx.workspace.runs.list()
    counts = Counter(str(r.status) for r in runs)
    failures = [{"run_id": r.run_id, "file": f.file, "series": f.series, "reason": f.reason}
                for r in runs for f in r.failures]
    return {
        "counts": dict(counts),
        "recent": [{"run_id": r.run_id, "kind": str(r.kind), "status": str(r.status),
                    "dataset": f"{r.dataset_name}:{r.dataset_version}", "submitted": r.submitted,
                    "ended": r.ended, "counts": dict(r.counts), "failed_series": len(r.failures),
                    "warnings": int(r.counts.get("warnings", 0)), "model_types": _model_types(r.counts),
                    "error": r.error, **({"predictions": r.outputs["predictions"]}
                                         if "predictions" in r.outputs else {}),
                    **({"training_method": r.outputs["training_method"]}
                       if "training_method" in r.outputs else {})}
                   for r in runs[:RECENT]],
        "failures": {"total": len(failures), "first": failures[:RECENT]},
    }


def _model_types(counts: Mapping[str, Any]) -> dict[str, int]:
    """Series trained per model type (``model_type_<type>`` counts of scoring/train.py's rows)."""
    return {k.removeprefix("model_type_"): int(v) for k, v in counts.items() if k.startswith("model_type_")}


def _models(ctx: Context) -> dict[str, Any]:
    models = [m for m in ctx.workspace.models.list(latest=True) if m.tags.get("ModelType") != META_MODEL_TYPE]
    by_type = Counter(m.tags.get("ModelType", "?") for m in models)
    return {"count": len(models), "by_type": dict(by_type)}


def _services(ctx: Context) -> list[dict[str, Any]]:
    return [{"name": s.name, "kind": str(s.kind), "state": str(s.state), "scoring_uri": s.scoring_uri,
             "models": len(s.models), "updated": s.updated, **({"error": s.error} if s.error else {})}
            for s in ctx.workspace.services.list()]


def _routers(ctx: Context) -> dict[str, str | None]:
    return {t: deploy.router_endpoint(ctx.workspace, ctx.settings, t) for t in ctx.settings.enabled_targets}


def _batches(ctx: Context) -> list[dict[str, Any]]:
    out = []
    for batch in ctx.ledger.batches.all()[:RECENT * 2]:
        row = records_as_dict(batch)
        row.pop("token", None)
        out.append(row)
    return out


def _deployments(ctx: Context) -> dict[str, Any]:
    plans = []
    for plan in ctx.ledger.plans.all()[:RECENT]:
        tasks = ctx.ledger.plans.tasks(plan.plan_id)
        row = records_as_dict(plan)
        row["tasks"] = dict(Counter(str(t.state) for t in tasks))
        row["failed_groups"] = [{"group": t.group, "service": t.service, "error": t.error}
                                for t in tasks if t.state == "failed"]
        plans.append(row)
    targets = [records_as_dict(t) for t in ctx.ledger.targets.all()]
    return {"targets": targets, "plans": plans}


def storage_reachable(ctx: Context, *, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether the ledger's table storage answers (a quick TCP probe for local endpoints first, so a
    stopped Azurite is reported at once instead of after the SDK's retries)."""
    try:
        endpoint = ctx.storage.table_service().url
    except Exception as e:
        return False, getattr(e, "message", str(e))
    parsed = urlparse(endpoint)
    if parsed.hostname in ("127.0.0.1", "localhost") and parsed.port:
        try:
            with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout):
                pass
        except OSError:
            return False, (f"table storage at {parsed.hostname}:{parsed.port} is not answering; start it with "
                           "`manymodels storage start`")
    try:
        ctx.ledger.ensure()
    except Exception as e:
        return False, getattr(e, "message", None) or f"{type(e).__name__}: {e}"
    return True, ""
