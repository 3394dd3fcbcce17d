"""What the simulator copies from the real Dominick's orange-juice data (``samples/dominicks_oj/``).

The model, per brand ``b``, store ``s`` and week ``t`` (``lq`` = log quantity, ``lp`` = log price)::

    lq = level_b + store_s + elasticity_b * (lp - price_level_b) + advert_lift_b * advert
         + season(day of year) + noise          (noise: AR(1) per series)
    lp = price_level_b + price_offset_{s,b} + advert_price_b * advert + price_noise   (AR(1))
    advert: a two-state Markov chain per brand

Everything is estimated at run time from the two sample CSVs (about 1,000 rows, a few
milliseconds), so the derivation is the code below and there are no magic constants to drift.
The estimates are rough (3 stores, 2.3 years) but they put levels, price effects, promotion
frequency and noise where the real data has them; ``tests/unit/test_data_simulate.py`` checks
the simulated statistics against the real ones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLES_DIR = Path(__file__).resolve().parent / "samples" / "dominicks_oj"
SAMPLE_FILES = ("dominicks_OJ_2_5_8_train.csv", "dominicks_OJ_2_5_8_test.csv")
BRANDS = ("dominicks", "minute.maid", "tropicana")
HARMONICS = 2  # yearly seasonality as 2 Fourier pairs: more would fit noise with 2.3 years of data


@dataclass(frozen=True, slots=True)
class BrandCalibration:
    level: float  # mean log quantity at the brand's usual price, no advert, no season
    elasticity: float  # d log quantity / d log price (negative)
    advert_lift: float  # log quantity added by a feature advertisement
    noise_sd: float  # innovation sd of the AR(1) demand noise
    noise_ar: float
    price_level: float  # mean log price
    price_offset_sd: float  # spread of the mean log price between stores
    advert_price: float  # log price change during an advert (promotions come with discounts)
    price_sd: float  # innovation sd of the AR(1) log price noise
    price_ar: float
    advert_start: float  # P(advert this week | none last week)
    advert_keep: float  # P(advert this week | advert last week)


@dataclass(frozen=True, slots=True)
class Calibration:
    brands: dict[str, BrandCalibration]
    store_sd: float  # spread of store size (log quantity) shared by a store's brands
    season: tuple[float, ...]  # sin/cos coefficients, k = 1..HARMONICS
    price_min: float
    price_max: float

    def seasonal(self, day_of_year: np.ndarray) -> np.ndarray:
        seasonal: np.ndarray = fourier(day_of_year, HARMONICS) @ np.asarray(self.season)
        return seasonal


def fourier(day_of_year: np.ndarray, harmonics: int) -> np.ndarray:
    """Columns sin(2πk·d/365.25), cos(2πk·d/365.25) for k = 1..harmonics."""
    angle = 2 * np.pi * np.asarray(day_of_year, dtype=float)[:, None] / 365.25
    k = np.arange(1, harmonics + 1)[None, :]
    return np.concatenate([np.sin(angle * k), np.cos(angle * k)], axis=1)


def load_sample(folder: Path = SAMPLES_DIR) -> pd.DataFrame:
    """The real data, train and test together, sorted by series and week."""
    frame = pd.concat([pd.read_csv(folder / name) for name in SAMPLE_FILES], ignore_index=True)
    frame["WeekStarting"] = pd.to_datetime(frame["WeekStarting"])
    return frame.sort_values(["Store", "Brand", "WeekStarting"], ignore_index=True)


@functools.cache
def calibrate(folder: Path = SAMPLES_DIR) -> Calibration:
    return estimate(load_sample(folder))


def estimate(frame: pd.DataFrame) -> Calibration:
    """Estimate the simulator's parameters from real weekly sales (columns as in the sample)."""
    data = frame.assign(lq=np.log(frame["Quantity"]), lp=np.log(frame["Price"]),
                        series=frame["Store"].astype(str) + "/" + frame["Brand"])
    price_level = data.groupby("Brand")["lp"].mean()
    data["lp_c"] = data["lp"] - data["Brand"].map(price_level)
    fixed, slopes, season, residual = _demand_regression(data)
    data["resid"] = residual
    store_effect = fixed.groupby(level="Store").mean()
    brands = {}
    for brand, rows in data.groupby("Brand"):
        noise_ar, noise_sd = _ar1(rows, "resid")
        advert_price, price_offsets, price_noise = _price_regression(rows)
        price_ar, price_sd = _ar1(rows.assign(price_noise=price_noise), "price_noise")
        start, keep = _advert_chain(rows)
        brands[str(brand)] = BrandCalibration(
            level=float(fixed.xs(brand, level="Brand").mean()), elasticity=slopes[brand][0],
            advert_lift=slopes[brand][1], noise_sd=noise_sd, noise_ar=noise_ar,
            price_level=float(price_level[brand]), price_offset_sd=float(np.std(price_offsets, ddof=1)),
            advert_price=advert_price, price_sd=price_sd, price_ar=price_ar, advert_start=start, advert_keep=keep)
    return Calibration(brands=brands, store_sd=float(store_effect.std(ddof=1)), season=tuple(season),
                       price_min=float(data["Price"].min()), price_max=float(data["Price"].max()))


