"""``manymodels data simulate|validate|upload``: sample data, checks, and landing batches."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from shared.commands.output import emit_json, info
from shared.data.schema import DatasetSchema
from shared.data.simulate import write_simulated
from shared.data.tables import list_data_files, list_files
from shared.data.upload import upload_batch
from shared.data.validate import validate_folder
from shared.settings import get_settings

_SHOWN_FINDINGS = 50  # human output lists this many findings, then counts the rest


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="simulate, validate or upload sales data")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    s = actions.add_parser("simulate", help="write OJ-sales-shaped sample data (train/ and inference/)")
    s.add_argument("--series", type=int, required=True, help="number of series (stores x 3 brands)")
    s.add_argument("--out", required=True, help="output folder; files go to OUT/train and OUT/inference")
    s.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    s.add_argument("--series-per-file", type=int, default=1, metavar="K",
                   help="series per file (default 1: one Store{store}_{brand}.csv per series)")
    s.add_argument("--force", action="store_true", help="replace data files already in OUT/train, OUT/inference")
    s.add_argument("--json", action="store_true", help="print one JSON object last")
    s.set_defaults(func=_simulate)

    v = actions.add_parser("validate", help="check every data file against the dataset schema")
    v.add_argument("folder", metavar="DIR", help="folder of data files (recursive) or one file")
    v.add_argument("--settings", help="dataset schema file (default pipelines/configuration/script_settings.json)")
    v.add_argument("--kind", choices=("train", "inference"),
                   help="check as training or inference data (default: guessed per file: files under an "
                        "inference/ folder or named *_test/*_inference are inference data)")
    v.add_argument("--json", action="store_true", help="print one JSON object last")
    v.set_defaults(func=_validate)

    u = actions.add_parser("upload", help="upload a folder as one landing batch (manifest written last)")
    u.add_argument("folder", metavar="DIR", help="folder of CSV/Parquet files (sub-folders keep their paths)")
    u.add_argument("--kind", choices=("train", "inference"), required=True,
                   help="lands in <LANDING_CONTAINER>/<kind>/<batch>/")
    u.add_argument("--batch", help="batch id (default: UTC time + random suffix like 20261127T102300Z-3f9a1c)")
    u.add_argument("--mode", choices=("full", "partial"), default="full",
                   help="full: the files are the whole dataset; partial: they replace files of the same name")
    u.add_argument("--settings", help="dataset schema file used to validate")
    u.add_argument("--skip-validation", action="store_true", help="upload even files with errors")
    u.add_argument("--json", action="store_true", help="print one JSON object last")
    u.set_defaults(func=_upload)


class _Progress:
    """A file counter on stderr (stdout stays for results): one updating line on a terminal, a
    line every few seconds in a log."""

    def __init__(self, verb: str, total: int) -> None:
        self.verb, self.total, self.done = verb, total, 0
        self._tty = sys.stderr.isatty()
        self._every = 0.5 if self._tty else 5.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            finished = self.done >= self.total
            if now - self._last < self._every and not finished:
                return
            self._last = now
            text = f"{self.verb} {self.done}/{self.total} files"
            if self._tty:
                print(f"\r{text}", end="\n" if finished else "", file=sys.stderr, flush=True)
            else:
                print(text, file=sys.stderr, flush=True)


def _simulate(args: argparse.Namespace) -> int:
    result = write_simulated(args.out, series=args.series, seed=args.seed, series_per_file=args.series_per_file,
                             overwrite=args.force, progress=info)
    if args.json:
        emit_json(result.to_dict())
    else:
        print(f"Wrote {result.series} series: {result.train_files} files in {result.out / 'train'} "
              f"({result.train_weeks} weeks) and {result.inference_files} in {result.out / 'inference'} "
              f"({result.inference_weeks} weeks) in {result.seconds:.1f}s (seed {result.seed})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    schema = DatasetSchema.load(args.settings)
    total = len(list_files(args.folder)) if Path(args.folder).is_dir() else 1
    report = validate_folder(args.folder, schema, kind=args.kind, progress=_Progress("checked", total))
    if args.json:
        emit_json(report.to_dict())
    else:
        for finding in report.findings[:_SHOWN_FINDINGS]:
            print(finding)
        if len(report.findings) > _SHOWN_FINDINGS:
            print(f"... and {len(report.findings) - _SHOWN_FINDINGS} more findings (--json lists them all)")
        verdict = "OK" if report.ok else f"FAILED: {len(report.files_with_errors)} file(s) with errors"
        print(f"{verdict}: {report.files} file(s), {report.series} series, {report.rows} rows; "
              f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    return 0 if report.ok else 1


def _upload(args: argparse.Namespace) -> int:
    settings = get_settings()
    schema = DatasetSchema.load(args.settings)
    if not args.skip_validation:
        info(f"validating {args.folder} (skip with --skip-validation)")
    result = upload_batch(settings, args.folder, kind=args.kind, batch=args.batch, mode=args.mode,
                          schema=schema, validate=not args.skip_validation,
                          progress=_Progress("uploaded", len(list_data_files(args.folder))))
    if args.json:
        emit_json(result.to_dict())
    else:
        print(f"Uploaded {len(result.files)} file(s) ({result.total_bytes:,} bytes) to "
              f"{result.container}/{result.prefix} and closed batch {result.batch} with {result.manifest}")
    return 0
