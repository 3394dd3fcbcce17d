import json

import pytest

from shared.data.schema import DEFAULT_SETTINGS_FILE, DatasetSchema
from shared.errors import InvalidValue

DOMINICKS_SETTINGS = DEFAULT_SETTINGS_FILE.with_name("script_settings.dominicks.json")


def test_default_settings_file_loads():
    schema = DatasetSchema.load()
    assert schema == DatasetSchema.load(DEFAULT_SETTINGS_FILE)
    assert schema.id_columns == ("Store", "Brand")
    assert schema.target_column == "Quantity" and schema.timestamp_column == "WeekStarting"
    assert schema.tag_columns == ("StoreGroup10", "StoreGroup100", "StoreGroup1000")
    assert schema.freq == "W-THU" and schema.model_type == "auto"
    # auto with Advert and Price: loglog through 4 backtest folds of 8 weeks, 2 * (2 + 1) weeks to fit
    assert schema.min_train_rows(n_exog=2) == 4 * 8 + 6
    assert schema.backtest_folds == 4 and schema.candidates == ("lr", "demand", "loglog", "naive", "snaive", "mean")


def test_feature_columns_are_every_column_without_a_role():
    sample = ["WeekStarting", "Store", "Brand", "Quantity", "Advert", "Price", "Revenue",
              "StoreGroup10", "StoreGroup100", "StoreGroup1000"]
    assert DatasetSchema.load().feature_columns(sample) == ["Advert", "Price"]
    dominicks = DatasetSchema.load(DOMINICKS_SETTINGS)
    columns = ["WeekStarting", "Store", "Brand", "Quantity", "logQuantity", "Advert", "Price", "Age60", "Large HH",
               "CPWVOL5", "Promo"]
    assert dominicks.feature_columns(columns) == ["Advert", "Price", "Promo"]


def test_series_id_and_file_name():
    schema = DatasetSchema.load()
    assert schema.series_id({"Store": 1000, "Brand": "dominicks", "Price": 2.0}) == "Store1000_dominicks"
    assert schema.series_id(["1000", "minute.maid"]) == "Store1000_minute.maid"
    assert schema.series_id([1000.0, "tropicana"]) == "Store1000_tropicana"  # Parquet floats read like CSV text
    assert schema.series_file_name({"Store": 4990, "Brand": "tropicana"}) == "Store4990_tropicana.csv"
    assert schema.series_named_by("train/Store1000_minute.maid.csv") == ("1000", "minute.maid")
    assert schema.series_named_by("Store12_a_b.parquet") == ("12", "a_b")
    assert schema.series_named_by("part-00001.csv") is None
    assert schema.series_named_by("Store.csv") is None
    with pytest.raises(InvalidValue, match="expected 2 id values"):
        schema.series_id(["1000"])


def _write(tmp_path, body):
    path = tmp_path / "settings.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


GOOD = json.loads(DEFAULT_SETTINGS_FILE.read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target_column": None}, "missing key(s) target_column"),
        ({"id_columns": "Store"}, "key 'id_columns' is 'Store'; expected a list of column names"),
        ({"id_columns": []}, "key 'id_columns' is empty"),
        ({"test_size": "8"}, "key 'test_size' is '8'; expected a whole number"),
        ({"test_size": 0}, "key 'test_size' is 0"),
        ({"horizon": True}, "key 'horizon' is True"),
        ({"freq": "every thursday"}, "key 'freq' is 'every thursday'"),
        ({"timestamp_column": ""}, "key 'timestamp_column' is ''"),
        ({"tag_columns": ["Store"]}, "column 'Store' is in both id_columns and tag_columns"),
    ],
)
def test_bad_settings_file_names_the_key(tmp_path, change, message):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(InvalidValue) as e:
        DatasetSchema.load(_write(tmp_path, body))
    assert message in e.value.message and "settings.json" in e.value.message


def test_unreadable_settings_files(tmp_path):
    with pytest.raises(InvalidValue, match="not valid JSON"):
        DatasetSchema.load(_write(tmp_path, "{nope"))
    with pytest.raises(InvalidValue, match="expected a JSON object"):
        DatasetSchema.load(_write(tmp_path, "[1, 2]"))
    with pytest.raises(InvalidValue, match="cannot read dataset settings file"):
        DatasetSchema.load(tmp_path / "missing.json")
