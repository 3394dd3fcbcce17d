"""Forecasting pipeline step 2: the predictions CSV, from ParallelRunStep's append_row output.

ParallelRunStep appends every row ``forecast.py``'s ``run()`` returns to one space-separated
file without a header: ``<timestamp> Prediction [<target>] <id columns...> file status reason``
(the target only when the input had it). This step keeps the ``ok`` rows, writes them as
``forecasts_<YYYYMMDD>_<runid>.csv`` with a header into the predictions output (uploaded to the
predictions container), and records the output and counts on the pipeline run.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

TRAILER = ("file", "status", "reason")


def read_rows(path: Path, *, timestamp: str, target: str, ids: list[str]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the append_row file; rows may or may not carry the target column."""
    without_target = [timestamp, "Prediction", *ids, *TRAILER]
    with_target = [timestamp, "Prediction", target, *ids, *TRAILER]
    rows: list[list[str]] = []
    has_target = False
    with path.open(newline="") as f:
        for fields in csv.reader(f, delimiter=" ", quotechar='"'):
            if not fields:
                continue
            if len(fields) == len(with_target):
                has_target = True
            elif len(fields) != len(without_target):
                print(f"skipping a row with {len(fields)} fields: {fields[:4]}...", file=sys.stderr)
                continue
            rows.append(fields)
    header = with_target if has_target else without_target
    if has_target:  # rows without the target get an empty one, so every row lines up
        rows = [r if len(r) == len(with_target) else [*r[:2], "", *r[2:]] for r in rows]
    return header, rows


def split(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]], list[dict]]:
    """(output header, ok rows without the trailer, failed rows as dicts)."""
    status = header.index("status")
    keep = header[: -len(TRAILER)]
    ok = [r[: len(keep)] for r in rows if r[status] == "ok"]
    failed = [dict(zip(header, r, strict=True)) for r in rows if r[status] != "ok"]
    return keep, ok, failed


def output_name(run_id: str, now: datetime | None = None) -> str:
    return f"forecasts_{(now or datetime.now(UTC)).strftime('%Y%m%d')}_{run_id}.csv"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--forecasting-output", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    parser.add_argument("--settings-file", required=True)
    parser.add_argument("--append-row-file-name", default="parallel_run_step.txt")
    parser.add_argument("--predictions-container", default="predictions")
    args, _ = parser.parse_known_args(argv)

    settings_path = Path(args.settings_file)
    if not settings_path.is_absolute() and not settings_path.exists():
        settings_path = Path(__file__).resolve().parent / settings_path
    schema = json.loads(settings_path.read_text())
    header, rows = read_rows(args.forecasting_output / args.append_row_file_name,
                             timestamp=schema["timestamp_column"], target=schema["target_column"],
                             ids=list(schema["id_columns"]))
    keep, ok, failed = split(header, rows)

    from azureml.core import Run  # only on Azure ML compute

    run = Run.get_context()
    pipeline_run = run.parent or run
    name = output_name(pipeline_run.id)
    write_csv(args.predictions / name, keep, ok)
    for row in failed[:100]:
        print(f"forecast failed for {row.get('file')}: {row.get('reason')}", file=sys.stderr)
    pipeline_run.add_properties({"predictions": f"{args.predictions_container}/{name}", "rows": str(len(ok)),
                                 "failed": str(len(failed))})
    print(json.dumps({"predictions": name, "rows": len(ok), "failed": len(failed)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
