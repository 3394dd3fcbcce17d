"""The workspace contract: what every backend (local, Azure ML) must do, tested once through the port.

Backends come from ``WORKSPACE_FACTORIES`` in this folder's conftest.py; nothing here knows
which one it runs on. Where backends differ on purpose, a test reads the backend's capability
fields (conftest.ContractBackend), never its name.
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
    DatasetVersion,
    ModelRecord,
    NewModel,
    PipelineKind,
    PublishedPipeline,
    Run,
    RunStatus,
    SeriesFailure,
    ServiceConfig,
    ServiceKeys,
    ServiceState,
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
    """``submitted`` orders runs (and rollouts, shared/ledger/rollouts.py supersedes): it is the submission
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


# --------------------------------------------------------------------------- pipelines

TRAINING = "manymodels-training"  # TRAINING_PIPELINE_NAME: the AML run store lists the runs of these two
FORECASTING = "manymodels-forecasting"


def train_dataset(workspace: Workspace) -> DatasetVersion:
    return workspace.datasets.register("train", [f("A.csv"), f("B.csv")], datastore=STORE)


def test_publish_numbers_versions_per_name_and_get_answers_the_newest(workspace: Workspace):
    first = workspace.pipelines.publish(TRAINING, PipelineKind.TRAINING)
    assert isinstance(first, PublishedPipeline)
    assert (first.name, first.kind, first.version, first.enabled) == (TRAINING, PipelineKind.TRAINING, 1, True)
    assert first.pipeline_id
    second = workspace.pipelines.publish(TRAINING, PipelineKind.TRAINING)
    assert second.version == 2 and second.pipeline_id != first.pipeline_id
    other = workspace.pipelines.publish(FORECASTING, PipelineKind.FORECASTING)
    assert (other.version, other.kind) == (1, PipelineKind.FORECASTING)  # numbered per name
    got = workspace.pipelines.get(TRAINING)  # the older one of the name is disabled
    assert (got.pipeline_id, got.version, got.kind, got.enabled) == (second.pipeline_id, 2, PipelineKind.TRAINING,
                                                                    True)
    assert workspace.pipelines.get(FORECASTING).pipeline_id == other.pipeline_id


def test_a_pipeline_keeps_its_kind_whatever_its_name_and_description(workspace: Workspace):
    workspace.pipelines.publish("nightly", PipelineKind.FORECASTING, description="runs every night")
    workspace.pipelines.publish("weekly-forecasting-refit", PipelineKind.TRAINING, description="refits models")
    assert workspace.pipelines.get("nightly").kind == PipelineKind.FORECASTING
    assert workspace.pipelines.get("weekly-forecasting-refit").kind == PipelineKind.TRAINING


def test_unknown_pipeline_is_not_found(workspace: Workspace):
    with pytest.raises(NotFound, match="never-published"):
        workspace.pipelines.get("never-published")


def test_submit_returns_a_queued_run_of_what_was_asked(workspace: Workspace):
    dataset = train_dataset(workspace)
    workspace.pipelines.publish(TRAINING, PipelineKind.TRAINING)
    run = workspace.pipelines.submit(TRAINING, dataset, parameters={"mode": "all"}, tags={"batch": "b1"})
    assert isinstance(run, Run) and run.run_id
    assert (run.pipeline, run.kind, run.status) == (TRAINING, PipelineKind.TRAINING, RunStatus.QUEUED)
    assert (run.dataset_name, run.dataset_version) == ("train", 1)
    assert run.parameters["mode"] == "all" and run.tags["batch"] == "b1"
    assert parse_time(run.submitted)
    stored = workspace.runs.get(run.run_id)
    assert (stored.kind, stored.status, stored.dataset_name, stored.dataset_version) == (
        PipelineKind.TRAINING, RunStatus.QUEUED, "train", 1)
    assert stored.tags["batch"] == "b1"
    assert [r.run_id for r in workspace.runs.list(kind=PipelineKind.TRAINING)] == [run.run_id]


