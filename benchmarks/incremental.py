"""Incremental update vs full run, through the local host and its event chain.

A full train batch of N series goes from upload to "router ready" (training every series, deploying
every group); then, side by side in the same stack, partial batches (``--mode partial``) of a few
changed series each retrain only those and redeploy only their groups. Prints per-run times, the
median partial time and the full/partial ratio; the last line is one JSON object.

    .venv/bin/python benchmarks/incremental.py --series 1000 --changed 5 --container-size 100 --repeat 3

Runs in a temporary MANYMODELS_HOME with its own Azurite on free ports, and stops everything it
started at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make the checkout importable

from shared.data.simulate import write_simulated
from shared.data.upload import upload_batch
from shared.devhost import process
from shared.devhost.chain import ChainWatcher, HostClient, StageClock
from shared.settings import Settings, get_settings
from shared.storage import azurite


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", type=int, default=1000)
    p.add_argument("--changed", type=int, default=5, help="series changed in each partial batch")
    p.add_argument("--container-size", type=int, default=100, help="MAX_CONTAINER_SIZE (models per group)")
    p.add_argument("--repeat", type=int, default=3, help="partial batches (the median is reported)")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="manymodels-incremental-"))
    store = azurite.start(home / "storage", ports=None, in_memory=True)
    os.environ.update({"MANYMODELS_HOME": str(home), "AzureWebJobsStorage": store.connection_string,
                       "MAX_CONTAINER_SIZE": str(args.container_size), "DATA_QUIET_SECONDS": "3600",
                       "TRAINING_MODE": "changed"})
    get_settings.cache_clear()
    settings = get_settings()
    try:
        result = run(settings, args)
    finally:
        process.stop_host(home)
        process.stop_stack_parts(settings, azurite_too=False)
        azurite.stop(home / "storage")
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))
    return 0


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    from shared.devhost.arguments import add_host_arguments, host_argv

    add_host_arguments(parser)
    process.start_detached(settings, host_argv(parser.parse_args(["--port", "0"])))
    data = settings.home / "data"
    write_simulated(data, series=args.series, seed=1)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    full_clock = StageClock()
    batch = upload_batch(settings, data / "train", kind="train").batch
    watcher = ChainWatcher(HostClient.for_home(settings.home), poll=0.5, timeout=args.timeout,
                           progress=lambda m: say(f"full: {m}"), clock=full_clock)
    full = watcher.follow_training(batch, expected_models=args.series)
    full_seconds = time.perf_counter() - full_clock.started
    say(f"full run: {full_seconds:.1f}s, {full.plan.get('groups')} groups")

    names = sorted(p.name for p in (data / "train").glob("*.csv"))
    rng = random.Random(7)
    partial_runs = []
    for i in range(args.repeat):
        changed = _changed_batch(data, rng.sample(names, args.changed), i)
        clock = StageClock()
        batch = upload_batch(settings, changed, kind="train", mode="partial").batch
        watcher = ChainWatcher(HostClient.for_home(settings.home), poll=0.5, timeout=args.timeout,
                               progress=lambda m, i=i: say(f"partial {i + 1}: {m}"), clock=clock)
        outcome = watcher.follow_training(batch, expected_models=args.series)
        seconds = time.perf_counter() - clock.started
        tasks = outcome.plan.get("tasks") or {}
        partial_runs.append({"seconds": round(seconds, 2), "trained": _trained(outcome.run),
                             "groups_redeployed": int(tasks.get("done", 0)), "groups_unchanged":
                             int(tasks.get("skipped", 0)), "stages": clock.stages})
        say(f"partial {i + 1}: {seconds:.1f}s, trained {partial_runs[-1]['trained']}, "
            f"redeployed {partial_runs[-1]['groups_redeployed']} group(s)")
    median = statistics.median(r["seconds"] for r in partial_runs)
    return {"benchmark": "incremental", "series": args.series, "changed": args.changed,
            "container_size": args.container_size, "groups": int(full.plan.get("groups") or 0),
            "full_seconds": round(full_seconds, 2), "full_stages": full_clock.stages,
            "partial_seconds_median": round(median, 2), "full_over_partial": round(full_seconds / median, 2),
            "partial_runs": partial_runs}


def _changed_batch(data: Path, names: list[str], index: int) -> Path:
    """A folder with new versions of ``names``: the target of the last week scaled, so the files differ."""
    folder = data.parent / f"changed-{index}"
    folder.mkdir()
    for name in names:
        lines = (data / "train" / name).read_text().splitlines()
        header = lines[0].split(",")
        target = header.index("Quantity")
        last = lines[-1].split(",")
        last[target] = str(int(float(last[target]) * 1.1) + 1)
        (folder / name).write_text("\n".join([*lines[:-1], ",".join(last)]) + "\n")
    return folder


def _trained(run: dict[str, Any]) -> int:
    counts = run.get("counts") or {}
    for key in ("series", "files", "files_done"):
        if key in counts:
            return int(counts[key])
    return -1


if __name__ == "__main__":
    sys.exit(main())
