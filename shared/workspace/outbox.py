"""A folder of pending events: how the local workspace hands its events to the local Event Grid.

Publishing writes one JSON file (a list of Event Grid schema events) atomically into
``<MANYMODELS_HOME>/eventgrid/outbox/<topic>/``; the local host (``shared/devhost``) takes the
files in name order, delivers their events to the subscriptions, and removes them. Files survive
a host restart, so an event published while the host is down is delivered when it comes back.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def outbox_dir(home: Path, topic: str) -> Path:
    return home / "eventgrid" / "outbox" / topic


class FolderEventSink:
    """:class:`shared.workspace.base.EventSink` writing to an outbox folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not events:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        tmp = self.folder / f".{stem}.tmp"
        tmp.write_text(json.dumps(list(events)))
        os.replace(tmp, self.folder / f"{stem}.json")


def pending(folder: Path) -> list[Path]:
    """Outbox files not yet delivered, oldest first."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.glob("*.json"))


def read(path: Path) -> list[dict[str, Any]]:
    """The events in an outbox file; raises ValueError when it is not a JSON list of objects (the host
    moves such a file aside, shared/devhost/outboxes.py)."""
    events = json.loads(path.read_text())
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError(f"{path.name}: expected a JSON list of event objects")
    return events
