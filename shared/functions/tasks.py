"""Background work: one deployment group per queue message, and the reconciliation timer (which
also applies retention, at most hourly)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.errors import InvalidValue
from shared.flows import maintenance, rollout
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
    maintenance.reconcile(get_context())
