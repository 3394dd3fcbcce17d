"""How long `manymodels data upload` takes for N simulated series against a private Azurite.

    .venv/bin/python benchmarks/data_upload.py --series 2000 [--workers 8] [--compare]

``--compare`` also uploads the same files with one request per file (``upload_blob`` only, no
``get_blob_properties`` afterwards), measured side by side, to show what the second request costs.
Prints progress, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.data.simulate import write_simulated
from shared.data.upload import upload_batch
from shared.settings import Settings
from shared.storage import azurite
from shared.storage.account import StorageAccount


def _one_request_each(settings: Settings, folder: Path, workers: int) -> float:
    container = StorageAccount(settings.storage_connection).blob_service().get_container_client(
        settings.landing_container)
    paths = sorted(folder.iterdir())
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda p: container.upload_blob(f"train/raw/{p.name}", p.read_bytes(), overwrite=True), paths))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mm-upload-bench-"))
    proc = azurite.start(work / "home", ports=None, in_memory=True)
    try:
        write_simulated(work / "data", series=args.series, seed=0)
        env = {**os.environ, "MANYMODELS_HOME": str(work / "home"), "AzureWebJobsStorage": proc.connection_string,
               "LANDING_CONTAINER": "landingbench"}
        settings = Settings.from_env(env)
        started = time.perf_counter()
        result = upload_batch(settings, work / "data" / "train", kind="train", batch="bench", validate=False,
                              max_workers=args.workers)
        seconds = time.perf_counter() - started
        print(f"uploaded {len(result.files)} files + manifest in {seconds:.1f}s", file=sys.stderr)
        summary = {"benchmark": "data_upload", "series": args.series, "files": len(result.files),
                   "workers": args.workers, "cpus": os.cpu_count(), "upload_batch_seconds": round(seconds, 2),
                   "files_per_second": round(len(result.files) / seconds)}
        if args.compare:
            raw = _one_request_each(settings, work / "data" / "train", args.workers)
            summary.update(one_request_per_file_seconds=round(raw, 2), ratio=round(seconds / raw, 2))
        print(json.dumps(summary))
    finally:
        azurite.stop(work / "home")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
