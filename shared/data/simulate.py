"""OJ Sales Simulated-shaped sample data, calibrated from the real Dominick's data.

Like the original accelerator's data set: weekly (Thursday) sales 1990-06-14..1992-10-01 of
stores numbered from 1000, three brands each, columns ``WeekStarting, Store, Brand, Quantity,
Advert, Price, Revenue`` plus the tags ``StoreGroup10/100/1000`` (``100X``, ``10XX``, ``1XXX``, as
the accelerator's data preparation added them), split into ``train/`` (weeks before 1992-05-28)
and ``inference/`` (from 1992-05-28), one file per series ``Store{store}_{brand}.csv``.

Every series is generated at once with numpy (arrays of series x weeks) and formatted as CSV text
without pandas, so 11,973 series (23,946 files) take seconds.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shared.data.calibration import BRANDS, Calibration, calibrate
from shared.errors import InvalidValue

FIRST_WEEK = "1990-06-14"
LAST_WEEK = "1992-10-01"
SPLIT_WEEK = "1992-05-28"  # first inference week: the accelerator's split (train is strictly before)
FIRST_STORE = 1000
COLUMNS = ("WeekStarting", "Store", "Brand", "Quantity", "Advert", "Price", "Revenue",
           "StoreGroup10", "StoreGroup100", "StoreGroup1000")
MAX_SERIES = 100_000  # about 0.6 GB of arrays; 8x the original data set


@dataclass(frozen=True, slots=True)
class SimulatedSales:
    """Series x weeks arrays of one simulation (series in store-major, brand order)."""

    weeks: pd.DatetimeIndex
    stores: np.ndarray  # (series,)
    brands: np.ndarray  # (series,) brand names
    quantity: np.ndarray  # (series, weeks) int64 >= 0
    advert: np.ndarray  # (series, weeks) int8 0/1
    price_cents: np.ndarray  # (series, weeks) int64

    @property
    def series(self) -> int:
        return len(self.stores)

    def to_frame(self) -> pd.DataFrame:
        """One long table, the columns of the files (for tests and small uses)."""
        n, t = self.quantity.shape
        stores = np.repeat(self.stores, t)
        price = self.price_cents.ravel() / 100
        quantity = self.quantity.ravel()
        return pd.DataFrame({
            "WeekStarting": np.tile(self.weeks.strftime("%Y-%m-%d").to_numpy(), n),
            "Store": stores, "Brand": np.repeat(self.brands, t), "Quantity": quantity,
            "Advert": self.advert.ravel().astype(np.int64), "Price": price,
            "Revenue": (quantity * self.price_cents.ravel()) / 100,
            **{name: [_store_group(s, digits) for s in stores] for name, digits in _GROUPS},
        })


@dataclass(frozen=True, slots=True)
class SimulationResult:
    out: Path
    series: int
    seed: int
    train_files: int
    inference_files: int
    train_weeks: int
    inference_weeks: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"out": str(self.out), "series": self.series, "seed": self.seed, "train_files": self.train_files,
                "inference_files": self.inference_files, "train_weeks": self.train_weeks,
                "inference_weeks": self.inference_weeks, "seconds": round(self.seconds, 3)}


_GROUPS = (("StoreGroup10", 1), ("StoreGroup100", 2), ("StoreGroup1000", 3))


def _store_group(store: int, digits: int) -> str:
    """The accelerator's tag: the store id with its last ``digits`` digits replaced by X (1234 -> 123X)."""
    text = str(store)
    return text[:-digits] + "X" * digits


