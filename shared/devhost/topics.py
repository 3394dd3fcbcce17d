"""Custom topics of the local Event Grid: a publish endpoint like Azure's, webhook subscribers, a log.

A topic lives in ``<home>/eventgrid/topics/<topic>/``:

- ``topic.json`` (mode 0600): its input schema (``EventGridSchema`` or ``CloudEventSchemaV1_0``,
  fixed when the topic is created, as on Azure) and its two access keys ``key1``/``key2``;
  :func:`ensure_topic` creates it on first use and returns ``(endpoint, key)``.
- ``subscriptions.json``: webhook subscriptions added by :func:`subscribe`; the running host picks
  up changes without a restart.
- ``events.jsonl``: every accepted event, one line each (``sequence``, ``receivedTime``, ``event``),
  append-only; :func:`read_events` reads it from any process (``manymodels events tail``).

The endpoint is ``{host_url}/topics/{topic}/api/events`` (Azure's is ``https://<topic
host>/api/events``), so ``EventGridPublisherClient(endpoint, AzureKeyCredential(key))`` works
unchanged. Like Azure it takes the key in the ``aeg-sas-key`` header (only that, locally: no SAS
token, no Microsoft Entra token), answers 200 with an empty body, and refuses with Azure's error
shape ``{"error": {"code", "message"}}``: 401 for a missing or wrong key, 404 for an unknown topic,
413 for a request over 1 MB or an event over 64 KB, 400 for a body in the other schema than the
topic's, a missing or mistyped required field (named, with the event's index), or a Content-Type a
CloudEvents topic does not take. The ``api-version`` query parameter is accepted and not checked.

Accepted events are written to the log, then one delivery per matching subscription is queued in
the local Event Grid's durable store (``shared/devhost/eventgrid.py``), which retries and
dead-letters webhook deliveries as it does the Function App's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from shared.devhost.bindings import HttpAnswer, event_time
from shared.devhost.eventgrid import DeliveryResult, LocalEventGrid
from shared.devhost.host_state import host_url as running_host_url
from shared.devhost.subscriptions import DeliverySchema, Subscription
from shared.errors import InvalidValue, NotFound
from shared.fields import json_document

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 1024 * 1024  # Azure: a publish request of at most 1 MB
MAX_EVENT_BYTES = 64 * 1024  # per event: the local endpoint's limit (docs/reliability.md, the local topic rows)
DEFAULT_HOST_URL = "http://127.0.0.1:7071"  # shared/devhost/host.py DEFAULT_PORT
KEY_HEADER = "aeg-sas-key"
WEBHOOK_TIMEOUT = (5.0, 30.0)  # connect, read: Event Grid waits 30 s for a webhook's answer
_NAME = re.compile(r"^[A-Za-z0-9-]{3,64}$")  # Azure's rule for topic and event subscription names
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9-]{3,50}$")
_CE_ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")
_GRID_PREFIX = "topic:"  # keeps custom topics apart from infra/eventgrid/subscriptions.json's topics


class TopicSchema(StrEnum):
    """A topic's input schema (Azure's ``inputSchema``)."""

    EVENT_GRID = "EventGridSchema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0"


class TopicAccess(NamedTuple):
    """What a publisher needs: ``endpoint, key = ensure_topic(home, topic)``."""

    endpoint: str
    key: str


@dataclass(frozen=True, slots=True)
class TopicEvent:
    """One line of a topic's event log."""

    sequence: int  # 1, 2, ... per topic, in the order the endpoint accepted the events
    received: str  # when the endpoint accepted it (Event Grid timestamp format)
    event: Mapping[str, Any] = field(hash=False)  # as published (Event Grid schema: topic stamped)


@dataclass(frozen=True, slots=True)
class _Topic:
    name: str
    schema: TopicSchema
    keys: tuple[str, ...]

    def __repr__(self) -> str:  # never print a key by accident
        return f"_Topic(name={self.name!r}, schema={self.schema.value!r}, keys='***')"


# --------------------------------------------------------------------------- topics and keys


def topics_dir(home: Path) -> Path:
    return home / "eventgrid" / "topics"


def topic_dir(home: Path, topic: str) -> Path:
    return topics_dir(home) / check_topic_name(topic)


def check_topic_name(topic: str) -> str:
    if not isinstance(topic, str) or not _TOPIC_NAME.fullmatch(topic):
        raise InvalidValue(f"topic name {topic!r} is not allowed: 3 to 50 letters, digits or hyphens (as on Azure)")
    return topic


