"""``GET /api/status`` and ``manymodels status``: every section, failures summarised, no secrets,
and a clear line when storage cannot be reached."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from test_flows_support import app_functions, http_request, make_run, open_context

from shared import cli
from shared.flows.context import Context
from shared.ledger import BatchFile
from shared.processes import free_port
from shared.settings import Settings, get_settings
from shared.storage.account import dev_connection_string
from shared.workspace.base import DatasetFile, PipelineKind, RunStatus, SeriesFailure

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(storage_settings: Settings) -> Iterator[Context]:
    with open_context(storage_settings) as context:
        yield context


def seed(ctx: Context) -> None:
    ctx.workspace.datasets.register("train", [DatasetFile("a.csv", "train/b/a.csv", "e1", 3)],
                                    datastore="azureblob://" + ctx.settings.landing_container)
    run = make_run(ctx.workspace, PipelineKind.TRAINING)
    ctx.workspace.runs.update(run.run_id, status=RunStatus.COMPLETED,
                              failures=(SeriesFailure("Store9_x.csv", "9_x", "too few rows: 3 < 12"),))
    ctx.ledger.batches.record_file("train", "b", BatchFile("a.csv", "train/b/a.csv", "e1", 3))


def test_http_status_and_cli_status(ctx: Context, capsys) -> None:
    seed(ctx)
    answer = app_functions()["status"](http_request("GET", "status"))
    assert answer.status_code == 200
    body = json.loads(answer.get_body())
    assert body["datasets"][0]["name"] == "train" and body["runs"]["counts"] == {"completed": 1}
    assert body["runs"]["failures"]["first"][0]["reason"] == "too few rows: 3 < 12"
    assert body["storage"]["reachable"] and body["batches"][0]["batch"] == "b"
    assert "AccountKey" not in answer.get_body().decode()

    assert cli.main(["status"]) == 0
    text = capsys.readouterr().out
    assert "too few rows" in text and "Batches" in text and "open" in text
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]["count"] == 0


def test_cli_status_without_storage(settings: Settings, monkeypatch, capsys) -> None:
    dead = free_port()
    monkeypatch.setenv("AzureWebJobsStorage", dev_connection_string(blob_port=dead, queue_port=dead, table_port=dead))
    get_settings.cache_clear()
    assert cli.main(["status"]) == 0
    assert "storage not reachable" in capsys.readouterr().out
