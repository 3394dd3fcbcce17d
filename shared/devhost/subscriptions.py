"""Event Grid subscriptions, read from ``infra/eventgrid/subscriptions.json`` (the file Bicep deploys).

A subscription filters a topic's events by type and subject (case-insensitive, like Event Grid's
default) and names the function it delivers to. Custom topics (shared/devhost/topics.py) add webhook
subscriptions of the same type at run time. The landing container in a ``subjectBeginsWith``
follows ``LANDING_CONTAINER``, as the Bicep deployment parameterises it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from shared.errors import InvalidValue
from shared.paths import REPO_ROOT

DEFAULT_FILE = REPO_ROOT / "infra" / "eventgrid" / "subscriptions.json"
DECLARED_LANDING = "landing"  # the container name written in the file; LANDING_CONTAINER replaces it
_CONTAINER = re.compile(r"^/blobServices/default/containers/([^/]+)/")


class DeliverySchema(StrEnum):
    EVENT_GRID = "EventGridSchema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0"


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    topic: str
    function: str
    included_event_types: tuple[str, ...]
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    max_delivery_attempts: int = 30
    ttl_minutes: int = 1440
    case_sensitive: bool = False
    delivery_schema: DeliverySchema = DeliverySchema.EVENT_GRID
    # set for a custom topic's webhook subscription (shared/devhost/topics.py); ``function`` is then ""
    webhook_url: str = ""

    def __repr__(self) -> str:  # a webhook URL may carry a secret in its query: never printed
        target = "webhook" if self.webhook_url else f"function={self.function!r}"
        return f"Subscription(name={self.name!r}, topic={self.topic!r}, {target})"

    def matches(self, event: Mapping[str, Any]) -> bool:
        event_type = str(event.get("eventType") or event.get("type") or "")
        if self.included_event_types and event_type.lower() not in {t.lower() for t in self.included_event_types}:
            return False
        subject = str(event.get("subject") or "")
        begins, ends = self.subject_begins_with, self.subject_ends_with
        if not self.case_sensitive:
            subject, begins, ends = subject.lower(), begins.lower(), ends.lower()
        return subject.startswith(begins) and subject.endswith(ends)

    @property
    def container(self) -> str | None:
        """The blob container a storage subscription filters on (None: every container)."""
        match = _CONTAINER.match(self.subject_begins_with)
        return match.group(1) if match else None


def load(path: Path | None = None, *, landing_container: str = DECLARED_LANDING) -> tuple[Subscription, ...]:
    """Read and check the subscriptions file; :class:`InvalidValue` names the entry and field."""
    path = path or DEFAULT_FILE
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InvalidValue(f"{path}: cannot read the Event Grid subscriptions ({e})") from None
    topics = set(body.get("topics", {}))
    entries = body.get("subscriptions")
    if not isinstance(entries, list):
        raise InvalidValue(f"{path}: 'subscriptions' must be a list of subscription objects")
    return tuple(_one(e, i, path, topics, landing_container) for i, e in enumerate(entries))


def _one(entry: Any, index: int, path: Path, topics: set[str], landing: str) -> Subscription:
    where = f"{path}: subscriptions[{index}]"
    if not isinstance(entry, dict):
        raise InvalidValue(f"{where}: expected an object")
    for key in ("name", "topic", "function"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise InvalidValue(f"{where}: '{key}' must be a non-empty string")
    if topics and entry["topic"] not in topics:
        raise InvalidValue(f"{where}: topic {entry['topic']!r} is not declared; declared: {', '.join(sorted(topics))}")
    begins = str(entry.get("subjectBeginsWith") or "")
    prefix = f"/blobServices/default/containers/{DECLARED_LANDING}/"
    if begins.startswith(prefix):
        begins = f"/blobServices/default/containers/{landing}/" + begins[len(prefix):]
    try:
        schema = DeliverySchema(entry.get("eventDeliverySchema", DeliverySchema.EVENT_GRID))
    except ValueError:
        raise InvalidValue(f"{where}: 'eventDeliverySchema' must be one of "
                           f"{', '.join(s.value for s in DeliverySchema)}") from None
    return Subscription(
        name=entry["name"], topic=entry["topic"], function=entry["function"],
        included_event_types=tuple(entry.get("includedEventTypes") or ()),
        subject_begins_with=begins, subject_ends_with=str(entry.get("subjectEndsWith") or ""),
        max_delivery_attempts=_int(entry, "maxDeliveryAttempts", 30, 1, 30, where),
        ttl_minutes=_int(entry, "eventTimeToLiveInMinutes", 1440, 1, 1440, where),
        case_sensitive=bool(entry.get("isSubjectCaseSensitive", False)),
        delivery_schema=schema,
    )


def _int(entry: dict, key: str, default: int, lo: int, hi: int, where: str) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InvalidValue(f"{where}: '{key}' is {value!r}; allowed: a whole number from {lo} to {hi}")
    return value


def to_cloud_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event in CloudEvents v1.0, as Event Grid converts it for such subscriptions."""
    if "specversion" in event:
        return dict(event)
    return {"specversion": "1.0", "id": event.get("id"), "source": event.get("topic"),
            "type": event.get("eventType"), "subject": event.get("subject"), "time": event.get("eventTime"),
            "datacontenttype": "application/json", "data": event.get("data")}
