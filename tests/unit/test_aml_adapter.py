"""The Azure ML adapter's stores with azureml-core mocked at its boundary (Dataset, Datastore,
Model, Webservice, Run, Experiment, PublishedPipeline): what they call and how they map answers
and errors into the port's records and ``shared.errors``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from azureml._restclient.clientbase import ClientBase
from azureml._restclient.models import ErrorResponse, RootError, RunDetailsDto, RunDto
from azureml._restclient.utils import camel_case_transformer
from azureml.core import Environment

from shared.errors import Conflict, InvalidValue, NotFound, OperationTimeout, Unavailable
from shared.ledger import parse_time
from shared.settings import Settings
from shared.workspace.aml import datasets as aml_datasets
from shared.workspace.aml import models as aml_models
from shared.workspace.aml import pipelines as aml_pipelines
from shared.workspace.aml import runs as aml_runs
from shared.workspace.aml import services as aml_services
from shared.workspace.aml.sdk_errors import translate
from shared.workspace.aml.workspace import AmlWorkspace, token_for_audience
from shared.workspace.base import (
    DatasetFile,
    DatasetMode,
    ModelRecord,
    NewModel,
    PipelineKind,
    RunStatus,
    ServiceConfig,
    ServiceKind,
    ServiceState,
)
from shared.workspace.service_environment import looks_secret

SCORING = Path(__file__).resolve().parents[2] / "scoring"
import service_keys  # noqa: E402 - scoring/ is self-contained, imported as the inference server does

REAL_INFERENCE_CONFIG = aml_services.inference_config


class WebserviceException(Exception):
    """Stands in for azureml.exceptions.WebserviceException (same message shapes)."""


class FakeBlobs:
    """In-memory stand-in for the metadata container (BlobStore's interface)."""

    docs: dict[str, bytes] = {}

    def __init__(self, account, container):
        self.container = container

    def ensure_container(self):
        pass

    def upload_bytes(self, name, data, *, content_type=None):
        self.docs[name] = data

    def download_bytes(self, name):
        if name not in self.docs:
            raise NotFound(name)
        return self.docs[name]


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"MANYMODELS_BACKEND": "aml", "AZURE_SUBSCRIPTION_ID": "sub", "RESOURCE_GROUP": "rg",
                              "AML_WORKSPACE_NAME": "nsaml", "AKS_NAME": "aks1",
                              "AzureWebJobsStorage": "https://nssa.blob.core.windows.net"})


@pytest.fixture
def workspace(settings) -> AmlWorkspace:
    return AmlWorkspace(settings, mock.MagicMock(name="Workspace"))


def _file(name: str, md5: str) -> DatasetFile:
    return DatasetFile(name=name, path=f"train/b1/{name}", etag=f"e-{md5}", size=10, md5=md5)


# --------------------------------------------------------------------------- datasets


@pytest.fixture
def fake_dataset_sdk(monkeypatch):
    """Registered FileDataset versions kept in a dict, like the service would."""
    FakeBlobs.docs = {}
    versions: dict[str, list[SimpleNamespace]] = {}

    def get_by_name(ws, name, version="latest"):
        if not versions.get(name):
            raise Exception(f"Cannot find dataset registered with name '{name}' (not found)")
        return versions[name][-1] if version == "latest" else versions[name][int(version) - 1]

    def from_files(path, validate=True):
        unregistered = mock.MagicMock(name="FileDataset")
        unregistered.paths = path

        def register(ws, name, description=None, tags=None, create_new_version=False):
            assert create_new_version
            record = SimpleNamespace(name=name, version=len(versions.get(name, [])) + 1, tags=dict(tags),
                                     paths=path)
            versions.setdefault(name, []).append(record)
            return record

        unregistered.register.side_effect = register
        return unregistered

    dataset = mock.MagicMock(name="Dataset")
    dataset.get_by_name.side_effect = get_by_name
    dataset.File.from_files.side_effect = from_files
    dataset.get_all.side_effect = lambda ws: {n: v[-1] for n, v in versions.items()}
    monkeypatch.setattr(aml_datasets, "Dataset", dataset)
    monkeypatch.setattr(aml_datasets, "Datastore", mock.MagicMock(name="Datastore"))
    monkeypatch.setattr(aml_datasets, "BlobStore", FakeBlobs)
    return SimpleNamespace(Dataset=dataset, versions=versions)


