"""The ledger's timestamps: ISO 8601 UTC strings with milliseconds and a ``Z``, so they compare as times."""

from __future__ import annotations

import datetime as dt


def utcnow() -> str:
    return timestamp(dt.datetime.now(dt.UTC))


def timestamp(moment: dt.datetime) -> str:
    """``moment`` in the ledger's format (compare ledger times as strings only in this format)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def age_seconds(value: str, *, now: dt.datetime | None = None) -> float:
    """Seconds since ``value`` (ISO 8601); infinite when unknown, so stale checks fire."""
    parsed = parse_time(value)
    if parsed is None:
        return float("inf")
    return ((now or dt.datetime.now(dt.UTC)) - parsed).total_seconds()
