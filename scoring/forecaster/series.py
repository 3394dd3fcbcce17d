"""Reading data files and cutting them into series on their regular calendar (vectorised over every row)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .maths import _date_range, offset_of
from .settings import MAX_SPAN_FACTOR, SEASON, ScriptSettings, SeriesError

# ---------------------------------------------------------------------------------------------
# Series on their regular calendar


@dataclass(frozen=True, slots=True)
class Series:
    """One series on its regular calendar from its first to its last timestamp (gaps are NaN)."""

    ids: dict[str, str]
    start: pd.Timestamp
    end: pd.Timestamp
    target: np.ndarray  # (weeks,) float, NaN where missing
    exog: np.ndarray  # (weeks, k) float, NaN where missing
    tags: dict[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # data problems found while parsing, used in fallback reasons
    warnings: tuple[str, ...] = ()  # target values that could not be used (missing, not a number, negative)


@dataclass(frozen=True, slots=True)
class SeriesFailure:
    ids: dict[str, str]
    reason: str
    files: tuple[str, ...] = ()


def _to_float(column: pd.Series, name: str, notes: list[str]) -> np.ndarray:
    values: np.ndarray = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(values) & column.notna().to_numpy()
    if bad.any():
        notes.append(f"{int(bad.sum())} unparsable value(s) in {name} (e.g. {column[bad].iloc[0]!r})")
    return values


def read_table(path: str | os.PathLike[str], settings: ScriptSettings) -> pd.DataFrame:
    """Read one data file (CSV, or Parquet by extension); ids and tags are read as text so
    ``Store`` 0042 stays 0042 in model names.

    Raises:
        SeriesError: the file cannot be read or parsed.
    """
    text_columns = {c: "string" for c in (*settings.id_columns, *settings.tag_columns)}
    try:
        if str(path).lower().endswith(".parquet"):
            frame = pd.read_parquet(path)
            return frame.astype({c: "string" for c in text_columns if c in frame.columns})
        return pd.read_csv(path, dtype=text_columns)
    except Exception as e:  # pandas raises many types for bad files; each is one file's failure
        raise SeriesError(f"cannot be read as {'Parquet' if str(path).endswith('.parquet') else 'CSV'}: "
                          f"{type(e).__name__}: {str(e)[:200]}") from e


FILE_COLUMN = "__file__"


def read_tables(paths: Sequence[str], settings: ScriptSettings) -> tuple[list[pd.DataFrame], list[tuple[str, str]]]:
    """Read many data files with as few parser calls as possible.

    CSV files with the same header are parsed together as one text (a mini-batch of one-series
    files costs one ``read_csv``, not one per file); if that parse fails or its row count does not
    add up, the group is re-read file by file so a bad file only fails itself.

    Returns:
        tables, each with a ``FILE_COLUMN`` naming every row's file; and (path, reason) per unreadable file.
    """
    failures: list[tuple[str, str]] = []
    tables: list[pd.DataFrame] = []
    groups: dict[bytes, list[tuple[str, bytes, int]]] = {}
    for path in paths:
        if str(path).lower().endswith(".parquet"):
            _read_one(path, settings, tables, failures)
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            failures.append((str(path), f"cannot be read: {e}"))
            continue
        header, _, body = data.partition(b"\n")
        # Newlines over-count rows only (blank lines, quoted newlines), never under-count: a wrong
        # count makes the joint parse below disagree and fall back to reading file by file.
        rows = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
        groups.setdefault(header.rstrip(b"\r"), []).append((str(path), body, rows))
    text_columns = {c: "string" for c in (*settings.id_columns, *settings.tag_columns)}
    for header, members in groups.items():
        if len(members) > 1:
            buffer = header + b"\n" + b"\n".join(body.rstrip(b"\r\n") for _, body, _ in members)
            try:
                frame = pd.read_csv(io.BytesIO(buffer), dtype=text_columns)
            except Exception:  # one bad file spoils the joint parse; re-read each below
                frame = None
            if frame is not None and len(frame) == sum(rows for *_, rows in members) and \
                    all(rows for *_, rows in members):
                frame[FILE_COLUMN] = pd.Categorical.from_codes(
                    np.repeat(np.arange(len(members)), [rows for *_, rows in members]), [p for p, *_ in members])
                tables.append(frame)
                continue
        for path, *_ in members:
            _read_one(path, settings, tables, failures)
    return tables, failures


def _read_one(path: str, settings: ScriptSettings, tables: list[pd.DataFrame],
              failures: list[tuple[str, str]]) -> None:
    try:
        frame = read_table(path, settings)
    except SeriesError as e:
        failures.append((str(path), str(e)))
        return
    if frame.empty:
        failures.append((str(path), "no data rows"))
        return
    frame[FILE_COLUMN] = str(path)
    tables.append(frame)


def _factorize_ids(ids: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Series code per row and the id values of each code (one factorisation per id column)."""
    per_column = [pd.factorize(ids[c]) for c in ids.columns]
    sizes = [max(len(values), 1) for _, values in per_column]
    if math.prod(sizes) < 2 ** 62:
        # One integer per id combination (the first column most significant): a plain sort, same order.
        combined = np.zeros(len(ids), dtype=np.int64)
        for (codes, _), size in zip(per_column, sizes, strict=True):
            combined = combined * size + codes
        found, codes = np.unique(combined, return_inverse=True)
        keys = np.empty((len(found), len(sizes)), dtype=np.int64)
        for j in range(len(sizes) - 1, -1, -1):
            found, keys[:, j] = np.divmod(found, sizes[j])
    else:
        # indexed, not unpacked: mypy 1.19 crashes unpacking this np.unique overload's tuple
        unique = np.unique(np.column_stack([c for c, _ in per_column]), axis=0, return_inverse=True)
        keys, codes = unique[0], unique[1]
    names = [[str(v) for v in values] for _, values in per_column]
    uniques = [tuple(names[j][i] for j, i in enumerate(key)) for key in keys.tolist()]
    return codes.ravel(), uniques


