"""Background work: one deployment group per queue message, and the reconciliation timer (which
also applies retention, at most hourly)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.errors import InvalidValue
from shared.flows import outbox, retention, rollout, runs
from shared.flows.context import get_context

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("deploy_group")
@bp.queue_trigger(arg_name="msg", queue_name="%DEPLOY_QUEUE%", connection="AzureWebJobsStorage")
def deploy_group(msg: func.QueueMessage) -> None:
    try:
        task = rollout.GroupMessage.parse(msg.get_body())
    except InvalidValue as e:  # retrying cannot fix it: acknowledge, say why
        log.error("deploy_group: message %s acknowledged without action: %s", msg.id, e)
        return
    rollout.deploy_group(get_context(), task, dequeue_count=msg.dequeue_count or 1)


@bp.function_name("reconcile")
@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True)
def reconcile(timer: func.TimerRequest) -> None:
    ctx = get_context()
    try:
        runs.reconcile(ctx)
    finally:  # publish what earlier flows left in the outbox (shared/flows/outbox.py); never raises
        outbox.after_reconcile(ctx)
    try:  # at most hourly (shared/flows/retention.py); a failure must not fail the reconcile above
        retention.apply_if_due(ctx)
    except Exception:
        log.exception("retention pass failed; the next reconcile tries again")
