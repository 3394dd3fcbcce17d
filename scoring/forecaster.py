"""The many-models forecaster: features, batched fit, recursive forecast, metrics, plain-data artifacts.

Self-contained (numpy, pandas, scikit-learn only): this file is uploaded alone to Azure ML compute
and to scoring containers, so it never imports ``shared`` or ``azureml``.

The ``lr`` model is ordinary least squares with an intercept on the exogenous columns, the ISO week
of year and lags 1-4 of the target. Series live on their regular calendar (``freq``), so a lag is
"the value N periods earlier" even where the data has gaps; rows without every feature are not
fitted. Thousands of series are fitted at once: they are packed into series x weeks arrays and
solved with one batched SVD, giving the same answer as a per-series scikit-learn
``LinearRegression`` (centred least squares, minimum-norm solution). A series that cannot be
fitted (too short, constant, too many gaps) gets a fallback model (seasonal naive or mean) and
says why.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "manymodels.forecaster/1"
MODEL_FILE = "model.json"
LAGS = 4
MAX_SPAN_FACTOR = 10  # a series may have gaps, but not 10x more missing weeks than rows
SEASON = 52  # weeks in a year: the seasonal-naive period and the stored tail length
WEEK_FEATURE = "week_of_year"
LAG_FEATURES = tuple(f"lag_{i}" for i in range(1, LAGS + 1))
METRICS = ("mse", "rmse", "mae", "mape")
SETTINGS_KEYS = ("id_columns", "target_column", "timestamp_column", "tag_columns", "drop_columns",
                 "model_type", "test_size", "freq", "horizon")


class ModelKind(StrEnum):
    LR = "lr"
    SNAIVE = "snaive"
    MEAN = "mean"


FALLBACKS = frozenset({ModelKind.SNAIVE, ModelKind.MEAN})


class SettingsFileError(ValueError):
    """The script settings file is missing, unreadable or has a value that is not allowed."""


class SeriesError(ValueError):
    """One series (or file) cannot be used; the message is the reason recorded for it."""


# ---------------------------------------------------------------------------------------------
# Settings and naming


@dataclass(frozen=True, slots=True)
class ScriptSettings:
    """The dataset schema of ``script_settings.json``: which columns are ids, target, time, tags."""

    id_columns: tuple[str, ...]
    target_column: str
    timestamp_column: str
    tag_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    model_type: str = "lr"
    test_size: int = 20
    freq: str = "W-THU"
    horizon: int = 8

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScriptSettings:
        """Read and validate a settings file.

        Raises:
            SettingsFileError: the file is missing, not JSON, or a field has a wrong type/value.
        """
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as e:
            raise SettingsFileError(f"settings file {path} cannot be read: {e}") from e
        except ValueError as e:
            raise SettingsFileError(f"settings file {path} is not valid JSON: {e}") from e
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "settings") -> ScriptSettings:
        if not isinstance(raw, Mapping):
            raise SettingsFileError(f"{source}: expected a JSON object with keys {', '.join(SETTINGS_KEYS)}")
        missing = [k for k in ("id_columns", "target_column", "timestamp_column") if k not in raw]
        if missing:
            raise SettingsFileError(f"{source}: missing required field(s) {', '.join(missing)}")
        values = {k: raw[k] for k in SETTINGS_KEYS if k in raw}
        for key in ("id_columns", "tag_columns", "drop_columns"):
            if key in values:
                value = values[key]
                if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
                    raise SettingsFileError(f"{source}: {key}={value!r} is not allowed: "
                                            "expected a list of column names")
                values[key] = tuple(value)
        if not values["id_columns"]:
            raise SettingsFileError(f"{source}: id_columns is empty: name at least one column identifying a series")
        for key in ("target_column", "timestamp_column", "model_type", "freq"):
            if key in values and (not isinstance(values[key], str) or not values[key]):
                raise SettingsFileError(f"{source}: {key}={values[key]!r} is not allowed: expected a non-empty string")
        for key, low in (("test_size", 1), ("horizon", 1)):
            value = values.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsFileError(f"{source}: {key}={value!r} is not allowed: expected a whole number >= {low}")
        if values.get("model_type", "lr") != ModelKind.LR:
            raise SettingsFileError(f"{source}: model_type={values['model_type']!r} is not allowed: expected 'lr'")
        try:
            pd.tseries.frequencies.to_offset(values.get("freq", "W-THU"))
        except ValueError as e:
            raise SettingsFileError(f"{source}: freq={values['freq']!r} is not a pandas offset alias "
                                    "(for example 'W-THU')") from e
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"id_columns": list(self.id_columns), "target_column": self.target_column,
                "timestamp_column": self.timestamp_column, "tag_columns": list(self.tag_columns),
                "drop_columns": list(self.drop_columns), "model_type": self.model_type,
                "test_size": self.test_size, "freq": self.freq, "horizon": self.horizon}

    def exog_columns(self, columns: Iterable[str]) -> list[str]:
        """Every column that is not an id, the target, the time, a tag or dropped, in file order."""
        reserved = {*self.id_columns, self.target_column, self.timestamp_column, *self.tag_columns,
                    *self.drop_columns}
        return [c for c in columns if c not in reserved]


def model_name(model_type: str, ids: Mapping[str, Any]) -> str:
    """``{model_type}_{id values sorted by id column name}``, e.g. ``lr_dominicks_1000``."""
    return f"{model_type}_{'_'.join(str(ids[c]) for c in sorted(ids))}"


def series_label(ids: Mapping[str, Any]) -> str:
    """A readable series key for logs and failure rows, e.g. ``Store=2,Brand=dominicks``."""
    return ",".join(f"{c}={v}" for c, v in ids.items())


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


@dataclass(frozen=True, slots=True)
class SeriesFailure:
    ids: dict[str, str]
    reason: str
    files: tuple[str, ...] = ()


def _to_float(column: pd.Series, name: str, notes: list[str]) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
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
        keys, codes = np.unique(np.column_stack([c for c, _ in per_column]), axis=0, return_inverse=True)
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
                             files[j], notes))
    return series, failures


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


# ---------------------------------------------------------------------------------------------
# Maths shared by fitting and forecasting


def _ffill(values: np.ndarray) -> np.ndarray:
    """Forward fill NaNs along the last axis, then back fill what is left at the start."""
    mask = np.isnan(values)
    if not mask.any():
        return values
    n = values.shape[-1]
    idx = np.where(mask, 0, np.arange(n))
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled = np.take_along_axis(values, idx, axis=-1)
    mask = np.isnan(filled)
    if mask.any():
        idx = np.where(mask, n - 1, np.arange(n))
        idx = np.minimum.accumulate(idx[..., ::-1], axis=-1)[..., ::-1]
        filled = np.take_along_axis(filled, idx, axis=-1)
    return filled


@functools.lru_cache(maxsize=32)
def offset_of(freq: str) -> pd.DateOffset:
    return pd.tseries.frequencies.to_offset(freq)


@functools.lru_cache(maxsize=32)
def _fixed_step(freq: str) -> pd.Timedelta | None:
    """The constant step of a weekly/daily/intraday calendar (None for months, quarters...)."""
    offset = offset_of(freq)
    if isinstance(offset, pd.offsets.Week) and offset.weekday is not None:
        return pd.Timedelta(weeks=offset.n)
    if isinstance(offset, pd.offsets.Tick):
        return pd.Timedelta(offset)
    return None


def calendar(start: pd.Timestamp | None = None, periods: int = 1, freq: str = "W-THU", *,
             end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """``pd.date_range`` for on-calendar anchors, without its per-call cost for fixed steps (scoring latency)."""
    step = _fixed_step(freq)
    if step is None:
        return pd.date_range(start, end=end, periods=periods, freq=freq)
    first = start if end is None else end - step * (periods - 1)
    return pd.DatetimeIndex(first.to_datetime64() + step.to_timedelta64() * np.arange(periods))


def _date_range(start: pd.Timestamp, end: pd.Timestamp, freq: str) -> pd.DatetimeIndex:
    """``pd.date_range(start, end, freq=freq)``: every calendar point from the first at/after ``start`` to ``end``."""
    step = _fixed_step(freq)
    if step is None:
        return pd.date_range(start, end, freq=freq)
    first = offset_of(freq).rollforward(start)
    return calendar(first, max((end - first) // step + 1, 0), freq)


def iso_weeks(start: pd.Timestamp, steps: int, freq: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    stamps = calendar(start, steps, freq)
    return stamps, np.fromiter((t.isocalendar()[1] for t in stamps), float, steps)


def recurse(intercept: np.ndarray, coef: np.ndarray, seeds: np.ndarray, exog: np.ndarray,
            weeks: np.ndarray) -> np.ndarray:
    """Recursive multi-step forecast of many series at once.

    Args:
        intercept: (S,); coef: (S, k + 1 + LAGS) in feature order exog, week of year, lag_1..lag_4.
        seeds: (S, LAGS) the last known values, oldest first.
        exog: (S, H, k) future exogenous values; weeks: (S, H) ISO week of each step.

    Returns:
        (S, H) predictions; each step's prediction becomes the next step's lag_1.
    """
    s, h, k = exog.shape
    out = np.empty((s, h))
    lags = seeds[:, ::-1].copy()  # lag_1 first
    base = intercept[:, None] + np.einsum("shk,sk->sh", exog, coef[:, :k]) + weeks * coef[:, k, None]
    lag_coef = coef[:, k + 1:]
    for step in range(h):
        pred = base[:, step] + np.einsum("sl,sl->s", lags, lag_coef)
        out[:, step] = pred
        lags[:, 1:] = lags[:, :-1]
        lags[:, 0] = pred
    return out


def _design(y: np.ndarray, exog: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    """(S, T, k + 1 + LAGS) features; lag rows before the series start are NaN."""
    s, t = y.shape
    lagged = np.full((s, t, LAGS), np.nan)
    for j in range(1, LAGS + 1):
        lagged[:, j:, j - 1] = y[:, :-j]
    return np.concatenate([exog, weeks[:, :, None], lagged], axis=2)


def solve_ols(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched OLS with intercept over the rows in ``mask``, as scikit-learn's LinearRegression does it:
    centre X and y, take the minimum-norm least-squares solution, intercept = mean(y) - mean(X) @ coef.

    Args:
        x: (S, T, p); y: (S, T); mask: (S, T) rows to fit (every series needs at least one).
    Returns:
        intercept (S,), coef (S, p).
    """
    w = mask.astype(float)
    n = w.sum(axis=1)
    x = np.where(mask[:, :, None], x, 0.0)
    y = np.where(mask, y, 0.0)
    x_mean = np.einsum("stp,st->sp", x, w) / n[:, None]
    y_mean = (y * w).sum(axis=1) / n
    xc = (x - x_mean[:, None, :]) * w[:, :, None]
    yc = (y - y_mean[:, None]) * w
    # Masked rows are all-zero after centring, so they do not change the least-squares solution.
    coef = np.einsum("spt,st->sp", np.linalg.pinv(xc, rtol=np.finfo(float).eps * max(xc.shape[1:])), yc)
    return y_mean - np.einsum("sp,sp->s", x_mean, coef), coef


def metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and MAPE (in percent, over non-zero actuals) where the actual is known."""
    keep = ~np.isnan(actual) & ~np.isnan(predicted)
    if not keep.any():
        return dict.fromkeys(METRICS, math.nan)
    err = actual[keep] - predicted[keep]
    mse = float(np.mean(err ** 2))
    nonzero = actual[keep] != 0
    mape = float(np.mean(np.abs(err[nonzero] / actual[keep][nonzero])) * 100) if nonzero.any() else math.nan
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(err))), "mape": mape}


def batch_metrics(actual: np.ndarray, predicted: np.ndarray) -> list[dict[str, float]]:
    """:func:`metrics` of many series at once: (S, H) actuals and predictions, one dict per series."""
    keep = ~np.isnan(actual) & ~np.isnan(predicted)
    err = np.where(keep, actual - predicted, 0.0)
    n = keep.sum(axis=1)
    nonzero = keep & (actual != 0)
    m = nonzero.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = (err ** 2).sum(axis=1) / n
        mae = np.abs(err).sum(axis=1) / n
        mape = np.where(nonzero, np.abs(err / np.where(nonzero, actual, 1.0)), 0.0).sum(axis=1) / m * 100
    mse, mae = np.where(n > 0, mse, np.nan), np.where(n > 0, mae, np.nan)
    mape = np.where(m > 0, mape, np.nan)
    return [{"mse": a, "rmse": math.sqrt(a), "mae": b, "mape": c}
            for a, b, c in zip(mse.tolist(), mae.tolist(), mape.tolist(), strict=True)]


# ---------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True, slots=True)
class Forecaster:
    """A trained model of one series as plain data (what ``model.json`` holds)."""

    name: str
    kind: ModelKind
    ids: dict[str, str]
    freq: str
    horizon: int
    target_column: str
    timestamp_column: str
    exog_columns: tuple[str, ...]
    intercept: float
    coef: np.ndarray  # (k + 1 + LAGS,) for lr, empty for fallbacks
    tail_end: pd.Timestamp  # last week of the training data
    tail: np.ndarray  # the last SEASON weeks of the target up to tail_end, NaN where missing
    mean: float
    metrics: dict[str, float] = field(default_factory=dict)
    fallback_reason: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    trained_weeks: int = 0

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.exog_columns, WEEK_FEATURE, *LAG_FEATURES) if self.kind == ModelKind.LR else ()

    @property
    def is_fallback(self) -> bool:
        return self.kind in FALLBACKS

    def properties(self) -> dict[str, str]:
        """Metrics as strings (registered-model properties), plus the fallback reason if any."""
        props = {m: repr(float(self.metrics.get(m, math.nan))) for m in METRICS}
        if self.fallback_reason:
            props["fallback_reason"] = self.fallback_reason
        return props

    def next_week(self) -> pd.Timestamp:
        return self.tail_end + offset_of(self.freq)

    def seeds(self, origin: pd.Timestamp, history: Mapping[pd.Timestamp, float] | None = None,
              *, periods: int = LAGS) -> np.ndarray:
        """Known target values of the ``periods`` weeks ending at ``origin`` (oldest first).

        ``history`` values override the stored training tail; gaps are forward filled.

        Raises:
            SeriesError: none of those weeks has a known value.
        """
        if not history and origin == self.tail_end and len(self.tail) >= periods:
            values = self.tail[-periods:]
        else:
            weeks = calendar(end=origin, periods=periods, freq=self.freq)
            tail_weeks = calendar(end=self.tail_end, periods=len(self.tail), freq=self.freq)
            known = dict(zip(tail_weeks, self.tail, strict=True))
            if history:
                known.update(history)
            values = np.array([known.get(t, np.nan) for t in weeks], dtype=float)
        if np.isnan(values).all():
            raise SeriesError(f"no known {self.target_column} in the {periods} weeks up to {origin.date()}: "
                              f"the model's data ends {self.tail_end.date()}; send the history before the forecast")
        return _ffill(values)

    def forecast(self, start: pd.Timestamp | None = None, *, steps: int, exog: np.ndarray | None = None,
                 history: Mapping[pd.Timestamp, float] | None = None) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """Forecast ``steps`` weeks from ``start`` (default: the week after training).

        Args:
            exog: (steps, k) future values of ``exog_columns`` (needed by ``lr`` only).
            history: known target values by week, overriding the stored tail for the lags.
        Raises:
            SeriesError: the start is not on the calendar, exog has the wrong shape or NaNs, or no history.
        """
        result = forecast_many([self], [start], steps=[steps], exog=[exog], history=[history])[0]
        if isinstance(result, SeriesError):
            raise result
        return result

    # -- plain data ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "model_type": str(self.kind), "ids": self.ids, "tags": self.tags,
            "freq": self.freq, "horizon": self.horizon, "target_column": self.target_column,
            "timestamp_column": self.timestamp_column, "exog_columns": list(self.exog_columns),
            "features": list(self.features), "intercept": self.intercept, "coef": self.coef.tolist(),
            "tail_end": self.tail_end.isoformat(), "tail": _json_list(self.tail),
            "mean": self.mean, "metrics": {m: _json_float(v) for m, v in self.metrics.items()},
            "fallback_reason": self.fallback_reason, "trained_weeks": self.trained_weeks,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Forecaster:
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} model (format={raw.get('format')!r})")
        return cls(
            name=raw["name"], kind=ModelKind(raw["model_type"]), ids=dict(raw["ids"]), freq=raw["freq"],
            horizon=int(raw["horizon"]), target_column=raw["target_column"], timestamp_column=raw["timestamp_column"],
            exog_columns=tuple(raw["exog_columns"]), intercept=float(raw["intercept"]),
            coef=np.asarray(raw["coef"], dtype=float), tail_end=pd.Timestamp(raw["tail_end"]),
            tail=np.array([np.nan if v is None else v for v in raw["tail"]], dtype=float), mean=float(raw["mean"]),
            metrics={m: float(v) for m, v in raw.get("metrics", {}).items()},
            fallback_reason=raw.get("fallback_reason", ""), tags=dict(raw.get("tags", {})),
            trained_weeks=int(raw.get("trained_weeks", 0)),
        )

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``<directory>/model.json`` (one write of one JSON document)."""
        text = json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))
        try:
            os.mkdir(directory)  # the usual case, without pathlib's per-call cost (thousands of models per call)
        except FileExistsError:
            pass
        except FileNotFoundError:
            Path(directory).mkdir(parents=True, exist_ok=True)
        with open(os.path.join(directory, MODEL_FILE), "w", encoding="utf-8") as f:
            f.write(text)
        return Path(directory)


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else repr(float(value))


