"""How long `manymodels data simulate` (and optionally `data validate`) takes for N series.

    .venv/bin/python benchmarks/simulate_data.py --series 11973 [--repeat 3] [--validate]

Prints progress, then one JSON object as the last line (medians over --repeat runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.data.schema import DatasetSchema
from shared.data.simulate import write_simulated
from shared.data.validate import validate_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=11973)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--series-per-file", type=int, default=1)
    parser.add_argument("--validate", action="store_true", help="also time `data validate` on the output")
    args = parser.parse_args()

    simulate_s, validate_s, files = [], [], 0
    for run in range(args.repeat):
        out = Path(tempfile.mkdtemp(prefix="mm-simulate-"))
        try:
            started = time.perf_counter()
            result = write_simulated(out, series=args.series, seed=run, series_per_file=args.series_per_file)
            simulate_s.append(time.perf_counter() - started)
            files = len(os.listdir(out / "train")) + len(os.listdir(out / "inference"))
            print(f"run {run}: simulated {result.series} series, {files} files in {simulate_s[-1]:.2f}s",
                  file=sys.stderr)
            if args.validate:
                started = time.perf_counter()
                report = validate_folder(out, DatasetSchema.load())
                validate_s.append(time.perf_counter() - started)
                print(f"run {run}: validated {report.files} files ({len(report.errors)} errors) "
                      f"in {validate_s[-1]:.2f}s", file=sys.stderr)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    summary = {"benchmark": "simulate_data", "series": args.series, "series_per_file": args.series_per_file,
               "files": files, "repeat": args.repeat, "cpus": os.cpu_count(),
               "simulate_seconds_median": round(statistics.median(simulate_s), 3),
               "files_per_second": round(files / statistics.median(simulate_s))}
    if validate_s:
        summary["validate_seconds_median"] = round(statistics.median(validate_s), 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