def test_dataset_register_creates_versions_and_is_idempotent_on_same_content(workspace, fake_dataset_sdk):
    store = workspace.datasets
    v1 = store.register("train", [_file("a.csv", "1"), _file("b.csv", "2")], datastore="azureblob://landing")
    again = store.register("train", [_file("b.csv", "2"), _file("a.csv", "1")], datastore="azureblob://landing")
    v2 = store.register("train", [_file("a.csv", "1"), _file("b.csv", "3")], datastore="azureblob://landing")

    assert (v1.version, again.version, v2.version) == (1, 1, 2)
    assert v1.changed == ("a.csv", "b.csv") and v2.changed == ("b.csv",)
    assert len(fake_dataset_sdk.versions["train"]) == 2
    assert store.get("train", 2).files == v2.files
    datastore_name = aml_datasets.Datastore.get.call_args.args[1]
    assert datastore_name == "landing"


def test_partial_dataset_replaces_files_by_name(workspace, fake_dataset_sdk):
    store = workspace.datasets
    store.register("train", [_file("a.csv", "1"), _file("b.csv", "2")], datastore="azureblob://landing")
    v2 = store.register("train", [_file("b.csv", "9")], datastore="azureblob://landing", mode=DatasetMode.PARTIAL)

    assert [f.name for f in v2.files] == ["a.csv", "b.csv"] and v2.changed == ("b.csv",)
    assert v2.mode == DatasetMode.PARTIAL


def test_dataset_register_rejects_bad_input(workspace, fake_dataset_sdk):
    store = workspace.datasets
    with pytest.raises(InvalidValue, match="at least one file"):
        store.register("train", [], datastore="azureblob://landing")
    with pytest.raises(InvalidValue, match=r"a\.csv"):
        store.register("train", [_file("a.csv", "1"), _file("a.csv", "2")], datastore="azureblob://landing")
    with pytest.raises(InvalidValue, match="full"):
        store.register("train", [_file("a.csv", "1")], datastore="azureblob://landing", mode=DatasetMode.PARTIAL)
    with pytest.raises(InvalidValue, match="azureblob"):
        store.register("train", [_file("a.csv", "1")], datastore="file:///tmp/x")
    with pytest.raises(NotFound):
        store.get("inference")


def test_submission_selects_only_changed_files(workspace, fake_dataset_sdk):
    store = workspace.datasets
    store.register("train", [_file("a.csv", "1"), _file("b.csv", "2")], datastore="azureblob://landing")
    v2 = store.register("train", [_file("a.csv", "1"), _file("b.csv", "3")], datastore="azureblob://landing")

    subset = store.submission(v2, only_changed=True)
    assert [p for _, p in subset.paths] == ["train/b1/b.csv"]
    whole = store.submission(v2, only_changed=False)
    assert whole.version == 2


# --------------------------------------------------------------------------- pipelines


def _published(name, version, pid):
    p = mock.MagicMock(name=f"PublishedPipeline {pid}")
    p.name, p.version, p.id, p.description, p.status = name, str(version), pid, "manymodels training", "Active"
    return p


def test_publish_disables_older_pipelines_of_the_same_name_only(workspace, monkeypatch):
    old1, old2 = _published("manymodels-training", 1, "p1"), _published("manymodels-training", 2, "p2")
    other = _published("manymodels-forecasting", 1, "f1")
    sdk = mock.MagicMock(name="PublishedPipeline")
    sdk.list.return_value = [old1, old2, other]
    monkeypatch.setattr(aml_pipelines, "SdkPublishedPipeline", sdk)
    pipeline = mock.MagicMock(name="Pipeline")
    pipeline.publish.return_value = _published("manymodels-training", 3, "p3")
    with mock.patch("shared.workspace.aml.pipelines.build_pipeline", return_value=pipeline) as built:
        record = workspace.pipelines.publish("manymodels-training", PipelineKind.TRAINING)

    assert built.call_args.args[1] == PipelineKind.TRAINING
    assert pipeline.publish.call_args.kwargs["version"] == "3"
    old1.disable.assert_called_once_with()
    old2.disable.assert_called_once_with()
    other.disable.assert_not_called()
    assert (record.pipeline_id, record.version, record.kind) == ("p3", 3, PipelineKind.TRAINING)


