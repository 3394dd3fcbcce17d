"""Real retailer ids (spaces, accents, ``&``, formulas) through the local runner, the registry and scoring.

Before scoring/model_names.py, one such id made ``register_many`` refuse its whole chunk: the run
ended failed with nothing registered although every series had trained.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from shared.data.simulate import write_simulated
from shared.settings import Settings
from shared.workspace.base import RunStatus
from shared.workspace.local.datasets import files_from_folder, folder_datastore
from shared.workspace.local.pipelines import PID_FILE
from shared.workspace.local.workspace import LocalWorkspace

pytestmark = pytest.mark.integration

SCORING = Path(__file__).resolve().parents[2] / "scoring"
BRANDS = ["minute maid", "café", "A&W", '=HYPERLINK("x")']
WAIT = 180.0


@pytest.fixture
def workspace(storage_settings: Settings) -> Iterator[LocalWorkspace]:
    ws = LocalWorkspace(storage_settings)
    try:
        yield ws
    finally:
        for pid_file in (ws.home / "runs").glob(f"*/{PID_FILE}"):  # the runners this test started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        ws.close()


def test_unusual_ids_train_register_every_series_and_are_scored_by_raw_ids(workspace, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace
    write_simulated(tmp_path / "sim", series=1, seed=3)
    good = pd.read_csv(tmp_path / "sim" / "train" / "Store1000_dominicks.csv")
    folder = tmp_path / "train"
    folder.mkdir()
    pd.concat([good.assign(Brand=b) for b in BRANDS]).to_csv(folder / "retailer_export.csv", index=False)
    good.to_csv(folder / "Store1000_dominicks.csv", index=False)
    dataset = ws.datasets.register("train", files_from_folder(folder), datastore=folder_datastore(folder))

    run = ws.runs.wait(ws.pipelines.submit(ws.settings.training_pipeline_name, dataset,
                                           parameters={"mode": "all"}).run_id, timeout=WAIT)

    assert run.status == RunStatus.COMPLETED, run.error
    assert not run.failures, run.failures
    assert run.counts["models_registered"] == len(BRANDS) + 1
    sys.path.insert(0, str(SCORING))
    try:
        import forecaster
        import model_webservice

        names = {b: forecaster.model_name("auto", {"Store": 1000, "Brand": b}) for b in BRANDS}
        registered = {m.name: m for m in ws.models.list()}
        assert set(names.values()) | {"auto_dominicks_1000"} == set(registered)
        assert {registered[names[b]].tags["Brand"] for b in BRANDS} == set(BRANDS)  # the raw ids, as tags

        monkeypatch.setenv("AZUREML_MODEL_DIR", str(ws.home / "models"))  # the registered-model layout
        model_webservice.init()
        records = [{"id": {"Store": 1000, "Brand": b}, "model_type": "auto", "forecast_horizon": 2,
                    "data": {"future": {"Advert": [0, 1], "Price": [2.0, 2.5]}}} for b in [*BRANDS, "dominicks"]]
        answers = model_webservice.answer(records)
    finally:
        sys.path.remove(str(SCORING))
    assert [a.get("status") for a in answers] == [None] * 5, answers
    assert all(len(a["forecast"]["values"]) == 2 for a in answers)
