"""Binding objects built exactly like the Python worker builds them for each trigger.

Event Grid inputs go through the library's own converter (``EventGridEventInConverter``), so an
event in CloudEvents schema becomes a ``func.CloudEvent`` and one in Event Grid schema a
``func.EventGridEvent``, as on Azure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def http_request(method: str, url: str, *, headers: Mapping[str, str], params: Mapping[str, str],
                 route_params: Mapping[str, str], body: bytes) -> func.HttpRequest:
    return func.HttpRequest(method=method, url=url, headers=dict(headers), params=dict(params),
                            route_params=dict(route_params), body=body)


def http_answer(value: Any) -> HttpAnswer:
    """What the worker does with an HTTP function's return value (the ``$return`` output)."""
    if isinstance(value, func.HttpResponse):
        headers = [(k, v) for k, v in value.headers.items()]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", f"{value.mimetype}; charset={value.charset}"))
        return HttpAnswer(value.status_code, tuple(headers), value.get_body() or b"")
    if value is None:
        return HttpAnswer(204, (), b"")
    if isinstance(value, bytes):
        return HttpAnswer(200, (("Content-Type", "application/octet-stream"),), value)
    if isinstance(value, str):
        return HttpAnswer(200, (("Content-Type", "text/plain; charset=utf-8"),), value.encode())
    return HttpAnswer(200, (("Content-Type", "application/json"),), json.dumps(value, default=str).encode())


def event_input(event: Mapping[str, Any]) -> func.EventGridEvent | func.CloudEvent:
    """An Event Grid or CloudEvents v1.0 event (one element of a delivery) as the function sees it."""
    datum = meta.Datum(value=json.dumps(event), type="json")
    return EventGridEventInConverter.decode(datum, trigger_metadata=None)


def queue_message(*, id: str, body: bytes, dequeue_count: int, insertion_time: dt.datetime | None,
                  expiration_time: dt.datetime | None, next_visible: dt.datetime | None,
                  pop_receipt: str | None) -> func.QueueMessage:
    return QueueMessage(id=id, body=body, dequeue_count=dequeue_count, expiration_time=expiration_time,
                        insertion_time=insertion_time, time_next_visible=next_visible, pop_receipt=pop_receipt)


def timer_request(*, past_due: bool, last: dt.datetime | None, next_: dt.datetime,
                  updated: dt.datetime) -> func.TimerRequest:
    status = {"Last": _iso(last) if last else None, "Next": _iso(next_), "LastUpdated": _iso(updated)}
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def event_time(t: dt.datetime | None = None) -> str:
    """Event Grid's timestamp format: ``2026-11-27T10:00:00.1234567Z``."""
    t = (t or utc_now()).astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"
