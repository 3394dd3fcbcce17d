"""What the local runner makes of run() results: failures, fallbacks, the manifest, predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.errors import InvalidValue
from shared.workspace.base import DatasetFile, DatasetMode, DatasetVersion, NewModel, SeriesFailure
from shared.workspace.local.runner_inputs import RunInputs, select
from shared.workspace.local.runner_pool import MiniBatchFailure, ParallelOutcome, count_failed_rows
from shared.workspace.local.runner_steps import collect_rows, prediction_rows, read_manifest, training_series


def _inputs(*names: str) -> RunInputs:
    files = tuple(DatasetFile(name=n, path=f"train/b1/{n}", etag="e", size=1) for n in names)
    return RunInputs(files, tuple(f"/tmp/run/inputs/train/b1/{n}" for n in names))


def _train_rows(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"file": f, "series": s, "model_name": f"lr_{s}" if s else "", "status": st,
                          "model_type": "lr", "reason": r, "path": "", "mse": np.nan} for f, s, st, r in rows])


def test_failure_and_fallback_rows_and_lost_mini_batches_become_records() -> None:
    inputs = _inputs("a.csv", "b.csv", "c.csv", "d.csv", "e.csv")
    outcome = ParallelOutcome(
        results={0: _train_rows(("/tmp/run/inputs/train/b1/a.csv", "a", "ok", ""),
                                ("/tmp/run/inputs/train/b1/b.csv", "b", "fallback", "too short")),
                 1: _train_rows(("/tmp/run/inputs/train/b1/c.csv", "", "failed", "cannot be read as CSV"))},
        failed_batches=[MiniBatchFailure(2, ("/tmp/run/inputs/train/b1/d.csv", "/tmp/run/inputs/train/b1/e.csv"),
                                         "run() raised MemoryError", 2)])
    rows = collect_rows(outcome, inputs, series_of=training_series)

    assert rows.failures == [
        SeriesFailure("c.csv", "", "cannot be read as CSV"),
        SeriesFailure("d.csv", "", "mini-batch failed after 2 tries: run() raised MemoryError"),
        SeriesFailure("e.csv", "", "mini-batch failed after 2 tries: run() raised MemoryError"),
    ]
    assert rows.fallback == [{"series": "b", "model_name": "lr_b", "model_type": "lr", "reason": "too short"}]
    assert rows.counts == {"files": 5, "rows": 3, "succeeded": 1, "fallback": 1, "failed": 3, "warnings": 0,
                           "model_type_lr": 2}


def test_a_failure_row_without_reason_still_says_it_failed() -> None:
    outcome = ParallelOutcome(results={0: _train_rows(("a.csv", "a", "failed", ""))})
    rows = collect_rows(outcome, _inputs("a.csv"), series_of=training_series)
    assert rows.failures == [SeriesFailure("a.csv", "a", "failed (no reason given)")]


def test_count_failed_rows() -> None:
    assert count_failed_rows(_train_rows(("a", "a", "ok", ""), ("b", "b", "failed", "x"))) == 1
    assert count_failed_rows(["a line", "another"]) == 0  # plain append_row output has no status


def _manifest(folder: Path, pid: int, *lines: str) -> None:
    (folder / "manifest").mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest" / f"{pid}.jsonl", "a") as f:
        f.writelines(line + "\n" for line in lines)


def _entry(name: str, path: str, **tags: str) -> str:
    return json.dumps({"name": name, "path": path, "tags": tags, "properties": {"mse": 1.5}})


def test_manifest_keeps_one_entry_per_model_of_an_ok_or_fallback_row(tmp_path: Path) -> None:
    _manifest(tmp_path, 11, _entry("lr_a", "models/lr_a", RunId="r1"), _entry("lr_b", str(tmp_path / "b")),
              '{"name": "lr_c", "pa')  # a process killed while writing: half a line
    _manifest(tmp_path, 12, _entry("lr_a", "models/lr_a", RunId="r1-retry"), _entry("lr_x", "models/lr_x"))
    rows = _train_rows(("a", "a", "ok", ""), ("b", "b", "fallback", "constant"), ("x", "x", "failed", "bad"))

    models = read_manifest(tmp_path, rows)

    assert [m.name for m in models] == ["lr_a", "lr_b"]  # lr_x's row failed; lr_c's line is broken
    assert models[0].path == str(tmp_path / "models" / "lr_a") and models[0].tags == {"RunId": "r1-retry"}
    assert models[1].path == str(tmp_path / "b") and models[1].properties == {"mse": "1.5"}


def test_prediction_rows_keep_only_ok_rows_without_bookkeeping() -> None:
    frame = pd.DataFrame({"WeekStarting": ["1992-05-28", None], "Prediction": [10.0, np.nan], "Store": [1, 2],
                          "Brand": ["a", "b"], "file": ["x", "y"], "status": ["ok", "failed"], "reason": ["", "no"]})
    out = prediction_rows(frame)
    assert list(out.columns) == ["WeekStarting", "Prediction", "Store", "Brand"] and len(out) == 1


def _dataset(changed: tuple[str, ...]) -> DatasetVersion:
    files = tuple(DatasetFile(name=n, path=n, etag="e", size=1) for n in ("a.csv", "b.csv", "c.csv"))
    return DatasetVersion("train", 2, "file:///data", files, changed, DatasetMode.FULL, {}, "")


def test_mode_changed_selects_only_changed_files() -> None:
    assert [f.name for f in select(_dataset(("b.csv",)), mode="changed")] == ["b.csv"]
    assert [f.name for f in select(_dataset(("b.csv",)), mode="all")] == ["a.csv", "b.csv", "c.csv"]
    assert select(_dataset(()), mode="changed") == []
    with pytest.raises(InvalidValue, match="mode='some'"):
        select(_dataset(()), mode="some")


@pytest.fixture
def local_ws(tmp_path: Path):
    from shared.settings import Settings
    from shared.workspace.local.workspace import LocalWorkspace

    workspace = LocalWorkspace(Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")}))
    try:
        yield workspace
    finally:
        workspace.close()


def _artifacts(root: Path, count: int) -> list[str]:
    paths = []
    for i in range(count):
        folder = root / "models" / f"m{i}"
        folder.mkdir(parents=True)
        (folder / "model.json").write_text("{}")
        paths.append(str(folder))
    return paths


@pytest.mark.parametrize("bad_name", ["lr_minute maid_1", "lr_x/../../y", "lr_ok\n", "x" * 256, "", ".."])
def test_one_bad_model_is_a_per_series_failure_and_the_rest_of_its_chunk_registers(
        local_ws, tmp_path: Path, bad_name: str) -> None:
    from shared.workspace.local.runner_steps import register

    paths = _artifacts(tmp_path / "out", 3)
    models = [NewModel("lr_a", paths[0]), NewModel(bad_name, paths[1]), NewModel("lr_b", paths[2]),
              NewModel("lr_gone", str(tmp_path / "nowhere"))]
    failures: list[SeriesFailure] = []
    done = register(local_ws.models, models, progress=lambda n: None, failures=failures)
    assert done == 2 and sorted(m.name for m in local_ws.models.list()) == ["lr_a", "lr_b"]
    assert [f.series for f in failures] == [bad_name, "lr_gone"]
    assert "is not allowed" in failures[0].reason and "does not exist" in failures[1].reason
    with pytest.raises(InvalidValue, match="is not allowed"):  # a direct caller still gets a clear error
        local_ws.models.register_many([NewModel(bad_name, paths[0])])
    assert not (tmp_path / "y").exists()


def test_a_manifest_line_pointing_outside_the_run_outputs_is_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    _manifest(tmp_path / "out", 1, _entry("lr_a", "models/lr_a"), _entry("lr_b", str(outside)),
              _entry("lr_c", "models/../../precious"))
    assert [m.name for m in read_manifest(tmp_path / "out", [])] == ["lr_a"]


def test_local_and_aml_manifest_readers_return_the_same_entries(tmp_path: Path) -> None:
    from pipelines.aml.steps import register_models

    _manifest(tmp_path, 11, _entry("lr_a", "models/lr_a", Try="1"), _entry("lr_b", "models/lr_b"),
              '{"name": "lr_c", "pa', _entry("lr_x", "models/lr_x"), "[1, 2]")
    _manifest(tmp_path, 12, _entry("lr_a", "models/lr_a", Try="2"))  # the retried mini-batch
    rows = _train_rows(("a", "a", "ok", ""), ("b", "b", "fallback", "constant"), ("x", "x", "failed", "bad"))

    local = read_manifest(tmp_path, rows)
    aml = register_models.read_manifest(tmp_path, wanted={"lr_a", "lr_b"})

    assert [m.name for m in local] == [e["name"] for e in aml] == ["lr_a", "lr_b"]  # lr_a once
    assert [m.tags for m in local] == [e["tags"] for e in aml] == [{"Try": "2"}, {}]
