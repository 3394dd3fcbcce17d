"""The flows reach the local Event Grid only through what their context is given
(shared/flows/context.py ``LocalEventGrid``), never by importing shared/devhost/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.devhost.grid_access import HomeEventGrid
from shared.devhost.topics import topic_key
from shared.errors import Unavailable
from shared.flows import context, outbox
from shared.flows.context import Context
from shared.flows.status import collect_status
from shared.settings import Settings


class RecordingGrid:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def topic_access(self, topic: str) -> tuple[str, str]:
        self.asked.append(topic)
        return f"http://127.0.0.1:7071/topics/{topic}/api/events", "key-of-" + topic

    def summary(self) -> dict[str, Any]:
        return {"pending": 3, "deadlettered": 1, "recent_deadletters": []}


def local_settings(home: Path, **env: str) -> Settings:
    return Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "MANYMODELS_HOME": str(home),
                              "EVENTS_TOPIC_ENDPOINT": "local", **env})


@pytest.fixture(autouse=True)
def no_provided_grid():
    previous = context.provide_local_event_grid(None)
    yield
    context.provide_local_event_grid(previous)


def test_local_topic_access_comes_from_the_given_grid(tmp_path) -> None:
    settings = local_settings(tmp_path)
    grid = RecordingGrid()
    assert outbox.topic_access(settings, grid) == ("http://127.0.0.1:7071/topics/manymodels/api/events",
                                                   "key-of-manymodels")
    assert grid.asked == [outbox.LOCAL_TOPIC]


def test_without_a_local_grid_the_local_topic_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(Unavailable, match="EVENTS_TOPIC_ENDPOINT=local but this process runs no local Event Grid"):
        outbox.topic_access(local_settings(tmp_path))


def test_a_topic_url_needs_no_grid(tmp_path) -> None:
    settings = local_settings(tmp_path, EVENTS_TOPIC_ENDPOINT="https://t.westeurope-1.eventgrid.azure.net/api/events",
                              EVENTS_TOPIC_KEY="k")
    assert outbox.topic_access(settings) == ("https://t.westeurope-1.eventgrid.azure.net/api/events", "k")


def test_the_provided_grid_reaches_contexts_of_the_local_backend_only(tmp_path) -> None:
    settings = local_settings(tmp_path)
    assert Context(settings).local_event_grid is None
    context.provide_local_event_grid(HomeEventGrid.of)
    assert Context(settings).local_event_grid == HomeEventGrid(settings.home)
    given = RecordingGrid()
    assert Context(settings, local_event_grid=given).local_event_grid is given
    aml = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "MANYMODELS_BACKEND": "aml",
                             "AZURE_SUBSCRIPTION_ID": "s", "RESOURCE_GROUP": "rg", "AML_WORKSPACE_NAME": "ws"})
    assert Context(aml).local_event_grid is None


def test_the_home_grid_creates_the_topic_in_the_home(tmp_path) -> None:
    endpoint, key = HomeEventGrid(tmp_path).topic_access(outbox.LOCAL_TOPIC)
    assert endpoint.endswith(f"/topics/{outbox.LOCAL_TOPIC}/api/events")
    assert key == topic_key(tmp_path, outbox.LOCAL_TOPIC)


def test_status_shows_the_given_grid_or_says_why_not(tmp_path) -> None:
    settings = local_settings(tmp_path)
    given = collect_status(Context(settings, local_event_grid=RecordingGrid()), storage=False)
    assert given["event_grid"] == {"pending": 3, "deadlettered": 1, "recent_deadletters": []}
    missing = collect_status(Context(settings), storage=False)
    assert "no local Event Grid" in missing["event_grid"]["error"]
