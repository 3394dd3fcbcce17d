import numpy as np
import pandas as pd
import pytest

from shared.cli import main
from shared.data.calibration import BRANDS, estimate, load_sample
from shared.data.schema import DatasetSchema
from shared.data.simulate import COLUMNS, simulate, write_simulated
from shared.data.validate import validate_folder
from shared.errors import InvalidValue


def _read(path):
    return pd.read_csv(path, dtype={"Store": str})


def test_files_shape_dates_names_and_split(tmp_path):
    result = write_simulated(tmp_path, series=7, seed=3)  # 3 stores, the last one partial (1 brand)
    train = sorted(p.name for p in (tmp_path / "train").iterdir())
    inference = sorted(p.name for p in (tmp_path / "inference").iterdir())
    expected = sorted(f"Store{1000 + i // 3}_{BRANDS[i % 3]}.csv" for i in range(7))
    assert train == inference == expected
    assert result.train_files == result.inference_files == 7

    first = _read(tmp_path / "train" / "Store1002_dominicks.csv")
    later = _read(tmp_path / "inference" / "Store1002_dominicks.csv")
    assert tuple(first.columns) == COLUMNS
    weeks = pd.to_datetime(pd.concat([first, later])["WeekStarting"])
    assert weeks.iloc[0] == pd.Timestamp("1990-06-14") and weeks.iloc[-1] == pd.Timestamp("1992-10-01")
    assert (weeks.dt.dayofweek == 3).all() and (weeks.diff().dropna() == pd.Timedelta(days=7)).all()
    # The accelerator's split: training data ends the week before 1992-05-28.
    assert pd.to_datetime(first["WeekStarting"]).max() == pd.Timestamp("1992-05-21")
    assert pd.to_datetime(later["WeekStarting"]).min() == pd.Timestamp("1992-05-28")
    assert len(first) == result.train_weeks == 102 and len(later) == result.inference_weeks == 19
    both = pd.concat([first, later])
    assert (both["Store"] == "1002").all() and (both["Brand"] == "dominicks").all()
    assert both["Quantity"].dtype == np.int64 and (both["Quantity"] >= 0).all()
    assert set(both["Advert"]) <= {0, 1}
    assert np.allclose(both["Revenue"], both["Quantity"] * both["Price"], atol=0.006)
    assert set(both["StoreGroup10"]) == {"100X"} and set(both["StoreGroup100"]) == {"10XX"}
    assert set(both["StoreGroup1000"]) == {"1XXX"}


def test_same_seed_same_bytes_and_files_of_many_series_hold_the_same_rows(tmp_path):
    write_simulated(tmp_path / "a", series=5, seed=11)
    write_simulated(tmp_path / "b", series=5, seed=11)
    write_simulated(tmp_path / "c", series=5, seed=12)
    write_simulated(tmp_path / "d", series=5, seed=11, series_per_file=2)
    name = "Store1001_minute.maid.csv"
    assert (tmp_path / "a/train" / name).read_bytes() == (tmp_path / "b/train" / name).read_bytes()
    assert (tmp_path / "a/train" / name).read_bytes() != (tmp_path / "c/train" / name).read_bytes()
    parts = sorted(p.name for p in (tmp_path / "d/inference").iterdir())
    assert parts == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    singles = pd.concat([_read(p) for p in sorted((tmp_path / "a/inference").iterdir())])
    combined = pd.concat([_read(tmp_path / "d/inference" / p) for p in parts])
    key = ["Store", "Brand", "WeekStarting"]
    pd.testing.assert_frame_equal(singles.sort_values(key, ignore_index=True),
                                  combined.sort_values(key, ignore_index=True))


def test_a_series_does_not_depend_on_how_many_are_simulated():
    few, many = simulate(4, seed=2), simulate(10, seed=2)
    assert np.array_equal(few.quantity, many.quantity[:4]) and np.array_equal(few.price_cents, many.price_cents[:4])
    assert np.array_equal(few.advert, many.advert[:4])


def test_simulated_statistics_are_near_the_real_dominicks_data():
    real = load_sample()
    sim = simulate(600, seed=5).to_frame()
    sim["WeekStarting"] = pd.to_datetime(sim["WeekStarting"])

    def stats(frame):
        frame = frame.assign(lq=np.log(frame["Quantity"].clip(lower=1)))
        return frame.groupby("Brand").agg(lq_mean=("lq", "mean"), lq_sd=("lq", "std"), price=("Price", "mean"),
                                          price_sd=("Price", "std"), advert=("Advert", "mean"))

    r, s = stats(real), stats(sim)
    assert (abs(s["lq_mean"] - r["lq_mean"]) < 0.15).all(), (r, s)
    assert (abs(s["lq_sd"] / r["lq_sd"] - 1) < 0.2).all(), (r, s)
    assert (abs(s["price"] / r["price"] - 1) < 0.05).all(), (r, s)
    assert (abs(s["price_sd"] / r["price_sd"] - 1) < 0.25).all(), (r, s)
    assert (abs(s["advert"] - r["advert"]) < 0.05).all(), (r, s)
    # Re-estimating the demand model on simulated data recovers the real price and advert effects.
    real_fit, sim_fit = estimate(real), estimate(sim)
    for brand in BRANDS:
        assert abs(sim_fit.brands[brand].elasticity - real_fit.brands[brand].elasticity) < 0.3
        assert abs(sim_fit.brands[brand].advert_lift - real_fit.brands[brand].advert_lift) < 0.15
        assert abs(sim_fit.brands[brand].noise_sd / real_fit.brands[brand].noise_sd - 1) < 0.2
    assert np.allclose(sim_fit.season, real_fit.season, atol=0.03)


def test_simulated_files_pass_validation(tmp_path):
    write_simulated(tmp_path, series=4, seed=0)
    report = validate_folder(tmp_path, DatasetSchema.load())
    assert report.ok and report.findings == () and report.files == 8 and report.series == 8


def test_refuses_to_mix_with_existing_files_unless_forced(tmp_path):
    write_simulated(tmp_path, series=6)
    with pytest.raises(InvalidValue, match="already holds 6 data file"):
        write_simulated(tmp_path, series=3)
    write_simulated(tmp_path, series=3, overwrite=True)
    assert len(list((tmp_path / "train").iterdir())) == 3


@pytest.mark.parametrize(("args", "message"), [(["--series", "0"], "--series 0 is not allowed"),
                                               (["--series", "3", "--seed", "-1"], "--seed -1 is not allowed"),
                                               (["--series", "3", "--series-per-file", "0"], "--series-per-file 0")])
def test_bad_arguments_fail_with_a_message(tmp_path, capsys, args, message):
    assert main(["data", "simulate", "--out", str(tmp_path), *args]) == 1
    assert message in capsys.readouterr().err


def test_command_prints_json_last(tmp_path, capsys):
    assert main(["data", "simulate", "--series", "4", "--out", str(tmp_path), "--seed", "2", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["series"] == 4 and out["train_files"] == 4 and out["inference_files"] == 4 and out["seed"] == 2
