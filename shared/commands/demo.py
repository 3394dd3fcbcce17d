"""``manymodels demo [--series N] [--json] [--stop]``: the whole product on this machine (``make demo``).

From an empty state it starts the local stack (Azurite + the host running ``function_app.py``),
simulates N series, uploads the train batch with its manifest, and follows the event chain by
polling ``GET /api/status``: batch closed -> dataset version -> run -> models registered -> plan
-> groups deployed -> router ready. Then it asks the router for a few forecasts (a table), saves a
PNG of one series, uploads the inference batch and waits for the batch forecasts in the
predictions container. It ends with the time of each stage and leaves the stack running
(``manymodels down`` stops it) unless ``--stop``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

from shared.commands.events import line
from shared.commands.output import emit_json, info, table
from shared.data.schema import DatasetSchema
from shared.data.simulate import write_simulated
from shared.data.upload import upload_batch
from shared.devhost import process
from shared.devhost.arguments import add_host_arguments, host_argv
from shared.devhost.chain import ChainWatcher, HostClient, StageClock
from shared.devhost.forecasts import SeriesFiles, ask_router, plot_series, request_record, table_rows
from shared.devhost.hostconfig import load_local_settings
from shared.devhost.topics import read_events
from shared.errors import Conflict, InvalidValue
from shared.flows.outbox import LOCAL_TOPIC
from shared.paths import REPO_ROOT, file_stem
from shared.processes import LOOPBACK, port_open
from shared.settings import Settings, get_settings
from shared.storage.account import StorageAccount
from shared.storage.blobs import BlobStore
from shared.workspace.local.workspace import LocalWorkspace

DEFAULT_SERIES = 1000
SHOWN_SERIES = 5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole event chain locally: data -> training -> deployment -> forecasts")
    p.add_argument("--series", type=int, default=DEFAULT_SERIES, help=f"series to simulate (default {DEFAULT_SERIES})")
    p.add_argument("--json", action="store_true", help="print one JSON object last")
    p.add_argument("--stop", action="store_true", help="stop the whole stack at the end (default: leave it running)")
    p.add_argument("--reset", action="store_true",
                   help="delete this MANYMODELS_HOME's state first (the demo starts from an empty state)")
    p.add_argument("--port", type=int, default=7071, help="host port (default 7071; a free one if taken)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each stage")
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="where the plot goes (default demo-output/)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    if args.series < 1:
        raise InvalidValue(f"--series {args.series} is not allowed: expected a whole number >= 1")

    if load_local_settings(REPO_ROOT):  # the host will read it too: both must see the same settings
        get_settings.cache_clear()
    if "EVENTS_TOPIC_ENDPOINT" not in os.environ:  # the demo shows the product's events (shared/flows/outbox.py)
        os.environ["EVENTS_TOPIC_ENDPOINT"] = "local"
        get_settings.cache_clear()
    settings = get_settings()
    summary = run_demo(settings, series=args.series, port=args.port, reset=args.reset, timeout=args.timeout,
                       plot_dir=args.out)
    if args.stop:
        process.stop_host(settings.home)
        process.stop_stack_parts(settings)
        info("stack stopped (--stop)")
    else:
        info(f"the stack keeps running: host {summary['host']}; `manymodels status`, `manymodels keys`; "
             "stop it with `manymodels down`")
    if args.json:
        emit_json({k: summary[k] for k in ("series", "models", "groups", "router_ok", "model_types",
                                           "lowest_forecast", "forecast_rows", "stages", "events")})
    return 0 if summary["router_ok"] else 1


def run_demo(settings: Settings, *, series: int, port: int = 7071, reset: bool = False,
             timeout: float = 1800, plot_dir: Path | None = None) -> dict[str, Any]:
    clock = StageClock()
    _prepare_home(settings, reset=reset)
    state = _start_stack(settings, port=port)
    clock.mark("start")
    info(f"host running on {state.url} (pid {state.pid}); logs in {settings.home / 'logs' / 'host.log'}")

    out = settings.home / "demo"  # the simulated files (large): inside the home, removed by --reset
    result = write_simulated(out / "data", series=series, seed=0, overwrite=True)
    clock.mark("simulate")
    info(f"simulated {result.series} series into {out / 'data'}")

    batch = _upload(settings, out / "data" / "train", "train", series)
    clock.mark("upload train")
    watcher = ChainWatcher(HostClient.for_home(settings.home), poll=1.0, timeout=timeout,
                           progress=lambda m: info(f"  {m}"), clock=clock)
    trained = watcher.follow_training(batch, expected_models=series)
    info(f"router ready: {trained.router} ({trained.models} models in {trained.plan.get('groups')} groups)")
    model_types = trained.run.get("model_types") or {}
    info("model type chosen per series: " + (", ".join(f"{t} {n}" for t, n in sorted(
        model_types.items(), key=lambda item: (-item[1], item[0]))) or "not reported by the run"))

    schema = DatasetSchema.load()
    answers, files = _ask_router(trained.router, out / "data", schema)
    clock.mark("forecast requests")
    router_ok = bool(answers) and all(a.get("forecast", {}).get("values") and not a.get("error") for a in answers)
    lowest = min((v for a in answers for v in a.get("forecast", {}).get("values") or []), default=None)
    if lowest is not None:
        info(f"lowest forecast value through the router: {lowest:.1f} (sales are never forecast below zero)")
    plot = _plot(files, answers, schema, plot_dir or out)
    clock.mark("plot")

    inference = _upload(settings, out / "data" / "inference", "inference", series)
    clock.mark("upload inference")
    forecasted = watcher.follow_inference(inference)
    rows = _prediction_rows(settings, forecasted.predictions)
    clock.mark("predictions")
    info(f"batch forecasts: {rows} rows in {forecasted.predictions}")
    events = _events_arrived(settings)

    stages = {name.replace(" ", "_"): seconds for name, seconds in clock.stages.items()}
    info("\nstage times (seconds):\n" + table([{"stage": k, "seconds": f"{v:.1f}"} for k, v in stages.items()],
                                              ["stage", "seconds"]))
    info(f"total: {time.perf_counter() - clock.started:.1f}s; plot: {plot}")
    return {"series": series, "models": trained.models, "groups": int(trained.plan.get("groups") or 0),
            "router_ok": router_ok, "model_types": model_types, "lowest_forecast": lowest, "forecast_rows": rows,
            "stages": stages, "host": state.url, "events": events,
            "router": trained.router, "plot": str(plot) if plot else None}


def _prepare_home(settings: Settings, *, reset: bool) -> None:
    home = settings.home
    if reset:
        process.stop_host(home)
        process.stop_stack_parts(settings)
        if home.exists():
            shutil.rmtree(home)
        info(f"reset: {home} deleted")
    elif _has_data(settings):
        raise Conflict(f"{home} already holds datasets: the demo starts from an empty state. Run "
                       "`manymodels demo --reset` (`make demo DEMO_ARGS=--reset`; stops the stack and deletes "
                       "that folder) or set MANYMODELS_HOME to a new folder")
    home.mkdir(parents=True, exist_ok=True)


def _has_data(settings: Settings) -> bool:
    if not (settings.home / "workspace.db").exists():
        return False

    workspace = LocalWorkspace(settings)
    try:
        return bool(workspace.datasets.list())
    finally:
        workspace.close()


def _start_stack(settings: Settings, *, port: int) -> process.HostState:
    parser = argparse.ArgumentParser()
    add_host_arguments(parser)
    chosen = port if not port_open(LOOPBACK, port) else 0
    args = parser.parse_args(["--port", str(chosen)])
    info("starting the local stack (Azurite + host)...")
    return process.start_detached(settings, host_argv(args))


def _upload(settings: Settings, folder: Path, kind: str, series: int) -> str:
    done = [0]
    step = max(1, series // 10)

    def progress(n: int) -> None:
        done[0] += n
        if done[0] % step == 0:
            info(f"  uploading {kind}: {done[0]}/{series} files")

    result = upload_batch(settings, folder, kind=kind, progress=progress)
    info(f"uploaded {kind} batch {result.batch}: {len(result.files)} files + {result.manifest.rsplit('/', 1)[-1]}")
    return result.batch


def _ask_router(router: str, data: Path, schema: DatasetSchema) -> tuple[list[dict[str, Any]], list[SeriesFiles]]:
    names = sorted(p.name for p in (data / "train").glob("*.csv"))[:SHOWN_SERIES]
    files = [SeriesFiles(data / "train" / n, data / "inference" / n) for n in names]
    answers = ask_router(router, [request_record(f, schema) for f in files])
    info("\nforecasts through the router:\n" + table(table_rows(answers, schema),
                                                     ["series", "weeks", "from", "first values", "status"]))
    return answers, files


def _plot(files: list[SeriesFiles], answers: list[dict[str, Any]], schema: DatasetSchema, out: Path) -> Path | None:
    for f, answer in zip(files, answers, strict=False):
        if answer.get("forecast", {}).get("values"):
            ids = "_".join(str(answer["id"][c]) for c in schema.id_columns)
            path = plot_series(f, answer, schema, out / f"forecast_{file_stem(ids)}.png")  # ids are data
            info(f"plot saved: {path}")
            return path
    return None


def _events_arrived(settings: Settings, *, wait: float = 15.0) -> list[str]:
    """The product's events the local topic received (docs/events.md), printed one per line."""
    if settings.events_topic_endpoint != "local":
        info(f"product events: not published here (EVENTS_TOPIC_ENDPOINT={settings.events_topic_endpoint!r})")
        return []
    deadline = time.monotonic() + wait  # forecasts.ready is published right after the run's completion
    while True:
        events = [dict(e.event) for e in read_events(settings.home, LOCAL_TOPIC)]
        if any(e.get("type") == "manymodels.forecasts.ready" for e in events) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    info("\nproduct events that arrived (`manymodels events tail` follows them):\n"
         + ("\n".join(line(e) for e in events) or "  none yet (see `manymodels status`, section events)"))
    return [str(e.get("type")) for e in events]


def _prediction_rows(settings: Settings, predictions: str) -> int:
    container = settings.predictions_container
    name = predictions.split("/", 1)[1] if predictions.startswith(f"{container}/") else predictions
    text = BlobStore(StorageAccount(settings.storage_connection), container).download_bytes(name).decode()
    return max(0, len([row for row in text.splitlines() if row.strip()]) - 1)
