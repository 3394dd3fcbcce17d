"""`data validate` across worker processes gives exactly the sequential answer."""

import pytest

from shared.data import validate
from shared.data.schema import DatasetSchema
from shared.data.simulate import write_simulated

pytestmark = pytest.mark.integration


def test_parallel_equals_sequential(tmp_path, monkeypatch):
    write_simulated(tmp_path, series=60, seed=9)
    (tmp_path / "train" / "Store1007_tropicana.csv").write_bytes(b"\x00\x01garbage")
    short = tmp_path / "inference" / "Store1003_dominicks.csv"
    short.write_text(short.read_text().replace(",dominicks,", ",tropicana,", 1))
    monkeypatch.setattr(validate, "PARALLEL_FROM", 10)
    progress: list[int] = []
    schema = DatasetSchema.load()
    parallel = validate.validate_folder(tmp_path, schema, workers=2, progress=progress.append)
    sequential = validate.validate_folder(tmp_path, schema, workers=1)
    assert parallel == sequential and sum(progress) == 120 and len(progress) < 120
    assert parallel.files_with_errors == ["inference/Store1003_dominicks.csv", "train/Store1007_tropicana.csv"]
