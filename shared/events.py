"""Event Grid and CloudEvents 1.0 payloads turned into typed, frozen events (docs/architecture.md §2, docs/events.md).

:func:`parse` accepts one event as a dict in either schema (what Event Grid delivers, what the
local workspace writes to its outbox), reads its envelope through the SDK's own models
(``azure.eventgrid.EventGridEvent.from_dict`` for the Event Grid schema,
``azure.core.messaging.CloudEvent.from_dict`` for CloudEvents) and returns :class:`BlobCreated`,
:class:`RunCompleted`, :class:`RunStatusChanged`, :class:`ModelRegistered`, :class:`ModelDeployed`,
:class:`SubscriptionValidation`, or :class:`UnknownEvent` for any other type; the type names are
the SDK's ``SystemEventNames``. It tolerates what real publishers send (``ModelVersion`` as a
number or a string, ``runType: null``, a subject with or without its leading slash, quoted eTags,
unknown fields) and raises :class:`MalformedEvent`, naming the field, for anything a handler could
not act on or the SDK refuses (an unreadable time, bad base64, a CloudEvents attribute name that is
not lower-case alphanumeric). Handlers log that reason and acknowledge the event: retrying a
malformed event can never succeed.

Both Azure ML backends raise the same events: an SDK v2 pipeline job is a run of the workspace's run
history like an SDK v1 pipeline run, so ``RunCompleted`` / ``RunStatusChanged`` carry its job name as
``runId``, ``runType: azureml.PipelineRun`` and the job's tags; its steps are ``azureml.StepRun`` runs.
v2 model assets raise ``ModelRegistered`` with the version as a string (docs/events.md).
"""

from __future__ import annotations

import datetime as dt
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.core.messaging import CloudEvent
from azure.core.serialization import NULL
from azure.eventgrid import EventGridEvent, SystemEventNames

from shared.errors import ErrorCode, ManyModelsError
from shared.fields import INT32_MAX, INT64_MAX, MAX_DEPTH, decimal_text, nesting_depth

