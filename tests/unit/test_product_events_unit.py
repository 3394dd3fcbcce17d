"""The product's events (shared/product_events.py), their settings and their Bicep (no storage)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared import product_events
from shared.errors import SettingsError
from shared.product_events import ProductEventType, event_id
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_the_id_is_derived_from_the_fact_and_differs_per_type_and_fact() -> None:
    assert event_id(ProductEventType.RUN_FAILED, "r1") == event_id(ProductEventType.RUN_FAILED, "r1")
    assert event_id(ProductEventType.RUN_FAILED, "r1") != event_id(ProductEventType.RUN_FAILED, "r2")
    assert event_id(ProductEventType.RUN_FAILED, "r1") != event_id(ProductEventType.TRAINING_FINISHED, "r1")


def test_training_finished_splits_model_types_and_caps_the_failures() -> None:
    failures = [{"file": f"f{i}.csv", "series": str(i), "reason": "too short " * 400} for i in range(150)]
    event = product_events.training_finished(namespace="ns", run_id="r1", dataset_name="train", dataset_version=3,
                                             counts={"series": 200, "failed": 150, "model_type_lr": 40,
                                                     "model_type_ets": 10}, failures=failures, ended=None)
    assert event.data["models_by_type"] == {"lr": 40, "ets": 10}
    assert event.data["counts"] == {"series": 200, "failed": 150}
    assert len(event.data["failures"]) == product_events.MAX_LISTED
    assert event.data["failures_not_listed"] == 150 - product_events.MAX_LISTED
    assert len(json.dumps(event.to_dict())) < 48 * 1024  # under the local topic's 64 KB per event
    cloud = event.to_cloud_event()
    assert cloud.id == event.id and cloud.type == "manymodels.training.finished" and cloud.source == "/manymodels/ns"


def test_predictions_summary_counts_series_by_their_ids(tmp_path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("WeekStarting,Prediction,Store,Brand\n1992-05-07,1,2,a\n1992-05-14,1,2,a\n1992-05-07,1,2,b\n")
    summary = product_events.summarize_predictions(path, id_columns=("Store", "Brand"),
                                                   timestamp_column="WeekStarting")
    assert summary == product_events.PredictionsSummary(3, 2, {"start": "1992-05-07", "end": "1992-05-14"})
    assert product_events.summarize_predictions(path, id_columns=("Store", "Nope")).series is None
    assert product_events.summarize_predictions(tmp_path / "missing.csv") is None


def env(**values: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": "UseDevelopmentStorage=true", **values}


def test_topic_settings_are_checked_and_the_key_is_never_in_repr() -> None:
    settings = Settings.from_env(env(EVENTS_TOPIC_ENDPOINT="https://t.westeurope-1.eventgrid.azure.net/api/events",
                                     EVENTS_TOPIC_KEY="s3cret"))
    assert settings.events_topic_key == "s3cret" and "s3cret" not in repr(settings)
    assert Settings.from_env(env(EVENTS_TOPIC_ENDPOINT="LOCAL")).events_topic_endpoint == "local"
    assert Settings.from_env(env()).events_topic_endpoint == ""
    for bad in ("http://example.com/api/events", "ftp://127.0.0.1/x", "not a url"):
        with pytest.raises(SettingsError, match="EVENTS_TOPIC_ENDPOINT"):
            Settings.from_env(env(EVENTS_TOPIC_ENDPOINT=bad))
    with pytest.raises(SettingsError, match="EVENTS_TOPIC_ENDPOINT=local needs MANYMODELS_BACKEND=local"):
        Settings.from_env(env(EVENTS_TOPIC_ENDPOINT="local", MANYMODELS_BACKEND="aml", AZURE_SUBSCRIPTION_ID="s",
                              RESOURCE_GROUP="rg", AML_WORKSPACE_NAME="w"))


def test_bicep_topic_takes_cloudevents_by_identity_only() -> None:
    topic = (REPO / "infra" / "modules" / "producttopic.bicep").read_text()
    assert "'Microsoft.EventGrid/topics@" in topic
    assert "inputSchema: 'CloudEventSchemaV1_0'" in topic and "disableLocalAuth: true" in topic
    access = (REPO / "infra" / "modules" / "producttopicaccess.bicep").read_text()
    assert "d5a91429-5739-47e2-a06b-3470a27159e7" in access  # EventGrid Data Sender
    assert re.search(r"resource webhook '[^']+' = if \(!empty\(webhookUrl\)\)", access)
    main = (REPO / "infra" / "main.bicep").read_text()
    assert "EVENTS_TOPIC_ENDPOINT: productTopic.outputs.endpoint" in main and "EVENTS_TOPIC_KEY: ''" in main
    assert "publisherPrincipalId: functionApp.outputs.principalId" in main
    assert re.search(r"^param eventsWebhookUrl string = ''$", main, re.MULTILINE)
