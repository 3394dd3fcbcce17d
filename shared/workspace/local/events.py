"""Azure ML workspace events, built exactly as Azure ML raises them (Event Grid schema).

The local pipeline runner publishes these to ``workspace.events`` so the Function App's
``on_aml_event`` handles a local run the same way as a real one. Shapes follow the
"Azure Machine Learning as an Event Grid source" samples: run events carry camelCase data
(``experimentId, experimentName, runId, runType, runTags, runProperties`` + ``runStatus``),
model events PascalCase (``ModelName, ModelVersion, ModelTags, ModelProperties``).
"""

from __future__ import annotations

import uuid
from typing import Any

from azure.eventgrid import SystemEventNames

from shared.workspace.base import ModelRecord, Run, RunStatus
from shared.workspace.local.db import utc_now

LOCAL_TOPIC = ("/subscriptions/local/resourceGroups/local/providers/"
               "Microsoft.MachineLearningServices/workspaces/local")
RUN_COMPLETED = SystemEventNames.MachineLearningServicesRunCompletedEventName.value
RUN_STATUS_CHANGED = SystemEventNames.MachineLearningServicesRunStatusChangedEventName.value
MODEL_REGISTERED = SystemEventNames.MachineLearningServicesModelRegisteredEventName.value
PIPELINE_RUN_TYPE = "azureml.PipelineRun"

# Azure ML's run status names (what ``runStatus`` holds on Azure).
_AML_STATUS = {
    RunStatus.QUEUED: "Queued",
    RunStatus.RUNNING: "Running",
    RunStatus.COMPLETED: "Completed",
    RunStatus.FAILED: "Failed",
    RunStatus.CANCELED: "Canceled",
}


def experiment_id(experiment: str) -> str:
    """A stable GUID per experiment name (Azure ML gives each experiment one)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"manymodels:experiment:{experiment}"))


def _event(event_type: str, subject: str, data: dict[str, Any], topic: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": topic,
        "subject": subject,
        "eventType": event_type,
        "eventTime": utc_now(),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def _run_data(run: Run) -> dict[str, Any]:
    tags = {
        **{str(k): str(v) for k, v in run.tags.items()},
        "manymodels_kind": str(run.kind),
        "dataset_name": run.dataset_name,
        "dataset_version": str(run.dataset_version),
    }
    # Azure ML run properties are strings; counts and outputs (e.g. "predictions") travel here.
    properties = {str(k): str(v) for k, v in run.counts.items()}
    properties.update({str(k): str(v) for k, v in run.outputs.items()})
    if run.error:
        properties["error"] = run.error
    return {
        "experimentId": experiment_id(run.experiment),
        "experimentName": run.experiment,
        "runId": run.run_id,
        "runType": PIPELINE_RUN_TYPE,
        "runTags": tags,
        "runProperties": properties,
    }


def _run_subject(run: Run) -> str:
    return f"experiments/{experiment_id(run.experiment)}/runs/{run.run_id}"


def run_completed(run: Run, *, topic: str = LOCAL_TOPIC) -> dict[str, Any]:
    """``RunCompleted`` for a run that ended successfully."""
    return _event(RUN_COMPLETED, _run_subject(run), _run_data(run), topic)


def run_status_changed(run: Run, *, topic: str = LOCAL_TOPIC) -> dict[str, Any]:
    """``RunStatusChanged`` carrying the run's current status as Azure ML names it."""
    data = {**_run_data(run), "runStatus": _AML_STATUS[RunStatus(run.status)]}
    return _event(RUN_STATUS_CHANGED, _run_subject(run), data, topic)


def run_failed(run: Run, *, topic: str = LOCAL_TOPIC) -> dict[str, Any]:
    """``RunStatusChanged`` with ``runStatus: "Failed"`` (Azure ML raises no RunFailed event)."""
    data = {**_run_data(run), "runStatus": "Failed"}
    return _event(RUN_STATUS_CHANGED, _run_subject(run), data, topic)


def model_registered(record: ModelRecord, *, topic: str = LOCAL_TOPIC) -> dict[str, Any]:
    data = {
        "ModelName": record.name,
        "ModelVersion": record.version,
        "ModelTags": dict(record.tags),
        "ModelProperties": dict(record.properties),
    }
    return _event(MODEL_REGISTERED, f"models/{record.name}:{record.version}", data, topic)