def simulate(series: int, *, seed: int = 0, calibration: Calibration | None = None) -> SimulatedSales:
    """Generate ``series`` series (stores x 3 brands; the last store partial when needed)."""
    if not 1 <= series <= MAX_SERIES:
        raise InvalidValue(f"--series {series} is not allowed: expected a whole number from 1 to {MAX_SERIES}")
    if seed < 0:
        raise InvalidValue(f"--seed {seed} is not allowed: expected a whole number >= 0")
    cal = calibration or calibrate()
    weeks = pd.date_range(FIRST_WEEK, LAST_WEEK, freq="W-THU")
    n, t = series, len(weeks)
    store_index = np.arange(n) // len(BRANDS)
    brand_index = np.arange(n) % len(BRANDS)
    draws = _draws(seed, int(store_index[-1]) + 1, t)
    by_brand = {field: np.array([getattr(cal.brands[b], field) for b in BRANDS])[brand_index][:, None]
                for field in ("level", "elasticity", "advert_lift", "noise_sd", "noise_ar", "price_level",
                              "price_offset_sd", "advert_price", "price_sd", "price_ar", "advert_start",
                              "advert_keep")}

    store_effect = cal.store_sd * draws.store[store_index][:, None]
    price_offset = by_brand["price_offset_sd"] * draws.price_offset[:n]
    advert, advert_rate = _markov(draws.advert[:n], by_brand["advert_start"], by_brand["advert_keep"])
    price_noise = _ar1(draws.price[:n], by_brand["price_ar"], by_brand["price_sd"])
    # Centre the advert discount so the mean log price stays at the brand's real level.
    log_price = by_brand["price_level"] + price_offset + by_brand["advert_price"] * (advert - advert_rate) + price_noise
    price_cents = np.rint(100 * np.clip(np.exp(log_price), 0.8 * cal.price_min, 1.2 * cal.price_max)).astype(np.int64)

    season = cal.seasonal(weeks.dayofyear.to_numpy())[None, :]
    log_quantity = (by_brand["level"] + store_effect
                    + by_brand["elasticity"] * (np.log(price_cents / 100) - by_brand["price_level"])
                    + by_brand["advert_lift"] * advert + season
                    + _ar1(draws.demand[:n], by_brand["noise_ar"], by_brand["noise_sd"]))
    # Clip before exp: a few extreme draws must not overflow int64 or dwarf the real data's range.
    quantity = np.rint(np.exp(np.clip(log_quantity, 0.0, 14.0))).astype(np.int64)
    return SimulatedSales(weeks=weeks, stores=FIRST_STORE + store_index, brands=np.array(BRANDS)[brand_index],
                          quantity=quantity, advert=advert.astype(np.int8), price_cents=price_cents)


@dataclass(frozen=True, slots=True)
class _Draws:
    """Standard random draws, 3 rows (brands) per store; ``store`` has one value per store."""

    store: np.ndarray
    price_offset: np.ndarray  # (rows, 1)
    advert: np.ndarray  # uniform (rows, weeks)
    price: np.ndarray  # normal (rows, weeks)
    demand: np.ndarray  # normal (rows, weeks)


def _draws(seed: int, stores: int, weeks: int) -> _Draws:
    """One generator per store, seeded by (seed, store): a series is the same whatever --series is,
    so simulating 300 series after 30 keeps the first 30 as they were."""
    rows = len(BRANDS)
    parts: dict[str, list[np.ndarray]] = {"store": [], "price_offset": [], "advert": [], "price": [], "demand": []}
    for store in range(stores):
        rng = np.random.default_rng([seed, store])
        parts["store"].append(rng.normal(size=1))
        parts["price_offset"].append(rng.normal(size=(rows, 1)))
        parts["advert"].append(rng.random((rows, weeks)))
        parts["price"].append(rng.normal(size=(rows, weeks)))
        parts["demand"].append(rng.normal(size=(rows, weeks)))
    return _Draws(**{name: np.concatenate(arrays) for name, arrays in parts.items()})


