"""The local pipeline runner end to end: real runner processes, real entry scripts, real Azurite.

Training and forecasting run ``scoring/train.py`` / ``scoring/forecast.py`` through
``pipelines.submit`` exactly as the Function App does; the ParallelRunStep behaviours that need a
misbehaving script (hang, crash) use small stand-in entry scripts written into ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.data.simulate import write_simulated
from shared.settings import Settings
from shared.storage.blobs import BlobStore
from shared.workspace.base import DatasetFile, DatasetVersion, PipelineKind, Run, RunStatus
from shared.workspace.local.datasets import files_from_folder, folder_datastore
from shared.workspace.local.pipelines import PID_FILE
from shared.workspace.local.workspace import LocalWorkspace
from shared.workspace.outbox import outbox_dir, pending, read
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

SERIES = 24  # 8 stores x 3 brands
WAIT = 180.0
BAD_STORES = {"short": 9001, "nans": 9002, "constant": 9003, "unparsable": 9004}


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def workspace(storage_settings: Settings) -> Iterator[LocalWorkspace]:
    ws = LocalWorkspace(storage_settings)
    try:
        yield ws
    finally:
        _stop_runners(ws.home)
        ws.close()


def _stop_runners(home: Path) -> None:
    """Kill every runner this test started (and its workers: one session each) that still runs."""
    for pid_file in (home / "runs").glob(f"*/{PID_FILE}"):
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    write_simulated(tmp_path / "sim", series=SERIES, seed=3)
    return tmp_path / "sim"


def _add_bad_series(folder: Path) -> None:
    good = pd.read_csv(folder / "Store1000_dominicks.csv")
    good.head(3).assign(Store=BAD_STORES["short"]).to_csv(folder / "Store9001_dominicks.csv", index=False)
    nans = good.assign(Store=BAD_STORES["nans"], Quantity=np.nan)
    nans.to_csv(folder / "Store9002_dominicks.csv", index=False)
    good.assign(Store=BAD_STORES["constant"], Quantity=100).to_csv(folder / "Store9003_dominicks.csv", index=False)
    (folder / "Store9004_dominicks.csv").write_bytes(b"\x00\x01garbage,,,\n\"unterminated\n1,2")


def _dataset(ws: LocalWorkspace, name: str, folder: Path) -> DatasetVersion:
    return ws.datasets.register(name, files_from_folder(folder), datastore=folder_datastore(folder))


def _run(ws: LocalWorkspace, pipeline: str, dataset: DatasetVersion, **parameters) -> Run:
    run = ws.pipelines.submit(pipeline, dataset, parameters=parameters)
    assert run.status == RunStatus.QUEUED
    return ws.runs.wait(run.run_id, timeout=WAIT)


def _events(ws: LocalWorkspace, run_id: str) -> list[dict]:
    """The workspace events of a run: the runner publishes them just after the run turns final."""
    def of_run() -> list[dict]:
        return [e for path in pending(outbox_dir(ws.home, "workspace")) for e in read(path)
                if e["data"].get("runId") == run_id]

    _wait_for(lambda: of_run() != [])
    # a second event would be a bug: once the runner has exited, every event it publishes is there
    _wait_for(lambda: ws.pipelines.runner_alive(run_id) is False)
    return of_run()


def _log(ws: LocalWorkspace, run: Run) -> str:
    return (ws.home / "runs" / run.run_id / "logs" / "runner.log").read_text()


def _stand_in(tmp_path: Path, body: str) -> Path:
    """A stand-in entry script honouring docs/architecture.md §4 (one row per file, status ok)."""
    folder = tmp_path / "standin"
    folder.mkdir(exist_ok=True)
    (folder / "standin.py").write_text(
        "import argparse, os, time\nimport pandas as pd\n"
        "args, _ = argparse.ArgumentParser().parse_known_args()\n"
        "def init():\n    pass\n"
        "def run(mini_batch):\n"
        "    rows = []\n"
        "    for path in mini_batch:\n"
        "        name = os.path.basename(path)\n"
        f"{body}"
        "        rows.append({'file': path, 'series': name, 'status': 'ok', 'reason': ''})\n"
        "    return pd.DataFrame(rows)\n")
    return folder


def _publish_stand_in(ws: LocalWorkspace, folder: Path, **config) -> str:
    ws.pipelines.publish("standin", PipelineKind.TRAINING, parameters={"parallel_run_config": {
        "entry_script": "standin.py", "source_directory": str(folder), **config}})
    return "standin"


def _files(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text("x\n")
    return folder


# --------------------------------------------------------------------------- training and forecasting


def test_training_registers_every_good_model_and_records_each_bad_series(workspace, sample) -> None:
    ws = workspace
    _add_bad_series(sample / "train")
    run = _run(ws, ws.settings.training_pipeline_name, _dataset(ws, "train", sample / "train"), mode="all")

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.started and run.ended and run.counts["files"] == SERIES + len(BAD_STORES)
    registered = {m.name for m in ws.models.list()}
    good = {f"auto_{b}_{1000 + s // 3}" for s, b in enumerate(["dominicks", "minute.maid", "tropicana"] * 8)}
    assert good <= registered  # every good series, whatever happened to the bad ones
    assert run.counts["models_registered"] == len(registered)

    # every bad series is either a failure or a fallback model, and always with a reason
    results = json.loads((ws.home / "runs" / run.run_id / "results.json").read_text())
    recorded = {f"{f.file} {f.series}": f.reason for f in run.failures}
    recorded.update({f["series"]: f["reason"] for f in results["fallback"]})
    for kind, store in BAD_STORES.items():
        hits = [reason for key, reason in recorded.items() if str(store) in key]
        assert hits and all(hits), f"the {kind} series (Store{store}) left no failure or fallback reason"
    unparsable = [f for f in run.failures if f.file == "Store9004_dominicks.csv"]
    assert unparsable and unparsable[0].reason

    # ParallelRunStep outputs and logs
    run_dir = ws.home / "runs" / run.run_id
    rows = (run_dir / "parallel_run_step.txt").read_text().splitlines()
    assert len(rows) == run.counts["rows"] >= SERIES + 1
    assert list(run_dir.glob("logs/user/stdout/process*.stdout.txt"))
    assert (run_dir / "logs" / "sys" / "job_report" / "processed_mini-batches.csv").exists()
    assert "step registration" in _log(ws, run)

    # one RunCompleted event, as Azure ML raises it, and no ModelRegistered flood
    events = _events(ws, run.run_id)
    assert [e["eventType"] for e in events] == ["Microsoft.MachineLearningServices.RunCompleted"]
    everything = [e["eventType"] for p in pending(outbox_dir(ws.home, "workspace")) for e in read(p)]
    assert "Microsoft.MachineLearningServices.ModelRegistered" not in everything
    data = events[0]["data"]
    assert data["runId"] == run.run_id and data["experimentName"] == ws.settings.training_pipeline_name
    assert data["runTags"]["manymodels_kind"] == "training" and data["runTags"]["dataset_name"] == "train"
    assert data["runProperties"]["models_registered"] == str(len(registered))


def test_changed_mode_retrains_only_changed_files(workspace, sample) -> None:
    ws = workspace
    train = sample / "train"
    first = _run(ws, ws.settings.training_pipeline_name, _dataset(ws, "train", train), mode="changed")
    assert first.status == RunStatus.COMPLETED and first.counts["models_registered"] == SERIES

    for name in ("Store1001_tropicana.csv", "Store1004_dominicks.csv"):
        frame = pd.read_csv(train / name)
        frame.loc[len(frame) - 1, "Quantity"] += 7
        frame.to_csv(train / name, index=False)
    dataset = _dataset(ws, "train", train)
    assert dataset.version == 2 and sorted(dataset.changed) == ["Store1001_tropicana.csv", "Store1004_dominicks.csv"]
    second = _run(ws, ws.settings.training_pipeline_name, dataset, mode="changed")

    assert second.status == RunStatus.COMPLETED, second.error
    assert second.counts["files"] == 2 and second.counts["models_registered"] == 2
    versions = {m.name: m.version for m in ws.models.list()}
    assert {n for n, v in versions.items() if v == 2} == {"auto_tropicana_1001", "auto_dominicks_1004"}
    assert ws.models.get("auto_tropicana_1001").tags["RunId"] == second.run_id


def test_a_second_schema_trains_and_forecasts_from_its_settings_file_only(workspace, sample, tmp_path) -> None:
    ws = workspace
    renames = {"WeekStarting": "week", "Store": "shop", "Brand": "product", "Quantity": "units",
               "Price": "unit_price", "Advert": "promo"}
    for part in ("train", "inference"):
        (tmp_path / "other" / part).mkdir(parents=True)
        for path in (sample / part).glob("*.csv"):
            frame = pd.read_csv(path).drop(columns=["StoreGroup10", "StoreGroup100", "StoreGroup1000"])
            frame.rename(columns=renames).to_csv(tmp_path / "other" / part / path.name, index=False)
    settings_file = tmp_path / "other_settings.json"
    settings_file.write_text(json.dumps({
        "id_columns": ["shop", "product"], "target_column": "units", "timestamp_column": "week",
        "tag_columns": [], "drop_columns": ["Revenue"], "model_type": "lr", "test_size": 10,
        "freq": "W-THU", "horizon": 6}))

    trained = _run(ws, ws.settings.training_pipeline_name, _dataset(ws, "train", tmp_path / "other" / "train"),
                   mode="all", settings_file=str(settings_file))
    assert trained.status == RunStatus.COMPLETED, trained.error
    assert trained.counts["models_registered"] == SERIES and not trained.failures
    model = ws.models.get("lr_dominicks_1000")  # ids sorted by column name: product, shop
    assert model.tags["shop"] == "1000" and model.tags["product"] == "dominicks"

    run = _run(ws, ws.settings.forecasting_pipeline_name,
               _dataset(ws, "inference", tmp_path / "other" / "inference"), settings_file=str(settings_file))
    assert run.status == RunStatus.COMPLETED, run.error
    frame = pd.read_csv(run.outputs["predictions_file"])
    assert list(frame.columns) == ["week", "Prediction", "units", "shop", "product"]
    assert frame.groupby(["shop", "product"]).ngroups == SERIES


def test_the_cli_trains_then_forecasts_into_the_predictions_container(storage_settings, sample, tmp_path,
                                                                      capsys) -> None:
    from shared.cli import main

    try:
        code = main(["train", "--data", str(sample / "train"), "--mode", "all", "--json"])
        trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        unchanged_code = main(["train", "--data", str(sample / "train"), "--mode", "changed", "--json"])
        unchanged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        (sample / "inference" / "Store9004_dominicks.csv").write_text("not,a\nforecastable,file\n")
        out = tmp_path / "predictions.csv"
        forecast_code = main(["forecast", "--data", str(sample / "inference"), "--out", str(out), "--json"])
        forecast = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    finally:
        _stop_runners(storage_settings.home)

    assert code == 0
    assert list(trained) == ["run_id", "status", "models_registered", "failed", "fallback", "warnings", "model_types",
                             "seconds"]
    assert trained["status"] == "completed" and trained["models_registered"] == SERIES
    assert trained["failed"] == [] and trained["fallback"] == []
    assert unchanged_code == 0 and unchanged["status"] == "unchanged" and unchanged["run_id"] is None

    assert forecast_code == 0
    assert list(forecast) == ["run_id", "status", "rows", "failed", "out", "seconds"]
    assert forecast["status"] == "completed" and forecast["out"] == str(out)
    assert [f["file"] for f in forecast["failed"]] == ["Store9004_dominicks.csv"] and forecast["failed"][0]["reason"]
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["WeekStarting", "Prediction", "Quantity", "Store", "Brand"]
    assert frame.groupby(["Store", "Brand"]).ngroups == SERIES and len(frame) == forecast["rows"]
    assert frame["Prediction"].notna().all()

    ws = LocalWorkspace(storage_settings)
    try:
        run = ws.runs.get(forecast["run_id"])
        container, blob = run.outputs["predictions"].split("/", 1)
        assert container == storage_settings.predictions_container
        assert blob == f"forecasts_{run.ended[:10].replace('-', '')}_{run.run_id}.csv"
        assert BlobStore(ws.storage, container).download_bytes(blob) == out.read_bytes()
        completed = _events(ws, run.run_id)
        assert completed[0]["eventType"].endswith("RunCompleted")
        assert completed[0]["data"]["runProperties"]["predictions"] == run.outputs["predictions"]
        assert completed[0]["data"]["runTags"]["manymodels_kind"] == "forecasting"
    finally:
        ws.close()


def test_blob_datasets_are_downloaded_into_the_run(workspace, tmp_path) -> None:
    ws = workspace
    landing = BlobStore(ws.storage, ws.settings.landing_container)
    landing.ensure_container()
    folder = _files(tmp_path, "a.csv", "b.csv")
    infos = landing.upload_many([(f"train/batch-1/{p.name}", p) for p in sorted(folder.iterdir())])
    files = [DatasetFile(name=i.name.rsplit("/", 1)[-1], path=i.name, etag=i.etag, size=i.size, md5=i.md5)
             for i in infos]
    dataset = ws.datasets.register("train", files, datastore=f"azureblob://{ws.settings.landing_container}")
    pipeline = _publish_stand_in(ws, _stand_in(tmp_path, ""), process_count_per_node=1)
    run = _run(ws, pipeline, dataset, mode="all")

    assert run.status == RunStatus.COMPLETED, run.error
    downloaded = ws.home / "runs" / run.run_id / "inputs" / "train" / "batch-1"
    assert sorted(p.name for p in downloaded.iterdir()) == ["a.csv", "b.csv"]
    assert run.counts["succeeded"] == 2


# --------------------------------------------------------------------------- ParallelRunStep behaviour


def test_a_hung_run_call_is_killed_and_its_mini_batch_retried(workspace, tmp_path) -> None:
    ws = workspace
    script = _stand_in(tmp_path, "        if name == 'b.csv' and not os.path.exists(path + '.hung'):\n"
                                 "            open(path + '.hung', 'w').close()\n"
                                 "            time.sleep(600)\n")
    pipeline = _publish_stand_in(ws, script, mini_batch_size=1, run_invocation_timeout=3, run_max_try=2,
                                 process_count_per_node=2)
    run = _run(ws, pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv", "b.csv", "c.csv")), mode="all")

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.counts["retries"] == 1 and run.counts["succeeded"] == 3 and not run.failures
    report = (ws.home / "runs" / run.run_id / "logs/sys/job_report/processed_mini-batches.csv").read_text()
    assert "run_invocation_timeout=3s" in report
    rows = (ws.home / "runs" / run.run_id / "parallel_run_step.txt").read_text().splitlines()
    assert sorted(r.split(" ")[1] for r in rows) == ["a.csv", "b.csv", "c.csv"]


def test_a_mini_batch_failing_every_try_becomes_failure_rows_and_the_rest_succeeds(workspace, tmp_path) -> None:
    ws = workspace
    script = _stand_in(tmp_path, "        if name == 'boom.csv':\n            raise ValueError('cannot parse boom')\n")
    pipeline = _publish_stand_in(ws, script, mini_batch_size=2, run_max_try=2, process_count_per_node=1)
    run = _run(ws, pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv", "boom.csv", "c.csv")), mode="all")

    assert run.status == RunStatus.COMPLETED, run.error
    assert {f.file for f in run.failures} == {"a.csv", "boom.csv"}  # the whole mini-batch failed
    assert all("ValueError: cannot parse boom" in f.reason for f in run.failures)
    assert run.counts["succeeded"] == 1 and run.counts["retries"] == 1
    assert list((ws.home / "runs" / run.run_id / "logs/user/error").glob("mini-batch-*.txt"))


def test_error_threshold_fails_the_run_and_raises_run_status_changed(workspace, tmp_path) -> None:
    ws = workspace
    script = _stand_in(tmp_path, "        if name.startswith('bad'):\n"
                                 "            rows.append({'file': path, 'series': name, 'status': 'failed', "
                                 "'reason': 'bad data'})\n            continue\n")
    pipeline = _publish_stand_in(ws, script, mini_batch_size=1, error_threshold=1, process_count_per_node=1)
    run = _run(ws, pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv", "bad1.csv", "bad2.csv", "c.csv")),
               mode="all")

    assert run.status == RunStatus.FAILED
    assert "above error_threshold=1" in run.error
    events = _events(ws, run.run_id)
    assert [(e["eventType"], e["data"]["runStatus"]) for e in events] == [
        ("Microsoft.MachineLearningServices.RunStatusChanged", "Failed")]


def test_a_broken_init_fails_the_run_with_the_scripts_error(workspace, tmp_path) -> None:
    ws = workspace
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "broken.py").write_text("def init():\n    raise RuntimeError('no settings file')\n"
                                      "def run(mini_batch):\n    return []\n")
    ws.pipelines.publish("broken", PipelineKind.TRAINING, parameters={"parallel_run_config": {
        "entry_script": "broken.py", "source_directory": str(folder)}})
    run = _run(ws, "broken", _dataset(ws, "train", _files(tmp_path, "a.csv")), mode="all")

    assert run.status == RunStatus.FAILED
    assert "init() of broken.py failed: RuntimeError: no settings file" in run.error


def test_a_stopped_runner_marks_its_run_failed(workspace, tmp_path) -> None:
    ws = workspace
    script = _stand_in(tmp_path, "        time.sleep(600)\n")
    pipeline = _publish_stand_in(ws, script, run_invocation_timeout=900, process_count_per_node=1)
    run = ws.pipelines.submit(pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv")), parameters={"mode": "all"})
    _wait_for(lambda: ws.runs.get(run.run_id).counts.get("mini_batches") == 1)

    os.kill(int((ws.home / "runs" / run.run_id / PID_FILE).read_text()), signal.SIGTERM)
    final = ws.runs.wait(run.run_id, timeout=60)

    assert final.status == RunStatus.FAILED and "stopped" in final.error
    assert [e["data"]["runStatus"] for e in _events(ws, run.run_id)] == ["Failed"]


def test_a_run_whose_runner_died_is_failed_by_fail_lost_not_by_a_read(workspace, tmp_path) -> None:
    ws = workspace
    script = _stand_in(tmp_path, "        time.sleep(600)\n")
    pipeline = _publish_stand_in(ws, script, run_invocation_timeout=900, process_count_per_node=1)
    run = ws.pipelines.submit(pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv")), parameters={"mode": "all"})
    _wait_for(lambda: ws.runs.get(run.run_id).status == RunStatus.RUNNING)
    assert ws.pipelines.runner_alive(run.run_id) is True
    assert ws.runs.get(run.run_id).status == RunStatus.RUNNING

    pid = int((ws.home / "runs" / run.run_id / PID_FILE).read_text())
    os.killpg(pid, signal.SIGKILL)  # no chance to clean up: reading the run must notice
    _wait_for(lambda: ws.pipelines.runner_alive(run.run_id) is False)
    assert ws.runs.get(run.run_id).status == RunStatus.RUNNING  # a read never writes
    assert not [e for path in pending(outbox_dir(ws.home, "workspace")) for e in read(path)
                if e["data"].get("runId") == run.run_id]

    assert [r.run_id for r in ws.runs.fail_lost()] == [run.run_id]  # what the reconcile flow calls
    final = ws.runs.get(run.run_id)
    assert final.status == RunStatus.FAILED and "runner process ended" in final.error
    assert ws.runs.fail_lost() == []  # once
    assert [e["data"]["runStatus"] for e in _events(ws, run.run_id)] == ["Failed"]


def _wait_for(condition, timeout: float = 60.0) -> None:
    wait_until(condition, timeout=timeout, interval=0.1, what="the run's processes to get there")


# --------------------------------------------------------------------------- worker processes killed


def _killer(tmp_path: Path, *, init: str = "", run: str = "") -> Path:
    """A stand-in entry script whose init() / run() may SIGKILL its own process (as the OOM killer would)."""
    folder = tmp_path / "killer"
    folder.mkdir(exist_ok=True)
    (folder / "killer.py").write_text(
        "import os, signal\nimport pandas as pd\n"
        f"HERE = {str(folder)!r}\n"
        "def once(name):\n"
        "    path = os.path.join(HERE, name)\n"
        "    if os.path.exists(path):\n        return False\n"
        "    open(path, 'w').close()\n    return True\n"
        f"def init():\n    pass\n{init}"
        "def run(mini_batch):\n"
        "    rows = []\n"
        "    for path in mini_batch:\n"
        "        name = os.path.basename(path)\n"
        f"{run}"
        "        rows.append({'file': path, 'series': name, 'status': 'ok', 'reason': ''})\n"
        "    return pd.DataFrame(rows)\n")
    return folder


def _publish_killer(ws: LocalWorkspace, folder: Path, **config) -> str:
    ws.pipelines.publish("killer", PipelineKind.TRAINING, parameters={"parallel_run_config": {
        "entry_script": "killer.py", "source_directory": str(folder), **config}})
    return "killer"


def _session_processes(leader: int) -> list[int]:
    """Live processes of the session ``leader`` started (a runner: its fork server and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[3]) == leader and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def _assert_runner_gone(ws: LocalWorkspace, run: Run) -> None:
    leader = int((ws.home / "runs" / run.run_id / PID_FILE).read_text())
    _wait_for(lambda: not _session_processes(leader), timeout=30)


