"""Azure ML workspace events: runs completing or failing, models registered."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.events import MalformedEvent, payload_of
from shared.flows import runs
from shared.flows.context import get_context

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("on_aml_event")
@bp.event_grid_trigger(arg_name="event")
def on_aml_event(event: func.EventGridEvent) -> None:
    try:
        payload = payload_of(event)
    except MalformedEvent as e:  # a retry cannot fix it: acknowledge, say why (as handle_event does)
        log.warning("on_aml_event: malformed event acknowledged without action: %s", e.message)
        return
    runs.handle_aml_event(get_context(), payload)
