"""The workspace contract: what every backend (local, Azure ML) must do, tested once through the port.

Backends come from ``WORKSPACE_FACTORIES`` in this folder's conftest.py; nothing here knows
which one it runs on.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from shared.errors import InvalidValue, NotFound, OperationTimeout
from shared.ledger import parse_time
from shared.workspace.base import (
    DatasetFile,
    DatasetMode,
    NewModel,
    PipelineKind,
    Run,
    RunStatus,
    SeriesFailure,
    Workspace,
)

STORE = "azureblob://landing"


def f(name: str, content: str = "a", *, batch: str = "b1") -> DatasetFile:
    return DatasetFile(name=name, path=f"train/{batch}/{name}", etag=f"0x{content}", size=len(content),
                       md5=f"md5-{content}")


def artifact(tmp_path: Path, name: str, content: str = "{}") -> str:
    folder = tmp_path / "artifacts" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(content)
    return str(folder)


def new_run(run_id: str, *, kind: PipelineKind = PipelineKind.TRAINING, submitted: str = "2026-01-01T00:00:00Z",
            status: RunStatus = RunStatus.QUEUED, failures: tuple[SeriesFailure, ...] = ()) -> Run:
    pipeline = "manymodels-training" if kind is PipelineKind.TRAINING else "manymodels-forecasting"
    return Run(run_id=run_id, pipeline=pipeline, kind=kind, experiment=pipeline, status=status,
               dataset_name="train", dataset_version=1, parameters={"mode": "changed"},
               tags={"batch": "b1"}, submitted=submitted, failures=failures)


# --------------------------------------------------------------------------- datasets


def test_first_dataset_version_is_1_and_every_file_changed(workspace: Workspace):
    v = workspace.datasets.register("train", [f("A.csv"), f("B.csv")], datastore=STORE, tags={"batch": "b1"})
    assert (v.name, v.version, v.datastore, v.mode) == ("train", 1, STORE, DatasetMode.FULL)
    assert [x.name for x in v.files] == ["A.csv", "B.csv"]
    assert set(v.changed) == {"A.csv", "B.csv"}
    assert v.tags == {"batch": "b1"}
    assert v.created
    assert workspace.datasets.get("train") == v
    assert workspace.datasets.get("train", 1) == v
    assert workspace.datasets.get("train", "1") == v


def test_changed_holds_only_new_and_modified_files(workspace: Workspace):
    workspace.datasets.register("train", [f("A.csv"), f("B.csv"), f("C.csv")], datastore=STORE)
    v2 = workspace.datasets.register("train", [f("A.csv"), f("B.csv", "b2"), f("D.csv")], datastore=STORE)
    assert v2.version == 2
    assert set(v2.changed) == {"B.csv", "D.csv"}
    assert {x.name for x in v2.files} == {"A.csv", "B.csv", "D.csv"}  # a full version drops C.csv


def test_registering_identical_content_again_returns_the_latest_version(workspace: Workspace):
    first = workspace.datasets.register("train", [f("A.csv"), f("B.csv")], datastore=STORE)
    # Same names and fingerprints, other order and other batch folder: nothing new to register.
    again = workspace.datasets.register("train", [f("B.csv", batch="b2"), f("A.csv", batch="b2")], datastore=STORE)
    assert again.version == first.version == 1
    assert [v.version for v in workspace.datasets.list("train")] == [1]


def test_md5_is_the_fingerprint_when_known(workspace: Workspace):
    a = DatasetFile(name="A.csv", path="A.csv", etag="0x1", size=1, md5="same")
    a_new_etag = DatasetFile(name="A.csv", path="A.csv", etag="0x2", size=1, md5="same")
    a_new_md5 = DatasetFile(name="A.csv", path="A.csv", etag="0x2", size=1, md5="other")
    assert workspace.datasets.register("train", [a], datastore=STORE).version == 1
    assert workspace.datasets.register("train", [a_new_etag], datastore=STORE).version == 1
    assert workspace.datasets.register("train", [a_new_md5], datastore=STORE).version == 2


def test_partial_version_replaces_files_by_name_on_top_of_the_previous(workspace: Workspace):
    workspace.datasets.register("train", [f("A.csv"), f("B.csv"), f("C.csv")], datastore=STORE)
    v2 = workspace.datasets.register("train", [f("B.csv", "b2", batch="b2"), f("D.csv", batch="b2")],
                                     datastore=STORE, mode=DatasetMode.PARTIAL)
    assert v2.version == 2 and v2.mode == DatasetMode.PARTIAL
    files = {x.name: x for x in v2.files}
    assert set(files) == {"A.csv", "B.csv", "C.csv", "D.csv"}
    assert files["B.csv"].md5 == "md5-b2" and files["B.csv"].path == "train/b2/B.csv"
    assert files["A.csv"].path == "train/b1/A.csv"
    assert set(v2.changed) == {"B.csv", "D.csv"}
    replay = workspace.datasets.register("train", [f("B.csv", "b2", batch="b2")], datastore=STORE,
                                         mode=DatasetMode.PARTIAL)
    assert replay.version == 2


def test_partial_version_without_a_previous_one_is_refused(workspace: Workspace):
    with pytest.raises(InvalidValue, match="partial"):
        workspace.datasets.register("train", [f("A.csv")], datastore=STORE, mode=DatasetMode.PARTIAL)


@pytest.mark.parametrize("files", [[], [f("A.csv"), f("A.csv", "other")]], ids=["empty", "duplicate-names"])
def test_bad_file_lists_are_refused(workspace: Workspace, files):
    with pytest.raises(InvalidValue):
        workspace.datasets.register("train", files, datastore=STORE)


def test_dataset_versions_are_numbered_per_name_and_listed_oldest_first(workspace: Workspace):
    workspace.datasets.register("train", [f("A.csv")], datastore=STORE)
    workspace.datasets.register("inference", [f("A.csv")], datastore=STORE)
    workspace.datasets.register("train", [f("A.csv", "2")], datastore=STORE)
    assert [(v.name, v.version) for v in workspace.datasets.list("train")] == [("train", 1), ("train", 2)]
    assert workspace.datasets.get("inference").version == 1
    everything = workspace.datasets.list()
    assert sorted((v.name, v.version) for v in everything) == [("inference", 1), ("train", 1), ("train", 2)]
    assert [v.version for v in everything if v.name == "train"] == [1, 2]
    assert workspace.datasets.list("nothing") == []


def test_unknown_dataset_or_version_is_not_found(workspace: Workspace):
    with pytest.raises(NotFound, match="train"):
        workspace.datasets.get("train")
    workspace.datasets.register("train", [f("A.csv")], datastore=STORE)
    with pytest.raises(NotFound):
        workspace.datasets.get("train", 7)


# --------------------------------------------------------------------------- models


def test_register_many_numbers_versions_per_name(workspace: Workspace, tmp_path: Path):
    records = workspace.models.register_many([
        NewModel("lr_dominicks_1000", artifact(tmp_path, "a"), tags={"Brand": "dominicks", "Store": "1000"},
                 properties={"mse": "1.5"}),
        NewModel("lr_tropicana_1000", artifact(tmp_path, "b"), tags={"Brand": "tropicana", "Store": "1000"}),
    ])
    assert [(r.name, r.version) for r in records] == [("lr_dominicks_1000", 1), ("lr_tropicana_1000", 1)]
    assert records[0].tags == {"Brand": "dominicks", "Store": "1000"}
    assert records[0].properties == {"mse": "1.5"}
    again = workspace.models.register_many([NewModel("lr_dominicks_1000", artifact(tmp_path, "a2"),
                                                     tags={"Brand": "dominicks", "Store": "1000"})])
    assert [(r.name, r.version) for r in again] == [("lr_dominicks_1000", 2)]
    assert workspace.models.register_many([]) == []


def test_latest_is_the_numerically_highest_version(workspace: Workspace, tmp_path: Path):
    path = artifact(tmp_path, "a")
    for _ in range(11):  # "9" > "11" as text: versions must compare as numbers
        workspace.models.register_many([NewModel("lr_x_1", path, tags={"ModelType": "lr"})])
    assert workspace.models.get("lr_x_1").version == 11
    assert [(m.name, m.version) for m in workspace.models.list(latest=True)] == [("lr_x_1", 11)]
    assert [m.version for m in workspace.models.list(latest=False)] == list(range(1, 12))


def test_list_filters_by_every_tag_and_sorts_by_name(workspace: Workspace, tmp_path: Path):
    path = artifact(tmp_path, "a")
    workspace.models.register_many([
        NewModel("lr_tropicana_1001", path, tags={"Brand": "tropicana", "Store": "1001", "ModelType": "lr"}),
        NewModel("lr_dominicks_1001", path, tags={"Brand": "dominicks", "Store": "1001", "ModelType": "lr"}),
        NewModel("lr_dominicks_1000", path, tags={"Brand": "dominicks", "Store": "1000", "ModelType": "lr"}),
        NewModel("deployed_models_info", path, tags={"ModelType": "_meta_"}),
    ])
    names = [m.name for m in workspace.models.list(tags={"Brand": "dominicks"})]
    assert names == ["lr_dominicks_1000", "lr_dominicks_1001"]
    assert [m.name for m in workspace.models.list(tags={"Brand": "dominicks", "Store": "1001"})] == [
        "lr_dominicks_1001"]
    assert workspace.models.list(tags={"Brand": "dominicks", "Store": "9999"}) == []
    assert [m.name for m in workspace.models.list(tags={"ModelType": "_meta_"})] == ["deployed_models_info"]
    assert [m.name for m in workspace.models.list(name="lr_tropicana_1001")] == ["lr_tropicana_1001"]
    assert len(workspace.models.list()) == 4


def test_latest_with_tags_looks_at_each_names_latest_version(workspace: Workspace, tmp_path: Path):
    path = artifact(tmp_path, "a")
    workspace.models.register_many([NewModel("lr_a_1", path, tags={"ModelType": "lr"})])
    workspace.models.register_many([NewModel("lr_a_1", path, tags={"ModelType": "naive"})])
    assert workspace.models.list(tags={"ModelType": "lr"}) == []
    assert [m.version for m in workspace.models.list(tags={"ModelType": "naive"})] == [2]
    assert [m.version for m in workspace.models.list(latest=False, tags={"ModelType": "lr"})] == [1]


def test_get_model_by_version_and_not_found(workspace: Workspace, tmp_path: Path):
    path = artifact(tmp_path, "a")
    workspace.models.register_many([NewModel("lr_a_1", path), NewModel("lr_a_1", path)])
    assert workspace.models.get("lr_a_1", 1).version == 1
    assert workspace.models.get("lr_a_1", "2").version == 2
    assert workspace.models.get("lr_a_1", "latest").version == 2
    with pytest.raises(NotFound):
        workspace.models.get("lr_a_1", 3)
    with pytest.raises(NotFound):
        workspace.models.get("lr_missing_1")


def test_download_copies_the_registered_artifacts(workspace: Workspace, tmp_path: Path):
    source = artifact(tmp_path, "a", '{"coef": [1, 2]}')
    [record] = workspace.models.register_many([NewModel("lr_a_1", source)])
    Path(source, "model.json").unlink()  # registration took its own copy
    target = tmp_path / "downloaded"
    local = Path(workspace.models.download(record, str(target)))
    assert (local / "model.json").read_text() == '{"coef": [1, 2]}'


def test_a_model_without_artifacts_is_refused(workspace: Workspace, tmp_path: Path):
    with pytest.raises(InvalidValue, match="artifact"):
        workspace.models.register_many([NewModel("lr_a_1", str(tmp_path / "nothing"))])
    assert workspace.models.list() == []


# --------------------------------------------------------------------------- runs


def test_runs_are_read_back_and_listed_newest_first(backend, workspace: Workspace):
    failure = SeriesFailure(file="Store1_x.csv", series="1/x", reason="too few rows to train (3 < 10)")
    backend.add_run(new_run("run-1", submitted="2026-01-01T00:00:00Z", failures=(failure,)))
    backend.add_run(new_run("run-2", kind=PipelineKind.FORECASTING, submitted="2026-01-02T00:00:00Z"))
    run = workspace.runs.get("run-1")
    assert (run.run_id, run.kind, run.status, run.dataset_name) == ("run-1", PipelineKind.TRAINING,
                                                                     RunStatus.QUEUED, "train")
    assert run.failures == (failure,)
    assert [r.run_id for r in workspace.runs.list()] == ["run-2", "run-1"]
    assert [r.run_id for r in workspace.runs.list(kind=PipelineKind.FORECASTING)] == ["run-2"]
    backend.set_run_status("run-1", RunStatus.COMPLETED)
    assert [r.run_id for r in workspace.runs.list(status=RunStatus.COMPLETED)] == ["run-1"]
    assert [r.run_id for r in workspace.runs.list(status=RunStatus.QUEUED)] == ["run-2"]


def test_runs_keep_their_submission_start_and_end_times(backend, workspace: Workspace):
    """``submitted`` orders runs (and rollouts, shared/ledger.py supersedes): it is the submission
    time, also for a run that started after a younger one."""
    backend.add_run(replace(new_run("old", submitted="2026-01-01T00:00:00Z", status=RunStatus.COMPLETED),
                            started="2026-01-01T02:00:00Z", ended="2026-01-01T02:30:00Z"))
    backend.add_run(replace(new_run("young", submitted="2026-01-01T01:00:00Z", status=RunStatus.COMPLETED),
                            started="2026-01-01T01:10:00Z", ended="2026-01-01T01:20:00Z"))
    expected = tuple(dt.datetime(2026, 1, 1, h, m, tzinfo=dt.UTC) for h, m in ((0, 0), (2, 0), (2, 30)))
    for run in (workspace.runs.get("old"), next(r for r in workspace.runs.list() if r.run_id == "old")):
        assert (parse_time(run.submitted), parse_time(run.started or ""), parse_time(run.ended or "")) == expected
    assert [r.run_id for r in workspace.runs.list()] == ["young", "old"]


def test_unknown_run_is_not_found(workspace: Workspace):
    with pytest.raises(NotFound):
        workspace.runs.get("no-such-run")


def test_wait_returns_once_the_run_is_final(backend, workspace: Workspace):
    backend.add_run(new_run("run-1"))
    backend.set_run_status("run-1", RunStatus.RUNNING)
    finisher = threading.Timer(0.3, backend.set_run_status, args=("run-1", RunStatus.FAILED))
    finisher.start()
    try:
        assert workspace.runs.wait("run-1", timeout=30).status == RunStatus.FAILED
    finally:
        finisher.cancel()


def test_wait_gives_up_after_the_timeout(backend, workspace: Workspace):
    backend.add_run(new_run("run-1"))
    with pytest.raises(OperationTimeout, match="run-1"):
        workspace.runs.wait("run-1", timeout=0.2)


# --------------------------------------------------------------------------- services


def test_unknown_service_is_not_found(workspace: Workspace):
    try:
        services = workspace.services
    except ImportError:
        pytest.skip("this backend's service store is not built yet")
    assert services.list() == []
    with pytest.raises(NotFound):
        services.get("manymodels-nothing-1")
    services.delete("manymodels-nothing-1")  # idempotent


def test_workspace_has_a_name_for_status(workspace: Workspace):
    assert workspace.name
