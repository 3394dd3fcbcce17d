"""The parts of ``host.json`` the local host honours: the HTTP route prefix and the queue settings."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.devhost.queues import QueueOptions
from shared.errors import InvalidValue

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)$")


def timespan_seconds(value: Any, *, field: str) -> float:
    """``"00:00:30"`` (or a number of milliseconds, as host.json also allows) in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000
    match = _TIMESPAN.match(str(value).strip())
    if not match:
        raise InvalidValue(f"host.json {field}={value!r} is not allowed: expected a TimeSpan like '00:00:30'")
    days, hours, minutes = (int(g or 0) for g in match.groups()[:3])
    return days * 86400 + hours * 3600 + minutes * 60 + float(match.group(4))


@dataclass(frozen=True, slots=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)

    @classmethod
    def load(cls, app_dir: Path, *, max_polling_cap: float = 2.0, lease_seconds: float = 30.0) -> HostConfig:
        """Read ``<app_dir>/host.json`` if present. Queue polling is capped locally (``max_polling_cap``)
        so a demo does not wait Azure's default minute on an idle queue."""
        path = app_dir / "host.json"
        body: dict[str, Any] = {}
        if path.exists():
            try:
                body = json.loads(path.read_text())
            except ValueError as e:
                raise InvalidValue(f"{path}: not valid JSON ({e})") from None
        extensions = body.get("extensions") or {}
        prefix = str((extensions.get("http") or {}).get("routePrefix", "api")).strip("/")
        q = extensions.get("queues") or {}
        queues = QueueOptions(lease_seconds=lease_seconds)
        if "batchSize" in q:
            queues = replace(queues, batch_size=max(1, min(32, int(q["batchSize"]))))
        if "maxDequeueCount" in q:
            queues = replace(queues, max_dequeue_count=max(1, int(q["maxDequeueCount"])))
        if "visibilityTimeout" in q:
            queues = replace(queues, visibility_timeout=timespan_seconds(q["visibilityTimeout"],
                                                                         field="extensions.queues.visibilityTimeout"))
        polling = max_polling_cap
        if "maxPollingInterval" in q:
            polling = min(polling, timespan_seconds(q["maxPollingInterval"],
                                                    field="extensions.queues.maxPollingInterval"))
        queues = replace(queues, max_polling_interval=max(0.1, polling))
        if "messageEncoding" in q:
            encoding = str(q["messageEncoding"]).lower()
            if encoding not in ("base64", "none"):
                raise InvalidValue(f"{path}: extensions.queues.messageEncoding={q['messageEncoding']!r} is not "
                                   "allowed: expected 'base64' or 'none'")
            queues = replace(queues, message_encoding=encoding)
        return cls(route_prefix=prefix, queues=queues)


def load_local_settings(app_dir: Path) -> list[str]:
    """Put the ``Values`` of ``<app_dir>/local.settings.json`` in the environment, as Core Tools does.

    A variable already set in the environment wins (so tests and one-off overrides still work).
    Returns the names that were set. The file is optional; encrypted files are refused.
    """
    path = app_dir / "local.settings.json"
    if not path.exists():
        return []
    try:
        body = json.loads(path.read_text())
    except ValueError as e:
        raise InvalidValue(f"{path}: not valid JSON ({e})") from None
    if body.get("IsEncrypted"):
        raise InvalidValue(f"{path}: IsEncrypted is true; the local host reads plain values only "
                           "(decrypt it with `func settings decrypt` or set IsEncrypted to false)")
    values = body.get("Values") or {}
    if not isinstance(values, dict):
        raise InvalidValue(f"{path}: 'Values' must be an object of setting name -> string")
    applied = [k for k, v in values.items() if k not in os.environ and v is not None]
    for name in applied:
        os.environ[name] = str(values[name])
    return applied
