"""The dataset schema has two readers, one rule: ``scoring/forecaster/settings.py`` (``ScriptSettings``,
deployed on its own, so it never imports ``shared/``) owns it and ``shared/data/schema.py``
(``DatasetSchema``, what ``manymodels data validate`` checks with) mirrors it. These tests keep the
two equal on the repo's settings files and on variants, and keep the "enough rows" verdict equal to
what training does, so validation never passes a series that training then sends to a fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import forecaster as fc
import numpy as np
import pandas as pd
import pytest

from shared.data.schema import DEFAULT_SETTINGS_FILE, DatasetSchema
from shared.data.validate import check_file

SETTINGS_FILES = sorted(DEFAULT_SETTINGS_FILE.parent.glob("script_settings*.json"))
VARIANTS: list[dict[str, Any]] = [
    {}, {"model_type": "lr"}, {"model_type": "demand"}, {"model_type": "loglog"}, {"model_type": "naive"},
    {"test_size": 40}, {"test_size": 3, "horizon": 2}, {"horizon": 4, "backtest_folds": 2},
    {"candidates": ["lr", "naive"]}, {"candidates": ["demand", "loglog", "mean"], "backtest_folds": 3},
    {"model_type": "lr", "test_size": 1},
]
DROPPED_OPTIONAL = ("freq", "horizon", "backtest_folds", "candidates")


def _body(file: Path, variant: dict[str, Any]) -> dict[str, Any]:
    return {**json.loads(file.read_text()), **variant}


def _readers(body: dict[str, Any]) -> tuple[fc.ScriptSettings, DatasetSchema]:
    return fc.ScriptSettings.from_dict(body), DatasetSchema.from_dict(body)


@pytest.mark.parametrize("file", SETTINGS_FILES, ids=lambda f: f.name)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: json.dumps(v) if v else "as-is")
def test_both_readers_agree_on_every_shared_field_and_on_enough_rows(file: Path, variant: dict[str, Any]) -> None:
    scoring, shared = _readers(_body(file, variant))
    mine, theirs = scoring.to_dict(), shared.to_dict()
    common = mine.keys() & theirs.keys()
    assert {"test_size", "horizon", "model_type", "backtest_folds", "candidates"} <= common
    assert {k: mine[k] for k in common} == {k: theirs[k] for k in common}
    for n_exog in (0, 2, 5):
        need = scoring.min_train_rows(n_exog=n_exog)
        assert shared.min_train_rows(n_exog=n_exog) == need, (file.name, variant, n_exog)
        for rows in range(1, 61):  # the verdict for series lengths 1..60
            assert (rows >= shared.min_train_rows(n_exog=n_exog)) == (rows >= need)


def test_the_defaults_are_the_same() -> None:
    body = {k: v for k, v in json.loads(DEFAULT_SETTINGS_FILE.read_text()).items() if k not in DROPPED_OPTIONAL}
    scoring, shared = _readers(body)
    assert {k: v for k, v in scoring.to_dict().items() if k in shared.to_dict()} == shared.to_dict()
    bare = {"id_columns": ["Store"], "target_column": "Quantity", "timestamp_column": "WeekStarting"}
    scoring = fc.ScriptSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in bare.items()})
    shared = DatasetSchema(**{k: tuple(v) if isinstance(v, list) else v for k, v in bare.items()})
    assert {k: v for k, v in scoring.to_dict().items() if k in shared.to_dict()} == shared.to_dict()


def _series(store: int, weeks: int, *, seed: int) -> pd.DataFrame:
    """A positive AR series driven by price and adverts (two exogenous columns), no gaps."""
    rng = np.random.default_rng(seed)
    price = rng.uniform(1.5, 3.5, weeks).round(2)
    advert = rng.integers(0, 2, weeks)
    q = np.zeros(weeks)
    for t in range(weeks):
        q[t] = 5000 - 900 * price[t] + 700 * advert[t] + 0.3 * q[t - 1] * (t > 0) + rng.normal(0, 150)
    return pd.DataFrame({"WeekStarting": pd.date_range("1990-06-14", periods=weeks, freq="W-THU").strftime("%Y-%m-%d"),
                         "Store": str(store), "Brand": "dominicks", "Quantity": q.round(), "Advert": advert,
                         "Price": price, "Revenue": (q * price).round(2), "StoreGroup10": "1000",
                         "StoreGroup100": "100", "StoreGroup1000": "10"})


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: json.dumps(v) if v else "repo")
def test_validation_passes_exactly_the_series_training_fits_without_a_fallback(tmp_path: Path,
                                                                               variant: dict[str, Any]) -> None:
    body = _body(DEFAULT_SETTINGS_FILE, variant)
    settings, schema = _readers(body)
    frame = pd.concat([_series(n, n, seed=n) for n in range(1, 61)], ignore_index=True)
    series, failures = fc.split_series(frame, settings)
    assert not failures
    fitted = {int(r.series.ids["Store"]): not r.model.is_fallback
              for r in fc.fit_many(series, settings, settings.exog_columns(frame.columns))}
    need = settings.min_train_rows(n_exog=2)
    assert fitted == {n: n >= need for n in range(1, 61)}

    csv = tmp_path / "train.csv"
    frame.to_csv(csv, index=False)
    short = {f.series for f in check_file(csv, schema, kind="train").findings if "training needs" in f.problem}
    assert short == {schema.series_id({"Store": n, "Brand": "dominicks"}) for n in range(1, need)}


@pytest.mark.parametrize("kind", list(fc.ModelKind))
def test_the_rule_counts_the_rows_each_model_type_needs(kind: fc.ModelKind) -> None:
    from forecaster.models import module_of
    from forecaster.settings import fit_rows

    for n_exog in range(6):
        assert fit_rows(kind, n_exog) == module_of(kind).min_rows(kind, n_exog)
