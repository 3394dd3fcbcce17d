"""A local Event Grid: durable, at-least-once delivery with retries, backoff and dead-lettering.

Publishing matches each event against the topic's subscriptions and persists one delivery per
match in ``<home>/eventgrid/grid.db`` before returning, so nothing published is lost when the host
stops or is killed: deliveries in flight are redelivered by the next host (at least once, as on
Azure). A failed delivery is retried with exponential backoff; after the last attempt, after the
event's time to live, or at once for an answer Event Grid never retries (400, 401, 403, 404, 413),
the event goes to ``<home>/eventgrid/deadletter/<subscription>/<yyyy>/<mm>/<dd>/<hh>/<uuid>.json``
with ``deadLetterReason``, ``deliveryAttempts`` and ``lastDeliveryOutcome`` like Azure's
dead-letter blobs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.devhost.bindings import event_time, utc_now
from shared.devhost.subscriptions import DeliverySchema, Subscription, to_cloud_event

log = logging.getLogger(__name__)

NO_RETRY_STATUS = frozenset({400, 401, 403, 404, 413})


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Local retry policy: Azure's shape (min of the subscription's attempts and this), shorter waits."""

    max_attempts: int = 8  # 1+2+4+8+16+30+30 s: about two minutes before an event is dead-lettered
    backoff_seconds: float = 1.0  # first retry; doubles each attempt
    max_backoff_seconds: float = 30.0
    workers: int = 8  # handlers mostly wait on storage: more deliveries in flight than cores
    duplicate: bool = False  # deliver every event twice (tests of idempotent handlers)

    def backoff(self, attempts: int) -> float:
        wait: float = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))
        return wait * random.uniform(0.9, 1.1)  # Event Grid adds a small randomisation too


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the endpoint answered: 2xx is success."""

    status: int
    outcome: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Deliver = Callable[[Subscription, Mapping[str, Any], int, int], DeliveryResult]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription TEXT NOT NULL,
    event TEXT NOT NULL,
    published REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (leased, due);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class GridStore:
    """The host's SQLite state: pending deliveries (and tables other host parts add)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def next_value(self, db: sqlite3.Connection, counter: str) -> int:
        db.execute("INSERT INTO counters (name, value) VALUES (?, 1) "
                   "ON CONFLICT(name) DO UPDATE SET value = value + 1", (counter,))
        value: int = db.execute("SELECT value FROM counters WHERE name = ?", (counter,)).fetchone()[0]
        return value

    def close(self) -> None:
        with self._lock:
            self._db.close()


def deadletter_dir(home: Path) -> Path:
    return home / "eventgrid" / "deadletter"


def dead_letters(home: Path) -> list[dict[str, Any]]:
    """Every dead-lettered event (oldest first), each with its subscription and reason."""
    folder = deadletter_dir(home)
    found: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("*.json")) if folder.exists() else []:
        try:
            events = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found.extend({**e, "subscription": path.relative_to(folder).parts[0], "file": str(path)} for e in events)
    return sorted(found, key=lambda e: str(e.get("lastDeliveryAttemptTime", "")))


def summary(home: Path, *, recent: int = 10) -> dict[str, Any]:
    """Pending deliveries and dead letters of the local Event Grid of ``home`` (for status pages).

    Safe from any process: the delivery store is opened read-only. Each dead letter says which
    subscription gave up on which event, and why.
    """
    pending = 0
    db_path = home / "eventgrid" / "grid.db"
    if db_path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
                pending = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        except sqlite3.Error as e:
            log.debug("cannot read %s: %s", db_path, e)
    letters = dead_letters(home)
    return {"pending": pending, "deadlettered": len(letters),
            "recent_deadletters": [{"subscription": e.get("subscription"), "id": e.get("id"),
                                    "eventType": e.get("eventType") or e.get("type"), "subject": e.get("subject"),
                                    "reason": e.get("deadLetterReason"), "attempts": e.get("deliveryAttempts"),
                                    "lastDeliveryOutcome": e.get("lastDeliveryOutcome"),
                                    "time": e.get("lastDeliveryAttemptTime")} for e in letters[-recent:]]}


