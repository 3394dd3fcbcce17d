"""Retention without storage: its settings, what the local stores delete, the AML adapter's
``Model.delete`` (SDK mocked at its boundary) and how ``manymodels status`` shows a pass.
The whole pass on Azurite + the local workspace is tests/integration/test_flows_retention.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from shared.commands.status import render
from shared.errors import InvalidValue, NotFound, SettingsError
from shared.settings import Settings
from shared.workspace.base import NewModel, PipelineKind, Run, RunStatus, SeriesFailure
from shared.workspace.local.workspace import LocalWorkspace


@pytest.fixture
def ws(tmp_path: Path):
    workspace = LocalWorkspace(Settings.from_env({"MANYMODELS_HOME": str(tmp_path / "home")}))
    yield workspace
    workspace.close()


def register(ws: LocalWorkspace, tmp_path: Path, name: str, count: int, tags: dict | None = None) -> None:
    for i in range(count):
        folder = tmp_path / "artifacts" / f"{name}-{i}"
        folder.mkdir(parents=True)
        (folder / "model.json").write_text("{}")
        ws.models.register_many([NewModel(name=name, path=str(folder), tags=tags or {"Store": "1"})])


# --------------------------------------------------------------------------- settings


def test_retention_defaults():
    s = Settings.from_env({})
    assert (s.retention_ledger_hours, s.retention_model_versions, s.retention_run_days) == (48, 3, 14)


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("RETENTION_LEDGER_HOURS", "23", "Event Grid redelivers"),
    ("RETENTION_LEDGER_HOURS", "0", "from 24"),
    ("RETENTION_LEDGER_HOURS", "two days", "hours from 24"),
    ("RETENTION_MODEL_VERSIONS", "-1", "from 0 (keep every version)"),
    ("RETENTION_RUN_DAYS", "3651", "to 3650"),
])
def test_bad_retention_value_names_variable_value_and_why(name, value, allowed):
    with pytest.raises(SettingsError) as e:
        Settings.from_env({name: value})
    assert name in e.value.message and repr(value) in e.value.message and allowed in e.value.message


def test_retention_values_are_parsed():
    s = Settings.from_env({"RETENTION_LEDGER_HOURS": "24", "RETENTION_MODEL_VERSIONS": "0",
                           "RETENTION_RUN_DAYS": "0"})
    assert (s.retention_ledger_hours, s.retention_model_versions, s.retention_run_days) == (24, 0, 0)


# --------------------------------------------------------------------------- local model registry


def test_delete_versions_removes_rows_tags_and_folders_but_never_the_latest(ws, tmp_path):
    register(ws, tmp_path, "lr_a", 4, tags={"Store": "7"})
    register(ws, tmp_path, "lr_b", 1)
    paths = {r.version: Path(r.path) for r in ws.models.list(latest=False, name="lr_a")}

    assert ws.models.delete_versions([("lr_a", 1), ("lr_a", 3), ("lr_a", 4), ("lr_a", 99), ("nope", 1),
                                      ("lr_b", 1)]) == [("lr_a", 1), ("lr_a", 3)]

    assert [r.version for r in ws.models.list(latest=False, name="lr_a")] == [2, 4]
    assert ws.models.get("lr_a").version == 4 and ws.models.get("lr_b").version == 1  # latest ones stay
    assert [r.version for r in ws.models.list(latest=False, tags={"Store": "7"})] == [2, 4]
    assert ws.db.connection().execute("SELECT COUNT(*) FROM model_tags WHERE name = 'lr_a'").fetchone()[0] == 2
    assert not paths[1].exists() and not paths[3].exists() and paths[2].is_dir() and paths[4].is_dir()
    with pytest.raises(NotFound):
        ws.models.get("lr_a", 1)
    assert ws.models.delete_versions([("lr_a", 1), ("lr_a", 3)]) == []  # idempotent
    assert ws.models.delete_versions([]) == []
    register(ws, tmp_path / "again", "lr_a", 1)  # numbering goes on after the latest, never reuses
    assert ws.models.get("lr_a").version == 5


# --------------------------------------------------------------------------- local run store


def _run(run_id: str) -> Run:
    return Run(run_id=run_id, pipeline="manymodels-training", kind=PipelineKind.TRAINING,
               experiment="manymodels-training", status=RunStatus.QUEUED, dataset_name="train",
               dataset_version=1, parameters={}, tags={}, submitted="2026-01-01T00:00:00Z")


def test_delete_runs_deletes_final_runs_with_folder_and_never_a_running_one(ws):
    for run_id in ("done", "busy"):
        ws.runs.create(_run(run_id))
        (ws.runs_dir / run_id / "logs").mkdir(parents=True)
    ws.runs.update("done", status=RunStatus.COMPLETED, ended="2026-01-02T00:00:00Z",
                   failures=[SeriesFailure("a.csv", "1", "too short")])
    ws.runs.update("busy", status=RunStatus.RUNNING)

    assert ws.runs.delete_runs(["done", "busy", "unknown"]) == ["done"]

    with pytest.raises(NotFound):
        ws.runs.get("done")
    assert not (ws.runs_dir / "done").exists()
    # list(), not get(): get() fails a local run whose runner process is gone (this one never had one)
    assert [(r.run_id, r.status) for r in ws.runs.list()] == [("busy", RunStatus.RUNNING)]
    assert (ws.runs_dir / "busy").is_dir()
    assert ws.db.connection().execute("SELECT COUNT(*) FROM run_failures").fetchone()[0] == 0
    assert ws.runs.delete_runs(["done"]) == []  # idempotent


def test_a_store_without_deletion_says_so():
    from shared.workspace.base import ModelRegistry, RunStore

    class Registry(ModelRegistry):
        register_many = list = get = download = None  # type: ignore[assignment]

    class Runs(RunStore):
        get = list = wait = None  # type: ignore[assignment]

    assert not Registry.supports_delete and not Runs.supports_delete
    with pytest.raises(InvalidValue, match="does not delete model versions"):
        Registry().delete_versions([("m", 1)])
    with pytest.raises(InvalidValue, match="does not delete runs"):
        Runs().delete_runs(["r"])


# --------------------------------------------------------------------------- AML adapter (SDK mocked)


def test_aml_delete_versions_uses_model_delete_and_keeps_refused_ones(monkeypatch):
    pytest.importorskip("azureml.core")
    from azureml.exceptions import WebserviceException

    from shared.workspace.aml import models as aml_models

    deleted: list[tuple[str, int]] = []

    def model(ws, name, version):
        if name == "gone":
            raise WebserviceException("ModelNotFound: gone")
        instance = mock.MagicMock(name=f"{name}:{version}")
        if name == "used":
            instance.delete.side_effect = WebserviceException("model is in use by service svc (409 conflict)")
        else:
            instance.delete.side_effect = lambda: deleted.append((name, version))
        return instance

    monkeypatch.setattr(aml_models, "Model", model)
    registry = aml_models.AmlModelRegistry(SimpleNamespace(ws=object()))
    assert registry.supports_delete
    assert registry.delete_versions([("lr_a", 1), ("gone", 2), ("used", 3)]) == [("lr_a", 1)]
    assert deleted == [("lr_a", 1)]
    with pytest.raises(Exception, match="could not be deleted"):
        registry.delete_versions([("used", 3)])


# --------------------------------------------------------------------------- status


def _report(retention) -> dict:
    return {"backend": "local", "workspace": "local:/x", "targets": [], "datasets": [],
            "runs": {"counts": {}, "recent": [], "failures": {"total": 0, "first": []}},
            "models": {"count": 0, "by_type": {}}, "services": [], "routers": {},
            "storage": {"reachable": True}, "batches": [], "deployments": {"targets": [], "plans": []},
            "retention": retention}


LIMITS = {"ledger_hours": 48, "model_versions": 3, "run_days": 14}


def test_status_shows_the_last_retention_pass():
    last = {"at": "2026-12-03T07:00:00.000Z", "event_ids": 12, "batch_file_rows": 30, "batches_pruned": 1,
            "model_versions": 5, "runs": 2, "kept_deployed": 1, "kept_planned": 1, "kept_in_progress": 1,
            "skipped": {"runs": "RETENTION_RUN_DAYS=0 keeps every run"}}
    text = render(_report({"last": last, "limits": LIMITS}))
    assert "last pass 2026-12-03T07:00:00.000Z removed 12 event ids, 30 batch file rows, 0 plans, " \
           "0 ledger run rows, 5 model versions, 2 runs" in text
    assert "keeps 48 h of ledger history, 3 versions per model, 14 days of runs" in text
    assert "runs skipped: RETENTION_RUN_DAYS=0" in text
    assert "no pass yet" in render(_report({"last": None, "limits": LIMITS}))
    zero = {"ledger_hours": 24, "model_versions": 0, "run_days": 0}
    assert "all versions per model, all runs" in render(_report({"last": None, "limits": zero}))
    assert "Retention: unavailable: boom" in render(_report({"error": "boom"}))