KILL_SELF = "os.kill(os.getpid(), signal.SIGKILL)"


def test_a_worker_killed_in_init_is_replaced_and_the_run_completes(workspace, tmp_path) -> None:
    ws = workspace
    script = _killer(tmp_path, init=f"    if once('init-killed'):\n        {KILL_SELF}\n")
    pipeline = _publish_killer(ws, script, mini_batch_size=1, run_max_try=2, process_count_per_node=1)
    run = _run(ws, pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv", "b.csv")), mode="all")

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.counts["succeeded"] == 2 and not run.failures
    assert "died in init()" in _log(ws, run)
    _assert_runner_gone(ws, run)


def test_workers_that_keep_dying_in_init_fail_the_run_after_run_max_try(workspace, tmp_path) -> None:
    ws = workspace
    script = _killer(tmp_path, init=f"    {KILL_SELF}\n")
    pipeline = _publish_killer(ws, script, mini_batch_size=1, run_max_try=2, process_count_per_node=1)
    run = _run(ws, pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv")), mode="all")

    assert run.status == RunStatus.FAILED
    assert "2 worker processes running killer.py in a row died in init() (run_max_try=2)" in run.error
    assert "exited with code -9" in run.error
    assert [e["data"]["runStatus"] for e in _events(ws, run.run_id)] == ["Failed"]
    _assert_runner_gone(ws, run)


def test_a_worker_killed_in_a_mini_batch_is_replaced_and_the_mini_batch_retried(workspace, tmp_path) -> None:
    ws = workspace
    script = _killer(tmp_path, run=f"        if name == 'b.csv' and once('run-killed'):\n            {KILL_SELF}\n")
    pipeline = _publish_killer(ws, script, mini_batch_size=1, run_max_try=2, process_count_per_node=2)
    run = _run(ws, pipeline, _dataset(ws, "train", _files(tmp_path, "a.csv", "b.csv", "c.csv")), mode="all")

    assert run.status == RunStatus.COMPLETED, run.error
    assert run.counts["retries"] == 1 and run.counts["succeeded"] == 3 and not run.failures
    report = (ws.home / "runs" / run.run_id / "logs/sys/job_report/processed_mini-batches.csv").read_text()
    assert "run() was interrupted: its process exited with code -9" in report
    rows = (ws.home / "runs" / run.run_id / "parallel_run_step.txt").read_text().splitlines()
    assert sorted(r.split(" ")[1] for r in rows) == ["a.csv", "b.csv", "c.csv"]
    _assert_runner_gone(ws, run)