class LocalEventGrid:
    """Topics → subscriptions → a delivery callable (the host invokes the function in-process)."""

    def __init__(self, home: Path, subscriptions: Sequence[Subscription], deliver: Deliver, *,
                 policy: DeliveryPolicy | None = None, store: GridStore | None = None,
                 more_subscriptions: Callable[[], Sequence[Subscription]] | None = None) -> None:
        self.home = home
        self.subscriptions = {s.name: s for s in subscriptions}
        # subscriptions added while the host runs (custom topics' webhooks, shared/devhost/topics.py)
        self._more = more_subscriptions or (lambda: ())
        self.policy = policy or DeliveryPolicy()
        self.store = store or GridStore(home / "eventgrid" / "grid.db")
        self._deliver = deliver
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        # a previous host may have died mid-delivery: those deliveries are due again (at least once)
        with self.store.transaction() as db:
            db.execute("UPDATE deliveries SET leased = 0 WHERE leased = 1")

    # ----------------------------------------------------------------- publishing

    def topics(self) -> set[str]:
        """The topics of the fixed subscriptions (infra/eventgrid/subscriptions.json)."""
        return {s.topic for s in self.subscriptions.values()}

    def all_subscriptions(self) -> dict[str, Subscription]:
        """The fixed subscriptions and those added since the host started, by name."""
        return {**{s.name: s for s in self._more()}, **self.subscriptions}

    def enqueue(self, db: sqlite3.Connection, topic: str, events: Sequence[Mapping[str, Any]]) -> int:
        """Queue deliveries for ``events`` inside the caller's transaction; returns how many."""
        now = time.time()
        copies = 2 if self.policy.duplicate else 1
        subs = [s for s in self.all_subscriptions().values() if s.topic == topic]
        rows = [(s.name, json.dumps(e), now, now)
                for e in events for s in subs if s.matches(e)
                for _ in range(copies)]
        db.executemany("INSERT INTO deliveries (subscription, event, published, due) VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def publish(self, topic: str, events: Sequence[Mapping[str, Any]]) -> int:
        """Persist a delivery per matching subscription; delivery happens in the background."""
        with self.store.transaction() as db:
            count = self.enqueue(db, topic, events)
        self.wake()
        return count

    def wake(self) -> None:
        self._wake.set()

    def pending(self) -> int:
        count: int = self.store.query("SELECT COUNT(*) FROM deliveries")[0][0]
        return count

    # ----------------------------------------------------------------- delivering

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.policy.workers, thread_name_prefix="eventgrid")
        self._thread = threading.Thread(target=self._loop, name="eventgrid-dispatch", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._dispatch_due()
            except Exception:
                log.exception("Event Grid dispatch failed; retrying")
                wait = 1.0
            self._wake.wait(wait)
            self._wake.clear()

    def _dispatch_due(self) -> float:
        with self._inflight_lock:
            free = self.policy.workers - self._inflight
        if free <= 0:
            return 0.5
        now = time.time()
        with self.store.transaction() as db:
            rows = db.execute("SELECT id, subscription, event, published, attempts FROM deliveries "
                              "WHERE leased = 0 AND due <= ? ORDER BY due, id LIMIT ?", (now, free)).fetchall()
            db.executemany("UPDATE deliveries SET leased = 1 WHERE id = ?", [(r[0],) for r in rows])
            nxt = db.execute("SELECT MIN(due) FROM deliveries WHERE leased = 0").fetchone()[0]
        for row in rows:
            with self._inflight_lock:
                self._inflight += 1
            assert self._pool is not None
            self._pool.submit(self._attempt, *row)
        if rows and len(rows) == free:
            return 0.05
        return 1.0 if nxt is None else max(0.01, min(1.0, nxt - time.time()))

    def _attempt(self, delivery_id: int, sub_name: str, raw: str, published: float, attempts: int) -> None:
        try:
            self._attempt_once(delivery_id, sub_name, raw, published, attempts)
        except Exception:
            log.exception("Event Grid delivery %s crashed; it stays queued", delivery_id)
            with self.store.transaction() as db:
                db.execute("UPDATE deliveries SET leased = 0, due = ? WHERE id = ?", (time.time() + 1, delivery_id))
        finally:
            with self._inflight_lock:
                self._inflight -= 1
            self._wake.set()

    def _attempt_once(self, delivery_id: int, sub_name: str, raw: str, published: float, attempts: int) -> None:
        event = json.loads(raw)
        sub = self.all_subscriptions().get(sub_name)
        if sub is None:  # the subscription was removed: nothing to deliver to
            self._finish(delivery_id)
            return
        max_attempts = min(sub.max_delivery_attempts, self.policy.max_attempts)
        attempt = attempts + 1
        if time.time() - published > sub.ttl_minutes * 60:
            self._dead_letter(delivery_id, sub, event, attempts, "TimeToLiveExceeded", "event expired before delivery")
            return
        body = to_cloud_event(event) if sub.delivery_schema is DeliverySchema.CLOUD_EVENTS else event
        result = self._deliver(sub, body, attempt, max_attempts)
        if result.ok:
            self._finish(delivery_id)
            return
        outcome = f"{result.status} {result.outcome}".strip()
        if result.status in NO_RETRY_STATUS:
            self._dead_letter(delivery_id, sub, event, attempt, "DeliveryFailedWithoutRetry", outcome, result.status)
        elif attempt >= max_attempts:
            self._dead_letter(delivery_id, sub, event, attempt, "MaxDeliveryAttemptsExceeded", outcome, result.status)
        else:
            wait = self.policy.backoff(attempt)
            log.warning("Event Grid delivery of %s to %s failed (attempt %d/%d: %s); retrying in %.1fs",
                        event.get("id"), sub.name, attempt, max_attempts, outcome, wait,
                        extra={"subscription": sub.name, "event_id": event.get("id"), "attempt": attempt})
            with self.store.transaction() as db:
                db.execute("UPDATE deliveries SET attempts = ?, due = ?, leased = 0, last_outcome = ? WHERE id = ?",
                           (attempt, time.time() + wait, outcome, delivery_id))

    def _finish(self, delivery_id: int) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def _dead_letter(self, delivery_id: int, sub: Subscription, event: Mapping[str, Any], attempts: int,
                     reason: str, outcome: str, status: int | None = None) -> None:
        now = utc_now()
        folder = deadletter_dir(self.home) / sub.name / now.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        record = {**event, "deadLetterReason": reason, "deliveryAttempts": attempts,
                  "lastDeliveryOutcome": outcome, "lastHttpStatusCode": status,
                  "publishTime": event.get("eventTime") or event.get("time"),
                  "lastDeliveryAttemptTime": event_time(now)}
        path = folder / f"{uuid.uuid4()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([record], indent=1))
        tmp.replace(path)
        self._finish(delivery_id)
        log.error("Event Grid dead-lettered %s for %s after %d attempt(s): %s (%s); see %s", event.get("id"),
                  sub.name, attempts, reason, outcome, path,
                  extra={"subscription": sub.name, "event_id": event.get("id"), "attempt": attempts})
