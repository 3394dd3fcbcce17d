"""The dataset schema: which columns identify a series, which is the target, the time, the tags.

It is configuration (``pipelines/configuration/script_settings.json``, the original accelerator's
keys plus ``freq`` and ``horizon``), so a retailer's data with other column names works. Every
column that is not an id, the target, the time, a tag or dropped is an exogenous feature.

The same file drives validation, training, forecasting and scoring; ``scoring/`` has its own small
loader because it never imports ``shared``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT

DEFAULT_SETTINGS_FILE = REPO_ROOT / "pipelines" / "configuration" / "script_settings.json"

# The "enough rows" rule and the defaults are scoring's (scoring/forecaster/settings.py
# ``min_train_rows``, the rule training applies); they are mirrored here because shared/ cannot
# import scoring/ (deployed on its own, put on sys.path only inside the runner's worker processes).
# tests/unit/test_schema_rules_agree.py loads both readers and keeps every shared field and the
# verdict equal.
LAGS = 4  # lags 1..4 of the target: lr and demand cannot fit a series' first LAGS weeks
LAGGED = ("lr", "demand")
STATIC = ("loglog",)
BASELINES = ("naive", "snaive", "mean")
MODEL_KINDS = (*LAGGED, *STATIC, *BASELINES)
DEFAULT_CANDIDATES = MODEL_KINDS
DEFAULT_TEST_SIZE = 20
DEFAULT_HORIZON = 8
DEFAULT_FOLDS = 4


def fit_rows(kind: str, n_exog: int) -> int:
    """Complete weeks a model type needs to be fitted: twice its parameters."""
    if kind in LAGGED:
        return 2 * (n_exog + 1 + LAGS + 1)  # exog, week of year, lags, intercept
    if kind in STATIC:
        return 2 * (n_exog + 1)
    return 1


def min_train_rows(model_type: str, *, test_size: int, horizon: int, backtest_folds: int,
                   candidates: Iterable[str], n_exog: int) -> int:
    """Fewest weeks (no gaps) a series needs for training to fit ``model_type`` rather than a
    fallback; ``auto``: at least one regression candidate through every backtest fold."""
    if model_type in BASELINES:
        return 1
    if model_type != "auto":
        return test_size + (LAGS if model_type in LAGGED else 0) + fit_rows(model_type, n_exog)
    held_out = max(test_size, horizon * backtest_folds)
    needs = [held_out + (LAGS if k in LAGGED else 0) + fit_rows(k, n_exog) for k in candidates
             if k in (*LAGGED, *STATIC)]
    return min(needs) if needs else 1


@dataclass(frozen=True, slots=True)
class DatasetSchema:
    id_columns: tuple[str, ...]
    target_column: str
    timestamp_column: str
    tag_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    model_type: str = "lr"
    test_size: int = DEFAULT_TEST_SIZE
    freq: str = "W-THU"
    horizon: int = DEFAULT_HORIZON
    backtest_folds: int = DEFAULT_FOLDS
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    source: str = field(default="", compare=False)  # the file it came from, for messages

    @classmethod
    def load(cls, path: str | Path | None = None) -> DatasetSchema:
        """Read a settings file (None: the repo's default); :class:`InvalidValue` names the bad key."""
        file = Path(path) if path is not None else DEFAULT_SETTINGS_FILE
        try:
            raw = file.read_text(encoding="utf-8")
        except OSError as e:
            raise InvalidValue(f"cannot read dataset settings file {file}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise InvalidValue(f"dataset settings file {file} is not UTF-8 text") from None
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise InvalidValue(f"dataset settings file {file} is not valid JSON ({e})") from None
        return cls.from_dict(body, source=str(file))

    @classmethod
    def from_dict(cls, body: Any, *, source: str = "dataset settings") -> DatasetSchema:
        if not isinstance(body, dict):
            raise InvalidValue(f"{source}: expected a JSON object with keys {', '.join(_REQUIRED)}")
        missing = [k for k in _REQUIRED if k not in body]
        if missing:
            raise InvalidValue(f"{source}: missing key(s) {', '.join(missing)}; required: {', '.join(_REQUIRED)}")
        schema = cls(
            id_columns=_names(body, "id_columns", source, allow_empty=False),
            target_column=_name(body, "target_column", source),
            timestamp_column=_name(body, "timestamp_column", source),
            tag_columns=_names(body, "tag_columns", source),
            drop_columns=_names(body, "drop_columns", source),
            model_type=_model_type(body, source),
            test_size=_count(body, "test_size", source, default=DEFAULT_TEST_SIZE),
            freq=_freq(body, source),
            horizon=_count(body, "horizon", source, default=DEFAULT_HORIZON),
            backtest_folds=_count(body, "backtest_folds", source, default=DEFAULT_FOLDS, low=2),
            candidates=_candidates(body, source),
            source=source,
        )
        schema._check_overlaps()
        return schema

    def _check_overlaps(self) -> None:
        roles = {"id_columns": self.id_columns, "target_column": (self.target_column,),
                 "timestamp_column": (self.timestamp_column,), "tag_columns": self.tag_columns}
        seen: dict[str, str] = {}
        for role, names in roles.items():
            for name in names:
                if name in seen:
                    raise InvalidValue(f"{self.source}: column {name!r} is in both {seen[name]} and {role}; "
                                       "each column has one role")
                seen[name] = role

    def to_dict(self) -> dict[str, Any]:
        return {"id_columns": list(self.id_columns), "target_column": self.target_column,
                "timestamp_column": self.timestamp_column, "tag_columns": list(self.tag_columns),
                "drop_columns": list(self.drop_columns), "model_type": self.model_type,
                "test_size": self.test_size, "freq": self.freq, "horizon": self.horizon,
                "backtest_folds": self.backtest_folds, "candidates": list(self.candidates)}

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns every training file must have (inference files may lack the target)."""
        return (*self.id_columns, self.timestamp_column, self.target_column, *self.tag_columns)

    def min_train_rows(self, *, n_exog: int) -> int:
        """Fewest rows a series with ``n_exog`` feature columns needs for training to fit the
        ``model_type`` rather than a fallback: the rule of scoring/forecaster/settings.py."""
        return min_train_rows(self.model_type, test_size=self.test_size, horizon=self.horizon,
                              backtest_folds=self.backtest_folds, candidates=self.candidates, n_exog=n_exog)

    def feature_columns(self, columns: Iterable[str]) -> list[str]:
        """The exogenous features among ``columns`` (in their order): every column without a role."""
        taken = {*self.id_columns, self.target_column, self.timestamp_column, *self.tag_columns,
                 *self.drop_columns}
        return [c for c in columns if c not in taken]

    def series_values(self, row: Mapping[str, Any] | Sequence[Any]) -> tuple[str, ...]:
        """The id values of a row (a mapping with the id columns, or the values in id_columns order)."""
        if isinstance(row, Mapping) or hasattr(row, "keys"):
            keyed: Any = row  # a Mapping, or keyed by name without being one (a pandas Series, a sqlite3.Row)
            values = [keyed[c] for c in self.id_columns]
        else:
            values = list(row)
            if len(values) != len(self.id_columns):
                raise InvalidValue(f"expected {len(self.id_columns)} id values ({', '.join(self.id_columns)}), "
                                   f"got {len(values)}: {values!r}")
        return tuple(_text(v) for v in values)

    def series_id(self, row: Mapping[str, Any] | Sequence[Any]) -> str:
        """One series' readable id, also its file stem: ``Store1000_dominicks`` for Store/Brand."""
        values = self.series_values(row)
        return f"{self.id_columns[0]}{values[0]}" + "".join(f"_{v}" for v in values[1:])

    def series_file_name(self, row: Mapping[str, Any] | Sequence[Any], *, extension: str = ".csv") -> str:
        """The file a one-series file should be named: ``Store1000_dominicks.csv``."""
        return self.series_id(row) + extension

    def series_named_by(self, file_name: str) -> tuple[str, ...] | None:
        """The id values a file name claims (``Store1000_dominicks.csv`` -> ("1000", "dominicks")), or
        None when the name does not follow the one-series naming."""
        stem = Path(file_name).stem  # "Store1000_minute.maid.csv" -> "Store1000_minute.maid"
        prefix = self.id_columns[0]
        if not stem.startswith(prefix) or len(stem) == len(prefix):
            return None
        values = stem[len(prefix):].split("_", len(self.id_columns) - 1)
        if len(values) != len(self.id_columns) or not all(values):
            return None
        return tuple(values)


_REQUIRED = ("id_columns", "target_column", "timestamp_column", "tag_columns", "drop_columns", "model_type",
             "test_size")


def _text(value: Any) -> str:
    """Id values as text: ints read from CSV and from Parquet (or floats like 1000.0) look the same."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _name(body: dict[str, Any], key: str, source: str) -> str:
    value = body[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{source}: key {key!r} is {value!r}; expected a non-empty string (a column name)")
    return value


def _names(body: dict[str, Any], key: str, source: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    value = body[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidValue(f"{source}: key {key!r} is {value!r}; expected a list of column names (strings)")
    if not value and not allow_empty:
        raise InvalidValue(f"{source}: key {key!r} is empty; list at least one column that identifies a series")
    if len(set(value)) != len(value):
        raise InvalidValue(f"{source}: key {key!r} repeats a column: {value!r}")
    return tuple(value)


def _count(body: dict[str, Any], key: str, source: str, *, default: int, low: int = 1) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InvalidValue(f"{source}: key {key!r} is {value!r}; expected a whole number of periods >= {low}")
    return value


def _model_type(body: dict[str, Any], source: str) -> str:
    value = _name(body, "model_type", source)
    if value not in ("auto", *MODEL_KINDS):
        raise InvalidValue(f"{source}: key 'model_type' is {value!r}; expected one of "
                           f"{', '.join(repr(k) for k in ('auto', *MODEL_KINDS))}")
    return value


def _candidates(body: dict[str, Any], source: str) -> tuple[str, ...]:
    value = body.get("candidates", list(DEFAULT_CANDIDATES))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v in MODEL_KINDS for v in value):
        raise InvalidValue(f"{source}: key 'candidates' is {value!r}; expected a non-empty list of "
                           f"{', '.join(repr(k) for k in MODEL_KINDS)}")
    return tuple(value)


def _freq(body: dict[str, Any], source: str) -> str:
    value = body.get("freq", "W-THU")
    if not isinstance(value, str):
        raise InvalidValue(f"{source}: key 'freq' is {value!r}; expected a pandas frequency like 'W-THU' or 'D'")
    try:
        pd.tseries.frequencies.to_offset(value)
    except ValueError:
        raise InvalidValue(f"{source}: key 'freq' is {value!r}; expected a pandas frequency like 'W-THU' "
                           "or 'D'") from None
    return value
