"""The outbox: the product's events (shared/product_events.py) are written to the ledger before
their fact is marked done, and published from there by :func:`drain`.

Why an outbox: publishing in the flow itself would either lose the event (a crash after the fact
is durable but before the publish) or fail the flow when the topic is down. Instead:

1. the flow calls :func:`record` *before* the ledger transition that makes the fact durable
   (``finish_run``, the plan's ``finishing -> done``). The row's key is the event id, derived
   from the fact (``uuid5`` of type + run/plan id), and it is created only if absent, so a
   retried flow finds its event already there and adds nothing;
2. :func:`drain` publishes pending rows with ``EventGridPublisherClient`` (CloudEvents 1.0 batch)
   and marks each one sent. It runs right after the flow and on every ``reconcile`` timer
   (shared/functions/tasks.py). A topic that cannot be reached is logged with the reason and the
   rows stay pending for the next drain: the flow never fails because of it.

Delivery is at least once: a crash between the publish and ``mark sent`` (or two drains at once)
publishes an event twice, with the same id. Events of different facts are not ordered.

An event whose fact then fails to become durable (a crash between :func:`record` and the
transition) is still true: flows record only what the workspace already reports as final (a
run that completed, a router already updated), and the retry that completes the transition
carries the same id.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from shared.errors import Unavailable
from shared.flows.context import Context, LocalEventGrid
from shared.ledger import OutboxEvent, OutboxState
from shared.product_events import ProductEvent, ProductEventType
from shared.settings import LOCAL_TOPIC as LOCAL_ENDPOINT
from shared.settings import Settings

log = logging.getLogger(__name__)

BATCH = 100  # events per publish request (Event Grid takes up to 1 MB per request)
DRAIN_LIMIT = 1000  # rows one drain reads
CONNECT_TIMEOUT = 5.0  # seconds: an unreachable topic must not hold a flow for long
READ_TIMEOUT = 15.0
LOCAL_TOPIC = "manymodels"  # the local Event Grid topic behind EVENTS_TOPIC_ENDPOINT=local


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int = 0
    pending: int = 0  # still pending after this drain
    reason: str = ""  # why some stayed pending (the topic's answer or the connection error)
    enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.enabled, "sent": self.sent, "pending": self.pending}
        if self.reason:
            out["reason"] = self.reason
        return out


def enabled(settings: Settings) -> bool:
    return bool(settings.events_topic_endpoint)


def record(ctx: Context, event: ProductEvent) -> bool:
    """Put ``event`` in the outbox (nothing when events are disabled); True when this call added it.

    Storage errors propagate: the fact's own ledger write would fail the same way, and the flow's
    retry records the event again with the same id."""
    if not enabled(ctx.settings):
        return False
    added = ctx.ledger.outbox.add(OutboxEvent(event.id, str(event.type), event.subject, event.source, event.time,
                                              dict(event.data)))
    if added:
        log.info("event %s (%s %s) in the outbox", event.id, event.type, event.subject)
    return added


def _as_product_event(row: OutboxEvent) -> ProductEvent:
    return ProductEvent(row.event_id, ProductEventType(row.type), row.source, row.subject, row.time, row.data)


@functools.cache
def _client(endpoint: str, key: str) -> Any:
    """One publisher per (endpoint, key) and process. The SDK's own retries are off: the outbox
    retries on the next drain, and a flow must not wait through backoffs for a topic that is down."""
    from azure.eventgrid import EventGridPublisherClient

    if key:
        from azure.core.credentials import AzureKeyCredential

        credential: Any = AzureKeyCredential(key)  # sent as aeg-sas-key
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()  # the Function App's managed identity: EventGrid Data Sender
    return EventGridPublisherClient(endpoint, credential, retry_total=0, connection_timeout=CONNECT_TIMEOUT,
                                    read_timeout=READ_TIMEOUT)


def topic_access(settings: Settings, local_event_grid: LocalEventGrid | None = None) -> tuple[str, str]:
    """(endpoint, key) to publish to. ``EVENTS_TOPIC_ENDPOINT=local``: the topic :data:`LOCAL_TOPIC`
    of the local Event Grid the context was given (shared/flows/context.py; locally
    shared/devhost/grid_access.py: created on first use, its endpoint names the running host's URL)."""
    if settings.events_topic_endpoint != LOCAL_ENDPOINT:
        return settings.events_topic_endpoint, settings.events_topic_key
    if local_event_grid is None:
        raise Unavailable("EVENTS_TOPIC_ENDPOINT=local but this process runs no local Event Grid: publish from "
                          "the local host (`manymodels host start`) or set EVENTS_TOPIC_ENDPOINT to a topic URL")
    endpoint, key = local_event_grid.topic_access(LOCAL_TOPIC)
    return endpoint, key


def publisher(ctx: Context) -> Any:
    return _client(*topic_access(ctx.settings, ctx.local_event_grid))


def _reason(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    text = str(getattr(error, "message", "") or error).splitlines()[0][:500] if str(error) else type(error).__name__
    return f"HTTP {status}: {text}" if status else f"{type(error).__name__}: {text}"


def drain(ctx: Context, *, limit: int = DRAIN_LIMIT) -> DrainResult:
    """Publish pending outbox rows, oldest first, and mark them sent. Never raises: a topic or
    storage that cannot be reached leaves the rows pending, logged with the reason."""
    if not enabled(ctx.settings):
        return DrainResult(enabled=False)
    try:
        pending = ctx.ledger.outbox.all(state=OutboxState.PENDING, limit=limit)
    except Exception as e:
        log.warning("events not published now: the outbox cannot be read (%s); the next drain tries again",
                    _reason(e))
        return DrainResult(reason=_reason(e))
    if not pending:
        return DrainResult()
    sent, reason = 0, ""
    try:
        client = publisher(ctx)
    except Exception as e:
        reason = _reason(e)
        log.warning("%d events not published: no publisher for %s (%s); the next drain tries again",
                    len(pending), ctx.settings.events_topic_endpoint, reason)
        for row in pending:
            _note_failure(ctx, row.event_id, reason)
        return DrainResult(pending=len(pending), reason=reason)
    refused = 0
    for i in range(0, len(pending), BATCH):
        chunk = pending[i:i + BATCH]
        try:
            client.send([_as_product_event(row).to_cloud_event() for row in chunk])
            done = chunk
        except Exception as e:
            if not _refused(e):
                reason = _reason(e)
                log.warning("%d events not published to %s: %s; they stay in the outbox for the next drain",
                            len(pending) - sent - refused, ctx.settings.events_topic_endpoint, reason)
                for row in chunk:
                    _note_failure(ctx, row.event_id, reason)
                break
            # The topic refused the request (400/413): find the event(s) it refuses, send the rest.
            done, bad, reason = _one_by_one(ctx, client, chunk)
            refused += bad
        _mark_sent(ctx, done)
        sent += len(done)
        if len(done) + refused < len(chunk) and reason and not _refused_reason(reason):
            break  # the topic went away meanwhile: the rest waits for the next drain
    if sent:
        log.info("%d events published to %s", sent, ctx.settings.events_topic_endpoint)
    return DrainResult(sent=sent, pending=len(pending) - sent - refused, reason=reason)


def _refused(error: Exception) -> bool:
    """The topic refuses the content (400 bad event, 413 too large): resending it cannot help."""
    return getattr(error, "status_code", None) in (400, 413)


def _refused_reason(reason: str) -> bool:
    return reason.startswith(("HTTP 400", "HTTP 413"))


def _one_by_one(ctx: Context, client: Any, chunk: list[OutboxEvent]) -> tuple[list[OutboxEvent], int, str]:
    """Send each event of a refused batch alone; an event refused alone is marked ``refused``
    (logged as an error with the topic's reason) so it never blocks the outbox again."""
    done, refused, reason = [], 0, ""
    for k, row in enumerate(chunk):
        try:
            client.send([_as_product_event(row).to_cloud_event()])
        except Exception as e:
            reason = _reason(e)
            if not _refused(e):
                for rest in chunk[k:]:
                    _note_failure(ctx, rest.event_id, reason)
                break
            log.error("event %s (%s %s) refused by the topic, not retried: %s", row.event_id, row.type,
                      row.subject, reason)
            try:
                ctx.ledger.outbox.mark_refused(row.event_id, reason)
                refused += 1
            except Exception:
                log.debug("could not mark %s refused", row.event_id, exc_info=True)
            continue
        done.append(row)
    return done, refused, reason


def _mark_sent(ctx: Context, rows: list[OutboxEvent]) -> None:
    if not rows:
        return
    try:
        ctx.ledger.outbox.mark_sent_many(row.event_id for row in rows)
    except Exception as e:  # published but not marked: the next drain sends them again (same ids)
        log.warning("%d events published but not marked sent (%s): they may be delivered twice",
                    len(rows), _reason(e))


def _note_failure(ctx: Context, event_id: str, reason: str) -> None:
    try:
        ctx.ledger.outbox.note_failure(event_id, reason)
    except Exception:
        log.debug("could not note the failed publish of %s", event_id, exc_info=True)


def drain_after(ctx: Context, what: str) -> DrainResult:
    """The drain a flow runs when its fact is durable (a failure here never fails the flow)."""
    started = time.perf_counter()
    try:
        result = drain(ctx)
    except Exception:  # drain does not raise; this guards the flow against a bug in it
        log.exception("publishing events after %s failed; the reconcile timer retries", what)
        return DrainResult(reason="drain failed")
    log.debug("drain after %s: %s in %.3fs", what, result.to_dict(), time.perf_counter() - started)
    return result


def after_reconcile(ctx: Context, *, prune_limit: int = 500) -> DrainResult:
    """The ``reconcile`` timer's part (shared/functions/tasks.py): publish what is pending, then
    forget sent rows older than ``RETENTION_LEDGER_HOURS`` (pending rows are never deleted).
    Never raises."""
    result = drain_after(ctx, "reconcile")
    if not enabled(ctx.settings):
        return result
    try:
        before = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=ctx.settings.retention_ledger_hours)).isoformat()
        pruned = ctx.ledger.outbox.prune(before=before.replace("+00:00", "Z"), limit=prune_limit)
    except Exception as e:
        log.warning("sent events not pruned from the outbox (%s); the next reconcile tries again", _reason(e))
        return result
    if pruned:
        log.info("%d sent events pruned from the outbox", pruned)
    return result