def test_submit_passes_the_dataset_version_as_pipeline_parameter_and_tags(workspace, fake_dataset_sdk, monkeypatch):
    dataset = workspace.datasets.register("train", [_file("a.csv", "1")], datastore="azureblob://landing")
    sdk = mock.MagicMock(name="PublishedPipeline")
    sdk.list.return_value = [_published("manymodels-training", 1, "p1")]
    monkeypatch.setattr(aml_pipelines, "SdkPublishedPipeline", sdk)
    experiment = mock.MagicMock(name="Experiment")
    experiment.return_value.submit.return_value = SimpleNamespace(id="run-42")
    monkeypatch.setattr(aml_pipelines, "Experiment", experiment)

    run = workspace.pipelines.submit("manymodels-training", dataset, parameters={"mode": "all"})

    kwargs = experiment.return_value.submit.call_args.kwargs
    assert kwargs["pipeline_parameters"]["dataset_version"] == "1"
    assert kwargs["pipeline_parameters"]["dataset"].version == 1
    assert kwargs["tags"]["manymodels_kind"] == "training" and kwargs["tags"]["dataset_name"] == "train"
    assert (run.run_id, run.status, run.dataset_version) == ("run-42", RunStatus.QUEUED, 1)
    with pytest.raises(InvalidValue, match="mode"):
        workspace.pipelines.submit("manymodels-training", dataset, parameters={"mode": "some"})
    sdk.list.return_value = []
    with pytest.raises(NotFound, match="publish"):
        workspace.pipelines.submit("manymodels-training", dataset)


# --------------------------------------------------------------------------- runs


@pytest.mark.parametrize(("aml", "ours"), [
    ("NotStarted", RunStatus.QUEUED), ("Preparing", RunStatus.QUEUED), ("Running", RunStatus.RUNNING),
    ("Finalizing", RunStatus.RUNNING), ("Completed", RunStatus.COMPLETED), ("Failed", RunStatus.FAILED),
    ("Canceled", RunStatus.CANCELED),
])
def test_run_statuses_map(aml, ours):
    assert aml_runs.map_status(aml) is ours


def _sdk_run(experiment: str, **dto):
    """A run as ``Run.get`` / ``Experiment.get_runs`` return it: ``_run_dto`` is the service's RunDto
    as azureml-core hands it out (``ClientBase.dto_to_dictionary``: snake_case keys, ISO times)."""
    record = ClientBase.dto_to_dictionary(RunDto(**dto))
    details = RunDetailsDto(run_id=dto["run_id"], status=dto.get("status"), start_time_utc=dto.get("start_time_utc"),
                            end_time_utc=dto.get("end_time_utc"), properties=dto.get("properties"), log_files={})
    run = mock.MagicMock(name=f"Run {dto['run_id']}", id=dto["run_id"], _run_dto=record)
    run.experiment.name = experiment
    run.get_details.return_value = details.as_dict(key_transformer=camel_case_transformer)
    return run


def _utc(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, 1, hour, minute, tzinfo=dt.UTC)


def test_run_get_maps_the_record_times_counts_outputs_and_failures(workspace, monkeypatch):
    sdk_run = _sdk_run(
        "manymodels-forecasting", run_id="r1", status="Failed", created_utc=_utc(0), start_time_utc=_utc(1),
        end_time_utc=_utc(1, 10), tags={"manymodels_kind": "forecasting", "dataset_name": "inference",
                                        "dataset_version": "4"},
        properties={"rows": "70", "failed": "1", "predictions": "predictions/forecasts_20260101_r1.csv",
                    "failures": '[{"file": "x.csv", "series": "x", "reason": "no model"}]'},
        error=ErrorResponse(error=RootError(code="UserError", message="step forecast failed")))
    run_class = mock.MagicMock(name="RunClass")
    run_class.get.return_value = sdk_run
    monkeypatch.setattr(aml_runs, "SdkRun", run_class)

    run = workspace.runs.get("r1")

    assert (run.kind, run.status, run.dataset_version) == (PipelineKind.FORECASTING, RunStatus.FAILED, 4)
    assert (parse_time(run.submitted), parse_time(run.started), parse_time(run.ended)) == (
        _utc(0), _utc(1), _utc(1, 10))
    assert run.counts == {"rows": 70, "failed": 1}
    assert run.outputs["predictions"].endswith("_r1.csv")
    assert run.failures[0].reason == "no model" and run.error == "step forecast failed"