def split_series(frame: pd.DataFrame, settings: ScriptSettings, *, exog_columns: Sequence[str] | None = None,
                 require_target: bool = True, file_column: str | None = None,
                 ) -> tuple[list[Series], list[SeriesFailure]]:
    """Cut a long table of one or many series into :class:`Series` on the regular calendar.

    Vectorised over every row: one factorisation of the ids, one calendar for all timestamps.

    Raises:
        SeriesError: a required column is missing (the whole table is unusable).
    """
    required = [*settings.id_columns, settings.timestamp_column] + ([settings.target_column] if require_target else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SeriesError(f"missing column(s) {', '.join(missing)}; "
                          f"columns found: {', '.join(map(str, frame.columns))}")
    exog = list(settings.exog_columns(frame.columns) if exog_columns is None else exog_columns)
    absent = [c for c in exog if c not in frame.columns]
    if absent:
        raise SeriesError(f"missing feature column(s) {', '.join(absent)} the model needs")
    failures: list[SeriesFailure] = []
    ids = frame[list(settings.id_columns)]
    if not all(dtype == "string" for dtype in ids.dtypes):  # read_tables already gives text ids
        ids = ids.astype("string")
    no_id = np.logical_or.reduce([ids[c].isna().to_numpy() for c in ids.columns])
    if no_id.any():
        failures.append(SeriesFailure({}, f"{int(no_id.sum())} row(s) without a value in "
                                          f"{'/'.join(settings.id_columns)}"))
        frame, ids = frame[~no_id], ids[~no_id]
    if frame.empty:
        if not failures:
            raise SeriesError("no data rows")
        return [], failures
    codes, uniques = _factorize_ids(ids)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))

    raw_time = frame[settings.timestamp_column]
    weeks, times_ns, positions = _calendar_positions(raw_time, settings.freq)
    series_notes: list[str] = []
    target = (_to_float(frame[settings.target_column], settings.target_column, series_notes) if require_target
              else np.full(len(frame), np.nan))
    exog_values = np.column_stack([_to_float(frame[c], c, series_notes) for c in exog]) if exog else \
        np.empty((len(frame), 0))

    file_codes, file_names = pd.factorize(frame[file_column]) if file_column else (None, None)
    table = _Table(frame, settings, exog, require_target, raw_time, times_ns, weeks, positions, file_codes,
                   file_names, order, bounds)
    good, first, last = _usable_series(codes, positions, times_ns, order, bounds)
    # Series with a bad date are rare: find out which check fails (and its message) one by one.
    for k in np.flatnonzero(~good):
        failures.append(table.failure(int(k), dict(zip(settings.id_columns, uniques[k], strict=True))))
    kept = np.flatnonzero(good)
    if not len(kept):
        return [], failures
    warned: dict[int, tuple[str, ...]] = {}
    if require_target:
        target, warned = _target_warnings(frame, settings, target, codes, raw_time, kept)
    y_flat, x_flat, offsets = _fill(kept, codes, positions, first, last, target, exog_values, len(uniques))
    first_rows = order[bounds[kept]]
    tag_columns = [c for c in settings.tag_columns if c in frame.columns]
    tag_lists = [[str(v) for v in frame[c].array.take(first_rows).tolist()] for c in tag_columns]
    files = table.files(kept)
    starts = list(weeks[first[kept]])
    ends = list(weeks[last[kept]])
    has_notes = bool(series_notes)
    series: list[Series] = []
    for j, k in enumerate(kept.tolist()):
        a, b = offsets[j], offsets[j + 1]
        notes = table.notes(k) if has_notes else ()
        series.append(Series(dict(zip(settings.id_columns, uniques[k], strict=True)), starts[j], ends[j],
                             y_flat[a:b], x_flat[a:b], {c: values[j] for c, values in zip(tag_columns, tag_lists,
                                                                                          strict=True)},
                             files[j], notes, warned.get(k, ())))
    return series, failures


