"""The Azure Functions app (Python v2 programming model): it only creates the app and registers
the blueprints of ``shared/functions/``. Every trigger there is a few lines calling
``shared/flows/``.

Functions (names are fixed: the infra and the local host refer to them)::

    on_landing_event     Event Grid   BlobCreated in the landing container -> batches, datasets, runs
    close_quiet_batches  timer        every minute: closes batches quiet for DATA_QUIET_SECONDS
    on_aml_event         Event Grid   RunCompleted / RunStatusChanged / ModelRegistered -> rollouts
    deploy_group         queue        %DEPLOY_QUEUE% (deploy-tasks): one group of a deployment plan
    reconcile            timer        every 5 minutes: polls silent runs, re-enqueues stuck tasks
    train, forecast, deploy, status, health   HTTP (auth level FUNCTION) under /api/
"""

from __future__ import annotations

import os

import azure.functions as func

from shared.functions import aml, http, landing, tasks
from shared.settings import describe

# The queue trigger names its queue with the %DEPLOY_QUEUE% app setting. Like every setting it
# has a default; make that default visible to the binding resolver too.
os.environ.setdefault("DEPLOY_QUEUE", next(default for env, default, _ in describe() if env == "DEPLOY_QUEUE"))


def create_app() -> func.FunctionApp:
    """A new app object with every blueprint (tests build their own: ``get_functions()`` may only
    be called once per app object)."""
    function_app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    for blueprint in (landing.bp, aml.bp, tasks.bp, http.bp):
        function_app.register_functions(blueprint)
    return function_app


app = create_app()
