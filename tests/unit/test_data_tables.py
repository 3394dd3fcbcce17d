import pandas as pd
import pytest

from shared.data.schema import DatasetSchema
from shared.data.tables import list_data_files, list_files, read_table, split_series
from shared.errors import BadData


def test_lists_data_files_recursively_without_hidden_files_or_the_manifest(tmp_path):
    for name in ("b.csv", "sub/a.parquet", "sub/.hidden.csv", ".cache/x.csv", "_manifest.json", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path)] == ["b.csv", "notes.txt",
                                                                                   "sub/a.parquet"]
    assert [p.name for p in list_data_files(tmp_path)] == ["b.csv", "a.parquet"]


def test_reads_csv_as_text_and_parquet_as_stored_and_splits_series(tmp_path):
    frame = pd.DataFrame({"WeekStarting": ["1990-06-14", "1990-06-14", "1990-06-21"], "Store": [1000, 1001, 1000],
                          "Brand": ["dominicks", "tropicana", "dominicks"], "Quantity": [5, 6, 7]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.astype({"Store": float}).to_parquet(tmp_path / "a.parquet")
    schema = DatasetSchema.load()
    text = read_table(tmp_path / "a.csv")
    assert text["Store"].tolist() == ["1000", "1001", "1000"]
    for table in (text, read_table(tmp_path / "a.parquet")):
        parts = dict(split_series(table, schema))
        assert list(parts) == ["Store1000_dominicks", "Store1001_tropicana"]
        assert len(parts["Store1000_dominicks"]) == 2


@pytest.mark.parametrize(("name", "content", "message"), [
    ("a.csv", b"", "the file is empty"),
    ("a.csv", b"\xff\xfeW\x00e\x00", "binary data"),
    ("a.csv", b"a,b\n\xe9,1\n", "not UTF-8"),
    ("a.parquet", b"nope", "not a readable Parquet file"),
    ("a.json", b"{}", "unknown extension '.json'"),
])
def test_unreadable_files_raise_bad_data(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadData, match=message):
        read_table(tmp_path / name)
