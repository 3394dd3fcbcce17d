"""``manymodels events subscribe --webhook URL`` and ``manymodels events tail``: the product's own
events (docs/events.md) on the local Event Grid's topic (shared/devhost/topics.py).

The Function App publishes to that topic when ``EVENTS_TOPIC_ENDPOINT=local`` (``make demo``
sets it; shared/flows/outbox.py). On Azure, subscribe with the Bicep parameter
``eventsWebhookUrl`` (infra/main.bicep) instead.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from shared.commands.output import emit_json, info
from shared.devhost import topics
from shared.errors import InvalidValue
from shared.flows.outbox import LOCAL_TOPIC
from shared.product_events import ProductEventType
from shared.settings import get_settings

POLL_SECONDS = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser("events", help="the product's own events: subscribe a webhook, follow them")
    verbs = events.add_subparsers(dest="events_command", metavar="COMMAND")

    s = verbs.add_parser("subscribe", help="deliver the product's events to a webhook (local Event Grid)")
    s.add_argument("--webhook", required=True, help="http(s) URL the events are POSTed to (CloudEvents 1.0)")
    s.add_argument("--name", help="subscription name (default: derived from the URL; the same URL replaces it)")
    s.add_argument("--types", default="", help="comma-separated event types to deliver (default: every type): "
                   + ", ".join(t.value for t in ProductEventType))
    s.add_argument("--json", action="store_true", help="print the subscription as JSON")
    s.set_defaults(func=_subscribe)

    t = verbs.add_parser("tail", help="print the product's events as they arrive, until Ctrl-C")
    t.add_argument("--all", action="store_true", help="print the events already there first")
    t.add_argument("--json", action="store_true", help="one CloudEvent (JSON) per line")
    t.add_argument("--exit-after", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: until Ctrl-C)")
    t.set_defaults(func=_tail)
    events.set_defaults(func=lambda args: (events.print_help(), 2)[1])


def _types(text: str) -> list[str]:
    known = {t.value for t in ProductEventType}
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in known]
    if unknown:
        raise InvalidValue(f"--types: {unknown[0]!r} is not an event type of the product; allowed: "
                           f"{', '.join(sorted(known))}")
    return types


def _subscribe(args: argparse.Namespace) -> int:
    home = get_settings().home
    types = _types(args.types)
    topics.ensure_topic(home, LOCAL_TOPIC)
    subscription = topics.subscribe(home, LOCAL_TOPIC, args.webhook, name=args.name, included_event_types=types)
    body = {"subscription": subscription.name, "topic": LOCAL_TOPIC, "webhook": args.webhook,
            "event_types": types or "all"}
    if args.json:
        emit_json(body)
    else:
        print(f"subscribed {args.webhook} to topic {LOCAL_TOPIC} ({', '.join(types) or 'every event type'}) "
              f"as {subscription.name}")
        settings = get_settings()
        if settings.events_topic_endpoint != "local":
            info("note: the Function App publishes to this topic only with EVENTS_TOPIC_ENDPOINT=local "
                 f"(now {settings.events_topic_endpoint or 'empty: events disabled'})")
    return 0


def line(event: dict[str, Any]) -> str:
    """One event as one readable line: time, type, subject, the data's key facts."""
    given = event.get("data")
    data: dict[str, Any] = given if isinstance(given, dict) else {}
    facts = ", ".join(f"{k}={v}" for k, v in data.items()
                      if k in ("run_id", "plan_id", "predictions", "rows", "series", "models", "reason", "failed"))
    return (f"{event.get('time', '')}  {event.get('type', '')}  {event.get('subject', '')}  {facts}  "
            f"(id {event.get('id')})")


def _tail(args: argparse.Namespace) -> int:
    home = get_settings().home
    after = 0 if args.all else max((e.sequence for e in topics.read_events(home, LOCAL_TOPIC)), default=0)
    deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
    if not args.json:
        info(f"following topic {LOCAL_TOPIC} in {home} (Ctrl-C stops)")
    try:
        while deadline is None or time.monotonic() < deadline:
            for entry in topics.read_events(home, LOCAL_TOPIC, after=after):
                after = entry.sequence
                print(json.dumps(entry.event) if args.json else line(dict(entry.event)), flush=True)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:  # Ctrl-C is how tail ends: a clean exit, not an error
        if not args.json:
            info("stopped")
    return 0