def endpoint_of(topic: str, host_url: str | None = None) -> str:
    """The topic's publish endpoint on the local host at ``host_url`` (default http://127.0.0.1:7071)."""
    return f"{(host_url or DEFAULT_HOST_URL).rstrip('/')}/topics/{check_topic_name(topic)}/api/events"


def ensure_topic(home: Path, topic: str, *, input_schema: TopicSchema | str = TopicSchema.CLOUD_EVENTS,
                 host_url: str | None = None) -> TopicAccess:
    """Create the topic on first use (keys generated then); returns its endpoint and ``key1``.

    ``host_url`` defaults to the running local host's URL (``shared/devhost/host_state.py``), else
    http://127.0.0.1:7071. A topic's schema cannot change: asking for the other one raises
    :class:`InvalidValue`.
    """
    try:
        schema = TopicSchema(input_schema)
    except ValueError:
        raise InvalidValue(f"input_schema {input_schema!r} is not allowed; allowed: "
                           f"{', '.join(s.value for s in TopicSchema)}") from None
    path = topic_dir(home, topic) / "topic.json"
    if not path.exists():
        _create(path, topic, schema)
    found = _load_topic(home, topic)
    if found.schema is not schema:
        raise InvalidValue(f"topic {topic!r} exists with input schema {found.schema.value}, not {schema.value}: "
                           "a topic's schema cannot change (as on Azure); use another topic name")
    if host_url is None:
        host_url = running_host_url(home)  # the running host's state file (shared/devhost/host_state.py)
    return TopicAccess(endpoint_of(topic, host_url), found.keys[0])


def topic_key(home: Path, topic: str) -> str:
    """The topic's ``key1``; :class:`NotFound` when the topic was never created (see :func:`ensure_topic`)."""
    return _load_topic(home, topic).keys[0]


def topic_schema(home: Path, topic: str) -> TopicSchema:
    return _load_topic(home, topic).schema


def list_topics(home: Path) -> list[str]:
    folder = topics_dir(home)
    return sorted(p.parent.name for p in folder.glob("*/topic.json")) if folder.exists() else []


def summary(home: Path) -> list[dict[str, Any]]:
    """Each topic's name, schema, last sequence and subscriptions (for status pages; no keys, no URLs)."""
    found: list[dict[str, Any]] = []
    for name in list_topics(home):
        try:
            schema = topic_schema(home, name)
            subs = [s.name for s in subscriptions_of(home, name)]
        except (InvalidValue, NotFound, ValueError, KeyError, TypeError) as e:
            found.append({"name": name, "error": str(e)})
            continue
        last = 0
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(log_file(home, name), os.O_RDONLY)
            try:
                last = _last_sequence(fd)[0]
            finally:
                os.close(fd)
        found.append({"name": name, "inputSchema": schema.value, "lastSequence": last, "subscriptions": subs})
    return found


def _create(path: Path, topic: str, schema: TopicSchema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": topic, "inputSchema": schema.value, "key1": secrets.token_urlsafe(32),
            "key2": secrets.token_urlsafe(32), "created": event_time()}
    tmp = path.with_name(f".topic-{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the keys are never readable by others
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
    try:
        os.link(tmp, path)  # another process created the topic first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _load_topic(home: Path, topic: str) -> _Topic:
    path = topic_dir(home, topic) / "topic.json"
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"topic {topic!r} does not exist in {topics_dir(home)}: create it with ensure_topic") from None
    except (OSError, ValueError) as e:
        raise InvalidValue(f"{path}: cannot read the topic ({e})") from None
    try:
        return _Topic(topic, TopicSchema(body["inputSchema"]), (str(body["key1"]), str(body["key2"])))
    except (KeyError, ValueError, TypeError) as e:
        raise InvalidValue(f"{path}: not a topic file (needs inputSchema, key1, key2): {e}") from None


# --------------------------------------------------------------------------- subscriptions


def grid_topic(topic: str) -> str:
    """The topic's name inside the local Event Grid's delivery store."""
    return _GRID_PREFIX + topic