def test_listed_runs_have_times_and_are_ordered_by_submission_not_start(workspace, monkeypatch):
    """The older run started later (it waited for compute): it is still the older one."""
    older = _sdk_run("manymodels-training", run_id="older", status="Completed", created_utc=_utc(0),
                     start_time_utc=_utc(3), end_time_utc=_utc(4), tags={"manymodels_kind": "training"})
    younger = _sdk_run("manymodels-training", run_id="younger", status="Running", created_utc=_utc(1),
                       start_time_utc=_utc(2), tags={"manymodels_kind": "training"})
    experiment = mock.MagicMock(name="Experiment")
    experiment.side_effect = lambda ws, name: mock.MagicMock(
        get_runs=lambda: iter([younger, older] if name == "manymodels-training" else []))
    monkeypatch.setattr(aml_runs, "Experiment", experiment)

    runs = workspace.runs.list()

    assert [r.run_id for r in runs] == ["younger", "older"]
    assert [parse_time(r.submitted) for r in runs] == [_utc(1), _utc(0)]
    assert (parse_time(runs[1].started), parse_time(runs[1].ended), runs[0].ended) == (_utc(3), _utc(4), None)
    older.get_details.assert_not_called()  # the listing already holds every run's record


def test_run_get_unknown_is_not_found_and_wait_times_out(workspace, monkeypatch):
    run_class = mock.MagicMock(name="RunClass")
    run_class.get.side_effect = Exception("Run r9 not found")
    monkeypatch.setattr(aml_runs, "SdkRun", run_class)
    with pytest.raises(NotFound, match="r9"):
        workspace.runs.get("r9")
    run_class.get.side_effect = None
    run_class.get.return_value = _sdk_run("manymodels-training", run_id="r2", status="Running", created_utc=_utc(0))
    with pytest.raises(OperationTimeout, match="r2"):
        workspace.runs.wait("r2", timeout=0)


# --------------------------------------------------------------------------- models


def _sdk_model(name, version, tags=None):
    return SimpleNamespace(name=name, version=version, tags=tags or {}, properties={"mape": "0.1"},
                           url=f"aml://asset/{name}/{version}", created_time=None)