def _markov(uniform: np.ndarray, start: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0/1 states (series x weeks) and each series' long-run share of 1s."""
    stationary = start / (1 - keep + start)
    state = np.empty(uniform.shape)
    state[:, 0] = uniform[:, 0] < stationary[:, 0]
    for week in range(1, uniform.shape[1]):
        p_on = np.where(state[:, week - 1] > 0, keep[:, 0], start[:, 0])
        state[:, week] = uniform[:, week] < p_on
    return state, stationary


def _ar1(normal: np.ndarray, phi: np.ndarray, sd: np.ndarray) -> np.ndarray:
    shocks = normal * sd
    out = np.empty(normal.shape)
    out[:, 0] = shocks[:, 0] / np.sqrt(1 - phi[:, 0] ** 2)  # start in the stationary distribution
    for week in range(1, normal.shape[1]):
        out[:, week] = phi[:, 0] * out[:, week - 1] + shocks[:, week]
    return out


def write_simulated(
    out: str | Path,
    *,
    series: int,
    seed: int = 0,
    series_per_file: int = 1,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Simulate and write ``out/train/`` and ``out/inference/`` CSV files.

    One file per series named ``Store{store}_{brand}.csv``, or with ``series_per_file`` > 1 files
    ``part-00000.csv``... holding that many consecutive series each.
    Raises :class:`InvalidValue` for a bad argument or when the folders already hold data files
    (``overwrite=True`` deletes those data files first).
    """
    if series_per_file < 1:
        raise InvalidValue(f"--series-per-file {series_per_file} is not allowed: expected a whole number >= 1")
    started = time.perf_counter()
    root = Path(out)
    folders = {"train": root / "train", "inference": root / "inference"}
    sales = simulate(series, seed=seed)  # first: a bad argument fails before any folder is touched
    _prepare(folders.values(), overwrite=overwrite)
    split = int(np.searchsorted(sales.weeks, pd.Timestamp(SPLIT_WEEK)))
    if progress:
        progress(f"simulated {sales.series} series x {len(sales.weeks)} weeks; writing files")
    header = ",".join(COLUMNS)
    names = _file_names(sales, series_per_file)
    lines = _series_lines(sales)
    for index, name in enumerate(names):
        held = min(series_per_file, sales.series - index * series_per_file)
        train_rows, inference_rows = [header], [header]
        for rows in itertools.islice(lines, held):
            train_rows += rows[:split]
            inference_rows += rows[split:]
        _write(folders["train"] / name, train_rows)
        _write(folders["inference"] / name, inference_rows)
    t = len(sales.weeks)
    return SimulationResult(out=root, series=sales.series, seed=seed, train_files=len(names),
                            inference_files=len(names), train_weeks=split, inference_weeks=t - split,
                            seconds=time.perf_counter() - started)


def _prepare(folders: Iterable[Path], *, overwrite: bool) -> None:
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise InvalidValue(f"{folder} exists and is not a folder; choose another --out")
        existing = [p for p in folder.iterdir() if p.suffix in (".csv", ".parquet")] if folder.exists() else []
        if existing and not overwrite:
            raise InvalidValue(f"{folder} already holds {len(existing)} data file(s); choose an empty --out "
                               "or pass --force to replace them")
        for path in existing:
            path.unlink()
        folder.mkdir(parents=True, exist_ok=True)


def _file_names(sales: SimulatedSales, series_per_file: int) -> list[str]:
    if series_per_file == 1:
        pairs = zip(sales.stores.tolist(), sales.brands.tolist(), strict=True)
        return [f"Store{store}_{brand}.csv" for store, brand in pairs]
    count = -(-sales.series // series_per_file)
    width = max(5, len(str(count - 1)))
    return [f"part-{i:0{width}d}.csv" for i in range(count)]


def _series_lines(sales: SimulatedSales, *, chunk: int = 1000) -> Iterator[list[str]]:
    """Each series' rows as CSV text, in order. Plain-Python string building beats pandas here;
    converting ``chunk`` series at a time keeps memory flat for large simulations."""
    weeks = sales.weeks.strftime("%Y-%m-%d").tolist()
    price_text = [f"{c // 100}.{c % 100:02d}" for c in range(int(sales.price_cents.max()) + 1)]
    for start in range(0, sales.series, chunk):
        block = slice(start, start + chunk)
        quantity, advert = sales.quantity[block].tolist(), sales.advert[block].tolist()
        cents = sales.price_cents[block].tolist()
        revenue = ((sales.quantity[block] * sales.price_cents[block]) / 100).tolist()
        stores, brands = sales.stores[block].tolist(), sales.brands[block].tolist()
        for s, (store, brand) in enumerate(zip(stores, brands, strict=True)):
            ids = f"{store},{brand}"
            tags = ",".join(_store_group(store, digits) for _, digits in _GROUPS)
            yield [f"{w},{ids},{q},{a},{price_text[c]},{r},{tags}"
                   for w, q, a, c, r in zip(weeks, quantity[s], advert[s], cents[s], revenue[s], strict=True)]


def _write(path: Path, rows: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, ("\n".join(rows) + "\n").encode())
    finally:
        os.close(fd)
