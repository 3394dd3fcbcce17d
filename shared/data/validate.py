"""Check data files against the dataset schema before they land.

Every file is checked and every problem becomes one :class:`Finding` ``{file, series, field,
severity, problem}`` with a readable message. Errors make a file unusable (unreadable, missing
column, non-numeric value, duplicated week, too short to train, negative target, wrong series for
its name); warnings do not (missing weeks: real data has gaps and the model handles them).
Nothing in a file can make the check itself fail: any unexpected exception becomes an error
finding for that file.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.tseries.frequencies import to_offset

from shared.data.schema import DatasetSchema
from shared.data.tables import RawTable, is_data_file, list_files, read_raw
from shared.errors import BadData, InvalidValue

PARALLEL_FROM = 400  # below this many files a process pool costs more than it saves
_SHOWN = 3  # examples quoted per finding
_INFERENCE_WORDS = {"inference", "test", "scoring"}
_DOC_EXTENSIONS = (".md", ".txt", ".rst")
# Azure ML's model-name rule (scoring/model_names.py): ids whose plain name breaks it get a hashed name.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    file: str  # path relative to the validated folder
    series: str  # "" when the finding is about the whole file
    field: str  # the column, "" when none
    severity: Severity
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "series": self.series, "field": self.field, "severity": str(self.severity),
                "problem": self.problem}

    def __str__(self) -> str:
        where = self.file + (f" [{self.series}]" if self.series else "") + (f" {self.field}" if self.field else "")
        return f"{self.severity.upper()}: {where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class FileCheck:
    findings: tuple[Finding, ...]
    series: int
    rows: int


@dataclass(frozen=True, slots=True)
class ValidationReport:
    folder: str
    files: int
    series: int
    rows: int
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def files_with_errors(self) -> list[str]:
        return sorted({f.file for f in self.errors})

    def to_dict(self) -> dict[str, object]:
        return {"folder": self.folder, "ok": self.ok, "files": self.files, "series": self.series,
                "rows": self.rows, "errors": len(self.errors), "warnings": len(self.warnings),
                "files_with_errors": len(self.files_with_errors),
                "findings": [f.to_dict() for f in self.findings]}


def guess_kind(relative: str) -> str:
    """``inference`` when a folder or a word of the file name says so (inference/, *_test.csv), else ``train``."""
    words = set()
    parts = Path(relative).parts
    for part in parts[:-1]:
        words.add(part.lower())
    words.update(w.lower() for w in re.split(r"[_\-. ]+", Path(relative).stem))
    return "inference" if words & _INFERENCE_WORDS else "train"


def validate_folder(
    folder: str | Path,
    schema: DatasetSchema,
    *,
    kind: str | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ValidationReport:
    """Check every file under ``folder`` (recursive; or ``folder`` itself if it is a file).

    ``kind`` (``train``/``inference``) applies to every file; None guesses per file from its path
    (see :func:`guess_kind`)."""
    root = Path(folder)
    if kind not in (None, "train", "inference"):
        raise InvalidValue(f"--kind {kind!r} is not allowed: expected train or inference")
    if root.is_file():  # one file: report it by name
        paths, base = [root], root.parent
    elif root.is_dir():
        paths, base = list_files(root), root
    else:
        raise InvalidValue(f"{root} does not exist; expected a folder of data files (or one file)")
    jobs = [(str(p), p.relative_to(base).as_posix(), kind) for p in paths]
    workers = workers or os.cpu_count() or 1
    if len(jobs) < PARALLEL_FROM or workers == 1:
        checks = []
        for job in jobs:
            checks.append(_check_job(schema, job))
            if progress:
                progress(1)
    else:
        checks = _check_parallel(schema, jobs, workers, progress)
    findings = tuple(f for c in checks for f in c.findings)
    if not paths:
        findings = (Finding("", "", "", Severity.ERROR, f"{root} holds no files; expected CSV or Parquet data"),)
    return ValidationReport(folder=str(root), files=len(paths), series=sum(c.series for c in checks),
                            rows=sum(c.rows for c in checks), findings=findings)


def _check_parallel(schema: DatasetSchema, jobs: list[tuple[str, str, str | None]], workers: int,
                    progress: Callable[[int], None] | None) -> list[FileCheck]:
    size = max(50, len(jobs) // (workers * 8))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    results: list[FileCheck] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for checked in pool.map(_check_chunk, [schema] * len(chunks), chunks):
            results += checked
            if progress:
                progress(len(checked))
    return results


def _check_chunk(schema: DatasetSchema, jobs: Sequence[tuple[str, str, str | None]]) -> list[FileCheck]:
    return [_check_job(schema, job) for job in jobs]


def _check_job(schema: DatasetSchema, job: tuple[str, str, str | None]) -> FileCheck:
    path, relative, kind = job
    try:
        return check_file(Path(path), schema, kind=kind or guess_kind(relative), name=relative)
    except Exception as e:  # a check must never crash on a file, whatever is in it
        return FileCheck((Finding(relative, "", "", Severity.ERROR, f"could not be checked: {e!r}"),), 0, 0)


def check_file(path: Path, schema: DatasetSchema, *, kind: str = "train", name: str | None = None) -> FileCheck:
    """Every finding of one file."""
    file = name or path.name
    if _is_documentation(path):
        return FileCheck((Finding(file, "", "", Severity.WARNING, "not a data file; ignored (not uploaded)"),), 0, 0)
    if not is_data_file(path):
        return _one(file, "", f"unknown extension {path.suffix or '(none)'!r}; data files must be .csv or .parquet")
    try:
        table = read_raw(path)
    except BadData as e:
        return _one(file, "", e.message.removeprefix(f"{path.name}: "))
    if not table.rows:
        return _one(file, "", "the file has no data rows" + (" (only a header)" if table.columns else ""))
    return _FileChecker(file, table, schema, kind).run()


def _is_documentation(path: Path) -> bool:
    """READMEs and licences often sit next to data (the Dominick's sample has one): not an error."""
    return path.suffix.lower() in _DOC_EXTENSIONS or path.stem.upper() in ("README", "LICENSE", "NOTICE")


def _one(file: str, field: str, problem: str) -> FileCheck:
    return FileCheck((Finding(file, "", field, Severity.ERROR, problem),), 0, 0)


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return (isinstance(value, float) and math.isnan(value)) or value is pd.NaT or value is pd.NA


def _number(value: Any) -> float | None:
    """The value as a finite number, or None."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class _FileChecker:
    """The checks of one readable, non-empty table."""

    def __init__(self, file: str, table: RawTable, schema: DatasetSchema, kind: str) -> None:
        self.file, self.table, self.schema, self.kind = file, table, schema, kind
        self.findings: list[Finding] = []

    def error(self, field: str, problem: str, series: str = "") -> None:
        self.findings.append(Finding(self.file, series, field, Severity.ERROR, problem))

    def warning(self, field: str, problem: str, series: str = "") -> None:
        self.findings.append(Finding(self.file, series, field, Severity.WARNING, problem))

    def run(self) -> FileCheck:
        s, columns = self.schema, self.table.columns
        required = [c for c in s.required_columns if self.kind == "train" or c != s.target_column]
        missing = [c for c in required if c not in columns]
        if missing and len(columns) == 1 and any(sep in next(iter(columns)) for sep in ";\t|"):
            self.error("", f"the header has a single column {next(iter(columns))!r}: the file looks separated by "
                           "something other than commas; save it as comma-separated CSV")
            return FileCheck(tuple(self.findings), 0, self.table.rows)
        for column in missing:
            self.error(column, f"missing column {column!r}; the file has: {', '.join(columns)}")
        if any(c in missing for c in (*s.id_columns, s.timestamp_column)):
            return FileCheck(tuple(self.findings), 0, self.table.rows)  # cannot tell series or weeks apart
        for column in s.id_columns:
            self._no_empty(column)
        self._encoded_ids()
        for column in (s.target_column, *s.feature_columns(columns)):
            if column in columns:
                self._numbers(column)
        keys = self._series_keys()
        self._named_series(keys)
        weeks = self._timestamps()
        by_series: dict[str, list[datetime | None]] = {}
        for key, week in zip(keys, weeks, strict=True):
            by_series.setdefault(key, []).append(week)
        for key, series_weeks in by_series.items():
            self._series(key, series_weeks)
        return FileCheck(tuple(self.findings), len(by_series), self.table.rows)

    def _rows(self, indexes: list[int]) -> str:
        shown = ", ".join(str(self.table.where[i]) for i in indexes[:_SHOWN])
        more = len(indexes) - _SHOWN
        return f"{self.table.row_label} {shown}" + (f" and {more} more" if more > 0 else "")

    def _no_empty(self, column: str) -> None:
        empty = [i for i, v in enumerate(self.table.columns[column]) if _is_empty(v)]
        if empty:
            self.error(column, f"{len(empty)} empty value(s) ({self._rows(empty)}); every row needs its "
                               f"{column} to tell which series it belongs to")

    def _encoded_ids(self) -> None:
        """Warn about series whose id values cannot be a model name as they are (scoring/model_names.py
        then names the model with a readable slug plus a hash: it trains, but the name is not the ids)."""
        s = self.schema
        columns = [self.table.columns[c] for c in s.id_columns]
        order = sorted(range(len(s.id_columns)), key=lambda j: s.id_columns[j])  # names sort ids by column
        encoded: dict[tuple[str, ...], None] = {}
        for values in zip(*columns, strict=True):
            if any(_is_empty(v) for v in values):
                continue  # an error already
            texts = tuple(str(v) for v in values)
            if not _MODEL_NAME.fullmatch(f"{s.model_type}_{'_'.join(texts[j] for j in order)}"):
                encoded[texts] = None
        if encoded:
            shown = ", ".join(repr(self.schema.series_id(k)) for k in list(encoded)[:_SHOWN])
            more = f" and {len(encoded) - _SHOWN} more" if len(encoded) > _SHOWN else ""
            self.warning(", ".join(s.id_columns),
                         f"{len(encoded)} series have id values that are not allowed in a model name as they are "
                         f"({shown}{more}): a model name allows letters, digits, '.', '_' and '-' (255 at most), "
                         "so their models are named with a readable form of the ids plus a hash; requests still "
                         "use the raw id values")

    def _numbers(self, column: str) -> None:
        values = self.table.columns[column]
        target = column == self.schema.target_column
        empty, bad, negative = [], [], []
        for i, value in enumerate(values):
            if _is_empty(value):
                empty.append(i)
                continue
            number = _number(value)
            if number is None:
                bad.append(i)
            elif target and number < 0:
                negative.append(i)
        if bad:
            examples = ", ".join(repr(str(values[i])) for i in bad[:_SHOWN])
            self.error(column, f"{len(bad)} value(s) are not numbers: {examples} ({self._rows(bad)})")
        if empty and not (target and self.kind == "inference"):
            role = "target" if target else "feature"
            self.error(column, f"{len(empty)} empty value(s) in the {role} column ({self._rows(empty)}); "
                               "fill them or drop the rows")
        if negative:
            examples = ", ".join(str(values[i]) for i in negative[:_SHOWN])
            self.error(column, f"{len(negative)} negative value(s): {examples} ({self._rows(negative)}); "
                               "sales cannot be below 0")

    def _series_keys(self) -> list[str]:
        columns = [self.table.columns[c] for c in self.schema.id_columns]
        return [self.schema.series_id(values) for values in zip(*columns, strict=True)]

    def _timestamps(self) -> list[datetime | None]:
        column = self.schema.timestamp_column
        raw = self.table.columns[column]
        weeks = [_to_datetime(v) for v in raw]
        bad = [i for i, w in enumerate(weeks) if w is None]
        if bad:
            examples = ", ".join(repr(str(raw[i])) for i in bad[:_SHOWN])
            self.error(column, f"{len(bad)} value(s) are not dates: {examples} ({self._rows(bad)}); "
                               "use ISO dates like 1990-06-14")
        return weeks

    def _named_series(self, keys: list[str]) -> None:
        claimed = self.schema.series_named_by(self.file)
        if claimed is None:
            return
        expected = self.schema.series_id(claimed)
        held = list(dict.fromkeys(keys))
        if held != [expected]:
            shown = ", ".join(held[:_SHOWN]) + (f" and {len(held) - _SHOWN} more" if len(held) > _SHOWN else "")
            self.error(", ".join(self.schema.id_columns),
                       f"the file is named for series {expected} but holds {shown}; name it after the series "
                       "it holds (or give a file of many series a name that is not a series name)")

    def _series(self, key: str, weeks: list[datetime | None]) -> None:
        s = self.schema
        valid = [w for w in weeks if w is not None]
        unique = sorted(set(valid))
        if len(unique) < len(valid):
            repeated = sorted(w for w, count in Counter(valid).items() if count > 1)
            shown = ", ".join(_day(d) for d in repeated[:_SHOWN])
            self.error(s.timestamp_column, f"{len(repeated)} {s.timestamp_column} value(s) appear more than once "
                                           f"in this series: {shown}; keep one row per period", key)
        n_exog = len(s.feature_columns(self.table.columns))
        need = s.min_train_rows(n_exog=n_exog)
        if self.kind == "train" and len(weeks) < need:
            # the rule training applies (scoring/forecaster/settings.py): a shorter series gets a fallback
            self.error("", f"only {len(weeks)} row(s); training needs at least {need} to fit model_type "
                           f"{s.model_type} with {n_exog} feature column(s) (test_size {s.test_size}, horizon "
                           f"{s.horizon}, backtest_folds {s.backtest_folds}); a shorter series gets a "
                           "fallback model", key)
        if len(unique) >= 2:
            self._gaps(key, unique)

    def _gaps(self, key: str, weeks: list[datetime]) -> None:
        s = self.schema
        off_grid, missing, count = _calendar(s.freq).check(weeks)
        if off_grid:
            shown = ", ".join(_day(d) for d in off_grid[:_SHOWN])
            self.warning(s.timestamp_column, f"{len(off_grid)} date(s) are not on the {s.freq} calendar: {shown}; "
                                             "the model assumes one row per period", key)
        elif count:
            shown = ", ".join(_day(d) for d in missing[:_SHOWN])
            more = f" and {count - _SHOWN} more" if count > _SHOWN else ""
            self.warning(s.timestamp_column, f"{count} missing period(s) ({s.freq}) between {_day(weeks[0])} and "
                                             f"{_day(weeks[-1])}: {shown}{more}", key)


def _day(d: datetime) -> str:
    return d.strftime("%Y-%m-%d") if not (d.hour or d.minute or d.second) else d.isoformat()


def _to_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return None if value is pd.NaT else value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=None)
    except ValueError:
        pass
    parsed = pd.to_datetime(value.strip(), errors="coerce")  # other formats people save dates in
    return None if pd.isna(parsed) else parsed.to_pydatetime().replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class _Calendar:
    """The periods of ``freq``: a fixed step (days, weeks on a weekday, hours) or pandas for the rest."""

    freq: str
    step: timedelta | None
    weekday: int | None

    def check(self, weeks: list[datetime]) -> tuple[list[datetime], list[datetime], int]:
        """(dates off the calendar, the first missing periods, how many are missing) of sorted unique dates."""
        if self.step is None:
            expected = pd.date_range(weeks[0], weeks[-1], freq=self.freq).to_pydatetime().tolist()
            present = set(weeks)
            on = set(expected)
            missing: list[datetime] = [d for d in expected if d not in present]
            return [d for d in weeks if d not in on], missing[:_SHOWN], len(missing)
        first = weeks[0]
        off = [d for d in weeks
               if (d - first) % self.step or (self.weekday is not None and d.weekday() != self.weekday)]
        if off:
            return off, [], 0
        count = (weeks[-1] - first) // self.step + 1 - len(weeks)
        missing = []
        if count:
            present = set(weeks)
            expected = first
            while len(missing) < _SHOWN and expected < weeks[-1]:
                if expected not in present:
                    missing.append(expected)
                expected += self.step
        return [], missing, count


@functools.cache
def _calendar(freq: str) -> _Calendar:
    offset = to_offset(freq)
    name = type(offset).__name__
    if name == "Week":
        return _Calendar(freq, timedelta(weeks=offset.n), offset.weekday)
    if name == "Day":
        return _Calendar(freq, timedelta(days=offset.n), None)
    try:
        return _Calendar(freq, pd.Timedelta(offset.nanos, unit="ns").to_pytimedelta(), None)
    except ValueError:  # months, quarters, business days: not a fixed step
        return _Calendar(freq, None, None)