# Event Grid and Azure ML ids are GUIDs; the ledger keys replays by id (a table key: 512 UTF-16
# units after percent-encoding, shared/ledger/table.py encode_key), so a longer id is refused here
MAX_ID_LENGTH = 128


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
        MalformedEvent: not an object, no id/type, a field the SDK refuses (an unreadable time, bad
            base64, an extension attribute that is not lower-case alphanumeric, nesting deeper than
            MAX_DEPTH), or a known type whose data lacks what its handler needs; the message names
            the event id and the field.
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
    1.22+ gives one for CloudEvents subscriptions) or an already decoded dict. Raises
    MalformedEvent when its data cannot be read (not JSON, nested too deeply).
    """
    try:
        return _payload_of(event)
    except (ValueError, TypeError, RecursionError) as e:
        raise MalformedEvent(f"event {getattr(event, 'id', '?')!s:.{MAX_ID_LENGTH}}: its data cannot be read: "
                             f"{type(e).__name__}") from None


def _payload_of(event: Any) -> dict[str, Any]:
    if isinstance(event, Mapping):
        return dict(event)
    if hasattr(event, "specversion"):
        return {"specversion": event.specversion, "id": event.id, "source": event.source, "type": event.type,
                "subject": event.subject, "time": _iso(event.time), "data": event.get_json(),
                **getattr(event, "extension_attrs", {})}
    return {"id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
            "eventTime": _iso(event.event_time), "data": event.get_json(), "dataVersion": event.data_version}


# --------------------------------------------------------------------------- envelope

_SdkEvent = EventGridEvent | CloudEvent
# the least each schema's from_dict accepts: _culprit adds one field of a refused event at a time
_CLOUD_PROBE = {"specversion": "1.0", "id": "probe", "source": "probe", "type": "probe"}
_GRID_PROBE = {"id": "probe", "eventType": "probe"}


def _envelope(payload: Any) -> _Envelope:
    if not isinstance(payload, Mapping):
        raise MalformedEvent(f"event: expected a JSON object, got {type(payload).__name__}")
    payload = dict(payload)  # what the SDK's from_dict takes (and nesting_depth walks)
    cloud = "specversion" in payload
    # id and type are checked before the SDK sees them: CloudEvent.from_dict invents a random id for
    # a missing one (a redelivery would then never match its first delivery in the ledger) and
    # EventGridEvent.from_dict turns any value into a string (5 -> "5", None stays None)
    event_id = payload.get("id")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_ID_LENGTH:
        shown = f"{event_id[:40]!r}... ({len(event_id)} characters)" if isinstance(event_id, str) \
            and len(event_id) > MAX_ID_LENGTH else _shown(event_id)
        raise MalformedEvent(f"event: field 'id' must be a non-empty string of at most {MAX_ID_LENGTH} "
                             f"characters, got {shown}")
    type_field, time_field = ("type", "time") if cloud else ("eventType", "eventTime")
    event_type = payload.get(type_field)
    if not isinstance(event_type, str) or not event_type.strip():
        raise MalformedEvent(f"event {event_id}: field '{type_field}' must be a non-empty string, "
                             f"got {_shown(event_type)}")
    event_type = event_type.strip()
    # the SDK recurses into data (EventGridEvent rebuilds it) and str()s other fields: a value nested
    # thousands of levels deep would raise RecursionError inside it. One pass over the whole event;
    # only a refused one is searched for the field.
    if nesting_depth(payload) > MAX_DEPTH + 1:
        for name in ("data", *(k for k in payload if k != "data")):
            depth = nesting_depth(payload.get(name))
            if depth > MAX_DEPTH:
                raise _refused(event_type, event_id, name, f"is nested {depth} levels deep; at most {MAX_DEPTH} "
                                                           "are allowed")
    raw_time = payload.get(time_field)
    if raw_time == "":  # what payload_of writes for a binding without a time: absent, not unreadable
        payload = {k: v for k, v in payload.items() if k != time_field}
    sdk = _sdk_event(payload, cloud=cloud, event_type=event_type, event_id=event_id)
    source: str | None  # an EventGridEvent's topic may be absent; a CloudEvent's source may not
    if isinstance(sdk, CloudEvent):
        source, subject, time, data = sdk.source, sdk.subject, sdk.time, sdk.data
    else:
        source, subject, time, data = sdk.topic, sdk.subject, sdk.event_time, sdk.data
    # the time as the publisher wrote it (the SDK has checked it is one): its datetime drops the
    # 7th fractional digit Event Grid writes
    return _Envelope(id=event_id, type=event_type, source=_text(_absent(source)), subject=_text(_absent(subject)),
                     time=raw_time if time is not None and isinstance(raw_time, str) else "", data=_absent(data))


def _sdk_event(payload: dict[str, Any], *, cloud: bool, event_type: str, event_id: str) -> _SdkEvent:
    """The SDK's model of the event; what the SDK refuses becomes a MalformedEvent naming the field."""
    from_dict: Callable[[dict[str, Any]], _SdkEvent] = CloudEvent.from_dict if cloud else EventGridEvent.from_dict
    try:
        return from_dict(payload)
    except Exception as e:  # untrusted input at the SDK boundary: whatever it raises is a refusal
        name, problem = _culprit(payload, cloud=cloud, from_dict=from_dict, error=e)
        raise _refused(event_type, event_id, name, problem) from None


def _culprit(payload: Mapping[str, Any], *, cloud: bool, from_dict: Callable[[dict[str, Any]], _SdkEvent],
             error: Exception) -> tuple[str, str]:
    """Which field the SDK refused and why. Its exceptions do not say (a bad time reads "invalid
    literal for int() with base 10: 'ar'"), so each field is tried alone on an event that is
    otherwise valid; only a refused event pays for this."""
    if cloud and "data" in payload and "data_base64" in payload:
        return "data_base64", "must not be present together with 'data' (CloudEvents 1.0 allows one of them)"
    if cloud and "source" not in payload:
        return "source", "is required by CloudEvents 1.0 (a URI reference naming the publisher)"
    probe = _CLOUD_PROBE if cloud else _GRID_PROBE
    for name, value in payload.items():
        try:
            from_dict({**probe, name: value})
        except Exception as e:  # as in _sdk_event
            return name, _problem(name, value, e, cloud=cloud)
    return "event", f"is refused by the SDK: {_sdk_error(error)}"


