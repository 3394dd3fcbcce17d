"""What the local workspace does beyond the port contract: SQLite, files on disk, runner hooks, events."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.errors import AlreadyExists, Conflict, InvalidValue, NotFound, Unavailable
from shared.settings import Settings
from shared.workspace.base import ModelRecord, NewModel, PipelineKind, Run, RunStatus, SeriesFailure
from shared.workspace.local import events
from shared.workspace.local.datasets import files_from_folder, folder_datastore, local_path
from shared.workspace.local.db import DB_FILE, SCHEMA_VERSION, connect
from shared.workspace.local.workspace import LocalWorkspace


@pytest.fixture
def ws(tmp_path: Path):
    workspace = LocalWorkspace(Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")}))
    yield workspace
    workspace.close()


def artifact(tmp_path: Path, name: str, content: str = "{}") -> str:
    folder = tmp_path / "artifacts" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(content)
    return str(folder)


def queued_run(run_id: str = "run-1") -> Run:
    return Run(run_id=run_id, pipeline="manymodels-training", kind=PipelineKind.TRAINING,
               experiment="manymodels-training", status=RunStatus.QUEUED, dataset_name="train",
               dataset_version=3, parameters={"mode": "changed"}, tags={"batch": "b7"},
               submitted="2026-01-01T00:00:00Z")


# --------------------------------------------------------------------------- database


def test_database_is_created_once_in_wal_mode(tmp_path: Path):
    db = connect(tmp_path)
    conn = db.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    db.close()
    again = connect(tmp_path)  # opening an existing home changes nothing
    assert again.connection().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again.close()


def test_a_newer_schema_is_refused_with_what_to_do(tmp_path: Path):
    raw = sqlite3.connect(tmp_path / DB_FILE)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(Unavailable, match="upgrade manymodels"):
        connect(tmp_path)


def test_each_thread_gets_its_own_connection(tmp_path: Path):
    db = connect(tmp_path)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(db.connection()))
    thread.start()
    thread.join()
    assert seen[0] is not db.connection()
    db.close()


def test_a_failed_transaction_writes_nothing(tmp_path: Path):
    db = connect(tmp_path)
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO services (name, kind, state, updated) VALUES ('s', 'local', 'healthy', 'now')")
        raise RuntimeError("boom")
    assert db.connection().execute("SELECT COUNT(*) FROM services").fetchone()[0] == 0
    db.close()


# --------------------------------------------------------------------------- datasets


def test_files_from_folder_fingerprints_like_blob_storage(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "Store1_a.csv").write_bytes(b"x,y\n1,2\n")
    (tmp_path / "sub" / "Store2_b.csv").write_bytes(b"other")
    (tmp_path / ".hidden").write_text("skip me")
    files = files_from_folder(tmp_path)
    assert [f.name for f in files] == ["Store1_a.csv", "sub/Store2_b.csv"]
    digest = hashlib.md5(b"x,y\n1,2\n").digest()
    assert files[0].md5 == base64.b64encode(digest).decode()
    assert files[0].etag == digest.hex()
    assert files[0].size == 8
    assert local_path(folder_datastore(tmp_path), files[1].path).read_bytes() == b"other"


def test_files_from_a_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(InvalidValue, match="nothing"):
        files_from_folder(tmp_path / "nothing")


def test_a_datastore_must_be_blob_or_local_folder(ws: LocalWorkspace, tmp_path: Path):
    (tmp_path / "A.csv").write_text("a")
    with pytest.raises(InvalidValue, match="datastore"):
        ws.datasets.register("train", files_from_folder(tmp_path), datastore="s3://bucket")


def test_large_dataset_version_round_trips(ws: LocalWorkspace):
    from shared.workspace.base import DatasetFile

    files = [DatasetFile(name=f"Store{i}_b.csv", path=f"train/b/Store{i}_b.csv", etag=str(i), size=i, md5=f"m{i}")
             for i in range(3000)]
    v = ws.datasets.register("train", files, datastore="azureblob://landing")
    assert ws.datasets.get("train", v.version).files == tuple(files)


# --------------------------------------------------------------------------- models


def test_registered_models_are_in_the_registered_model_layout(ws: LocalWorkspace, tmp_path: Path):
    [record] = ws.models.register_many([NewModel("lr_a_1", artifact(tmp_path, "a", '{"v": 1}'))])
    assert Path(record.path) == ws.home / "models" / "lr_a_1" / "1"
    assert (ws.models_dir / "lr_a_1" / "1" / "model.json").read_text() == '{"v": 1}'
    assert [p.name for p in ws.models_dir.iterdir()] == ["lr_a_1"]  # nothing else for scoring to trip on


def test_a_leftover_folder_from_a_failed_registration_is_replaced(ws: LocalWorkspace, tmp_path: Path):
    stale = ws.models_dir / "lr_a_1" / "1"
    stale.mkdir(parents=True)
    (stale / "model.json").write_text("stale")
    [record] = ws.models.register_many([NewModel("lr_a_1", artifact(tmp_path, "a", "fresh"))])
    assert record.version == 1
    assert (Path(record.path) / "model.json").read_text() == "fresh"


def test_a_failed_registration_leaves_no_model_folder(ws: LocalWorkspace, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    from shared.workspace.local import models as models_module

    def disk_full(value):
        raise OSError("No space left on device")

    monkeypatch.setattr(models_module, "dumps", disk_full)  # fails after the folders are placed
    with pytest.raises(OSError, match="No space"):
        ws.models.register_many([NewModel("lr_a_1", artifact(tmp_path, "a"))])
    monkeypatch.undo()
    assert ws.models.list(latest=False) == []
    assert not (ws.models_dir / "lr_a_1" / "1").exists()
    assert ws.models.register_many([NewModel("lr_a_1", artifact(tmp_path, "a"))])[0].version == 1


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "a" * 256])
def test_model_names_that_cannot_be_folders_are_refused(ws: LocalWorkspace, tmp_path: Path, name: str):
    with pytest.raises(InvalidValue, match="model name"):
        ws.models.register_many([NewModel(name, artifact(tmp_path, "a"))])


def test_concurrent_registrations_from_threads_get_distinct_versions(ws: LocalWorkspace, tmp_path: Path):
    path = artifact(tmp_path, "a")
    batch = [NewModel(f"lr_s_{i}", path, tags={"Store": str(i)}) for i in range(20)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: ws.models.register_many(batch), range(8)))
    versions = [m.version for m in ws.models.list(latest=False, name="lr_s_0")]
    assert versions == list(range(1, 9))
    assert {m.version for m in ws.models.list()} == {8}
    assert len(ws.models.list(latest=False)) == 160


def test_download_of_a_deleted_artifact_says_what_is_missing(ws: LocalWorkspace, tmp_path: Path):
    record = ModelRecord(name="lr_a_1", version=1, tags={}, path=str(tmp_path / "gone"))
    with pytest.raises(NotFound, match="lr_a_1:1"):
        ws.models.download(record, str(tmp_path / "out"))


# --------------------------------------------------------------------------- runs (runner side)


def test_update_merges_counts_and_outputs_and_records_failures_once(ws: LocalWorkspace):
    ws.runs.create(queued_run())
    ws.runs.update("run-1", status=RunStatus.RUNNING, started="2026-01-01T00:01:00Z", counts={"files": 4})
    bad = SeriesFailure(file="Store1_a.csv", series="1/a", reason="negative target in row 3")
    ws.runs.update("run-1", counts={"failed": 1}, failures=[bad])
    run = ws.runs.update("run-1", status=RunStatus.COMPLETED, ended="2026-01-01T00:02:00Z",
                         outputs={"predictions": "predictions/forecasts_20260101_run-1.csv"}, failures=[bad])
    assert run.status == RunStatus.COMPLETED
    assert run.counts == {"files": 4, "failed": 1}
    assert run.failures == (bad,)
    assert run.outputs == {"predictions": "predictions/forecasts_20260101_run-1.csv"}
    assert (run.started, run.ended) == ("2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z")


def test_an_ended_run_cannot_change_status(ws: LocalWorkspace):
    ws.runs.create(queued_run())
    ws.runs.update("run-1", status=RunStatus.FAILED, error="worker crashed")
    assert ws.runs.update("run-1", status=RunStatus.FAILED).error == "worker crashed"  # a replay is fine
    with pytest.raises(Conflict, match="failed"):
        ws.runs.update("run-1", status=RunStatus.COMPLETED)


def test_create_is_idempotent_but_refuses_another_run_with_the_same_id(ws: LocalWorkspace):
    assert ws.runs.create(queued_run()) == ws.runs.create(queued_run())
    other = Run(**{**{f: getattr(queued_run(), f) for f in Run.__slots__}, "dataset_version": 9})
    with pytest.raises(AlreadyExists):
        ws.runs.create(other)


def test_update_of_an_unknown_run_is_not_found(ws: LocalWorkspace):
    with pytest.raises(NotFound):
        ws.runs.update("nope", status=RunStatus.RUNNING)


# --------------------------------------------------------------------------- events


def test_run_events_look_like_azure_mls(ws: LocalWorkspace):
    run = ws.runs.create(queued_run())
    run = ws.runs.update(run.run_id, status=RunStatus.COMPLETED, counts={"succeeded": 5},
                         outputs={"predictions": "predictions/x.csv"})
    event = events.run_completed(run, topic=events.LOCAL_TOPIC)
    assert event["eventType"] == "Microsoft.MachineLearningServices.RunCompleted"
    assert event["topic"].endswith("/providers/Microsoft.MachineLearningServices/workspaces/local")
    data = event["data"]
    assert event["subject"] == f"experiments/{data['experimentId']}/runs/run-1"
    assert (event["dataVersion"], event["metadataVersion"]) == ("2", "1")
    assert data["experimentName"] == "manymodels-training"
    assert data["runTags"] == {"batch": "b7", "manymodels_kind": "training", "dataset_name": "train",
                               "dataset_version": "3"}
    assert data["runProperties"] == {"succeeded": "5", "predictions": "predictions/x.csv"}
    failed = events.run_failed(run, topic=events.LOCAL_TOPIC)
    assert failed["eventType"] == "Microsoft.MachineLearningServices.RunStatusChanged"
    assert failed["data"]["runStatus"] == "Failed"
    assert failed["id"] != event["id"]


def test_model_registered_event_uses_pascal_case(ws: LocalWorkspace, tmp_path: Path):
    [record] = ws.models.register_many([NewModel("lr_a_1", artifact(tmp_path, "a"), tags={"Brand": "a"},
                                                 properties={"mse": "2.0"})])
    event = events.model_registered(record, topic=events.LOCAL_TOPIC)
    assert event["subject"] == "models/lr_a_1:1"
    assert event["data"] == {"ModelName": "lr_a_1", "ModelVersion": 1, "ModelTags": {"Brand": "a"},
                             "ModelProperties": {"mse": "2.0"}}


# --------------------------------------------------------------------------- workspace


def test_workspace_name_and_default_event_outbox(ws: LocalWorkspace):
    assert ws.name == f"local:{ws.home}"
    ws.events.publish([{"id": "1"}])
    assert list((ws.home / "eventgrid" / "outbox" / "workspace").glob("*.json"))



def test_a_database_locked_for_too_long_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from shared.workspace.local import db as db_module

    db = connect(tmp_path)
    holder = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holding the lock
    monkeypatch.setattr(db_module, "LOCK_RETRY_SECONDS", 0.2)
    db.connection().execute("PRAGMA busy_timeout = 10")
    try:
        with pytest.raises(Unavailable, match="locked"), db.transaction():
            pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.close()
