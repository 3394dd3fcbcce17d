"""The reconcile timer's work: poll silent runs and stuck tasks, publish what the outbox holds, prune.

One flow so the timer trigger stays one line; each step's failure is kept from the next one.
"""

from __future__ import annotations

import logging

from shared.flows import outbox, retention, runs
from shared.flows.context import Context

log = logging.getLogger(__name__)


def reconcile(ctx: Context) -> None:
    """``reconcile``: :func:`runs.reconcile`, then the outbox drain (never raises), then retention
    (at most hourly: shared/flows/retention.py). A failed reconcile still drains and then raises, so
    the timer's failure is visible; a failed retention pass is logged and tried on the next tick."""
    try:
        runs.reconcile(ctx)
    finally:  # publish what earlier flows left in the outbox (shared/flows/outbox.py)
        outbox.after_reconcile(ctx)
    try:
        retention.apply_if_due(ctx)
    except Exception:
        log.exception("retention pass failed; the next reconcile tries again")