def _json_list(values: np.ndarray) -> list[float | None]:
    """A float array as JSON values, NaN as null."""
    items = values.tolist()
    return [None if v != v else v for v in items] if np.isnan(values).any() else items


def load_model(directory: str | os.PathLike[str]) -> Forecaster:
    """Load ``<directory>/model.json`` (plain JSON, no pickle).

    Azure ML keeps a registered folder's own name under the version folder, so
    ``<directory>/<folder>/model.json`` is found too.

    Raises:
        FileNotFoundError: no model.json there; ValueError/KeyError: not a forecaster model.
    """
    path = model_file(directory)
    if path is None:
        raise FileNotFoundError(f"no {MODEL_FILE} in {directory} or its sub-folders")
    with open(path, encoding="utf-8") as f:
        return Forecaster.from_dict(json.load(f))


def model_file(directory: str | os.PathLike[str]) -> Path | None:
    direct = Path(directory) / MODEL_FILE
    if direct.is_file():
        return direct
    nested = sorted(Path(directory).glob(f"*/{MODEL_FILE}"))
    return nested[0] if nested else None


def latest_version_dir(models_dir: str | os.PathLike[str], name: str) -> Path | None:
    """``<models_dir>/<name>/<highest numeric version>`` in the registered-model layout, or None."""
    base = Path(models_dir) / name
    try:
        versions = [int(e.name) for e in os.scandir(base) if e.is_dir() and e.name.isdigit()]
    except OSError:
        return None
    return base / str(max(versions)) if versions else None


