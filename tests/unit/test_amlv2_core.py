"""The SDK v2 adapter's core (shared/workspace/amlv2): error translation, tags, job statuses, the
client it opens, and the v2 entities it builds (checked against the installed azure-ai-ml).

The stores' behaviour through the port is the contract suite's (tests/unit/workspace_contract,
backend "amlv2"); what is tested here is what the port does not show.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from azure.ai.ml import Input, command
from azure.ai.ml._restclient.arm_ml_service.models import JobStatus  # what job entities carry as .status
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data
from azure.ai.ml.exceptions import ErrorCategory, ErrorTarget, MlException, UserErrorException, ValidationException
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
)

from shared.errors import (
    AlreadyExists,
    Conflict,
    InvalidValue,
    ManyModelsError,
    NotFound,
    OperationTimeout,
    PermissionDenied,
    Unavailable,
)
from shared.settings import Settings
from shared.workspace.amlv2 import tags
from shared.workspace.amlv2.datasets import AmlV2DatasetStore, folder_uri, version_folder
from shared.workspace.amlv2.models import AmlV2ModelRegistry, new_model_asset
from shared.workspace.amlv2.runs import STATUS, AmlV2RunStore, map_status
from shared.workspace.amlv2.sdk_errors import sdk_call, translate
from shared.workspace.base import DatasetFile, DatasetMode, NewModel, PipelineKind, Run, RunStatus

sys.path.insert(0, str(Path(__file__).resolve().parent / "workspace_contract"))
from amlv2_backend import FakeMLClient, MemoryBlobs, amlv2_settings

STORE = "azureblob://landing"


def http_error(status: int, message: str = "service said no", error_code: str = "") -> HttpResponseError:
    error = HttpResponseError(message=message)
    error.status_code = status  # what azure-core reads from the response
    error.error_code = error_code or None
    return error


def f(name: str, content: str = "a", *, batch: str = "b1") -> DatasetFile:
    return DatasetFile(name=name, path=f"train/{batch}/{name}", etag=f"0x{content}", size=1, md5=f"md5-{content}")


# --------------------------------------------------------------------------- sdk_errors


@pytest.mark.parametrize(("error", "expected"), [
    (ResourceNotFoundError(message="(UserError) model lr_x:3 could not be found."), NotFound),
    (ResourceExistsError(message="(UserError) data train:2 already exists"), AlreadyExists),
    (ResourceModifiedError(message="etag mismatch"), Conflict),
    (ClientAuthenticationError(message="no credential"), PermissionDenied),
    (http_error(400), InvalidValue),
    (http_error(401), PermissionDenied),
    (http_error(403, error_code="AuthorizationFailed"), PermissionDenied),
    (http_error(404), NotFound),
    (http_error(408), OperationTimeout),
    (http_error(409), Conflict),
    (http_error(409, error_code="UserErrorAlreadyExists"), AlreadyExists),
    (http_error(429), Unavailable),
    (http_error(500), Unavailable),
    (http_error(502), Unavailable),
    (http_error(503), Unavailable),
    (http_error(504), OperationTimeout),
    (ServiceRequestError(message="connection refused"), Unavailable),
    (ServiceRequestTimeoutError(message="read timed out"), OperationTimeout),
    (TimeoutError("slow"), OperationTimeout),
    (ValidationException(message="bad name", no_personal_data_message="bad name"), InvalidValue),
    (UserErrorException(message="bad path", no_personal_data_message="bad path"), InvalidValue),
    (MlException(message="service broke", no_personal_data_message="x", target=ErrorTarget.MODEL,
                 error_category=ErrorCategory.SYSTEM_ERROR), Unavailable),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__)
def test_sdk_errors_become_product_errors_by_type_and_status(error, expected):
    translated = translate(error, "get model lr_x:3")
    assert type(translated) is expected
    assert translated.message.startswith("Azure ML could not get model lr_x:3: ")
    # retryable exactly when the product error type says so (503 and 429 are, 403 is not)
    assert translated.retryable == expected.code.retryable


def test_a_status_answer_names_the_status_and_what_to_do():
    message = translate(http_error(403, "(AuthorizationFailed) no access\nbody..."), "list jobs").message
    assert "answered 403" in message and "AzureML Data Scientist" in message
    assert "body..." not in message  # only the first line of the service's text


def test_sdk_call_translates_sdk_errors_and_keeps_the_cause():
    with pytest.raises(NotFound, match="could not get job 'x'") as caught, sdk_call("get job 'x'"):
        raise ResourceNotFoundError(message="job x not found")
    assert isinstance(caught.value.__cause__, ResourceNotFoundError)


def test_sdk_call_leaves_product_errors_and_bugs_alone():
    with pytest.raises(InvalidValue, match="mine"), sdk_call("anything"):
        raise InvalidValue("mine")
    # a bug keeps its traceback, never looks like an outage
    with pytest.raises(TypeError), sdk_call("anything"):
        raise TypeError("unexpected keyword")


def test_translate_returns_a_product_error_unchanged():
    error = Conflict("already")
    assert translate(error, "x") is error


# --------------------------------------------------------------------------- tags


def test_run_tags_have_the_v1_adapters_values():
    """Events and run records parse the same whichever SDK submitted the run."""
    assert (tags.TAG_KIND, tags.TAG_DATASET, tags.TAG_DATASET_VERSION) == (
        "manymodels_kind", "dataset_name", "dataset_version")
    v1 = pytest.importorskip("shared.workspace.aml.runs", reason="azureml-core (SDK v1) not installed")
    assert (tags.TAG_KIND, tags.TAG_DATASET, tags.TAG_DATASET_VERSION) == (
        v1.TAG_KIND, v1.TAG_DATASET, v1.TAG_DATASET_VERSION)


def test_dataset_tags_match_the_v1_adapter_and_the_metadata_container():
    v1 = pytest.importorskip("shared.workspace.aml.datasets", reason="azureml-core (SDK v1) not installed")
    assert (tags.TAG_FINGERPRINT, tags.TAG_FILES, tags.TAG_MODE, tags.METADATA_CONTAINER) == (
        v1.TAG_FINGERPRINT, v1.TAG_FILES, v1.TAG_MODE, v1.METADATA_CONTAINER)
    assert tags.parameter_tag("mode") == "param_mode"


# --------------------------------------------------------------------------- job statuses


def test_every_v2_job_status_is_mapped():
    sdk_statuses = {str(s.value) for s in JobStatus}
    assert sdk_statuses <= set(STATUS), f"unmapped: {sorted(sdk_statuses - set(STATUS))}"


@pytest.mark.parametrize(("status", "expected"), [
    (JobStatus.NOT_STARTED, RunStatus.QUEUED), (JobStatus.QUEUED, RunStatus.QUEUED),
    (JobStatus.PREPARING, RunStatus.QUEUED), (JobStatus.PROVISIONING, RunStatus.QUEUED),
    (JobStatus.STARTING, RunStatus.QUEUED), (JobStatus.RUNNING, RunStatus.RUNNING),
    (JobStatus.FINALIZING, RunStatus.RUNNING), (JobStatus.CANCEL_REQUESTED, RunStatus.RUNNING),
    (JobStatus.NOT_RESPONDING, RunStatus.RUNNING), (JobStatus.PAUSED, RunStatus.RUNNING),
    (JobStatus.UNKNOWN, RunStatus.RUNNING), (JobStatus.COMPLETED, RunStatus.COMPLETED),
    (JobStatus.FAILED, RunStatus.FAILED), (JobStatus.CANCELED, RunStatus.CANCELED),
    ("Completed", RunStatus.COMPLETED), ("SomethingNew", RunStatus.RUNNING), (None, RunStatus.RUNNING),
])
def test_job_status_map(status, expected):
    # the SDK hands out its str-Enum (str() of it is "JobStatus.COMPLETED" on Python 3.11), or text
    assert map_status(status) is expected


# --------------------------------------------------------------------------- runs


def queued_run(run_id: str) -> Run:
    return Run(run_id=run_id, pipeline="manymodels-training", kind=PipelineKind.TRAINING,
               experiment="manymodels-training", status=RunStatus.QUEUED, dataset_name="train", dataset_version=3,
               parameters={"mode": "changed"}, tags={}, submitted="2026-01-01T00:00:00Z")


def test_wait_polls_with_the_injected_clock_and_backs_off(tmp_path: Path):
    client = FakeMLClient(tmp_path)
    client.add_run(queued_run("job-1"))
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds
        if len(pauses) == 4:
            client.set_run_status("job-1", "Failed", error="step train failed: out of memory")

    store = AmlV2RunStore(client, amlv2_settings(), clock=lambda: now[0], sleep=sleep)
    run = store.wait("job-1", timeout=3600)
    assert run.status is RunStatus.FAILED and run.error == "step train failed: out of memory"
    assert pauses == [0.25, 0.5, 1.0, 2.0]
    assert run.started and run.ended


def test_wait_times_out_without_sleeping_for_real(tmp_path: Path):
    client = FakeMLClient(tmp_path)
    client.add_run(queued_run("job-1"))
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    store = AmlV2RunStore(client, amlv2_settings(), clock=lambda: now[0], sleep=sleep)
    with pytest.raises(OperationTimeout, match="job-1 is still queued after 60 s"):
        store.wait("job-1", timeout=60)
    assert now[0] == pytest.approx(60)


def test_runs_read_tags_parameters_and_counts_from_the_job(tmp_path: Path):
    client = FakeMLClient(tmp_path)
    client.add_run(queued_run("job-1"))
    client.jobs._jobs["job-1"].properties.properties.update({"models_registered": "12", "failed": "1",
                                                               "predictions": "predictions/x.csv", "rows": "n/a"})
    run = AmlV2RunStore(client, amlv2_settings()).get("job-1")
    assert (run.dataset_name, run.dataset_version, run.parameters) == ("train", 3, {"mode": "changed"})
    assert run.counts == {"models_registered": 12, "failed": 1}  # a property that is not a number is left out
    assert run.outputs == {"predictions": "predictions/x.csv"}


def test_list_shows_only_the_products_pipeline_jobs(tmp_path: Path):
    client = FakeMLClient(tmp_path)
    client.add_run(queued_run("job-1"))
    submitted = client.jobs._jobs["job-1"].system_data.created_at
    client.jobs._store("someone-elses", experiment="manymodels-training", tags={}, properties={}, status="Running",
                       submitted=submitted)
    client.jobs._store("other-experiment", experiment="sandbox", tags={tags.TAG_KIND: "training"}, properties={},
                       status="Running", submitted=submitted)
    assert [r.run_id for r in AmlV2RunStore(client, amlv2_settings()).list()] == ["job-1"]
    assert ("jobs.list", tags.TAG_KIND) in client.calls  # the service filters by the kind tag


# --------------------------------------------------------------------------- the workspace and its client


def test_from_settings_opens_an_ml_client_with_default_azure_credential(monkeypatch: pytest.MonkeyPatch):
    import azure.identity

    from shared.workspace import open_workspace
    from shared.workspace.amlv2.workspace import AmlV2Workspace

    made: list[object] = []

    class RecordingCredential:  # stands in for DefaultAzureCredential: no token is ever asked for here
        def __init__(self, **kwargs: object) -> None:
            made.append(self)

        def get_token(self, *scopes: str, **kwargs: object):
            raise AssertionError("opening the workspace must not call Azure")

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", RecordingCredential)
    settings = Settings.from_env({"MANYMODELS_BACKEND": "amlv2", "AZURE_SUBSCRIPTION_ID": "sub-1",
                                  "RESOURCE_GROUP": "rg-1", "AML_WORKSPACE_NAME": "ws-1",
                                  "AzureWebJobsStorage": "https://acct.blob.core.windows.net"})
    workspace = open_workspace(settings)
    assert isinstance(workspace, AmlV2Workspace) and workspace.name == "amlv2:ws-1"
    client = workspace.client
    assert type(client).__name__ == "MLClient"
    assert (client.subscription_id, client.resource_group_name, client.workspace_name) == ("sub-1", "rg-1", "ws-1")
    assert made and client._credential is made[0]


def test_stores_get_their_collaborators_not_the_workspace(tmp_path: Path):
    from shared.workspace.amlv2.workspace import AmlV2Workspace

    client, blobs = FakeMLClient(tmp_path), MemoryBlobs()
    workspace = AmlV2Workspace(amlv2_settings(), client, metadata=blobs)  # type: ignore[arg-type]
    for store in (workspace.datasets, workspace.models, workspace.runs):
        assert workspace not in vars(store).values()
        assert vars(store)["_client"] is client


# --------------------------------------------------------------------------- datasets: folders and job inputs


def datasets(tmp_path: Path, blobs: MemoryBlobs | None = None) -> tuple[AmlV2DatasetStore, FakeMLClient]:
    client = FakeMLClient(tmp_path)
    store = AmlV2DatasetStore(client, amlv2_settings(), metadata=blobs or MemoryBlobs())  # type: ignore[arg-type]
    return store, client


def test_a_version_is_a_uri_folder_asset_of_the_deepest_common_folder(tmp_path: Path):
    store, client = datasets(tmp_path)
    store.register("train", [f("A.csv"), f("B.csv")], datastore="azureblob://landing-zone", tags={"batch": "b1"})
    asset = client.data.get("train", version="1")
    assert asset.type == AssetTypes.URI_FOLDER
    assert asset.path == "azureml://datastores/landing_zone/paths/train/b1/"
    assert asset.tags["batch"] == "b1" and asset.tags[tags.TAG_MODE] == "full"
    assert asset.tags[tags.TAG_FILES].startswith("train/") and len(asset.tags[tags.TAG_FINGERPRINT]) == 64
    store.register("train", [f("B.csv", "2", batch="b2")], datastore="azureblob://landing-zone",
                   mode=DatasetMode.PARTIAL)
    assert client.data.get("train", version="2").path == "azureml://datastores/landing_zone/paths/train/"


def test_folder_rules():
    assert version_folder([f("A.csv"), f("B.csv", batch="b2")]) == "train"
    assert version_folder([DatasetFile("A.csv", "A.csv", "0x1", 1)]) == ""
    assert folder_uri(STORE, "") == "azureml://datastores/landing/paths/"
    with pytest.raises(InvalidValue, match="azureblob://<container>"):
        folder_uri("file:///tmp/x", "train")


def test_a_local_datastore_is_refused_before_anything_is_written(tmp_path: Path):
    store, client = datasets(tmp_path)
    with pytest.raises(InvalidValue, match="not allowed on Azure ML"):
        store.register("train", [f("A.csv")], datastore="file:///tmp/landing")
    assert not [c for c in client.calls if c[0] == "data.create_or_update"]


def selection(blobs: MemoryBlobs, job_input: Input) -> list[str]:
    """The selection document a ``only_files`` input points at (written to the datasets container)."""
    prefix = "azureml://datastores/datasets/paths/"
    assert job_input.path.startswith(prefix), job_input.path
    return json.loads(blobs.download_bytes(job_input.path[len(prefix):]))


def test_job_inputs_select_every_file_or_only_the_changed_ones(tmp_path: Path):
    blobs = MemoryBlobs()
    store, _ = datasets(tmp_path, blobs)
    store.register("train", [f("A.csv"), f("B.csv")], datastore=STORE)
    v2 = store.register("train", [f("B.csv", "2", batch="b2"), f("C.csv", batch="b2")], datastore=STORE,
                        mode=DatasetMode.PARTIAL)
    every = store.job_inputs(v2, only_changed=False)
    changed = store.job_inputs(v2, only_changed=True)
    assert every[tags.INPUT_DATA].path == "azureml:train:2" and every[tags.INPUT_DATA].type == AssetTypes.URI_FOLDER
    assert selection(blobs, every[tags.INPUT_ONLY_FILES]) == ["b1/A.csv", "b2/B.csv", "b2/C.csv"]
    assert selection(blobs, changed[tags.INPUT_ONLY_FILES]) == ["b2/B.csv", "b2/C.csv"]
    assert changed[tags.INPUT_ONLY_FILES].type == AssetTypes.URI_FILE
    # the same selection again is the same document (a resubmission writes nothing new)
    assert store.job_inputs(v2, only_changed=True)[tags.INPUT_ONLY_FILES].path == changed[tags.INPUT_ONLY_FILES].path


def test_changed_mode_on_a_version_that_changed_nothing_is_refused(tmp_path: Path):
    store, _ = datasets(tmp_path)
    store.register("train", [f("A.csv")], datastore=STORE)
    v2 = store.register("train", [f("B.csv")], datastore=STORE, mode=DatasetMode.PARTIAL)
    unchanged = dataclasses.replace(v2, changed=())
    with pytest.raises(InvalidValue, match="changed no file"):
        store.job_inputs(unchanged, only_changed=True)


def test_a_registration_racing_an_identical_one_returns_the_winner(tmp_path: Path):
    store, client = datasets(tmp_path)
    original = client.data.create_or_update

    def racing(data: Data) -> Data:  # another instance registers the same content first
        client.data.create_or_update = original
        rival = store.register("train", [f("A.csv")], datastore=STORE)
        assert rival.version == 1
        return original(data)

    client.data.create_or_update = racing
    assert store.register("train", [f("A.csv")], datastore=STORE).version == 1
    assert [v.version for v in store.list("train")] == [1]


def test_a_registration_racing_other_content_is_refused_not_overwritten(tmp_path: Path):
    store, client = datasets(tmp_path)
    original = client.data.create_or_update

    def racing(data: Data) -> Data:
        client.data.create_or_update = original
        store.register("train", [f("Z.csv")], datastore=STORE)
        return original(data)

    client.data.create_or_update = racing
    with pytest.raises(AlreadyExists, match="version 1 of dataset 'train'"):
        store.register("train", [f("A.csv")], datastore=STORE)
    assert [x.name for x in store.get("train").files] == ["Z.csv"]


def test_assets_someone_else_registered_are_not_versions(tmp_path: Path):
    store, client = datasets(tmp_path)
    client.data.create_or_update(Data(name="train", version="7", type=AssetTypes.URI_FOLDER,
                                      path="azureml://datastores/landing/paths/other/"))
    assert store.list("train") == []
    assert store.register("train", [f("A.csv")], datastore=STORE).version == 1


# --------------------------------------------------------------------------- models


def artifact(tmp_path: Path, name: str) -> str:
    folder = tmp_path / "artifacts" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text("{}")
    return str(folder)


def test_delete_versions_archives_and_skips_what_is_gone(tmp_path: Path):
    client = FakeMLClient(tmp_path / "aml")
    registry = AmlV2ModelRegistry(client, amlv2_settings())
    path = artifact(tmp_path, "a")
    registry.register_many([NewModel("lr_a_1", path), NewModel("lr_a_1", path), NewModel("lr_a_1", path)])
    assert registry.supports_delete
    assert registry.delete_versions([("lr_a_1", 1), ("lr_a_1", 9), ("lr_gone_1", 1)]) == [("lr_a_1", 1)]
    assert [m.version for m in registry.list(latest=False)] == [2, 3]
    # archiving does not free the number: the next version is still the next one
    assert [r.version for r in registry.register_many([NewModel("lr_a_1", path)])] == [4]


def test_registration_errors_are_counted_after_registering_the_rest(tmp_path: Path):
    client = FakeMLClient(tmp_path / "aml")
    registry = AmlV2ModelRegistry(client, amlv2_settings())
    original = client.models.create_or_update

    def throttled(model):
        if model.name == "lr_b_1":
            raise http_error(429, "(TooManyRequests) slow down")
        return original(model)

    client.models.create_or_update = throttled
    with pytest.raises(Unavailable, match="1 of 2 models were not registered"):
        registry.register_many([NewModel("lr_a_1", artifact(tmp_path, "a")),
                                NewModel("lr_b_1", artifact(tmp_path, "b"))])
    assert [m.name for m in registry.list()] == ["lr_a_1"]


# --------------------------------------------------------------------------- the entities exist in this SDK


def test_the_entities_the_adapter_builds_keep_their_fields_on_the_wire(tmp_path: Path):
    """Fails when a field the adapter sets does not exist (or is dropped) in the installed azure-ai-ml."""
    store, client = datasets(tmp_path)
    sent: list[Data] = []
    original = client.data.create_or_update
    client.data.create_or_update = lambda data: (sent.append(data), original(data))[1]
    version = store.register("train", [f("A.csv")], datastore=STORE, tags={"batch": "b1"})
    body = sent[0]._to_rest_object().properties
    assert (body.data_type, body.data_uri) == ("uri_folder", "azureml://datastores/landing/paths/train/b1/")
    assert body.tags["batch"] == "b1" and tags.TAG_FINGERPRINT in body.tags and body.description

    model = new_model_asset(NewModel("lr_a_1", artifact(tmp_path, "a"), tags={"Store": "1"}, properties={"mse": "1"}))
    wire = model._to_rest_object().properties
    assert (wire.model_type, wire.model_uri, wire.tags, wire.properties) == (
        "custom_model", model.path, {"Store": "1"}, {"mse": "1"})

    inputs = store.job_inputs(version, only_changed=True)
    node = command(command="echo ${{inputs.data}} ${{inputs.only_files}}", environment="azureml:env:1",
                   compute="cpu", inputs=inputs)._to_rest_object()
    assert node["inputs"][tags.INPUT_DATA] == {"uri": "azureml:train:1", "mode": "ReadOnlyMount",
                                                "job_input_type": "uri_folder"}
    assert node["inputs"][tags.INPUT_ONLY_FILES]["job_input_type"] == "uri_file"
    assert node["inputs"][tags.INPUT_ONLY_FILES]["uri"].startswith("azureml://datastores/datasets/paths/train/")
    assert node["inputs"][tags.INPUT_ONLY_FILES]["mode"] == "Download"
    assert isinstance(inputs[tags.INPUT_DATA], Input)


def test_a_failed_registration_is_reported_with_the_translated_error(tmp_path: Path):
    store, client = datasets(tmp_path)

    def refuse(data: Data) -> Data:
        raise http_error(403, "(AuthorizationFailed) the client has no permission")

    client.data.create_or_update = refuse
    with pytest.raises(PermissionDenied, match="register version 1 of dataset 'train'") as caught:
        store.register("train", [f("A.csv")], datastore=STORE)
    assert not caught.value.retryable and isinstance(caught.value, ManyModelsError)