def _demand_regression(
        data: pd.DataFrame) -> tuple[pd.Series, dict[str, tuple[float, float]], list[float], np.ndarray]:
    """lq on series fixed effects, brand-specific price/advert slopes and a shared season.

    Solved "within": demeaning every column per series removes the fixed effects, which are then
    the series means minus the slopes times the mean regressors (same answer as dummy columns,
    without a column per series)."""
    brands = sorted(data["Brand"].unique())
    columns = []
    for brand in brands:
        mask = (data["Brand"] == brand).to_numpy(dtype=float)
        columns += [mask * data["lp_c"].to_numpy(), mask * data["Advert"].to_numpy()]
    x = np.column_stack([*columns, fourier(data["WeekStarting"].dt.dayofyear.to_numpy(), HARMONICS)])
    y = data["lq"].to_numpy()
    group = data.groupby("series", sort=False)
    x_mean = pd.DataFrame(x).groupby(data["series"].to_numpy(), sort=False).transform("mean").to_numpy()
    y_mean = group["lq"].transform("mean").to_numpy()
    coef, *_ = np.linalg.lstsq(x - x_mean, y - y_mean, rcond=None)
    intercepts = y_mean - x_mean @ coef
    at = np.flatnonzero(~data["series"].duplicated().to_numpy())  # first row of each series, by position
    first = data.iloc[at]
    fixed = pd.Series(intercepts[at], index=pd.MultiIndex.from_arrays(
        [first["Store"].astype(int).to_numpy(), first["Brand"].to_numpy()], names=["Store", "Brand"]))
    slopes = {b: (float(coef[2 * i]), float(coef[2 * i + 1])) for i, b in enumerate(brands)}
    season = coef[2 * len(brands):]
    return fixed, slopes, [float(c) for c in season], y - intercepts - x @ coef


def _price_regression(rows: pd.DataFrame) -> tuple[float, np.ndarray, np.ndarray]:
    """Within one brand: lp on a per-store mean plus an advert shift; returns shift, offsets, residuals."""
    demeaned_lp = rows["lp"] - rows.groupby("Store")["lp"].transform("mean")
    demeaned_ad = rows["Advert"] - rows.groupby("Store")["Advert"].transform("mean")
    shift = float((demeaned_lp * demeaned_ad).sum() / max((demeaned_ad**2).sum(), 1e-12))
    offsets = (rows.groupby("Store")["lp"].mean() - rows["lp"].mean()).to_numpy()
    return shift, offsets, (demeaned_lp - shift * demeaned_ad).to_numpy()


def _consecutive_pairs(rows: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(previous, current) values over weeks exactly 7 days apart within each series (gaps break pairs)."""
    prev, curr = [], []
    for _, s in rows.groupby("Store"):
        s = s.sort_values("WeekStarting")
        ok = (s["WeekStarting"].diff() == pd.Timedelta(days=7)).to_numpy()[1:]
        values = s[column].to_numpy(dtype=float)
        prev.append(values[:-1][ok])
        curr.append(values[1:][ok])
    return np.concatenate(prev), np.concatenate(curr)


def _ar1(rows: pd.DataFrame, column: str) -> tuple[float, float]:
    """AR(1) coefficient and innovation sd, keeping the stationary sd equal to the observed one."""
    prev, curr = _consecutive_pairs(rows, column)
    phi = float(np.clip((prev * curr).sum() / max((prev**2).sum(), 1e-12), 0.0, 0.95))
    return phi, float(rows[column].std(ddof=1) * np.sqrt(1 - phi**2))


def _advert_chain(rows: pd.DataFrame) -> tuple[float, float]:
    prev, curr = _consecutive_pairs(rows, "Advert")
    start = curr[prev == 0].mean() if (prev == 0).any() else 0.2
    keep = curr[prev == 1].mean() if (prev == 1).any() else 0.5
    return float(start), float(keep)