# ---------------------------------------------------------------------------------------------
# Fitting many series at once


@dataclass(frozen=True, slots=True)
class FitResult:
    series: Series
    model: Forecaster | None
    error: str = ""  # set when no model at all could be made


def _min_rows(k: int) -> int:
    """Complete rows needed to fit: twice the number of parameters (exog, week, lags, intercept)."""
    return 2 * (k + 1 + LAGS + 1)


def _pack(series: Sequence[Series], k: int, freq: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left-aligned (S, T) target, (S, T, k) exog, (S, T) week of year, (S,) lengths; NaN padding."""
    lengths = np.array([len(s.target) for s in series])
    t = int(lengths.max())
    y = np.full((len(series), t), np.nan)
    x = np.full((len(series), t, k), np.nan)
    weeks = np.zeros((len(series), t))
    week_cache: dict[pd.Timestamp, np.ndarray] = {}
    for i, s in enumerate(series):
        n = lengths[i]
        y[i, :n] = s.target
        x[i, :n] = s.exog
        if s.start not in week_cache:
            week_cache[s.start] = iso_weeks(s.start, t, freq)[1]
        weeks[i] = week_cache[s.start]
    return y, x, weeks, lengths


def fit_many(series: Sequence[Series], settings: ScriptSettings, exog_columns: Sequence[str]) -> list[FitResult]:
    """Fit every series: ``lr`` where it can be fitted, else a fallback with its reason.

    All ``lr`` series are solved together (two batched solves: hold-out fit and full refit).
    """
    k = len(exog_columns)
    results: list[FitResult | None] = [None] * len(series)
    if not series:
        return []
    y, x, weeks, lengths = _pack(series, k, settings.freq)
    design = _design(y, x, weeks)
    t_idx = np.arange(y.shape[1])
    complete = ~np.isnan(design).any(axis=2) & ~np.isnan(y)
    cut = lengths - settings.test_size
    train_rows = complete & (t_idx[None, :] < cut[:, None])
    need = _min_rows(k)
    train_count, all_count = train_rows.sum(axis=1), complete.sum(axis=1)
    known = ~np.isnan(y)
    holdout_known = (known & (t_idx[None, :] >= np.maximum(cut, 0)[:, None])).sum(axis=1)
    # Only the series that cannot fit need their reason worded (one by one); the checks are vectorised.
    low = np.where(known, y, np.inf).min(axis=1)
    high = np.where(known, y, -np.inf).max(axis=1)
    lr = ~((known.any(axis=1) & (low == high)) | (train_count < need) | (all_count < need) | (holdout_known == 0))
    for i in np.flatnonzero(~lr):
        reason = _unfit_reason(series[i], int(train_count[i]), int(all_count[i]), need, settings,
                               holdout_known=int(holdout_known[i]))
        results[i] = _fallback(series[i], reason, settings, exog_columns)
    if lr.any():
        _fit_lr(series, results, lr, y, x, weeks, lengths, design, train_rows, complete, settings, exog_columns)
    return [r for r in results if r is not None]


def _unfit_reason(s: Series, train_rows: int, all_rows: int, need: int, settings: ScriptSettings,
                  *, holdout_known: int) -> str:
    observed = s.target[~np.isnan(s.target)]
    notes = f" ({'; '.join(s.notes)})" if s.notes else ""
    if observed.size and observed.min() == observed.max():
        return f"target {settings.target_column} is constant ({observed[0]:g} in all {observed.size} weeks){notes}"
    if train_rows < need or all_rows < need or holdout_known == 0:
        gaps = int(np.isnan(s.target).sum())
        return (f"too short to fit lr: {train_rows} complete week(s) before the last {settings.test_size} held-out "
                f"weeks and {holdout_known} known held-out week(s) (need >= {need} and >= 1); series has "
                f"{len(s.target)} weeks, {gaps} without {settings.target_column}{notes}")
    return ""


def _fallback(s: Series, reason: str, settings: ScriptSettings, exog_columns: Sequence[str]) -> FitResult:
    observed = ~np.isnan(s.target)
    if not observed.any():
        return FitResult(s, None, f"no usable {settings.target_column} value in {len(s.target)} week(s)"
                                  + (f" ({'; '.join(s.notes)})" if s.notes else ""))
    tail = _tail(s.target)
    constant = np.nanmin(s.target) == np.nanmax(s.target)
    kind = ModelKind.SNAIVE if not constant and not np.isnan(tail).any() and len(tail) == SEASON else ModelKind.MEAN
    # Hold-out metrics of the fallback itself, fitted on the weeks before the held-out ones.
    cut = len(s.target) - settings.test_size
    scores = dict.fromkeys(METRICS, math.nan)
    if cut > 0 and observed[:cut].any():
        train_mean = float(np.nanmean(s.target[:cut]))
        actual = s.target[cut:]
        if kind == ModelKind.SNAIVE:
            back = np.arange(cut, len(s.target)) - SEASON
            pred = np.where(back >= 0, s.target[np.maximum(back, 0)], np.nan)
            pred = np.where(np.isnan(pred), train_mean, pred)
        else:
            pred = np.full(actual.shape, train_mean)
        scores = metrics(actual, pred)
    model = Forecaster(
        name=model_name(settings.model_type, s.ids), kind=kind, ids=s.ids, freq=settings.freq,
        horizon=settings.horizon, target_column=settings.target_column, timestamp_column=settings.timestamp_column,
        exog_columns=tuple(exog_columns), intercept=0.0, coef=np.empty(0), tail_end=s.end,
        tail=tail, mean=float(np.nanmean(s.target)), metrics=scores, fallback_reason=reason, tags=s.tags,
        trained_weeks=int(observed.sum()))
    return FitResult(s, model)


def _tail(target: np.ndarray) -> np.ndarray:
    return target[-SEASON:].astype(float).copy()


def _fit_lr(series: Sequence[Series], results: list[FitResult | None], lr: np.ndarray, y: np.ndarray,
            x: np.ndarray, weeks: np.ndarray, lengths: np.ndarray, design: np.ndarray, train_rows: np.ndarray,
            complete: np.ndarray, settings: ScriptSettings, exog_columns: Sequence[str]) -> None:
    sel = np.flatnonzero(lr)
    y, x, weeks, lengths = y[sel], x[sel], weeks[sel], lengths[sel]
    design, train_rows, complete = design[sel], train_rows[sel], complete[sel]
    # Hold-out: fit before the cut, forecast the held-out weeks recursively from the cut.
    b0, b = solve_ols(design, y, train_rows)
    h = settings.test_size
    cut = lengths - h
    rows = np.arange(len(sel))[:, None]
    steps = cut[:, None] + np.arange(h)[None, :]
    y_seed = _ffill(y)
    seed_idx = cut[:, None] + np.arange(-LAGS, 0)[None, :]
    seeds = y_seed[rows, seed_idx]
    future_x = np.swapaxes(_ffill(np.swapaxes(x, 1, 2)), 1, 2)[rows, steps]
    held_out = recurse(b0, b, seeds, future_x, weeks[rows, steps])
    scores = batch_metrics(y[rows, steps], held_out)
    # Full refit on every complete week.
    c0, c = solve_ols(design, y, complete)
    means = np.nanmean(y, axis=1)  # padding is NaN, so this is each series' own mean
    trained = complete.sum(axis=1)
    exog_columns = tuple(exog_columns)
    for j, i in enumerate(sel.tolist()):
        s = series[i]
        model = Forecaster(
            name=model_name(settings.model_type, s.ids), kind=ModelKind.LR, ids=s.ids, freq=settings.freq,
            horizon=settings.horizon, target_column=settings.target_column,
            timestamp_column=settings.timestamp_column, exog_columns=exog_columns, intercept=float(c0[j]),
            coef=c[j].copy(), tail_end=s.end, tail=_tail(s.target), mean=float(means[j]), metrics=scores[j],
            tags=s.tags, trained_weeks=int(trained[j]))
        results[i] = FitResult(s, model)


# ---------------------------------------------------------------------------------------------
# Forecasting many models at once


def forecast_many(models: Sequence[Forecaster], starts: Sequence[pd.Timestamp | None], *, steps: Sequence[int],
                  exog: Sequence[np.ndarray | None],
                  history: Sequence[Mapping[pd.Timestamp, float] | None] | None = None,
                  ) -> list[tuple[pd.DatetimeIndex, np.ndarray] | SeriesError]:
    """Forecast many models at once; ``lr`` models with the same feature count are stepped together.

    Returns, per model, ``(week stamps, values)`` or the :class:`SeriesError` saying why that one
    request cannot be answered (the others are not affected).
    """
    history = history or [None] * len(models)
    out: list[tuple[pd.DatetimeIndex, np.ndarray] | SeriesError] = [SeriesError("not forecast")] * len(models)
    groups: dict[int, list[int]] = {}
    prepared: dict[int, tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]] = {}
    for i, model in enumerate(models):
        try:
            prepared[i] = stamps, _, seeds, _ = check_request(model, starts[i], steps[i], exog[i], history[i])
        except SeriesError as e:
            out[i] = e
            continue
        if model.kind == ModelKind.LR:
            groups.setdefault(len(model.exog_columns), []).append(i)
        else:
            out[i] = (stamps, _fallback_forecast(model, seeds, len(stamps)))
    for members in groups.values():
        h = max(steps[i] for i in members)
        k = len(models[members[0]].exog_columns)
        x = np.zeros((len(members), h, k))
        weeks = np.zeros((len(members), h))
        for j, i in enumerate(members):
            n = steps[i]
            x[j, :n] = prepared[i][3]
            weeks[j, :n] = prepared[i][1]
        pred = recurse(np.array([models[i].intercept for i in members]), np.stack([models[i].coef for i in members]),
                       np.stack([prepared[i][2] for i in members]), x, weeks)
        for j, i in enumerate(members):
            out[i] = (prepared[i][0], pred[j, :steps[i]])
    return out


def check_request(model: Forecaster, start: pd.Timestamp | None, steps: int, exog: np.ndarray | None,
                  history: Mapping[pd.Timestamp, float] | None = None,
                  ) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """Validate one forecast request; returns (week stamps, ISO weeks, lag seeds, exog).

    Raises:
        SeriesError: with the reason (start off the calendar or too far, wrong exog shape, NaNs).
    """
    offset = offset_of(model.freq)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise SeriesError(f"forecast horizon {steps!r} is not allowed: expected a whole number >= 1")
    start = model.next_week() if start is None else pd.Timestamp(start)
    if not offset.is_on_offset(start):
        raise SeriesError(f"forecast start {start.date()} is not on the model's {model.freq} calendar")
    origin = start - offset
    k = len(model.exog_columns)
    if model.kind == ModelKind.LR:
        if exog is None and k:
            raise SeriesError(f"future values of {', '.join(model.exog_columns)} are needed")
        x = np.zeros((steps, 0)) if exog is None else np.asarray(exog, dtype=float)
        if x.shape != (steps, k):
            raise SeriesError(f"future data has {x.shape[0]} week(s) x {x.shape[1] if x.ndim > 1 else 0} column(s); "
                              f"expected {steps} x {k} ({', '.join(model.exog_columns) or 'no columns'})")
        if np.isnan(x).any():
            row, col = np.argwhere(np.isnan(x))[0]
            raise SeriesError(f"future {model.exog_columns[col]} is missing for step {row + 1} of {steps}")
        periods = LAGS
    else:
        x = np.zeros((steps, 0))
        periods = SEASON if model.kind == ModelKind.SNAIVE else 1
    if origin > model.tail_end and not history:
        raise SeriesError(f"forecast start {start.date()} is not the week after the model's data "
                          f"({model.tail_end.date()}) and no history was sent for the weeks in between")
    seeds = model.seeds(origin, history, periods=periods) if model.kind != ModelKind.MEAN else np.array([model.mean])
    stamps, weeks = iso_weeks(start, steps, model.freq)
    return stamps, weeks, seeds, x


def _fallback_forecast(model: Forecaster, seeds: np.ndarray, steps: int) -> np.ndarray:
    if model.kind == ModelKind.MEAN:
        return np.full(steps, model.mean)
    season = np.where(np.isnan(seeds), model.mean, seeds)
    return season[np.arange(steps) % SEASON]
