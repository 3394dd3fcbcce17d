"""shared.events: the Azure documentation's sample events parse in both schemas; malformed ones
raise a readable MalformedEvent."""

from __future__ import annotations

import copy
import datetime as dt

import azure.functions as func
import pytest

from shared import events
from shared.events import (
    BlobCreated,
    MalformedEvent,
    ModelDeployed,
    ModelRegistered,
    RunCompleted,
    RunStatusChanged,
    SubscriptionValidation,
    UnknownEvent,
    parse,
    payload_of,
)

WS = ("/subscriptions/{subscription-id}/resourceGroups/{resource-group-name}/providers/"
      "Microsoft.MachineLearningServices/workspaces/{workspace-name}")
RUN_PROPS = {"runTemplate": "automl_child", "pipeline_id": "5adc0a4fe02504a586f09a4fcbb241f9a4012062",
             "training_percent": "100", "iteration": "5", "model_name": "AutoMLad912b2d65"}
RUN_DATA = {"experimentId": "0fa9dfaa-cba3-4fa7-b590-23e48548f5c1", "experimentName": "automl-local-regression",
            "runId": "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5", "runType": None, "runTags": {},
            "runProperties": RUN_PROPS}
RUN_SUBJECT = "experiments/0fa9dfaa-cba3-4fa7-b590-23e48548f5c1/runs/AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"

# Samples of learn.microsoft.com "Azure Blob Storage as an Event Grid source" and "Azure Machine
# Learning as an Event Grid source" (Event Grid event schema tab).
EVENT_GRID_SAMPLES = {
    "BlobCreated": {
        "topic": "/subscriptions/{subscription-id}/resourceGroups/Storage/providers/Microsoft.Storage/"
                 "storageAccounts/my-storage-account",
        "subject": "/blobServices/default/containers/test-container/blobs/new-file.txt",
        "eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2017-06-26T18:41:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {"api": "PutBlockList", "clientRequestId": "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
                 "requestId": "831e1650-001e-001b-66ab-eeb76e000000", "eTag": "\"0x8D4BCC2E4835CD0\"",
                 "contentType": "text/plain", "contentLength": 524288, "blobType": "BlockBlob",
                 "url": "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
                 "sequencer": "00000000000004420000000000028963",
                 "storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"}},
        "dataVersion": "", "metadataVersion": "1"},
    "ModelRegistered": {
        "topic": WS, "subject": "models/sklearn_regression_model:20",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered", "eventTime": "2017-06-26T18:41:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {"ModelName": "sklearn_regression_model", "ModelVersion": 20,
                 "ModelTags": {"area": "diabetes", "type": "regression"}, "ModelProperties": {"type": "test"}},
        "dataVersion": "", "metadataVersion": "1"},
    "ModelDeployed": {
        "topic": WS, "subject": "endpoints/my-sklearn-service",
        "eventType": "Microsoft.MachineLearningServices.ModelDeployed", "eventTime": "2017-06-26T18:41:00.9584103Z",
        "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {"ServiceName": "my-sklearn-service", "ServiceComputeType": "ACI",
                 "ModelIds": "sklearn_regression_model:1,sklearn_regression_model:2",
                 "ServiceTags": {"area": "diabetes", "type": "regression"}, "ServiceProperties": {"type": "test"}},
        "dataVersion": "", "metadataVersion": "1"},
    "RunCompleted": {
        "topic": WS, "subject": RUN_SUBJECT, "eventType": "Microsoft.MachineLearningServices.RunCompleted",
        "eventTime": "2017-06-26T18:41:00.9584103Z", "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": RUN_DATA, "dataVersion": "", "metadataVersion": "1"},
    "RunStatusChanged": {
        "topic": WS, "subject": RUN_SUBJECT, "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
        "eventTime": "2017-06-26T18:41:00.9584103Z", "id": "831e1650-001e-001b-66ab-eeb76e069631",
        "data": {**RUN_DATA, "runStatus": "failed"}, "dataVersion": "", "metadataVersion": "1"},
}


def as_cloud_event(sample: dict) -> dict:
    """The same sample in the docs' CloudEvents schema tab."""
    return {"source": sample["topic"], "subject": sample["subject"], "type": sample["eventType"],
            "time": sample["eventTime"], "id": sample["id"], "data": copy.deepcopy(sample["data"]),
            "specversion": "1.0"}


SCHEMAS = {"eventgrid": lambda s: copy.deepcopy(s), "cloudevents": as_cloud_event}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_documentation_samples_parse_in_both_schemas(schema: str) -> None:
    make = SCHEMAS[schema]
    blob = parse(make(EVENT_GRID_SAMPLES["BlobCreated"]))
    assert isinstance(blob, BlobCreated)
    assert (blob.container, blob.blob, blob.etag, blob.size) == ("test-container", "new-file.txt",
                                                                 "0x8D4BCC2E4835CD0", 524288)
    assert blob.id == "831e1650-001e-001b-66ab-eeb76e069631" and "my-storage-account" in blob.source

    model = parse(make(EVENT_GRID_SAMPLES["ModelRegistered"]))
    assert isinstance(model, ModelRegistered)
    assert (model.model_name, model.model_version, model.model_tags["area"]) == ("sklearn_regression_model", 20,
                                                                                 "diabetes")
    deployed = parse(make(EVENT_GRID_SAMPLES["ModelDeployed"]))
    assert isinstance(deployed, ModelDeployed)
    assert deployed.model_ids == ("sklearn_regression_model:1", "sklearn_regression_model:2")

    done = parse(make(EVENT_GRID_SAMPLES["RunCompleted"]))
    assert isinstance(done, RunCompleted)
    assert done.run_id == "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5" and done.run_type is None
    assert done.experiment_name == "automl-local-regression" and done.run_properties["iteration"] == "5"

    changed = parse(make(EVENT_GRID_SAMPLES["RunStatusChanged"]))
    assert isinstance(changed, RunStatusChanged) and changed.run_status == "failed"