def status(ctx: Context, *, ledger: bool = True) -> dict[str, Any]:
    """What ``manymodels status`` and ``GET /api/status`` say about events (never the key);
    ``ledger=False`` (storage not reachable) leaves out the outbox counts."""
    settings = ctx.settings
    if not enabled(settings):
        return {"enabled": False,
                "reason": "EVENTS_TOPIC_ENDPOINT is empty: the product's events are not published"}
    local = settings.events_topic_endpoint == LOCAL_ENDPOINT
    out: dict[str, Any] = {"enabled": True, "endpoint": settings.events_topic_endpoint,
                           "auth": "key" if settings.events_topic_key or local else "DefaultAzureCredential"}
    if local:
        out["topic"] = LOCAL_TOPIC
    if not ledger:
        return out
    pending = ctx.ledger.outbox.all(state=OutboxState.PENDING, limit=DRAIN_LIMIT)
    out["pending"] = len(pending)
    refused = ctx.ledger.outbox.all(state=OutboxState.REFUSED, limit=DRAIN_LIMIT)
    if refused:  # never published: the topic refused them (see the log for each)
        out["refused"] = len(refused)
        out["last_refusal"] = refused[-1].error
    if pending:
        out["oldest_pending"] = pending[0].created
        errors = [p.error for p in pending if p.error]
        if errors:
            out["last_error"] = errors[-1]
    return out