def test_a_training_run_without_a_mode_gets_training_mode(workspace: Workspace):
    dataset = train_dataset(workspace)
    workspace.pipelines.publish(TRAINING, PipelineKind.TRAINING)
    run = workspace.pipelines.submit(TRAINING, dataset)
    assert run.parameters["mode"] == "changed"  # TRAINING_MODE's default (shared/settings.py)


def test_a_forecasting_run_has_no_mode(workspace: Workspace):
    dataset = workspace.datasets.register("inference", [f("A.csv")], datastore=STORE)
    workspace.pipelines.publish(FORECASTING, PipelineKind.FORECASTING)
    run = workspace.pipelines.submit(FORECASTING, dataset, tags={"batch": "i1"})
    assert (run.kind, run.dataset_name, run.status) == (PipelineKind.FORECASTING, "inference", RunStatus.QUEUED)
    assert "mode" not in run.parameters
    assert workspace.runs.get(run.run_id).kind == PipelineKind.FORECASTING


@pytest.mark.parametrize(("kind", "parameters", "named"), [
    (PipelineKind.TRAINING, {"bogus": 1}, "bogus"),
    (PipelineKind.TRAINING, {"mode": "sometimes"}, "sometimes"),
    (PipelineKind.FORECASTING, {"mode": "all"}, "mode"),
], ids=["unknown", "bad-mode", "mode-on-forecasting"])
def test_bad_run_parameters_are_refused_before_any_run_exists(workspace: Workspace, kind, parameters, named):
    dataset = train_dataset(workspace)
    name = TRAINING if kind == PipelineKind.TRAINING else FORECASTING
    workspace.pipelines.publish(name, kind)
    with pytest.raises(InvalidValue, match=named):
        workspace.pipelines.submit(name, dataset, parameters=parameters)
    assert workspace.runs.list() == []


def test_changed_mode_on_a_version_that_changed_nothing_is_refused(workspace: Workspace):
    workspace.datasets.register("train", [f("A.csv"), f("B.csv")], datastore=STORE)
    smaller = workspace.datasets.register("train", [f("A.csv")], datastore=STORE)  # B.csv dropped, nothing new
    assert (smaller.version, smaller.changed) == (2, ())
    workspace.pipelines.publish(TRAINING, PipelineKind.TRAINING)
    with pytest.raises(InvalidValue, match="changed"):
        workspace.pipelines.submit(TRAINING, smaller, parameters={"mode": "changed"})
    assert workspace.runs.list() == []
    assert workspace.pipelines.submit(TRAINING, smaller, parameters={"mode": "all"}).status == RunStatus.QUEUED


def test_submit_of_an_unpublished_pipeline_is_not_found(workspace: Workspace):
    dataset = train_dataset(workspace)
    with pytest.raises(NotFound, match="never-published"):
        workspace.pipelines.submit("never-published", dataset)
    assert workspace.runs.list() == []


def test_default_pipelines_are_published_on_first_submit(backend, workspace: Workspace):
    if not backend.default_pipelines:
        pytest.skip("this backend publishes no pipeline by itself (capability default_pipelines)")
    dataset = train_dataset(workspace)
    for name in backend.default_pipelines:
        run = workspace.pipelines.submit(name, dataset, parameters={"mode": "all"} if "train" in name else None)
        published = workspace.pipelines.get(name)
        assert (published.version, run.kind) == (1, published.kind)
        workspace.pipelines.submit(name, dataset, parameters={"mode": "all"} if "train" in name else None)
        assert workspace.pipelines.get(name).version == 1  # published once, not on every submit


# --------------------------------------------------------------------------- services

SERVICE = "manymodels-contract-1"


def service_config(backend) -> ServiceConfig:
    if backend.service_config is None:
        pytest.skip(f"this suite does not deploy on this backend (capability service_config); "
                    f"{backend.services_elsewhere or 'no other module'} runs these tests on it")
    return backend.service_config


def models(workspace: Workspace, tmp_path: Path, *names: str) -> list[ModelRecord]:
    return workspace.models.register_many([NewModel(n, artifact(tmp_path, f"{n}-{i}"), tags={"ModelType": "lr"})
                                           for i, n in enumerate(names)])


