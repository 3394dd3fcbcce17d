"""Local workspace registry at the accelerator's scale: an 11,973-file dataset version and 100,000 models.

Measures, in one run on a fresh workspace:

- ``datasets.register`` of one version of ``--files`` files (new, replayed, and a partial batch
  replacing 1% of the files on top), ``datasets.get`` and ``datasets.list`` (every version);
- ``models.register_many`` of one training run's models (``--series`` models, artifacts copied),
  repeated until ``--models`` model records exist (so each series has several versions);
- ``models.list(latest=True)``, ``models.list(tags={"Brand": "dominicks"})`` and ``models.get(name)``,
  with the tag query compared side by side to a Python scan of every record (what the index avoids).

Every timing is the median of ``--repeat`` runs. The last line printed is one JSON object::

    .venv/bin/python benchmarks/workspace_registry.py [--files 11973] [--models 100000] [--series 11973]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.settings import Settings
from shared.workspace.base import DatasetFile, DatasetMode, NewModel
from shared.workspace.local.workspace import LocalWorkspace

BRANDS = ("dominicks", "minute.maid", "tropicana")


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def series(n: int) -> list[tuple[int, str]]:
    """(store, brand) of the first ``n`` series, stores from 1000 like the OJ sample."""
    return [(1000 + i // len(BRANDS), BRANDS[i % len(BRANDS)]) for i in range(n)]


def dataset_files(n: int, *, batch: str, changed: int = 0) -> list[DatasetFile]:
    files = []
    for i, (store, brand) in enumerate(series(n)):
        name = f"Store{store}_{brand}.csv"
        content = f"{batch}-{i}" if i < changed else f"v1-{i}"
        files.append(DatasetFile(name=name, path=f"train/{batch}/{name}", etag=f"0x{i:016X}", size=4000 + i,
                                 md5=content))
    return files


def bench_datasets(ws: LocalWorkspace, n: int, repeat: int) -> dict[str, Any]:
    counter = iter(range(10**6))
    full = dataset_files(n, batch="b1")
    register_s, _ = median_time(lambda: ws.datasets.register(f"train{next(counter)}", full,
                                                             datastore="azureblob://landing"), repeat)
    ws.datasets.register("train", full, datastore="azureblob://landing")
    replay_s, replayed = median_time(lambda: ws.datasets.register("train", full, datastore="azureblob://landing"),
                                     repeat)
    partial = dataset_files(max(1, n // 100), batch="b2", changed=n)
    partial_s, _ = median_time(lambda: ws.datasets.register("train", partial, datastore="azureblob://landing",
                                                            mode=DatasetMode.PARTIAL), 1)
    get_s, got = median_time(lambda: ws.datasets.get("train"), repeat)
    list_s, listed = median_time(ws.datasets.list, repeat)  # what status reads: every version, every file
    return {
        "files": n,
        "dataset_register_s": round(register_s, 4),
        "dataset_replay_s": round(replay_s, 4),
        "dataset_replay_version": replayed.version,
        "dataset_partial_files": len(partial),
        "dataset_partial_s": round(partial_s, 4),
        "dataset_partial_changed": len(got.changed),
        "dataset_get_s": round(get_s, 4),
        "dataset_list_s": round(list_s, 4),
        "dataset_list_versions": len(listed),
        "dataset_list_files": sum(len(v.files) for v in listed),
    }


def make_artifacts(root: Path, n: int) -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for store, brand in series(n):
        name = f"lr_{brand}_{store}"
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(json.dumps({"name": name, "coef": [0.1] * 12}))
        tags = {"ModelType": "lr", "Store": str(store), "Brand": brand, "StoreGroup10": str(store // 10)}
        out.append((name, str(folder), tags))
    return out


def bench_models(ws: LocalWorkspace, artifacts_root: Path, total: int, n_series: int, repeat: int) -> dict[str, Any]:
    artifacts = make_artifacts(artifacts_root, n_series)
    batch_times = []
    registered = 0
    while registered < total:
        take = artifacts[: min(n_series, total - registered)]
        batch = [NewModel(name, path, tags={**tags, "RunId": f"run-{registered}"}, properties={"mse": "1.0"})
                 for name, path, tags in take]
        start = time.perf_counter()
        ws.models.register_many(batch)
        batch_times.append(time.perf_counter() - start)
        registered += len(batch)
    latest_s, latest = median_time(lambda: ws.models.list(latest=True), repeat)
    tag_s, tagged = median_time(lambda: ws.models.list(tags={"Brand": "dominicks"}), repeat)
    all_s, everything = median_time(lambda: ws.models.list(latest=False), repeat)

    def scan() -> list:  # the same answer without the index: every record loaded and filtered in Python
        rows = ws.models.list(latest=False)
        best: dict[str, Any] = {}
        for r in rows:
            if r.name not in best or r.version > best[r.name].version:
                best[r.name] = r
        return sorted((r for r in best.values() if r.tags.get("Brand") == "dominicks"), key=lambda r: r.name)

    scan_s, scanned = median_time(scan, repeat)
    assert [(r.name, r.version) for r in scanned] == [(r.name, r.version) for r in tagged]
    name = artifacts[len(artifacts) // 2][0]
    get_s, record = median_time(lambda: ws.models.get(name), max(repeat, 20))
    return {
        "models": registered,
        "series": n_series,
        "model_register_batches": len(batch_times),
        "model_register_batch_median_s": round(statistics.median(batch_times), 3),
        "model_register_total_s": round(sum(batch_times), 3),
        "list_latest_s": round(latest_s, 4),
        "list_latest_count": len(latest),
        "list_tag_s": round(tag_s, 4),
        "list_tag_count": len(tagged),
        "list_tag_python_scan_s": round(scan_s, 4),
        "tag_query_speedup_vs_scan": round(scan_s / tag_s, 1) if tag_s else None,
        "list_all_s": round(all_s, 4),
        "list_all_count": len(everything),
        "get_s": round(get_s, 6),
        "get_version": record.version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=11973, help="files in the dataset version")
    parser.add_argument("--models", type=int, default=100_000, help="model records to register in total")
    parser.add_argument("--series", type=int, default=11973, help="models per training run (distinct names)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per timing (median reported)")
    parser.add_argument("--home", type=Path, default=None, help="workspace dir (default: a temporary one)")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="mm-bench-registry-"))
    home = args.home or scratch / "home"
    ws = LocalWorkspace(Settings.from_env({"MANYMODELS_HOME": str(home)}))
    try:
        result: dict[str, Any] = {"benchmark": "workspace_registry", "repeat": args.repeat}
        print(f"registering a dataset version of {args.files} files ...", file=sys.stderr)
        result.update(bench_datasets(ws, args.files, args.repeat))
        print(f"registering {args.models} models in runs of {args.series} ...", file=sys.stderr)
        result.update(bench_models(ws, scratch / "artifacts", args.models, args.series, args.repeat))
        result["db_mb"] = round((home / "workspace.db").stat().st_size / 1e6, 1)
    finally:
        ws.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