def _target_warnings(frame: pd.DataFrame, settings: ScriptSettings, target: np.ndarray, codes: np.ndarray,
                     raw_time: pd.Series, kept: np.ndarray) -> tuple[np.ndarray, dict[int, tuple[str, ...]]]:
    """Per series code: a warning naming the rows whose target cannot be used (they are not fitted).

    A missing or non-numeric value, or a negative one when the target is non-negative, would
    otherwise vanish from the fit without a word. Returns ``target`` with negative values set to NaN.
    """
    missing = np.isnan(target)
    negative = (target < 0) if settings.non_negative else np.zeros(len(target), bool)
    bad = missing | negative
    if not bad.any():
        return target, {}
    if negative.any():
        target = np.where(negative, np.nan, target)
    bad_rows = np.flatnonzero(bad)
    found, first_at, counts = np.unique(codes[bad_rows], return_index=True, return_counts=True)
    raw = frame[settings.target_column]
    out: dict[int, tuple[str, ...]] = {}
    keep = set(kept.tolist())
    for k, at, count in zip(found.tolist(), first_at.tolist(), counts.tolist(), strict=True):
        if k not in keep:
            continue
        first = bad_rows[at]
        value = raw.iloc[first]
        shown = "missing" if pd.isna(value) else repr(value)
        kind = "negative" if negative[first] else ("missing" if pd.isna(value) else "non-numeric")
        out[k] = ((f"{count} row(s) with a missing, non-numeric{' or negative' if settings.non_negative else ''} "
                  f"{settings.target_column} were not used (first: {kind} value {shown} at "
                  f"{settings.timestamp_column} {raw_time.iloc[first]})"),)
    return target, out


def _calendar_positions(raw_time: pd.Series, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """The regular calendar from the first to the last valid timestamp; each row's time and position on it (-1: none).

    Each distinct timestamp text is parsed once (thousands of series share a few hundred weeks).
    """
    codes, distinct = pd.factorize(raw_time)
    parsed = pd.DatetimeIndex(pd.to_datetime(pd.Series(distinct, dtype=object), errors="coerce", format="mixed"))
    parsed_ns = np.append(parsed.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))
    times_ns = parsed_ns[codes]  # code -1 (a missing value) picks the NaT appended last
    valid = parsed.dropna().unique()
    if not len(valid):
        return pd.DatetimeIndex([]), times_ns, np.full(len(times_ns), -1)
    offset = offset_of(freq)
    on_calendar = np.fromiter((offset.is_on_offset(t) for t in valid), bool, len(valid))
    weeks = _date_range(valid.min(), valid.max(), freq) if on_calendar.any() else pd.DatetimeIndex([])
    found = np.append(weeks.get_indexer(parsed), -1)
    return weeks, times_ns, found[codes]


