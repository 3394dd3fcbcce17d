import json
from pathlib import Path

import pytest

from shared.cli import main
from shared.data.schema import DEFAULT_SETTINGS_FILE, DatasetSchema
from shared.data.simulate import simulate
from shared.data.validate import Severity, guess_kind, validate_folder

DOMINICKS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples" / "dominicks_oj"
DOMINICKS_SETTINGS = DEFAULT_SETTINGS_FILE.with_name("script_settings.dominicks.json")


@pytest.fixture(scope="module")
def series():
    """Training rows (102 weeks) of Store1000_dominicks and Store1000_minute.maid."""
    frame = simulate(2, seed=1).to_frame()
    frame = frame[frame["WeekStarting"] < "1992-05-28"]
    return frame[frame["Brand"] == "dominicks"].reset_index(drop=True), frame


def _csv(path: Path, frame) -> None:
    frame.to_csv(path, index=False)


# file name -> (severity, field, words of the problem): the one finding each broken file must get
EXPECTED = {
    "binary.csv": (Severity.ERROR, "", "binary data"),
    "empty.csv": (Severity.ERROR, "", "the file is empty"),
    "header_only.csv": (Severity.ERROR, "", "no data rows (only a header)"),
    "latin1.csv": (Severity.ERROR, "", "not UTF-8 text"),
    "notes.xlsx": (Severity.ERROR, "", "unknown extension '.xlsx'"),
    "damaged.parquet": (Severity.ERROR, "", "not a readable Parquet file"),
    "ragged.csv": (Severity.ERROR, "", "line 5 has 11 field(s) but the header has 10"),
    "missing_target.csv": (Severity.ERROR, "Quantity", "missing column 'Quantity'"),
    "non_numeric.csv": (Severity.ERROR, "Price", "1 value(s) are not numbers: 'cheap' (line 4)"),
    "bad_date.csv": (Severity.ERROR, "WeekStarting", "1 value(s) are not dates: 'last week' (line 103)"),
    "duplicated.csv": (Severity.ERROR, "WeekStarting", "1 WeekStarting value(s) appear more than once in this "
                                                       "series: 1990-06-28"),
    "short.csv": (Severity.ERROR, "", "only 12 row(s); training needs at least 38"),
    "negative.csv": (Severity.ERROR, "Quantity", "1 negative value(s): -5 (line 8)"),
    "Store1000_tropicana.csv": (Severity.ERROR, "Store, Brand", "named for series Store1000_tropicana but holds "
                                                                 "Store1000_dominicks"),
    "gaps.csv": (Severity.WARNING, "WeekStarting", "2 missing period(s) (W-THU) between 1990-06-14 and 1992-05-21: "
                                                   "1990-07-19, 1990-07-26"),
}


