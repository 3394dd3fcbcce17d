"""Events other processes publish (the local workspace's run and model events) into the local Event Grid.

Writers drop files into ``<home>/eventgrid/outbox/<topic>/`` (:mod:`shared.workspace.outbox`);
this pump takes them oldest first, queues their deliveries durably, then removes the file. A crash
in between delivers the file again on restart (at least once, never lost). A file that is not a
JSON list of events is moved to ``<home>/eventgrid/deadletter/_invalid/`` with the reason logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from shared.devhost.eventgrid import LocalEventGrid, deadletter_dir
from shared.workspace.outbox import outbox_dir, pending, read

log = logging.getLogger(__name__)


class OutboxPump:
    def __init__(self, grid: LocalEventGrid, topics: Iterable[str], *, interval: float = 0.5) -> None:
        self.grid = grid
        self.topics = tuple(sorted(set(topics)))
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox-pump", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception:
                log.exception("outbox pump failed; retrying")
            self._stop.wait(self.interval)

    def pump(self) -> int:
        """Hand every pending outbox file to the Event Grid; returns how many events were taken."""
        taken = 0
        for topic in self.topics:
            for path in pending(outbox_dir(self.grid.home, topic)):
                taken += self._take(topic, path)
        return taken

    def _take(self, topic: str, path: Path) -> int:
        try:
            events = read(path)  # ValueError when it is not a list of event objects
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            target = deadletter_dir(self.grid.home) / "_invalid" / topic / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
            log.error("outbox file %s is not a list of events (%s); moved to %s", path.name, e, target)
            return 0
        count = self.grid.publish(topic, events)
        path.unlink(missing_ok=True)
        log.info("%d %s event(s) from %s queued as %d delivery(ies)", len(events), topic, path.name, count)
        return len(events)

