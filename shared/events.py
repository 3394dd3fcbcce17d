"""Event Grid and CloudEvents 1.0 payloads turned into typed, frozen events (DESIGN.md §4).

:func:`parse` accepts one event as a dict in either schema (what Event Grid delivers, what the
local workspace writes to its outbox) and returns :class:`BlobCreated`, :class:`RunCompleted`,
:class:`RunStatusChanged`, :class:`ModelRegistered`, :class:`ModelDeployed`,
:class:`SubscriptionValidation`, or :class:`UnknownEvent` for any other type. It tolerates what
real publishers send (``ModelVersion`` as a number or a string, ``runType: null``, a subject
with or without its leading slash, quoted eTags, unknown fields) and raises
:class:`MalformedEvent`, naming the field, for anything a handler could not act on. Handlers log
that reason and acknowledge the event: retrying a malformed event can never succeed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ErrorCode, ManyModelsError

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
RUN_COMPLETED = "Microsoft.MachineLearningServices.RunCompleted"
RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"
MODEL_DEPLOYED = "Microsoft.MachineLearningServices.ModelDeployed"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


class MalformedEvent(ManyModelsError):
    """An event that no handler can act on; the message says which field is wrong and why."""

    code = ErrorCode.INVALID_VALUE


@dataclass(frozen=True, slots=True)
class BlobCreated:
    id: str
    source: str
    subject: str
    time: str
    container: str
    blob: str  # path inside the container, e.g. "train/batch-7/Store1000_dominicks.csv"
    etag: str  # without quotes
    size: int | None
    url: str = ""
    sequencer: str = ""
    api: str = ""
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class RunCompleted:
    id: str
    source: str
    subject: str
    time: str
    run_id: str
    experiment_id: str = ""
    experiment_name: str = ""
    run_type: str | None = None
    run_tags: Mapping[str, str] = field(default_factory=dict)
    run_properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunStatusChanged:
    id: str
    source: str
    subject: str
    time: str
    run_id: str
    run_status: str  # lower case: "failed", "canceled", "completed", "running", ...
    experiment_id: str = ""
    experiment_name: str = ""
    run_type: str | None = None
    run_tags: Mapping[str, str] = field(default_factory=dict)
    run_properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelRegistered:
    id: str
    source: str
    subject: str
    time: str
    model_name: str
    model_version: int
    model_tags: Mapping[str, str] = field(default_factory=dict)
    model_properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelDeployed:
    id: str
    source: str
    subject: str
    time: str
    service_name: str
    model_ids: tuple[str, ...] = ()  # "name:version"
    service_compute_type: str = ""
    service_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscriptionValidation:
    id: str
    source: str
    subject: str
    time: str
    validation_code: str
    validation_url: str = ""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    id: str
    source: str
    subject: str
    time: str
    type: str
    data: Any = None


Event = (BlobCreated | RunCompleted | RunStatusChanged | ModelRegistered | ModelDeployed
         | SubscriptionValidation | UnknownEvent)


@dataclass(frozen=True, slots=True)
class _Envelope:
    id: str
    type: str
    source: str
    subject: str
    time: str
    data: Any


def parse(payload: Mapping[str, Any]) -> Event:
    """One event (Event Grid schema or CloudEvents 1.0) as a typed record.

    Raises:
        MalformedEvent: not an object, no id/type, or a known type whose data lacks what its
            handler needs; the message names the event id and the field.
    """
    env = _envelope(payload)
    parser = _PARSERS.get(env.type.lower())
    if parser is None:
        return UnknownEvent(env.id, env.source, env.subject, env.time, env.type, env.data)
    if not isinstance(env.data, Mapping):
        raise _bad(env, "data", f"expected an object, got {type(env.data).__name__}")
    return parser(env, env.data)


def payload_of(event: Any) -> dict[str, Any]:
    """The dict of an event as the Functions worker hands it over.

    Accepts ``func.EventGridEvent`` (Event Grid schema), ``func.CloudEvent`` (azure-functions
    1.22+ gives one for CloudEvents subscriptions) or an already decoded dict.
    """
    if isinstance(event, Mapping):
        return dict(event)
    if hasattr(event, "specversion"):
        return {"specversion": event.specversion, "id": event.id, "source": event.source, "type": event.type,
                "subject": event.subject, "time": _iso(event.time), "data": event.get_json(),
                **getattr(event, "extension_attrs", {})}
    return {"id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
            "eventTime": _iso(event.event_time), "data": event.get_json(), "dataVersion": event.data_version}


# --------------------------------------------------------------------------- envelope


def _envelope(payload: Any) -> _Envelope:
    if not isinstance(payload, Mapping):
        raise MalformedEvent(f"event: expected a JSON object, got {type(payload).__name__}")
    cloud = "specversion" in payload
    event_id = payload.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise MalformedEvent(f"event: field 'id' must be a non-empty string, got {event_id!r}")
    type_field, source_field, time_field = ("type", "source", "time") if cloud else ("eventType", "topic", "eventTime")
    event_type = payload.get(type_field)
    if not isinstance(event_type, str) or not event_type.strip():
        raise MalformedEvent(f"event {event_id}: field '{type_field}' must be a non-empty string, got {event_type!r}")
    return _Envelope(id=event_id, type=event_type.strip(), source=_text(payload.get(source_field)),
                     subject=_text(payload.get("subject")), time=_text(payload.get(time_field)),
                     data=payload.get("data"))


def _bad(env: _Envelope, name: str, problem: str) -> MalformedEvent:
    return MalformedEvent(f"{env.type} event {env.id}: field '{name}' {problem}")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return _text(value)


def _required_str(env: _Envelope, data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad(env, f"data.{name}", f"must be a non-empty string, got {value!r}")
    return value


def _mapping(env: _Envelope, data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(env, f"data.{name}", f"must be an object, got {type(value).__name__}")
    return dict(value)


def _tags(env: _Envelope, data: Mapping[str, Any], name: str) -> dict[str, str]:
    return {str(k): _text(v) for k, v in _mapping(env, data, name).items()}


# --------------------------------------------------------------------------- per type


def _blob_created(env: _Envelope, data: Mapping[str, Any]) -> BlobCreated:
    # subject: /blobServices/default/containers/{container}/blobs/{path} (CloudEvents samples omit the slash)
    parts = env.subject.lstrip("/").split("/", 4)
    if len(parts) != 5 or parts[0] != "blobServices" or parts[2] != "containers" or not parts[4].startswith("blobs/"):
        raise _bad(env, "subject", f"is {env.subject!r}; expected /blobServices/default/containers/<c>/blobs/<path>")
    container, blob = parts[3], parts[4][len("blobs/"):]
    if not container or not blob:
        raise _bad(env, "subject", f"is {env.subject!r}: container or blob path is empty")
    size = data.get("contentLength")
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size)
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _bad(env, "data.contentLength", f"must be a non-negative integer, got {size!r}")
    return BlobCreated(id=env.id, source=env.source, subject=env.subject, time=env.time, container=container,
                       blob=blob, etag=_text(data.get("eTag")).strip('"'), size=size, url=_text(data.get("url")),
                       sequencer=_text(data.get("sequencer")), api=_text(data.get("api")),
                       content_type=_text(data.get("contentType")))


def _run_id(env: _Envelope, data: Mapping[str, Any]) -> str:
    run_id = data.get("runId")
    if isinstance(run_id, str) and run_id.strip():
        return run_id
    parts = env.subject.strip("/").split("/")  # experiments/{experimentId}/runs/{runId}
    if len(parts) == 4 and parts[0] == "experiments" and parts[2] == "runs" and parts[3]:
        return parts[3]
    raise _bad(env, "data.runId", f"must be a non-empty string, got {run_id!r}")


def _run_fields(env: _Envelope, data: Mapping[str, Any]) -> dict[str, Any]:
    run_type = data.get("runType")
    return {"id": env.id, "source": env.source, "subject": env.subject, "time": env.time,
            "run_id": _run_id(env, data), "experiment_id": _text(data.get("experimentId")),
            "experiment_name": _text(data.get("experimentName")),
            "run_type": None if run_type is None else str(run_type),
            "run_tags": _tags(env, data, "runTags"), "run_properties": _mapping(env, data, "runProperties")}


def _run_completed(env: _Envelope, data: Mapping[str, Any]) -> RunCompleted:
    return RunCompleted(**_run_fields(env, data))


def _run_status_changed(env: _Envelope, data: Mapping[str, Any]) -> RunStatusChanged:
    status = _required_str(env, data, "runStatus")
    return RunStatusChanged(run_status=status.strip().lower(), **_run_fields(env, data))


def _model_version(env: _Envelope, data: Mapping[str, Any]) -> int:
    value = data.get("ModelVersion")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _bad(env, "data.ModelVersion", f"must be a whole number (or its string), got {value!r}")


def _model_registered(env: _Envelope, data: Mapping[str, Any]) -> ModelRegistered:
    return ModelRegistered(id=env.id, source=env.source, subject=env.subject, time=env.time,
                           model_name=_required_str(env, data, "ModelName"), model_version=_model_version(env, data),
                           model_tags=_tags(env, data, "ModelTags"),
                           model_properties=_tags(env, data, "ModelProperties"))


def _model_deployed(env: _Envelope, data: Mapping[str, Any]) -> ModelDeployed:
    ids = data.get("ModelIds") or ()
    if isinstance(ids, str):
        ids = [i for i in (p.strip() for p in ids.split(",")) if i]
    if not isinstance(ids, list | tuple):
        raise _bad(env, "data.ModelIds", f"must be a comma-separated string or a list, got {ids!r}")
    return ModelDeployed(id=env.id, source=env.source, subject=env.subject, time=env.time,
                         service_name=_required_str(env, data, "ServiceName"), model_ids=tuple(str(i) for i in ids),
                         service_compute_type=_text(data.get("ServiceComputeType")),
                         service_tags=_tags(env, data, "ServiceTags"))


def _validation(env: _Envelope, data: Mapping[str, Any]) -> SubscriptionValidation:
    return SubscriptionValidation(id=env.id, source=env.source, subject=env.subject, time=env.time,
                                  validation_code=_required_str(env, data, "validationCode"),
                                  validation_url=_text(data.get("validationUrl")))


_PARSERS = {
    BLOB_CREATED.lower(): _blob_created,
    RUN_COMPLETED.lower(): _run_completed,
    RUN_STATUS_CHANGED.lower(): _run_status_changed,
    MODEL_REGISTERED.lower(): _model_registered,
    MODEL_DEPLOYED.lower(): _model_deployed,
    SUBSCRIPTION_VALIDATION.lower(): _validation,
}
