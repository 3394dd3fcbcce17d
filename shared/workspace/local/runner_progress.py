"""How a running job shows its progress: counts in the run record (what ``status`` shows), a line in
the run log every few seconds, and a bar on stderr when stderr is a terminal."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from shared.workspace.local.runner_pool import Progress

log = logging.getLogger(__name__)

RECORD_EVERY = 1.0  # seconds between run-record updates
LOG_EVERY = 10.0  # seconds between progress lines in the log
_BAR = 30


class ProgressReporter:
    def __init__(self, record: Callable[[dict[str, int]], None], *, stream: TextIO | None = None) -> None:
        self._record = record
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_record = 0.0
        self._last_log = 0.0
        self._started = time.monotonic()
        self._last: Progress | None = None

    def __call__(self, p: Progress) -> None:
        if p == self._last:
            return
        finished = p.batches_done == p.batches_total
        self._last = p
        now = time.monotonic()
        if finished or now - self._last_record >= RECORD_EVERY:
            self._last_record = now
            self._record({"mini_batches": p.batches_total, "mini_batches_done": p.batches_done,
                          "files_done": p.files_done, "failed_items": p.failed_items, "retries": p.retries})
        if self._tty:
            self._bar(p, now, finished)
        elif finished or now - self._last_log >= LOG_EVERY:
            self._last_log = now
            log.info("progress: %s/%s mini-batches, %s/%s files, %s failed, %s retried, %.0fs",
                     p.batches_done, p.batches_total, p.files_done, p.files_total, p.failed_items, p.retries,
                     now - self._started)

    def _bar(self, p: Progress, now: float, finished: bool) -> None:
        share = p.files_done / p.files_total if p.files_total else 1.0
        filled = int(share * _BAR)
        self._stream.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {p.files_done}/{p.files_total} files "
                           f"{p.failed_items} failed {now - self._started:.0f}s")
        if finished:
            self._stream.write("\n")
        self._stream.flush()
