"""shared.events: the Azure documentation's sample events parse in both schemas; malformed ones
raise a readable MalformedEvent."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json

import azure.functions as func
import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

# the request builder EventGridPublisherClient.send uses: the exact JSON a publisher posts
from azure.eventgrid._legacy._helpers import _build_request, _cloud_event_to_generated

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
    validation = parse({"id": "v1", "topic": "t", "subject": "", "eventTime": "2017-06-26T18:41:00Z",
                        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
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


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda e: e["data"].update(contentLength=10**20), "from 0 to 9223372036854775807, got 100000000000000000000"),
    (lambda e: e["data"].update(contentLength="\u00b2"), "data.contentLength"),  # "²".isdigit() is True
    (lambda e: e["data"].update(contentLength=12.0), "data.contentLength"),
    (lambda e: e["data"].update(contentLength=True), "data.contentLength"),
    (lambda e: e.update(id="x" * 129), "at most 128 characters, got 'xxxx"),
    (lambda e: e["data"].update(extra=_nested(70)), "is nested 71 levels deep"),
])
def test_out_of_range_numbers_long_ids_and_deep_data_are_malformed(mutate, words: str) -> None:
    event = copy.deepcopy(EVENT_GRID_SAMPLES["BlobCreated"])
    mutate(event)
    with pytest.raises(MalformedEvent) as info:
        parse(event)
    assert words in info.value.message


def test_model_version_is_bounded_and_ascii() -> None:
    sample = copy.deepcopy(EVENT_GRID_SAMPLES["ModelRegistered"])
    for bad in (2**31, "9" * 40, "\u0661\u0662", -1, 3.0):  # "١٢" is int()-able but not a version
        sample["data"]["ModelVersion"] = bad
        with pytest.raises(MalformedEvent, match="from 0 to 2147483647"):
            parse(sample)
    sample["data"]["ModelVersion"] = " 2147483647 "
    assert parse(sample).model_version == 2**31 - 1


@pytest.mark.parametrize("name", ["with space.csv", "100%.csv", "a#b?c.csv", "\u00fcn\u00efc\u00f8d\u00e9.csv",
                                  "..", "x" * 1000, "%2e%2e/x.csv"])
def test_blob_names_with_unusual_characters_parse_verbatim(name: str) -> None:
    # the subject holds the name as uploaded: nothing is decoded, so "%2e%2e" stays a plain segment
    event = copy.deepcopy(EVENT_GRID_SAMPLES["BlobCreated"])
    event["subject"] = f"/blobServices/default/containers/landing/blobs/train/b1/{name}"
    parsed = parse(event)
    assert isinstance(parsed, BlobCreated) and parsed.blob == f"train/b1/{name}"


def test_payload_of_a_binding_whose_data_cannot_be_read_is_malformed() -> None:
    class Unreadable:
        id, topic, subject, event_type, event_time, data_version = "e1", "t", "s", "T", None, ""

        def get_json(self):
            raise RecursionError("maximum recursion depth exceeded")

    with pytest.raises(MalformedEvent, match="e1: its data cannot be read: RecursionError"):
        payload_of(Unreadable())


# --------------------------------------------------------------------------- through the SDK

SAMPLE_TYPES = {"BlobCreated": SystemEventNames.StorageBlobCreatedEventName,
                "ModelRegistered": SystemEventNames.MachineLearningServicesModelRegisteredEventName,
                "ModelDeployed": SystemEventNames.MachineLearningServicesModelDeployedEventName,
                "RunCompleted": SystemEventNames.MachineLearningServicesRunCompletedEventName,
                "RunStatusChanged": SystemEventNames.MachineLearningServicesRunStatusChangedEventName}
SAMPLE_TIME = dt.datetime(2017, 6, 26, 18, 41, 0, 958410, tzinfo=dt.UTC)


def on_the_wire(event: EventGridEvent | CloudEvent) -> dict:
    """The body EventGridPublisherClient.send posts for one event (its own request builder), decoded."""
    model = _cloud_event_to_generated(event) if isinstance(event, CloudEvent) else event
    content_type = "application/cloudevents-batch+json" if isinstance(event, CloudEvent) else "application/json"
    (body,) = json.loads(_build_request("http://127.0.0.1/api/events", content_type, [model]).data)
    return body


def sdk_built(name: str, schema: str) -> EventGridEvent | CloudEvent:
    sample = copy.deepcopy(EVENT_GRID_SAMPLES[name])
    if schema == "eventgrid":
        return EventGridEvent(subject=sample["subject"], event_type=SAMPLE_TYPES[name], data=sample["data"],
                              data_version=sample["dataVersion"], topic=sample["topic"], id=sample["id"],
                              event_time=SAMPLE_TIME)
    return CloudEvent(source=sample["topic"], type=SAMPLE_TYPES[name], subject=sample["subject"], id=sample["id"],
                      data=sample["data"], time=SAMPLE_TIME, extensions={"traceparent": "00-0af7-b7ad-01"})


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("name", EVENT_GRID_SAMPLES)
def test_an_event_built_and_serialised_by_the_sdk_parses_like_the_documented_json(name: str, schema: str) -> None:
    body = on_the_wire(sdk_built(name, schema))
    from_sdk, by_hand = parse(body), parse(SCHEMAS[schema](EVENT_GRID_SAMPLES[name]))
    assert type(from_sdk) is type(by_hand) and not isinstance(from_sdk, UnknownEvent)
    # the SDK writes microseconds (".95841Z"), the documentation Event Grid's 7 digits (".9584103Z"):
    # the same instant, kept as each publisher wrote it
    assert body["eventTime" if schema == "eventgrid" else "time"] == from_sdk.time == "2017-06-26T18:41:00.95841Z"
    assert dataclasses.replace(from_sdk, time=by_hand.time) == by_hand


def test_a_validation_handshake_and_an_unknown_type_built_by_the_sdk() -> None:
    handshake = EventGridEvent(subject="", event_type=SystemEventNames.EventGridSubscriptionValidationEventName,
                               data={"validationCode": "512d38b6"}, data_version="1", id="v1")
    parsed = parse(on_the_wire(handshake))
    assert isinstance(parsed, SubscriptionValidation) and parsed.validation_code == "512d38b6"
    drift = CloudEvent(source="/ws", type=SystemEventNames.MachineLearningServicesDatasetDriftDetectedEventName,
                       data={"DataDriftId": "01d2"}, id="d1")
    unknown = parse(on_the_wire(drift))
    assert isinstance(unknown, UnknownEvent) and unknown.data == {"DataDriftId": "01d2"}
    binary = parse(on_the_wire(CloudEvent(source="/ws", type="Contoso.Binary", data=b"\x00\x01", id="b1")))
    assert isinstance(binary, UnknownEvent) and binary.data == b"\x00\x01"  # data_base64, decoded by the SDK


@pytest.mark.parametrize(("schema", "mutate", "words"), [
    ("eventgrid", lambda e: e.update(eventTime="yesterday"), "field 'eventTime' must be an RFC 3339 timestamp"),
    ("eventgrid", lambda e: e.update(eventTime=1498502460), "field 'eventTime' must be an RFC 3339 timestamp"),
    ("cloudevents", lambda e: e.update(time="garbage"), "field 'time' must be an RFC 3339 timestamp"),
    ("cloudevents", lambda e: e.update(time=["2017"]), "field 'time' must be an RFC 3339 timestamp"),
    ("cloudevents", lambda e: e.pop("source"), "field 'source' is required"),
    ("cloudevents", lambda e: e.update(data_base64="aGk="), "field 'data_base64' must not be present together"),
    ("cloudevents", lambda e: (e.pop("data"), e.update(data_base64="abc")), "field 'data_base64' must be base64"),
    ("cloudevents", lambda e: e.update(TraceParent="00-1"), "field 'TraceParent' is not a CloudEvents attribute"),
    ("cloudevents", lambda e: e.update({"trace-id": "1"}), "field 'trace-id' is not a CloudEvents attribute"),
    ("eventgrid", lambda e: e.update(topic=_nested(5000)), "field 'topic' is nested 5000 levels deep"),
    ("cloudevents", lambda e: e.update(subject=_nested(5000)), "field 'subject' is nested 5000 levels deep"),
])
def test_what_the_sdk_refuses_is_malformed_naming_the_field(schema: str, mutate, words: str) -> None:
    event = SCHEMAS[schema](EVENT_GRID_SAMPLES["BlobCreated"])
    mutate(event)
    with pytest.raises(MalformedEvent) as info:
        parse(event)
    assert words in info.value.message
    assert info.value.message.startswith("Microsoft.Storage.BlobCreated event 831e1650-001e-001b-66ab-eeb76e069631:")


def test_ids_are_checked_before_the_sdk_could_invent_or_coerce_them() -> None:
    cloud = as_cloud_event(EVENT_GRID_SAMPLES["RunCompleted"])
    del cloud["id"]  # CloudEvent.from_dict would give it a random uuid: every redelivery a "new" event
    with pytest.raises(MalformedEvent, match="field 'id' must be a non-empty string"):
        parse(cloud)
    grid = copy.deepcopy(EVENT_GRID_SAMPLES["RunCompleted"])
    grid["id"] = 5  # EventGridEvent.from_dict would make it "5"
    with pytest.raises(MalformedEvent, match="field 'id' must be a non-empty string"):
        parse(grid)


def test_explicit_nulls_and_absent_times_read_as_absent() -> None:
    cloud = as_cloud_event(EVENT_GRID_SAMPLES["RunCompleted"])
    cloud.update(subject=None, time=None)  # CloudEvent.from_dict keeps an explicit null as azure.core's NULL
    parsed = parse(cloud)
    assert isinstance(parsed, RunCompleted) and (parsed.subject, parsed.time) == ("", "")
    unknown = parse({"specversion": "1.0", "id": "n1", "source": "/s", "type": "Contoso.Nothing", "data": None})
    assert isinstance(unknown, UnknownEvent) and unknown.data is None
    grid = copy.deepcopy(EVENT_GRID_SAMPLES["BlobCreated"])
    grid["eventTime"] = ""  # what payload_of writes for a binding without a time
    assert parse(grid).time == ""
    binding = func.EventGridEvent(id="e1", data=EVENT_GRID_SAMPLES["RunCompleted"]["data"], topic="/t",
                                  subject=RUN_SUBJECT, event_type="Microsoft.MachineLearningServices.RunCompleted",
                                  event_time=None, data_version="")
    assert isinstance(parse(payload_of(binding)), RunCompleted)


ODD_VALUES = [None, "", "x", 0, -1, 2**70, 1.5, True, [], {}, ["x"], {"a": None}, b"bytes", _nested(65), _nested(3000)]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("name", ["BlobCreated", "RunCompleted"])
def test_any_odd_value_in_any_envelope_field_parses_or_is_malformed(name: str, schema: str) -> None:
    # every field either side of the SDK, set to each odd value in turn: a typed event or a
    # MalformedEvent naming a field, never another exception (a handler would answer 500 and Event
    # Grid would retry it for 24 hours)
    base = SCHEMAS[schema](EVENT_GRID_SAMPLES[name])
    for key in [*base, "data_base64", "Extra", "extra"]:
        for value in ODD_VALUES:
            event = {**copy.deepcopy(base), key: value}
            try:
                parse(event)
            except MalformedEvent as e:
                assert "field '" in e.message, (key, value, e.message)


# --------------------------------------------------------------------------- SDK v2 (azure-ai-ml) jobs
# A v2 pipeline job is a run of the workspace's run history like a v1 pipeline run: the workspace's
# system topic raises the same three event types with the same data fields. What differs is what is in
# them: the run id is the job name (generated as adjective_noun_suffix), the tags are the job's tags
# (the v2 adapter's, shared/workspace/amlv2/tags.py, plus azureml.pipelineComponent), the properties are
# those the jobs service writes (azureml.DevPlatv2, runSource MFE, azureml.parameters as a JSON string),
# and model versions are strings. Shapes: learn.microsoft.com "Azure Machine Learning as an Event Grid
# source" and what `az ml job show` returns for a pipeline job.
V2_JOB = "sincere_lamp_4v2bq1xmfr"
V2_STEP = "3c6e19a2-5b8d-4d8e-9a57-0c4f1f6d2b11"
V2_EXPERIMENT_ID = "7d0e7a52-3f4b-4c8a-9e0d-5a1b2c3d4e5f"
V2_JOB_DATA = {
    "experimentId": V2_EXPERIMENT_ID, "experimentName": "manymodels-training", "runId": V2_JOB,
    "runType": "azureml.PipelineRun",
    "runTags": {"manymodels_kind": "training", "dataset_name": "train", "dataset_version": "7",
                "param_training_mode": "changed", "azureml.pipelineComponent": "pipelinerun"},
    "runProperties": {"azureml.DevPlatv2": "true", "azureml.runsource": "azureml.PipelineRun", "runSource": "MFE",
                      "runType": "HTTP", "azureml.parameters": "{\"dataset_version\":\"7\"}",
                      "azureml.continue_on_step_failure": "False", "azureml.defaultComputeName": "cpu-compute",
                      "azureml.defaultDataStoreName": "workspaceblobstore", "azureml.pipelineComponent": "pipelinerun"},
}
V2_STEP_DATA = {
    "experimentId": V2_EXPERIMENT_ID, "experimentName": "manymodels-training", "runId": V2_STEP,
    "runType": "azureml.StepRun",
    "runTags": {"azureml.pipelinerunid": V2_JOB, "azureml.nodeid": "2f4ac8e1"},
    "runProperties": {"azureml.runsource": "azureml.StepRun", "azureml.nodeid": "2f4ac8e1",
                      "StepType": "ParallelRunStep", "ComputeTargetType": "AmlCompute", "azureml.DevPlatv2": "true"},
}
V2_TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/mm-rg/providers/"
            "Microsoft.MachineLearningServices/workspaces/manymodelsaml")


def v2_event(event_type: str, data: dict, *, subject: str = "", schema: str = "eventgrid") -> dict:
    subject = subject or f"experiments/{V2_EXPERIMENT_ID}/runs/{data['runId']}"
    if schema == "cloudevents":
        return {"specversion": "1.0", "id": "9d3c2b1a-0f4e-4d5c-8b7a-6e5f4d3c2b1a", "source": V2_TOPIC,
                "subject": subject, "type": f"Microsoft.MachineLearningServices.{event_type}",
                "time": "2026-12-03T07:12:44.8251633Z", "data": data}
    return {"id": "9d3c2b1a-0f4e-4d5c-8b7a-6e5f4d3c2b1a", "topic": V2_TOPIC, "subject": subject,
            "eventType": f"Microsoft.MachineLearningServices.{event_type}", "eventTime": "2026-12-03T07:12:44.8251633Z",
            "data": data, "dataVersion": "", "metadataVersion": "1"}


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_a_completed_v2_pipeline_job_is_a_run_completed(schema: str) -> None:
    event = parse(v2_event("RunCompleted", V2_JOB_DATA, schema=schema))
    assert isinstance(event, RunCompleted)
    assert (event.run_id, event.experiment_name, event.run_type) == (V2_JOB, "manymodels-training",
                                                                    "azureml.PipelineRun")
    assert event.experiment_id == V2_EXPERIMENT_ID and event.source == V2_TOPIC
    assert event.run_tags["manymodels_kind"] == "training" and event.run_tags["dataset_version"] == "7"
    assert event.run_properties["azureml.parameters"] == "{\"dataset_version\":\"7\"}"
    assert event.time == "2026-12-03T07:12:44.8251633Z"  # the 7th fractional digit kept


@pytest.mark.parametrize(("status", "expected"), [("Failed", "failed"), ("Canceled", "canceled"),
                                                  ("CancelRequested", "cancelrequested"), ("Completed", "completed")])
def test_a_v2_job_status_change_is_a_run_status_changed(status: str, expected: str) -> None:
    event = parse(v2_event("RunStatusChanged", {**V2_JOB_DATA, "runStatus": status}))
    assert isinstance(event, RunStatusChanged)
    assert (event.run_id, event.run_status, event.run_type) == (V2_JOB, expected, "azureml.PipelineRun")


def test_a_v2_job_without_run_id_in_data_takes_the_job_name_from_the_subject() -> None:
    data = {k: v for k, v in V2_JOB_DATA.items() if k != "runId"}
    event = parse(v2_event("RunCompleted", data, subject=f"experiments/{V2_EXPERIMENT_ID}/runs/{V2_JOB}"))
    assert event.run_id == V2_JOB


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_a_v2_model_asset_registered_is_a_model_registered(schema: str) -> None:
    data = {"ModelName": "1000_dominicks", "ModelVersion": "3",
            "ModelTags": {"ModelType": "ets", "Store": "1000", "Brand": "dominicks", "manymodels_run": V2_JOB},
            "ModelProperties": {"azureml.assetType": "custom_model"}}
    payload = v2_event("ModelRegistered", {**data, "runId": "unused"}, subject="models/1000_dominicks:3",
                       schema=schema)
    payload["data"] = data
    event = parse(payload)
    assert isinstance(event, ModelRegistered)
    assert (event.model_name, event.model_version) == ("1000_dominicks", 3)
    assert event.model_tags["ModelType"] == "ets" and event.subject == "models/1000_dominicks:3"


class _Runs:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, run_id: str):
        from shared.errors import NotFound

        self.asked.append(run_id)
        raise NotFound(f"job {run_id} not found")


def _flow_context():
    from types import SimpleNamespace

    from shared.settings import Settings

    # a ledger that has never seen the run (shared/ledger: ledger.runs.get) and a workspace that does not hold it
    ledger = SimpleNamespace(runs=SimpleNamespace(get=lambda run_id: None))
    return SimpleNamespace(settings=Settings.from_env({}), ledger=ledger, workspace=SimpleNamespace(runs=_Runs()))


def test_the_run_flow_asks_the_workspace_about_a_v2_pipeline_job_and_ignores_its_steps() -> None:
    """shared/flows/runs.py decides from the event which runs are the product's: a v2 pipeline job (its
    tags) is looked up through the port (the v2 RunStore answers), a step of it is ignored."""
    from shared.flows import runs

    ctx = _flow_context()
    runs.on_run_status_changed(ctx, parse(v2_event("RunStatusChanged", {**V2_JOB_DATA, "runStatus": "Failed"})))
    assert ctx.workspace.runs.asked == [V2_JOB]

    ctx = _flow_context()
    outcome = runs.on_run_status_changed(ctx, parse(v2_event("RunStatusChanged",
                                                             {**V2_STEP_DATA, "runStatus": "Completed"})))
    assert outcome == "ignored: not a manymodels pipeline run" and ctx.workspace.runs.asked == []
