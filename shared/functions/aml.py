"""Azure ML workspace events: runs completing or failing, models registered."""

from __future__ import annotations

import azure.functions as func

from shared.flows import runs
from shared.flows.context import get_context

bp = func.Blueprint()


@bp.function_name("on_aml_event")
@bp.event_grid_trigger(arg_name="event")
def on_aml_event(event: func.EventGridEvent) -> None:
    runs.handle_aml_event(get_context(), event)
