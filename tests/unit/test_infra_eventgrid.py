"""Event Grid subscriptions (infra/eventgrid/subscriptions.json, deployed by infra/main.bicep and
delivered by the local host) against the functions function_app.py really registers."""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DECLARATION = REPO / "infra" / "eventgrid" / "subscriptions.json"
# the Event Grid-triggered functions (function_app.py, docs/architecture.md §3)
CONTRACT_EVENT_FUNCTIONS = {"on_landing_event", "on_aml_event"}


@cache
def registered_functions() -> dict[str, tuple[str, ...]]:
    """function name -> binding types, from the app object (get_functions() once per app object)."""
    if str(REPO) not in sys.path:  # function_app.py is a top-level module, not part of the package
        sys.path.insert(0, str(REPO))
    try:
        import function_app
    except ImportError as e:
        pytest.fail(f"function_app.py cannot be imported ({e}): the Event Grid subscriptions have no functions "
                    f"to target; expected {sorted(CONTRACT_EVENT_FUNCTIONS)} (function_app.py)")
    app = function_app.create_app() if hasattr(function_app, "create_app") else function_app.app
    return {f.get_function_name(): tuple(b.type for b in f.get_bindings()) for f in app.get_functions()}


def subscriptions() -> list[dict]:
    return json.loads(DECLARATION.read_text())["subscriptions"]


def event_grid_functions() -> set[str]:
    return {name for name, types in registered_functions().items() if "eventGridTrigger" in types}


def test_every_event_grid_function_has_a_subscription():
    targeted = {s["function"] for s in subscriptions()}
    assert event_grid_functions() <= targeted, f"no subscription for {event_grid_functions() - targeted}"


def test_every_subscription_targets_an_existing_event_grid_function():
    for s in subscriptions():
        assert s["function"] in registered_functions(), f"{s['name']} targets missing function {s['function']}"
        assert s["function"] in event_grid_functions(), f"{s['name']}: {s['function']} is not Event Grid-triggered"


def test_contract_function_names_are_the_event_grid_functions():
    assert event_grid_functions() == CONTRACT_EVENT_FUNCTIONS


def test_subscriptions_filter_what_the_issue_asks_for():
    by_function = {s["function"]: s for s in subscriptions()}
    landing = by_function["on_landing_event"]
    assert landing["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert landing["subjectBeginsWith"] == "/blobServices/default/containers/landing/"
    assert set(by_function["on_aml_event"]["includedEventTypes"]) == {
        "Microsoft.MachineLearningServices.RunCompleted", "Microsoft.MachineLearningServices.RunStatusChanged",
        "Microsoft.MachineLearningServices.ModelRegistered"}
    topics = json.loads(DECLARATION.read_text())["topics"]
    for s in subscriptions():
        assert s["topic"] in topics
        assert s["maxDeliveryAttempts"] >= 1 and s["eventTimeToLiveInMinutes"] >= 1
