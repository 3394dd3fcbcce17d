"""The HTTP API (auth level FUNCTION): start training or forecasting by hand, deploy or preview a
plan, see status, check health.

Every answer is JSON. A product error answers with its status from ``shared.errors.HTTP_STATUS``
and ``{"error", "code"}``; anything else is logged with its traceback and answers 500 with the
invocation id, never the traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.errors import ManyModelsError
from shared.flows import forecast as forecast_flow
from shared.flows import rollout
from shared.flows import status as status_flow
from shared.flows import train as train_flow
from shared.flows.context import get_context
from shared.flows.forecast import ForecastRequest
from shared.flows.rollout import DeployRequest
from shared.flows.train import TrainRequest

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("train")
@bp.route(route="train", methods=["POST"])
def train(req: func.HttpRequest) -> func.HttpResponse:
    return _answer("train", lambda: (202, train_flow.start_training(get_context(), TrainRequest.parse(req.get_body()))))


@bp.function_name("forecast")
@bp.route(route="forecast", methods=["POST"])
def forecast(req: func.HttpRequest) -> func.HttpResponse:
    return _answer("forecast", lambda: (202, forecast_flow.start_forecasting(
        get_context(), ForecastRequest.parse(req.get_body()))))


@bp.function_name("deploy")
@bp.route(route="deploy", methods=["POST"])
def deploy(req: func.HttpRequest) -> func.HttpResponse:
    return _answer("deploy", lambda: rollout.request_deployment(get_context(), DeployRequest.parse(req.get_body())))


@bp.function_name("status")
@bp.route(route="status", methods=["GET"])
def status(req: func.HttpRequest) -> func.HttpResponse:
    return _answer("status", lambda: (200, status_flow.collect_status(get_context())))


@bp.function_name("health")
@bp.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _answer("health", lambda: (200, status_flow.health(get_context())))


def _answer(name: str, work: Callable[[], tuple[int, Any]]) -> func.HttpResponse:
    try:
        code, body = work()
    except ManyModelsError as e:
        log.warning("%s: %s (%s)", name, e.message, e.code)
        code, body = e.http_status, e.to_dict()
    except Exception:
        log.exception("%s failed", name)
        code, body = 500, {"error": f"{name} failed unexpectedly; the function's log has the details",
                           "code": "INTERNAL"}
    return func.HttpResponse(json.dumps(body, default=str), status_code=code, mimetype="application/json")
