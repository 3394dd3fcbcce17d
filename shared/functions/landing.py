"""Landing container triggers: blobs arriving, and batches closing when they go quiet."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.flows import ingest
from shared.flows.context import get_context

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("on_landing_event")
@bp.event_grid_trigger(arg_name="event")
def on_landing_event(event: func.EventGridEvent) -> None:
    ingest.handle_landing_event(get_context(), event)


@bp.function_name("close_quiet_batches")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=False, use_monitor=True)
def close_quiet_batches(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("close_quiet_batches is running late")
    ingest.close_quiet_batches(get_context())