@pytest.fixture
def broken(tmp_path, series):
    one, two = series
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text(",".join(one.columns) + "\n")
    (folder / "latin1.csv").write_bytes((",".join(one.columns) + "\n1990-06-14,1000,caf\xe9\n").encode("latin-1"))
    (folder / "notes.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    (folder / "damaged.parquet").write_bytes(b"PAR1 garbage that is not parquet")
    lines = one.to_csv(index=False).splitlines()
    lines[4] += ",extra"
    (folder / "ragged.csv").write_text("\n".join(lines) + "\n")
    _csv(folder / "missing_target.csv", one.drop(columns=["Quantity"]))
    _csv(folder / "non_numeric.csv", one.astype({"Price": object}).assign(
        Price=lambda f: f["Price"].where(f.index != 2, "cheap")))
    _csv(folder / "bad_date.csv", one.assign(WeekStarting=lambda f: f["WeekStarting"].where(
        f.index != len(f) - 1, "last week")))
    _csv(folder / "duplicated.csv", one.iloc[[*range(len(one)), 2]])
    _csv(folder / "short.csv", one.head(12))
    _csv(folder / "negative.csv", one.assign(Quantity=lambda f: f["Quantity"].where(f.index != 6, -5)))
    _csv(folder / "Store1000_tropicana.csv", one)
    _csv(folder / "gaps.csv", one.drop(index=[5, 6]))
    _csv(folder / "Store1000_dominicks.csv", one)  # good
    two.to_parquet(folder / "two_series.parquet", index=False)  # good: Parquet, many series per file
    (folder / "README.md").write_text("notes about this batch")  # a document next to data: a warning only
    return folder


def test_each_broken_file_gets_one_clear_finding(broken):
    report = validate_folder(broken, DatasetSchema.load(), workers=1)
    by_file: dict[str, list] = {}
    for finding in report.findings:
        by_file.setdefault(finding.file, []).append(finding)
    for name, (severity, field, words) in EXPECTED.items():
        assert len(by_file.get(name, [])) == 1, (name, by_file.get(name))
        finding = by_file[name][0]
        assert (finding.severity, finding.field) == (severity, field), finding
        assert words in finding.problem, finding
    assert "Store1000_dominicks.csv" not in by_file and "two_series.parquet" not in by_file
    assert [f.severity for f in by_file["README.md"]] == [Severity.WARNING]
    assert set(report.files_with_errors) == {n for n, e in EXPECTED.items() if e[0] == Severity.ERROR}
    assert report.files == len(EXPECTED) + 3 and not report.ok
    series_findings = [f for f in report.findings if f.file in ("duplicated.csv", "short.csv", "gaps.csv")]
    assert {f.series for f in series_findings} == {"Store1000_dominicks"}


def test_command_exits_non_zero_on_errors_and_prints_json_last(broken, capsys):
    assert main(["data", "validate", str(broken)]) == 1
    human = capsys.readouterr().out
    assert "ERROR: negative.csv [" not in human  # whole-column findings are not tied to one series
    assert "ERROR: negative.csv Quantity: 1 negative value(s)" in human
    assert "FAILED: 14 file(s) with errors" in human

    assert main(["data", "validate", str(broken), "--json"]) == 1
    body = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert body["ok"] is False and body["errors"] == 14 and body["warnings"] == 2
    assert {"file", "series", "field", "severity", "problem"} == set(body["findings"][0])


def test_warnings_alone_exit_zero(broken, capsys):
    for path in broken.iterdir():
        if path.name not in ("gaps.csv", "Store1000_dominicks.csv", "two_series.parquet"):
            path.unlink()
    assert main(["data", "validate", str(broken)]) == 0
    assert "OK: 3 file(s), 4 series" in capsys.readouterr().out


def test_the_real_dominicks_files_pass_with_warnings_only(capsys):
    code = main(["data", "validate", str(DOMINICKS_DIR), "--settings", str(DOMINICKS_SETTINGS), "--json"])
    body = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and body["ok"] and body["errors"] == 0
    assert body["series"] == 18 and body["rows"] == 1032
    gaps = [f for f in body["findings"] if f["file"] == "dominicks_OJ_2_5_8_train.csv"]
    assert len(gaps) == 9 and all(f["severity"] == "warning" and "missing period" in f["problem"] for f in gaps)
    assert {f["series"] for f in gaps} >= {"Store2_dominicks", "Store8_tropicana"}


def test_kind_decides_whether_short_series_are_errors():
    schema = DatasetSchema.load(DOMINICKS_SETTINGS)
    assert guess_kind("dominicks_OJ_2_5_8_test.csv") == "inference"
    assert guess_kind("inference/Store1000_dominicks.csv") == "inference"
    assert guess_kind("train/Store1000_dominicks.csv") == "train"
    as_train = validate_folder(DOMINICKS_DIR, schema, kind="train", workers=1)
    short = {f.series for f in as_train.errors if f.file == "dominicks_OJ_2_5_8_test.csv"}
    assert len(short) == 9 and all("only" in f.problem for f in as_train.errors)


def test_inference_files_may_lack_the_target(tmp_path, series):
    one, _ = series
    _csv(tmp_path / "Store1000_dominicks.csv", one.drop(columns=["Quantity"]).head(8))
    assert validate_folder(tmp_path, DatasetSchema.load(), kind="inference").ok
    assert not validate_folder(tmp_path, DatasetSchema.load(), kind="train").ok


def test_empty_folder_and_bad_settings(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path)]) == 1
    assert "holds no files" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"id_columns": "Store"}')
    assert main(["data", "validate", str(tmp_path), "--settings", str(bad)]) == 1
    assert "missing key(s)" in capsys.readouterr().err


def test_ids_that_need_encoding_warn_and_empty_ids_are_errors(tmp_path, series):
    import pandas as pd

    one, _ = series
    brands = ["minute maid", "café", "A&W", '=HYPERLINK("x")', "dominicks"]
    _csv(tmp_path / "many.csv", pd.concat([one.assign(Brand=b) for b in brands]))
    _csv(tmp_path / "blank.csv", one.assign(Brand=["", *one["Brand"][1:]]))
    report = validate_folder(tmp_path, DatasetSchema.load(), kind="train", workers=1)
    encoded = [f for f in report.warnings if f.file == "many.csv" and f.field == "Store, Brand"]
    assert len(encoded) == 1 and encoded[0].problem.startswith("4 series have id values that are not allowed")
    assert "Store1000_minute maid" in encoded[0].problem and "hash" in encoded[0].problem
    assert not [f for f in report.errors if f.file == "many.csv"]  # they still train
    blank = [f for f in report.errors if f.file == "blank.csv" and f.field == "Brand"]
    assert blank and "1 empty value(s)" in blank[0].problem