def _usable_series(codes: np.ndarray, positions: np.ndarray, times_ns: np.ndarray, order: np.ndarray,
                   bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per series (vectorised over all rows): whether every date is usable, first and last calendar position.

    Unusable: a date that does not parse or is off the calendar, a week given twice, or a span
    far longer than the rows (a stray date would blow up the packed arrays).
    """
    n = len(bounds) - 1
    bad = np.bincount(codes[np.isnat(times_ns) | (positions < 0)], minlength=n) > 0
    by_week = np.lexsort((positions, codes))
    same = (codes[by_week][1:] == codes[by_week][:-1]) & (positions[by_week][1:] == positions[by_week][:-1])
    bad |= np.bincount(codes[by_week][1:][same], minlength=n) > 0
    grouped = positions[order]
    first = np.minimum.reduceat(grouped, bounds[:-1]) if n else np.empty(0, int)
    last = np.maximum.reduceat(grouped, bounds[:-1]) if n else np.empty(0, int)
    bad |= last - first + 1 > MAX_SPAN_FACTOR * np.diff(bounds) + SEASON
    return ~bad, first, last


def _fill(kept: np.ndarray, codes: np.ndarray, positions: np.ndarray, first: np.ndarray, last: np.ndarray,
          target: np.ndarray, exog: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every kept series on its calendar, end to end in one buffer (NaN in gaps); series j is rows
    ``offsets[j]:offsets[j + 1]``."""
    spans = last[kept] - first[kept] + 1
    offsets = np.zeros(len(kept) + 1, dtype=np.intp)
    np.cumsum(spans, out=offsets[1:])
    slot = np.full(n, -1, dtype=np.intp)
    slot[kept] = np.arange(len(kept))
    rows = np.flatnonzero(slot[codes] >= 0)
    j = slot[codes[rows]]
    at = offsets[j] + positions[rows] - first[kept][j]
    y = np.full(offsets[-1], np.nan)
    y[at] = target[rows]
    x = np.full((offsets[-1], exog.shape[1]), np.nan)
    x[at] = exog[rows]
    return y, x, offsets


@dataclass(slots=True)
class _Table:
    """The parsed columns of one table, for the per-series details that are only needed now and then."""

    frame: pd.DataFrame
    settings: ScriptSettings
    exog: list[str]
    require_target: bool
    raw_time: pd.Series
    times_ns: np.ndarray
    weeks: pd.DatetimeIndex
    positions: np.ndarray
    file_codes: np.ndarray | None
    file_names: Any
    order: np.ndarray
    bounds: np.ndarray

    def rows(self, k: int) -> np.ndarray:
        return self.order[self.bounds[k]:self.bounds[k + 1]]

    def row_files(self, rows: np.ndarray) -> tuple[str, ...]:
        if self.file_codes is None:
            return ()
        return tuple(str(self.file_names[c]) for c in dict.fromkeys(self.file_codes[rows]))

    def files(self, kept: np.ndarray) -> list[tuple[str, ...]]:
        """The files of each kept series, in order of appearance (one file per series is the usual case)."""
        if self.file_codes is None:
            return [()] * len(kept)
        grouped = self.file_codes[self.order]
        low = np.minimum.reduceat(grouped, self.bounds[:-1])[kept]
        high = np.maximum.reduceat(grouped, self.bounds[:-1])[kept]
        names = [str(f) for f in self.file_names]
        return [(names[lo],) if lo == hi else self.row_files(self.rows(k))
                for k, lo, hi in zip(kept.tolist(), low.tolist(), high.tolist(), strict=True)]

    def notes(self, k: int) -> tuple[str, ...]:
        """Parse problems of series ``k``'s own rows (used in its fallback reason)."""
        local: list[str] = []
        sub = self.frame.iloc[self.rows(k)]
        if self.require_target:
            _to_float(sub[self.settings.target_column], self.settings.target_column, local)
        for c in self.exog:
            _to_float(sub[c], c, local)
        return tuple(local)

    def failure(self, k: int, key_ids: dict[str, str]) -> SeriesFailure:
        """Why series ``k`` cannot be used (the first of its date problems)."""
        settings, rows = self.settings, self.rows(k)
        row_files = self.row_files(rows)
        pos = self.positions[rows]
        bad_time = np.isnat(self.times_ns[rows])
        if bad_time.any():
            sample = self.raw_time.iloc[rows[bad_time][0]]
            return SeriesFailure(key_ids, f"{int(bad_time.sum())} unparsable value(s) in {settings.timestamp_column} "
                                          f"(e.g. {sample!r}); expected dates like 1990-06-14", row_files)
        if (pos < 0).any():
            sample = pd.Timestamp(self.times_ns[rows][pos < 0][0]).date()
            return SeriesFailure(key_ids, f"{settings.timestamp_column} {sample} is not on the {settings.freq} "
                                          "calendar the settings require", row_files)
        if len(np.unique(pos)) != len(pos):
            dup = pd.Series(pos).duplicated()
            sample = self.weeks[pos[dup.to_numpy()][0]].date()
            return SeriesFailure(key_ids, f"{settings.timestamp_column} {sample} appears more than once", row_files)
        first, last = pos.min(), pos.max()
        return SeriesFailure(key_ids, f"{len(rows)} rows spread over {last - first + 1} weeks "
                                      f"({self.weeks[first].date()} to {self.weeks[last].date()}): check "
                                      f"{settings.timestamp_column} for wrong dates", row_files)