def subscribe(home: Path, topic: str, webhook_url: str, *, name: str | None = None,
              included_event_types: Sequence[str] = (), subject_begins_with: str = "",
              subject_ends_with: str = "", delivery_schema: DeliverySchema | str | None = None,
              max_delivery_attempts: int = 30, ttl_minutes: int = 1440) -> Subscription:
    """Add (or replace, by name) a webhook subscription to an existing topic; returns it.

    ``name`` defaults to one derived from the URL, so subscribing the same URL twice changes the
    one subscription. ``delivery_schema`` defaults to the topic's schema; a CloudEvents topic
    delivers only CloudEvents (as on Azure). The returned subscription's ``name`` is
    ``<topic>.<name>``, the name its deliveries and dead letters go by.
    """
    schema = topic_schema(home, topic)
    parts = urlsplit(webhook_url) if isinstance(webhook_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"webhook_url {webhook_url!r} is not allowed: an http:// or https:// URL with a host")
    name = name or "webhook-" + hashlib.sha256(webhook_url.encode()).hexdigest()[:10]
    if not _NAME.fullmatch(name):
        raise InvalidValue(f"subscription name {name!r} is not allowed: 3 to 64 letters, digits or hyphens")
    try:
        wanted = DeliverySchema(delivery_schema or schema.value)
    except ValueError:
        raise InvalidValue(f"delivery_schema {delivery_schema!r} is not allowed; allowed: "
                           f"{', '.join(s.value for s in DeliverySchema)}") from None
    if schema is TopicSchema.CLOUD_EVENTS and wanted is not DeliverySchema.CLOUD_EVENTS:
        raise InvalidValue(f"topic {topic!r} takes CloudEvents: its subscriptions deliver "
                           f"{DeliverySchema.CLOUD_EVENTS.value} only (Event Grid converts Event Grid schema to "
                           "CloudEvents, not the other way)")
    for label, value, hi in (("max_delivery_attempts", max_delivery_attempts, 30), ("ttl_minutes", ttl_minutes, 1440)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
            raise InvalidValue(f"{label} is {value!r}; allowed: a whole number from 1 to {hi}")
    types = tuple(included_event_types)
    if not all(isinstance(t, str) and t for t in types):
        raise InvalidValue(f"included_event_types must be non-empty strings, got {list(types)!r}")
    entry = {"name": name, "webhookUrl": webhook_url, "includedEventTypes": list(types),
             "subjectBeginsWith": subject_begins_with, "subjectEndsWith": subject_ends_with,
             "eventDeliverySchema": wanted.value, "maxDeliveryAttempts": max_delivery_attempts,
             "eventTimeToLiveInMinutes": ttl_minutes}
    with _locked(topic_dir(home, topic) / ".subscriptions.lock"):
        entries = [e for e in _read_entries(home, topic) if e.get("name") != name] + [entry]
        _write_entries(home, topic, entries)
    return _subscription(topic, entry)


def unsubscribe(home: Path, topic: str, name: str) -> bool:
    """Remove the subscription ``name`` (as given to :func:`subscribe`); False if there was none."""
    with _locked(topic_dir(home, topic) / ".subscriptions.lock"):
        entries = _read_entries(home, topic)
        kept = [e for e in entries if e.get("name") != name]
        if len(kept) == len(entries):
            return False
        _write_entries(home, topic, kept)
    return True


def subscriptions_of(home: Path, topic: str) -> tuple[Subscription, ...]:
    """The topic's webhook subscriptions."""
    return tuple(_subscription(topic, e) for e in _read_entries(home, topic))


def _subscription(topic: str, entry: Mapping[str, Any]) -> Subscription:
    return Subscription(name=f"{topic}.{entry['name']}", topic=grid_topic(topic), function="",
                        included_event_types=tuple(entry.get("includedEventTypes") or ()),
                        subject_begins_with=str(entry.get("subjectBeginsWith") or ""),
                        subject_ends_with=str(entry.get("subjectEndsWith") or ""),
                        max_delivery_attempts=int(entry.get("maxDeliveryAttempts", 30)),
                        ttl_minutes=int(entry.get("eventTimeToLiveInMinutes", 1440)),
                        delivery_schema=DeliverySchema(entry.get("eventDeliverySchema", DeliverySchema.EVENT_GRID)),
                        webhook_url=str(entry["webhookUrl"]))


def _subscriptions_file(home: Path, topic: str) -> Path:
    return topic_dir(home, topic) / "subscriptions.json"


def _read_entries(home: Path, topic: str) -> list[dict[str, Any]]:
    path = _subscriptions_file(home, topic)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise InvalidValue(f"{path}: cannot read the topic's subscriptions ({e})") from None
    entries = body.get("subscriptions") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise InvalidValue(f"{path}: 'subscriptions' must be a list")
    return [e for e in entries if isinstance(e, dict) and e.get("name") and e.get("webhookUrl")]


def _write_entries(home: Path, topic: str, entries: list[dict[str, Any]]) -> None:
    path = _subscriptions_file(home, topic)
    tmp = path.with_name(f".subscriptions-{secrets.token_hex(6)}.tmp")
    tmp.write_text(json.dumps({"subscriptions": entries}, indent=1))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class TopicSubscriptions:
    """Every topic's webhook subscriptions, re-read when a subscriptions file changes (for the grid)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._lock = threading.Lock()
        self._seen: tuple[tuple[str, int, int], ...] = ()
        self._subs: tuple[Subscription, ...] = ()

    def __call__(self) -> tuple[Subscription, ...]:
        folder = topics_dir(self.home)
        files = sorted(folder.glob("*/subscriptions.json")) if folder.exists() else []
        seen = []
        for path in files:
            with contextlib.suppress(OSError):
                st = path.stat()
                seen.append((str(path), st.st_mtime_ns, st.st_size))
        with self._lock:
            if tuple(seen) != self._seen:
                subs: list[Subscription] = []
                for path in files:
                    try:
                        subs.extend(subscriptions_of(self.home, path.parent.name))
                    except (InvalidValue, ValueError, KeyError, TypeError) as e:
                        log.error("subscriptions of topic %s cannot be read (%s); its events are not delivered",
                                  path.parent.name, e)
                self._subs, self._seen = tuple(subs), tuple(seen)
            return self._subs


# --------------------------------------------------------------------------- the event log


def log_file(home: Path, topic: str) -> Path:
    return topic_dir(home, topic) / "events.jsonl"


def read_events(home: Path, topic: str, *, after: int = 0, limit: int | None = None) -> list[TopicEvent]:
    """The topic's accepted events with a sequence number above ``after``, oldest first.

    Pass the last sequence seen as ``after`` to follow the log. A line being written (no newline
    yet) is left for the next read; a line that is not JSON is skipped with a warning.
    """
    path = log_file(home, topic)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    found: list[TopicEvent] = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is not complete yet
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            entry = TopicEvent(int(row["sequence"]), str(row["receivedTime"]), row["event"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("skipping a line of %s that is not an event record: %s", path, e)
            continue
        if entry.sequence > after:
            found.append(entry)
            if limit is not None and len(found) >= limit:
                break
    return found


def _last_sequence(fd: int) -> tuple[int, bool]:
    """The last complete line's sequence in the open log, and whether the file ends mid-line."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, False
    tail = os.pread(fd, min(size, 4 * MAX_EVENT_BYTES + 4096), max(0, size - 4 * MAX_EVENT_BYTES - 4096))
    torn = not tail.endswith(b"\n")
    for line in reversed(tail.split(b"\n")[:-1]):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return int(json.loads(line)["sequence"]), torn
    return 0, torn


def append_events(home: Path, topic: str, events: Sequence[Mapping[str, Any]]) -> list[TopicEvent]:
    """Append ``events`` to the topic's log (one write, fsynced); returns them with their sequence."""
    path = log_file(home, topic)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one writer at a time: sequences stay unique and in order
        last, torn = _last_sequence(fd)
        received = event_time()
        rows = [TopicEvent(last + i + 1, received, e) for i, e in enumerate(events)]
        text = "".join(json.dumps({"sequence": r.sequence, "receivedTime": r.received, "event": r.event},
                                  separators=(",", ":")) + "\n" for r in rows)
        os.write(fd, (("\n" if torn else "") + text).encode())  # a torn line from a crash stays on its own
        os.fsync(fd)
        return rows
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the publish endpoint


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _answer(status: int, code: str, message: str) -> HttpAnswer:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return HttpAnswer(status, (("Content-Type", "application/json; charset=utf-8"),), body)


class PublishEndpoint:
    """``POST /topics/<topic>/api/events``: validate, log, and queue deliveries on ``grid``."""

    def __init__(self, home: Path, grid: LocalEventGrid) -> None:
        self.home = home
        self.grid = grid

    def handle(self, method: str, topic: str, headers: Mapping[str, str], body: bytes) -> HttpAnswer:
        try:
            events = self._accept(method, topic, headers, body)
        except _Refused as e:
            return _answer(e.status, e.code, e.message)
        rows = append_events(self.home, topic, events)
        count = self.grid.publish(grid_topic(topic), events)
        log.info("topic %s accepted %d event(s) (sequence %d-%d), %d delivery(ies) queued", topic, len(rows),
                 rows[0].sequence, rows[-1].sequence, count)
        return HttpAnswer(200, (), b"")

    def _accept(self, method: str, topic: str, headers: Mapping[str, str], body: bytes) -> list[dict[str, Any]]:
        if method.upper() != "POST":
            raise _Refused(405, "MethodNotAllowed", f"{method.upper()} is not allowed: publish with POST")
        try:
            found = _load_topic(self.home, topic)
        except (InvalidValue, NotFound):
            raise _Refused(404, "NotFound", f"no topic named {topic!r} on this local Event Grid") from None
        presented = _header(headers, KEY_HEADER)
        if not presented:
            raise _Refused(401, "Unauthorized", f"the {KEY_HEADER} header is required (the topic's key1 or key2)")
        if not any(hmac.compare_digest(presented.encode(), k.encode()) for k in found.keys):
            raise _Refused(401, "Unauthorized", f"the {KEY_HEADER} header does not hold a key of topic {topic!r}")
        if len(body) > MAX_BATCH_BYTES:
            raise _Refused(413, "PayloadTooLarge", f"the request is {len(body)} bytes; a publish request may "
                                                   f"carry at most {MAX_BATCH_BYTES} bytes (1 MB)")
        content_type = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
        if not body.strip():
            raise _Refused(400, "BadRequest", "the request body is empty: expected a JSON array of events "
                                              "(or one CloudEvent with Content-Type application/cloudevents+json)")
        try:  # no NaN or Infinity, no absurd nesting: the log must stay JSON any reader takes
            payload = json_document(body, what="the request body")
        except InvalidValue as e:
            raise _Refused(400, "BadRequest", e.message) from None
        if found.schema is TopicSchema.EVENT_GRID:
            if "cloudevents" in content_type:
                raise _Refused(400, "BadRequest", f"topic {topic!r} takes {TopicSchema.EVENT_GRID.value} events, "
                                                  f"not CloudEvents (Content-Type {content_type})")
            if not isinstance(payload, list):
                raise _Refused(400, "BadRequest", "an Event Grid schema publish must be a JSON array of events, "
                                                  f"got a JSON {_kind(payload)}")
            events = payload
        else:
            if content_type == "application/cloudevents-batch+json":
                if not isinstance(payload, list):
                    raise _Refused(400, "BadRequest", "Content-Type application/cloudevents-batch+json needs a JSON "
                                                      f"array of CloudEvents, got a JSON {_kind(payload)}")
                events = payload
            elif content_type == "application/cloudevents+json":
                if not isinstance(payload, dict):
                    raise _Refused(400, "BadRequest", "Content-Type application/cloudevents+json needs one CloudEvent "
                                                      f"(a JSON object), got a JSON {_kind(payload)}")
                events = [payload]
            else:
                raise _Refused(400, "BadRequest", f"topic {topic!r} takes CloudEvents: Content-Type must be "
                                                  "application/cloudevents-batch+json (an array) or "
                                                  "application/cloudevents+json (one event), got "
                                                  f"{content_type or 'none'}")
        if not events:
            raise _Refused(400, "BadRequest", "the request holds no events")
        check = _check_event_grid if found.schema is TopicSchema.EVENT_GRID else _check_cloud_event
        return [check(e, i, topic) for i, e in enumerate(events)]


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _size_check(event: Mapping[str, Any], index: int) -> None:
    size = len(json.dumps(event, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise _Refused(413, "PayloadTooLarge", f"event [{index}] is {size} bytes; an event may be at most "
                                               f"{MAX_EVENT_BYTES} bytes (64 KB)")


def _string(event: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> None:
    value = event.get(key)
    if value is None:
        if required:
            raise _Refused(400, "BadRequest", f"{where}: required field '{key}' is missing")
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Refused(400, "BadRequest", f"{where}: field '{key}' must be a non-empty string, got "
                                          f"{_kind(value) if not isinstance(value, str) else 'an empty string'}")


def _time(event: Mapping[str, Any], key: str, where: str) -> None:
    value = event.get(key)
    if value is None:
        return
    try:
        if not isinstance(value, str) or "T" not in value.upper():
            raise ValueError
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Refused(400, "BadRequest", f"{where}: field '{key}' must be an RFC 3339 date-time such as "
                                          f"2026-11-27T10:00:00Z, got {str(value)[:60]!r}") from None


_CE_MARKS = ("specversion", "source", "type")
_EG_MARKS = ("eventType", "eventTime", "dataVersion")


def _check_event_grid(event: Any, index: int, topic: str) -> dict[str, Any]:
    where = f"event [{index}]"
    if not isinstance(event, dict):
        raise _Refused(400, "BadRequest", f"{where}: expected a JSON object, got a JSON {_kind(event)}")
    if "specversion" in event and not any(k in event for k in _EG_MARKS):
        raise _Refused(400, "BadRequest", f"{where} is a CloudEvent; topic {topic!r} takes "
                                          f"{TopicSchema.EVENT_GRID.value} events")
    for key in ("id", "subject", "eventType", "eventTime"):
        _string(event, key, where)
    _time(event, "eventTime", where)
    _string(event, "dataVersion", where, required=False)
    if event.get("metadataVersion") not in (None, "1"):
        raise _Refused(400, "BadRequest", f"{where}: field 'metadataVersion' must be \"1\", "
                                          f"got {event['metadataVersion']!r}")
    _size_check(event, index)
    # stamped as Event Grid stamps a custom topic's events: its resource id, metadataVersion 1, and an
    # empty dataVersion when the publisher gave none
    return {**event, "topic": f"/subscriptions/local/resourceGroups/local/providers/Microsoft.EventGrid/topics/{topic}",
            "dataVersion": event.get("dataVersion") or "", "metadataVersion": "1"}


def _check_cloud_event(event: Any, index: int, topic: str) -> dict[str, Any]:
    where = f"event [{index}]"
    if not isinstance(event, dict):
        raise _Refused(400, "BadRequest", f"{where}: expected a JSON object, got a JSON {_kind(event)}")
    if "specversion" not in event and any(k in event for k in _EG_MARKS):
        raise _Refused(400, "BadRequest", f"{where} is an Event Grid schema event; topic {topic!r} takes "
                                          "CloudEvents 1.0 (specversion, id, source, type)")
    if event.get("specversion") != "1.0":
        if "specversion" not in event:
            raise _Refused(400, "BadRequest", f"{where}: required field 'specversion' is missing")
        raise _Refused(400, "BadRequest", f"{where}: field 'specversion' must be \"1.0\", "
                                          f"got {event['specversion']!r}")
    for key in ("id", "source", "type"):
        _string(event, key, where)
    for key in ("subject", "datacontenttype", "dataschema"):
        _string(event, key, where, required=False)
    _time(event, "time", where)
    if "data" in event and "data_base64" in event:
        raise _Refused(400, "BadRequest", f"{where}: 'data' and 'data_base64' cannot both be set")
    bad = sorted(k for k in event if k not in ("data", "data_base64") and not _CE_ATTRIBUTE.fullmatch(k))
    if bad:
        raise _Refused(400, "BadRequest", f"{where}: attribute name(s) {', '.join(map(repr, bad))} are not allowed: "
                                          "CloudEvents attribute names are 1 to 20 lowercase letters or digits")
    _size_check(event, index)
    return dict(event)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


# --------------------------------------------------------------------------- webhook delivery


Post = Callable[..., requests.Response]


def deliver_webhook(sub: Subscription, event: Mapping[str, Any], attempt: int, max_attempts: int, *,
                    post: Post = requests.post) -> DeliveryResult:
    """POST one event to ``sub.webhook_url`` as Event Grid delivers: an array of one Event Grid schema
    event, or one structured-mode CloudEvent; 2xx is success, anything else (or no answer) a failure."""
    headers = {"aeg-event-type": "Notification", "aeg-subscription-name": sub.name.upper(),
               "aeg-delivery-count": str(attempt - 1)}
    if sub.delivery_schema is DeliverySchema.CLOUD_EVENTS:
        headers["Content-Type"] = "application/cloudevents+json; charset=utf-8"
        body = json.dumps(event)
    else:
        headers.update({"Content-Type": "application/json; charset=utf-8",
                        "aeg-data-version": str(event.get("dataVersion") or ""), "aeg-metadata-version": "1"})
        body = json.dumps([event])
    try:
        response = post(sub.webhook_url, data=body.encode(), headers=headers, timeout=WEBHOOK_TIMEOUT,
                        allow_redirects=False)
    except requests.RequestException as e:  # refused, reset, timed out: retried like a 5xx
        return DeliveryResult(503, f"no answer from the webhook: {type(e).__name__}")
    return DeliveryResult(response.status_code, response.reason or "")
