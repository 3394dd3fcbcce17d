"""Timer triggers: NCRONTAB schedules with seconds (``{second} {minute} {hour} {day} {month} {dow}``)
or a TimeSpan (``hh:mm:ss``), as in the decorators.

Like the Functions host's schedule monitor, the last and next occurrences are kept per function in
``<home>/devhost/timers/<function>.json``: when the host was down at a scheduled time, the function
runs once at start with ``past_due=True``. Invocations of one timer never overlap (the host holds a
singleton lock): a slow run delays the next occurrence, which is then past due.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from croniter import croniter  # untyped: mypy.ini types it as Any

from shared.devhost.bindings import timer_request, utc_now
from shared.devhost.functions import FunctionSpec
from shared.devhost.invoke import Invocation
from shared.errors import InvalidValue

log = logging.getLogger(__name__)

PAST_DUE_SLACK = dt.timedelta(seconds=1)
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


class Schedule:
    """Next occurrence after a time, for an NCRONTAB or TimeSpan expression."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        match = _TIMESPAN.match(self.expression)
        if match:
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            self._interval: dt.timedelta | None = dt.timedelta(days=days, hours=hours, minutes=minutes,
                                                               seconds=seconds)
            if self._interval.total_seconds() <= 0:
                raise InvalidValue(f"timer schedule {expression!r}: a TimeSpan must be longer than zero")
            return
        self._interval = None
        fields = self.expression.split()
        if len(fields) != 6 or not croniter.is_valid(self.expression, second_at_beginning=True):
            raise InvalidValue(f"timer schedule {expression!r} is not valid: expected NCRONTAB with six fields "
                               "'{second} {minute} {hour} {day} {month} {day-of-week}' (e.g. '0 */5 * * * *') "
                               "or a TimeSpan 'hh:mm:ss'")

    def next_after(self, t: dt.datetime) -> dt.datetime:
        if self._interval is not None:
            return t + self._interval
        following: dt.datetime = croniter(self.expression, t, second_at_beginning=True).get_next(dt.datetime)
        return following


Run = Callable[[FunctionSpec, Any], Invocation]


class TimerListener:
    def __init__(self, spec: FunctionSpec, schedule: Schedule, run: Run, *, state_dir: Path,
                 run_on_startup: bool = False, use_monitor: bool = True) -> None:
        self.spec = spec
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self.use_monitor = use_monitor  # False: occurrences missed while down are not caught up
        self._run = run
        self._state = state_dir / f"{spec.name}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"timer-{self.spec.name}", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            self._schedule_loop()
        except Exception:  # never silently: a dead timer thread would stop the function for good
            log.exception("timer %s stopped", self.spec.name)

    def _schedule_loop(self) -> None:
        last, scheduled = self._load()
        now = utc_now()
        if self.use_monitor and scheduled is not None and scheduled < now:
            last = self._fire(scheduled, last, past_due=True)  # missed while the host was down
        elif self.run_on_startup:
            last = self._fire(now, last, past_due=False)
        while not self._stop.is_set():
            due = self.schedule.next_after(max(utc_now(), last or utc_now()))
            self._save(last, due)
            while not self._stop.is_set() and utc_now() < due:
                self._stop.wait(min(1.0, (due - utc_now()).total_seconds()))
            if self._stop.is_set():
                return
            last = self._fire(due, last, past_due=utc_now() - due > PAST_DUE_SLACK)

    def _fire(self, scheduled: dt.datetime, last: dt.datetime | None, *, past_due: bool) -> dt.datetime:
        now = utc_now()
        request = timer_request(past_due=past_due, last=last, next_=self.schedule.next_after(now), updated=now)
        self._run(self.spec, request)
        return scheduled

    def _load(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        try:
            body = json.loads(self._state.read_text())
            if body.get("schedule") != self.schedule.expression:
                return None, None  # a changed schedule starts afresh, like the host
            return _parse(body.get("last")), _parse(body.get("next"))
        except (OSError, ValueError):
            return None, None

    def _save(self, last: dt.datetime | None, nxt: dt.datetime) -> None:
        self._state.parent.mkdir(parents=True, exist_ok=True)
        body = {"schedule": self.schedule.expression, "last": last.isoformat() if last else None,
                "next": nxt.isoformat(), "updated": utc_now().isoformat()}
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self._state)


def _parse(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None