def test_cloud_event_subject_without_leading_slash() -> None:
    # The CloudEvents schema page's sample writes the blob subject without its leading slash.
    event = as_cloud_event(EVENT_GRID_SAMPLES["BlobCreated"])
    event["subject"] = "blobServices/default/containers/landing/blobs/train/b1/Store1000_dominicks.csv"
    parsed = parse(event)
    assert isinstance(parsed, BlobCreated)
    assert (parsed.container, parsed.blob) == ("landing", "train/b1/Store1000_dominicks.csv")


def test_tolerances_model_version_string_unknown_fields_and_status_case() -> None:
    sample = copy.deepcopy(EVENT_GRID_SAMPLES["ModelRegistered"])
    sample["data"]["ModelVersion"] = "7"
    sample["data"]["SomethingNew"] = {"x": 1}
    sample["brandNewTopLevel"] = True
    parsed = parse(sample)
    assert isinstance(parsed, ModelRegistered) and parsed.model_version == 7

    status = copy.deepcopy(EVENT_GRID_SAMPLES["RunStatusChanged"])
    status["data"]["runStatus"] = "Failed"  # what the local workspace and AML SDK v1 write
    status["data"]["runTags"] = None
    parsed_status = parse(status)
    assert isinstance(parsed_status, RunStatusChanged)
    assert parsed_status.run_status == "failed" and parsed_status.run_tags == {}


def test_run_id_falls_back_to_the_subject() -> None:
    sample = copy.deepcopy(EVENT_GRID_SAMPLES["RunCompleted"])
    del sample["data"]["runId"]
    parsed = parse(sample)
    assert isinstance(parsed, RunCompleted) and parsed.run_id == "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"


def test_other_types_and_validation() -> None:
    drift = {"topic": WS, "subject": "datadrifts/x/runs/y", "eventType":
             "Microsoft.MachineLearningServices.DatasetDriftDetected", "eventTime": "2017-06-26T18:41:00Z",
             "id": "d1", "data": {"DataDriftId": "01d2"}, "dataVersion": "", "metadataVersion": "1"}
    unknown = parse(drift)
    assert isinstance(unknown, UnknownEvent) and unknown.type.endswith("DatasetDriftDetected")
    validation = parse({"id": "v1", "topic": "t", "subject": "", "eventType": events.SUBSCRIPTION_VALIDATION,
                        "eventTime": "2017-06-26T18:41:00Z",
                        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                                 "validationUrl": "https://rp-eastus2.eventgrid.azure.net/x"}})
    assert isinstance(validation, SubscriptionValidation)
    assert validation.validation_code == "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda e: e.pop("id"), "'id'"),
    (lambda e: e.update(eventType=""), "'eventType'"),
    (lambda e: e.update(data="not an object"), "'data'"),
    (lambda e: e.update(subject="/blobServices/default/containers/landing"), "'subject'"),
    (lambda e: e["data"].update(contentLength=-3), "contentLength"),
])
def test_malformed_blob_events_say_which_field(mutate, words: str) -> None:
    event = copy.deepcopy(EVENT_GRID_SAMPLES["BlobCreated"])
    mutate(event)
    with pytest.raises(MalformedEvent) as info:
        parse(event)
    assert words in info.value.message


def test_malformed_model_version_and_non_object() -> None:
    sample = copy.deepcopy(EVENT_GRID_SAMPLES["ModelRegistered"])
    sample["data"]["ModelVersion"] = "v2"
    with pytest.raises(MalformedEvent, match="ModelVersion"):
        parse(sample)
    with pytest.raises(MalformedEvent, match="JSON object"):
        parse(["not", "an", "event"])  # type: ignore[arg-type]


def test_payload_of_function_binding_objects_round_trips() -> None:
    sample = EVENT_GRID_SAMPLES["RunCompleted"]
    binding = func.EventGridEvent(id=sample["id"], data=sample["data"], topic=sample["topic"],
                                  subject=sample["subject"], event_type=sample["eventType"],
                                  event_time=dt.datetime(2017, 6, 26, 18, 41, tzinfo=dt.UTC), data_version="")
    parsed = parse(payload_of(binding))
    assert isinstance(parsed, RunCompleted) and parsed.run_id == sample["data"]["runId"]

    cloud = as_cloud_event(EVENT_GRID_SAMPLES["BlobCreated"])
    binding_ce = func.CloudEvent(id=cloud["id"], source=cloud["source"], type=cloud["type"], specversion="1.0",
                                 data=cloud["data"], subject=cloud["subject"])
    parsed_ce = parse(payload_of(binding_ce))
    assert isinstance(parsed_ce, BlobCreated) and parsed_ce.blob == "new-file.txt"