def _problem(name: str, value: Any, error: Exception, *, cloud: bool) -> str:
    shown = _shown(value)
    if cloud and name != "data_base64" and not (name.islower() and name.isalnum()):
        return ("is not a CloudEvents attribute name: extension attributes are lower-case letters and digits "
                "(CloudEvents 1.0)")
    if name == "time" if cloud else name.lower() == "eventtime":  # EventGridEvent reads keys in any case
        return f"must be an RFC 3339 timestamp such as 2017-06-26T18:41:00.9584103Z, got {shown}"
    if name == "data_base64":
        return f"must be base64 text, got {shown}"
    return f"is refused by the SDK ({_sdk_error(error)}), got {shown}"


def _sdk_error(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[:120]}"


def _absent(value: Any) -> Any:
    """CloudEvent.from_dict keeps an explicit JSON null as azure.core's NULL sentinel: None here."""
    return None if value is NULL else value


def _refused(event_type: str, event_id: str, name: str, problem: str) -> MalformedEvent:
    return MalformedEvent(f"{event_type} event {event_id}: field '{name}' {problem}")


def _bad(env: _Envelope, name: str, problem: str) -> MalformedEvent:
    return _refused(env.type, env.id, name, problem)


_SHOWN = reprlib.Repr()  # Python 3.11's takes no keywords
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 2, 60, 60, 60


def _shown(value: Any) -> str:
    """A value for an error message: short, and safe for any nesting (repr() recurses)."""
    return _SHOWN.repr(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return _text(value)


def _required_str(env: _Envelope, data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad(env, f"data.{name}", f"must be a non-empty string, got {_shown(value)}")
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
        raise _bad(env, "subject", f"is {_shown(env.subject)}; expected "
                                   "/blobServices/default/containers/<c>/blobs/<path>")
    container, blob = parts[3], parts[4][len("blobs/"):]
    if not container or not blob:
        raise _bad(env, "subject", f"is {_shown(env.subject)}: container or blob path is empty")
    size = data.get("contentLength")
    if isinstance(size, str):
        size = decimal_text(size) if decimal_text(size) is not None else size
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= INT64_MAX):
        raise _bad(env, "data.contentLength", f"must be a whole number from 0 to {INT64_MAX}, got {_shown(size)}")
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
    raise _bad(env, "data.runId", f"must be a non-empty string, got {_shown(run_id)}")


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
    if isinstance(value, str) and decimal_text(value) is not None:
        value = decimal_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT32_MAX:
        return value
    raise _bad(env, "data.ModelVersion", f"must be a whole number from 0 to {INT32_MAX} (or its string), "
                                         f"got {_shown(value)}")


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
        raise _bad(env, "data.ModelIds", f"must be a comma-separated string or a list, got {_shown(ids)}")
    return ModelDeployed(id=env.id, source=env.source, subject=env.subject, time=env.time,
                         service_name=_required_str(env, data, "ServiceName"), model_ids=tuple(str(i) for i in ids),
                         service_compute_type=_text(data.get("ServiceComputeType")),
                         service_tags=_tags(env, data, "ServiceTags"))


def _validation(env: _Envelope, data: Mapping[str, Any]) -> SubscriptionValidation:
    return SubscriptionValidation(id=env.id, source=env.source, subject=env.subject, time=env.time,
                                  validation_code=_required_str(env, data, "validationCode"),
                                  validation_url=_text(data.get("validationUrl")))


_PARSERS: dict[str, Callable[[_Envelope, Mapping[str, Any]], Event]] = {
    SystemEventNames.StorageBlobCreatedEventName.value.lower(): _blob_created,
    SystemEventNames.MachineLearningServicesRunCompletedEventName.value.lower(): _run_completed,
    SystemEventNames.MachineLearningServicesRunStatusChangedEventName.value.lower(): _run_status_changed,
    SystemEventNames.MachineLearningServicesModelRegisteredEventName.value.lower(): _model_registered,
    SystemEventNames.MachineLearningServicesModelDeployedEventName.value.lower(): _model_deployed,
    SystemEventNames.EventGridSubscriptionValidationEventName.value.lower(): _validation,
}