def test_deploy_returns_a_healthy_service_serving_the_models(backend, workspace: Workspace, tmp_path: Path):
    config = service_config(backend)
    served = models(workspace, tmp_path, "lr_a_1", "lr_b_1")
    service = workspace.services.deploy(SERVICE, served, config, timeout=60)
    assert (service.name, service.kind, service.state) == (SERVICE, config.kind, ServiceState.HEALTHY)
    assert service.models == ("lr_a_1:1", "lr_b_1:1")
    assert service.scoring_uri and parse_time(service.updated)
    got = workspace.services.get(SERVICE)
    assert (got.name, got.kind, got.state, got.models, got.scoring_uri) == (
        SERVICE, config.kind, ServiceState.HEALTHY, service.models, service.scoring_uri)
    assert [s.name for s in workspace.services.list()] == [SERVICE]
    assert [s.name for s in workspace.services.list(kind=config.kind)] == [SERVICE]
    if backend.other_service_kind is not None:
        assert workspace.services.list(kind=backend.other_service_kind) == []


def test_services_are_listed_by_name(backend, workspace: Workspace, tmp_path: Path):
    config = service_config(backend)
    served = models(workspace, tmp_path, "lr_a_1")
    for name in ("manymodels-contract-2", "manymodels-contract-1"):
        workspace.services.deploy(name, served, config, timeout=60)
    assert [s.name for s in workspace.services.list()] == ["manymodels-contract-1", "manymodels-contract-2"]


def test_update_replaces_the_models_and_moves_updated(backend, workspace: Workspace, tmp_path: Path):
    config = service_config(backend)
    [a1, b1] = models(workspace, tmp_path, "lr_a_1", "lr_b_1")
    before = workspace.services.deploy(SERVICE, [a1], config, timeout=60)
    [a2] = models(workspace, tmp_path, "lr_a_1")
    after = workspace.services.update(SERVICE, [a2, b1], config, timeout=60)
    assert (after.state, after.models) == (ServiceState.HEALTHY, ("lr_a_1:2", "lr_b_1:1"))
    assert after.scoring_uri == before.scoring_uri  # the endpoint stays
    assert parse_time(after.updated) > parse_time(before.updated)
    assert workspace.services.get(SERVICE).models == ("lr_a_1:2", "lr_b_1:1")


def test_delete_is_idempotent_and_the_service_is_then_not_found(backend, workspace: Workspace, tmp_path: Path):
    config = service_config(backend)
    workspace.services.deploy(SERVICE, models(workspace, tmp_path, "lr_a_1"), config, timeout=60)
    workspace.services.delete(SERVICE)
    workspace.services.delete(SERVICE)
    with pytest.raises(NotFound):
        workspace.services.get(SERVICE)
    with pytest.raises(NotFound):
        workspace.services.get_keys(SERVICE)
    assert workspace.services.list() == []


def test_get_keys_answers_keys_that_never_print(backend, workspace: Workspace, tmp_path: Path):
    config = service_config(backend)
    workspace.services.deploy(SERVICE, models(workspace, tmp_path, "lr_a_1"), config, timeout=60)
    keys = workspace.services.get_keys(SERVICE)
    # empty where no key exists: a local service (loopback, no auth), an Entra-token endpoint
    assert isinstance(keys, ServiceKeys) and isinstance(keys.primary, str) and isinstance(keys.secondary, str)
    shown = repr(keys) + str(keys) + f"{keys!r}"
    assert "***" in shown
    assert not [k for k in (keys.primary, keys.secondary) if k and k in shown]
    with pytest.raises(NotFound):
        workspace.services.get_keys("manymodels-nothing-1")
    assert not keys.primary or keys.primary not in repr(workspace.services.get(SERVICE))


def test_unknown_service_is_not_found(workspace: Workspace):
    try:
        services = workspace.services
    except ImportError:
        pytest.skip("this backend's service store is not built yet")
    assert services.list() == []
    with pytest.raises(NotFound):
        services.get("manymodels-nothing-1")
    services.delete("manymodels-nothing-1")  # idempotent
    with pytest.raises(NotFound):
        services.get_keys("manymodels-nothing-1")


def test_workspace_has_a_name_for_status(workspace: Workspace):
    assert workspace.name
