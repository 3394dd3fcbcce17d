"""The scripts of the Azure ML pipelines' own steps (pipelines/aml/steps), run on plain files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipelines.aml.steps import copy_predictions, register_models


def _manifest(out: Path) -> None:
    (out / "manifest").mkdir(parents=True)
    (out / "models" / "lr_a").mkdir(parents=True)
    (out / "models" / "lr_a" / "model.json").write_text("{}")
    (out / "manifest" / "11.jsonl").write_text(
        json.dumps({"name": "lr_a", "path": "/other/node/models/lr_a", "tags": {"Store": 1}, "properties": {}})
        + "\nnot json\n\n" + json.dumps({"name": "lr_b", "path": "", "tags": {}}) + "\n")
    (out / "manifest" / "12.jsonl").write_text(json.dumps({"name": "lr_c", "path": "", "tags": {}}) + "\n")


def test_manifest_is_read_from_every_worker_file_skipping_bad_lines(tmp_path):
    _manifest(tmp_path)
    entries = register_models.read_manifest(tmp_path)
    assert [e["name"] for e in entries] == ["lr_a", "lr_b", "lr_c"]
    assert register_models.artifact_dir(entries[0], tmp_path) == tmp_path / "models" / "lr_a"
    tags = register_models.model_tags(entries[0], run_id="pipe-1", dataset_version="3")
    assert tags == {"Store": "1", "RunId": "pipe-1", "DatasetVersion": "3"}


def test_one_failed_registration_does_not_stop_the_others(tmp_path):
    entries = [{"name": n} for n in ("lr_a", "lr_bad", "lr_c")]

    def register(entry):
        if entry["name"] == "lr_bad":
            raise RuntimeError("service said no")
        return 7

    registered, failed = register_models.register_all(entries, register, workers=2)
    assert registered == [("lr_a", 7), ("lr_c", 7)]
    assert failed == [("lr_bad", "RuntimeError: service said no")]


def test_models_are_copied_to_the_store_in_the_registered_model_layout(tmp_path):
    source = tmp_path / "lr_a"
    source.mkdir()
    (source / "model.json").write_text("{}")
    register_models.copy_to_store(source, tmp_path / "store", "lr_a", 3)
    assert (tmp_path / "store" / "lr_a" / "3" / "model.json").is_file()


def test_predictions_keep_ok_rows_and_handle_quoted_reasons_and_the_target(tmp_path):
    rows = pd.DataFrame([
        ["2020-01-02", 10.5, 11, 1000, "dominicks", "a.csv", "ok", ""],
        ["2020-01-09", None, None, 1001, "tropicana", "b.csv", "failed", "no model for series 1001 tropicana"],
    ])
    rows_without_target = pd.DataFrame([["2020-01-16", 9.0, 1002, "minute.maid", "c.csv", "ok", ""]])
    path = tmp_path / "parallel_run_step.txt"
    # ParallelRunStep's append_row: space-separated, no header, one call per mini-batch
    rows.to_csv(path, sep=" ", header=False, index=False)
    with path.open("a") as f:
        rows_without_target.to_csv(f, sep=" ", header=False, index=False)

    header, parsed = copy_predictions.read_rows(path, timestamp="WeekStarting", target="Quantity",
                                                ids=["Store", "Brand"])
    keep, ok, failed = copy_predictions.split(header, parsed)

    assert keep == ["WeekStarting", "Prediction", "Quantity", "Store", "Brand"]
    assert ok == [["2020-01-02", "10.5", "11.0", "1000", "dominicks"], ["2020-01-16", "9.0", "", "1002", "minute.maid"]]
    assert failed[0]["reason"] == "no model for series 1001 tropicana"
    out = tmp_path / "out" / copy_predictions.output_name("run-1", datetime(2026, 3, 4, tzinfo=UTC))
    copy_predictions.write_csv(out, keep, ok)
    assert out.name == "forecasts_20260304_run-1.csv"
    assert list(pd.read_csv(out).columns) == keep


def test_training_summary_counts_statuses_and_records_failures(tmp_path):
    rows = pd.DataFrame([
        ["a.csv", "1000 dominicks", "lr_dominicks_1000", "ok", "lr", "", "/o/m", 1, 1, 1, 0.1],
        ["b.csv", "1001 dominicks", "lr_dominicks_1001", "fallback", "naive", "too short", "/o/m", 1, 1, 1, 0.1],
        ["c.csv", "", "", "failed", "", "unparsable date 'x'", "", None, None, None, None],
    ])
    path = tmp_path / "parallel_run_step.txt"
    rows.to_csv(path, sep=" ", header=False, index=False)

    counts, failures = register_models.summarise_training(path)

    assert counts == {"series": 3, "failed": 1, "fallback": 1}
    assert failures == [{"file": "c.csv", "series": "", "reason": "unparsable date 'x'"}]


class _FakeRun:
    """Run.get_context() at the SDK boundary: the step's pipeline run and its properties."""

    def __init__(self) -> None:
        self.id, self.parent, self.properties = "pipe-1", None, {}
        self.experiment = type("Experiment", (), {"workspace": object()})()

    def add_properties(self, values: dict) -> None:
        self.properties.update(values)