def test_register_many_registers_each_model_and_reports_failures_after_the_rest(workspace, monkeypatch, tmp_path):
    model = mock.MagicMock(name="Model")

    def register(workspace, model_path, model_name, tags, properties):
        if model_name == "lr_bad":
            raise WebserviceException("Model lr_bad already exists with conflicting etag")
        return _sdk_model(model_name, 1, tags)

    model.register.side_effect = register
    monkeypatch.setattr(aml_models, "Model", model)
    for name in ("lr_0", "lr_1", "lr_2", "lr_bad"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.json").write_text("{}")
    good = [NewModel(name=f"lr_{i}", path=str(tmp_path / f"lr_{i}"), tags={"Store": str(i)}) for i in range(3)]

    records = workspace.models.register_many(good)
    assert [r.name for r in records] == ["lr_0", "lr_1", "lr_2"] and records[0].tags == {"Store": "0"}
    with pytest.raises(Conflict, match="1 of 4 models were not registered"):
        workspace.models.register_many([*good, NewModel(name="lr_bad", path=str(tmp_path / "lr_bad"))])
    assert model.register.call_count == 3 + 4
    with pytest.raises(InvalidValue, match="artifact"):
        workspace.models.register_many([NewModel(name="lr_none", path=str(tmp_path / "nothing"))])
    assert model.register.call_count == 3 + 4


def test_models_list_filters_by_tags_latest_and_sorts(workspace, monkeypatch):
    model = mock.MagicMock(name="Model")
    model.list.return_value = [_sdk_model("lr_b", 2, {"ModelType": "lr"}), _sdk_model("lr_a", 5, {"ModelType": "lr"}),
                               _sdk_model("meta", 1, {"ModelType": "_meta_"})]
    monkeypatch.setattr(aml_models, "Model", model)

    records = workspace.models.list(tags={"ModelType": "lr"})

    assert [(r.name, r.version) for r in records] == [("lr_a", 5), ("lr_b", 2)]
    assert model.list.call_args.kwargs == {"name": None, "tags": [["ModelType", "lr"]], "latest": True}


def test_model_get_not_found_and_bad_version(workspace, monkeypatch):
    model = mock.MagicMock(name="Model", side_effect=WebserviceException("ModelNotFound: lr_x"))
    monkeypatch.setattr(aml_models, "Model", model)
    with pytest.raises(NotFound, match="lr_x"):
        workspace.models.get("lr_x")
    with pytest.raises(InvalidValue, match="whole number"):
        workspace.models.get("lr_x", "newest")


# --------------------------------------------------------------------------- services


@pytest.fixture
def service_sdk(monkeypatch):
    sdk = SimpleNamespace(Model=mock.MagicMock(name="Model"), Webservice=mock.MagicMock(name="Webservice"),
                          AksCompute=mock.MagicMock(name="AksCompute"))
    for name, value in vars(sdk).items():
        monkeypatch.setattr(aml_services, name, value)
    monkeypatch.setattr(aml_services, "inference_config", lambda config: "inference-config")
    return sdk


def _service(name, state="Healthy", compute_type="ACI"):
    s = mock.MagicMock(name=f"service {name}")
    s.name, s.state, s.compute_type, s.scoring_uri, s.error = name, state, compute_type, f"http://{name}/score", None
    s.models = [SimpleNamespace(name="lr_1", version=2)]
    return s


MODELS = [ModelRecord(name="lr_1", version=2, tags={}, path="aml://x")]


def test_deploy_aci_with_auth_and_the_configured_resources(workspace, service_sdk):
    service_sdk.Model.deploy.return_value = _service("manymodels-modelgroup-1")
    config = ServiceConfig(kind=ServiceKind.ACI, entry_script="scoring/model_webservice.py", cpu_cores=1,
                           memory_gb=1)

    record = workspace.services.deploy("manymodels-modelgroup-1", MODELS, config, timeout=60)

    kwargs = service_sdk.Model.deploy.call_args.kwargs
    deploy_config = kwargs["deployment_config"]
    assert (deploy_config.cpu_cores, deploy_config.memory_gb, deploy_config.auth_enabled) == (1, 1, True)
    assert kwargs["deployment_target"] is None and kwargs["overwrite"] is True
    service_sdk.Model.deploy.return_value.wait_for_deployment.assert_called_once_with(show_output=False,
                                                                                     timeout_sec=60)
    assert (record.state, record.models) == (ServiceState.HEALTHY, ("lr_1:2",))


def test_deploy_aks_targets_the_attached_cluster_and_router_resources(workspace, service_sdk):
    service_sdk.Model.deploy.return_value = _service("routing-manymodels", compute_type="AKS")
    config = ServiceConfig(kind=ServiceKind.AKS, entry_script="scoring/routing_webservice.py", cpu_cores=0.1,
                           memory_gb=0.5)

    record = workspace.services.deploy("routing-manymodels", MODELS, config)

    kwargs = service_sdk.Model.deploy.call_args.kwargs
    assert kwargs["deployment_target"] is service_sdk.AksCompute.return_value
    assert service_sdk.AksCompute.call_args.args[1] == "aks1"
    assert (kwargs["deployment_config"].cpu_cores, kwargs["deployment_config"].memory_gb) == (0.1, 0.5)
    assert kwargs["deployment_config"].auth_enabled is True
    assert record.kind == ServiceKind.AKS


def test_unhealthy_or_timed_out_deployment_is_an_error(workspace, service_sdk):
    service_sdk.Model.deploy.return_value = _service("svc", state="Failed")
    config = ServiceConfig(kind=ServiceKind.ACI, entry_script="scoring/model_webservice.py")
    with pytest.raises(Unavailable, match="svc"):
        workspace.services.deploy("svc", MODELS, config)
    service_sdk.Model.deploy.return_value.wait_for_deployment.side_effect = WebserviceException(
        "Service deployment polling reached non-successful terminal state, timed out")
    with pytest.raises(OperationTimeout):
        workspace.services.deploy("svc", MODELS, config)


def test_update_delete_and_keys(workspace, service_sdk):
    existing = _service("svc")
    existing.get_keys.return_value = ("k1", "k2")
    service_sdk.Webservice.return_value = existing
    config = ServiceConfig(kind=ServiceKind.ACI, entry_script="scoring/model_webservice.py")

    workspace.services.update("svc", MODELS, config)
    assert existing.update.call_args.kwargs["auth_enabled"] is True
    keys = workspace.services.get_keys("svc")
    assert (keys.primary, keys.secondary) == ("k1", "k2") and "k1" not in repr(keys)
    workspace.services.delete("svc")
    existing.delete.assert_called_once_with()
    service_sdk.Webservice.side_effect = WebserviceException("WebserviceNotFound: svc")
    workspace.services.delete("svc")  # idempotent
    with pytest.raises(NotFound):
        workspace.services.get("svc")


@pytest.mark.parametrize("kind", [ServiceKind.ACI, ServiceKind.AKS])
def test_auth_enabled_false_is_honoured_on_deploy_and_update(workspace, service_sdk, kind):
    service_sdk.Model.deploy.return_value = _service("svc", compute_type=str(kind).upper())
    service_sdk.Webservice.return_value = _service("svc", compute_type=str(kind).upper())
    config = ServiceConfig(kind=kind, entry_script="scoring/model_webservice.py", auth_enabled=False)

    workspace.services.deploy("svc", MODELS, config)
    workspace.services.update("svc", MODELS, config)

    assert service_sdk.Model.deploy.call_args.kwargs["deployment_config"].auth_enabled is False
    assert service_sdk.Webservice.return_value.update.call_args.kwargs["auth_enabled"] is False


def test_aks_gets_replica_max_concurrent_requests_from_workers_and_threads(workspace, service_sdk):
    service_sdk.Model.deploy.return_value = _service("svc", compute_type="AKS")
    service_sdk.Webservice.return_value = _service("svc", compute_type="AKS")
    config = ServiceConfig(kind=ServiceKind.AKS, entry_script="scoring/routing_webservice.py",
                           environment={"WORKER_COUNT": "2", "GUNICORN_CMD_ARGS": "--threads 8 --keep-alive 75"})

    workspace.services.deploy("svc", MODELS, config)
    workspace.services.update("svc", MODELS, config)

    assert service_sdk.Model.deploy.call_args.kwargs["deployment_config"].replica_max_concurrent_requests == 16
    assert service_sdk.Webservice.return_value.update.call_args.kwargs["replica_max_concurrent_requests"] == 16
    bad = ServiceConfig(kind=ServiceKind.AKS, entry_script="scoring/routing_webservice.py",
                        environment={"WORKER_COUNT": "two"})
    with pytest.raises(InvalidValue, match="WORKER_COUNT='two'"):
        workspace.services.update("svc", MODELS, bad)
    assert service_sdk.Webservice.return_value.update.call_count == 1


def test_router_keys_go_to_key_vault_and_never_into_the_environment(workspace, service_sdk, monkeypatch):
    """Azure ML keeps every Environment in the workspace for its readers: the keys must not be in it."""
    monkeypatch.setattr(aml_services, "inference_config", REAL_INFERENCE_CONFIG)
    workspace.ws.get_details.return_value = {
        "keyVault": "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/nskv"}
    service_sdk.Model.deploy.return_value = _service("routing-manymodels", compute_type="AKS")
    keys = json.dumps({"manymodels-g1-1": "primary-key-1"})
    config = ServiceConfig(kind=ServiceKind.AKS, entry_script="scoring/routing_webservice.py",
                           environment={"WORKER_COUNT": "1", aml_services.SERVICE_KEYS_ENV: keys})

    workspace.services.deploy("routing-manymodels", MODELS, config)

    workspace.ws.get_default_keyvault.return_value.set_secret.assert_called_once_with(
        name="routing-manymodels-service-keys", value=keys)
    environment = service_sdk.Model.deploy.call_args.kwargs["inference_config"].environment
    variables = environment.environment_variables
    assert "primary-key-1" not in json.dumps(Environment._serialize_to_dict(environment), default=str)
    assert aml_services.SERVICE_KEYS_ENV not in variables
    assert variables[service_keys.VAULT_ENV] == "https://nskv.vault.azure.net"
    assert variables[service_keys.SECRET_ENV] == "routing-manymodels-service-keys"


def test_secret_looking_variables_are_refused_in_an_environment(tmp_path):
    script = tmp_path / "scoring" / "model_webservice.py"
    script.parent.mkdir()
    script.write_text("def init():\n    pass\n")
    for name in ("API_KEY", "DB_PASSWORD", "STORAGE_CONNECTION_STRING", "MANYMODELS_SERVICE_KEYS"):
        config = ServiceConfig(kind=ServiceKind.ACI, entry_script=str(script), environment={name: "x"})
        with pytest.raises(InvalidValue, match=name):
            aml_services.inference_config(config)
    assert not looks_secret("WORKER_COUNT") and not looks_secret("MONKEY_BUSINESS")


def test_the_keys_variable_names_agree_across_flow_adapter_and_router():
    from shared.flows.deploy import KEYS_ENV

    assert KEYS_ENV == aml_services.SERVICE_KEYS_ENV == service_keys.KEYS_ENV
    assert (aml_services.VAULT_ENV, aml_services.SECRET_ENV) == (service_keys.VAULT_ENV, service_keys.SECRET_ENV)


def test_local_service_kind_is_refused_on_azure_ml(workspace, service_sdk):
    with pytest.raises(InvalidValue, match="aci"):
        workspace.services.deploy("svc", MODELS, ServiceConfig(kind=ServiceKind.LOCAL, entry_script="x.py"))


# --------------------------------------------------------------------------- edge


def test_sdk_errors_translate_into_product_errors():
    assert isinstance(translate(WebserviceException("ModelNotFound"), "get"), NotFound)
    assert isinstance(translate(TimeoutError(), "wait"), OperationTimeout)
    assert isinstance(translate(ValueError("bad"), "build"), InvalidValue)
    assert isinstance(translate(RuntimeError("boom"), "call"), Unavailable)
    assert "could not call" in translate(RuntimeError("boom"), "call").message


def test_token_for_audience_uses_default_credential_scopes(monkeypatch):
    credential = mock.MagicMock()
    credential.get_token.return_value = SimpleNamespace(token="t")
    monkeypatch.setattr("shared.workspace.aml.workspace._credential", lambda: credential)
    assert token_for_audience("https://management.azure.com/") == "t"
    credential.get_token.assert_called_once_with("https://management.azure.com/.default")


def test_inference_config_uploads_scoring_alone_with_its_environment_variables(tmp_path):
    script = tmp_path / "scoring" / "routing_webservice.py"
    script.parent.mkdir()
    script.write_text("def init():\n    pass\n")
    config = ServiceConfig(kind=ServiceKind.ACI, entry_script=str(script), environment={"ROUTER_TIMEOUT_SECONDS": "60"})

    inference = aml_services.inference_config(config)

    assert inference.entry_script == "routing_webservice.py"
    assert inference.source_directory == str(script.parent)
    assert inference.environment.name == "manymodels-routing-webservice"
    assert inference.environment.environment_variables["ROUTER_TIMEOUT_SECONDS"] == "60"
    with pytest.raises(InvalidValue, match="does not exist"):
        aml_services.inference_config(ServiceConfig(kind=ServiceKind.ACI, entry_script=str(tmp_path / "no.py")))


def test_an_aci_router_with_group_keys_is_refused_before_anything_is_stored(workspace, service_sdk):
    """ACI containers get no managed identity from SDK v1: the router could never read its keys."""
    config = ServiceConfig(kind=ServiceKind.ACI, entry_script="scoring/routing_webservice.py",
                           environment={aml_services.SERVICE_KEYS_ENV: json.dumps({"manymodels-g1-1": "k"})})

    with pytest.raises(InvalidValue, match="DEPLOY_AKS"):
        workspace.services.deploy("routing-manymodels", MODELS, config)

    workspace.ws.get_default_keyvault.return_value.set_secret.assert_not_called()
    service_sdk.Model.deploy.assert_not_called()