def test_an_entry_with_a_name_azure_ml_refuses_is_a_series_failure_not_a_failed_step(tmp_path, monkeypatch):
    import azureml.core
    from azureml._model_management._util import model_name_validation

    out, store = tmp_path / "out", tmp_path / "store"
    (out / "manifest").mkdir(parents=True)
    lines = []
    for name in ("lr_a", "lr_minute maid_1", "lr_x/../../escaped", "lr_b"):
        (out / "models" / name).mkdir(parents=True, exist_ok=True)
        (out / "models" / name / "model.json").write_text("{}")
        lines.append(json.dumps({"name": name, "path": str(out / "models" / name), "tags": {}}))
    (out / "manifest" / "node-1-7-abc.jsonl").write_text("\n".join(lines) + "\n")
    run, registered = _FakeRun(), []

    def register(workspace, model_path, model_name, tags=None, properties=None):
        model_name_validation(model_name)  # what the SDK checks before calling the service
        registered.append(model_name)
        return type("Model", (), {"name": model_name, "version": 1})()

    monkeypatch.setattr(azureml.core.Run, "get_context", staticmethod(lambda: run))
    monkeypatch.setattr(azureml.core.Model, "register", staticmethod(register))
    code = register_models.main(["--training-output", str(out), "--model-store", str(store)])

    assert code == 0 and registered == ["lr_a", "lr_b"]
    assert run.properties["models_registered"] == "2" and run.properties["models_not_registered"] == "2"
    failures = json.loads(run.properties["failures"])
    assert [f["series"] for f in failures] == ["lr_minute maid_1", "lr_x/../../escaped"]
    assert all("is not allowed" in f["reason"] for f in failures)
    assert sorted(p.name for p in store.iterdir()) == ["lr_a", "lr_b"] and not (tmp_path / "escaped").exists()


def test_artifact_dir_never_builds_a_path_from_a_bad_name(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="is not allowed"):
        register_models.artifact_dir({"name": "../../etc", "path": ""}, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert register_models.artifact_dir({"name": "lr_a", "path": str(elsewhere)}, tmp_path) == \
        tmp_path / "models" / "lr_a"  # a written path is used only when it is that model's folder


def test_the_store_points_at_the_newest_data_version_when_a_late_run_registered_last(tmp_path):
    """A run on older data that registers last gets the higher number; the batch forecast must still
    serve the newest data's version (scoring/forecast.py reads <name>/NEWEST_VERSION)."""
    store = tmp_path / "store"
    for version, dataset_version in ((1, "4"), (2, "5"), (3, "4")):
        source = tmp_path / f"src{version}"
        source.mkdir()
        (source / "model.json").write_text("{}")
        register_models.copy_to_store(source, store, "lr_a", version, dataset_version=dataset_version)
    assert (store / "lr_a" / register_models.NEWEST_VERSION_FILE).read_text() == "2"

    source = tmp_path / "src4"
    source.mkdir()
    (source / "model.json").write_text("{}")
    register_models.copy_to_store(source, store, "lr_a", 4, dataset_version="6")
    assert not (store / "lr_a" / register_models.NEWEST_VERSION_FILE).exists()  # the highest is the newest
    scoring_forecast = (Path(__file__).parents[2] / "scoring" / "forecast.py").read_text()
    assert f'NEWEST_VERSION_FILE = "{register_models.NEWEST_VERSION_FILE}"' in scoring_forecast


def _train_rows_file(path: Path, *rows: tuple[str, str]) -> Path:
    """train.py's append_row output: space-separated TRAIN_COLUMNS rows, no header."""
    import csv

    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=" ", quotechar='"')
        for name, status in rows:
            writer.writerow([f"{name}.csv", name, name, status, "lr", "", "", "1", "1", "1", "1", ""])
    return path


def test_a_retried_mini_batch_registers_each_model_once(tmp_path):
    # The retried mini-batch wrote lr_a's line again from another worker; lr_x's row failed.
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "11.jsonl").write_text(
        json.dumps({"name": "lr_a", "path": "", "tags": {"Try": "1"}}) + "\n"
        + json.dumps({"name": "lr_x", "path": "", "tags": {}}) + "\n")
    (tmp_path / "manifest" / "12.jsonl").write_text(json.dumps({"name": "lr_a", "path": "", "tags": {"Try": "2"}}))
    rows = _train_rows_file(tmp_path / "parallel_run_step.txt", ("lr_a", "ok"), ("lr_x", "failed"))

    entries = register_models.read_manifest(tmp_path, wanted=register_models.registrable_names(rows))

    assert [(e["name"], e["tags"]) for e in entries] == [("lr_a", {"Try": "2"})]  # the last line of a name wins
    seen = []
    register_models.register_all(entries, lambda e: seen.append(e["name"]) or 1, workers=2)
    assert seen == ["lr_a"]
    assert register_models.registrable_names(tmp_path / "missing.txt") is None  # no rows: every entry counts
